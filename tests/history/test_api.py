"""The transaction list, receipts and statements through the API, on SQLite and PostgreSQL,
over movements made at chosen times (the bank's zone is Asia/Shanghai, UTC+8)."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from bankwallet.history import service
from bankwallet.identity import mfa
from bankwallet.ledger import store as ledger_store
from bankwallet.wallets import service as wallets
from history.conftest import Clock, Customer, Mover, at, customer, run


@dataclass
class Story:
    a: Customer
    b: Customer
    ids: dict[str, uuid.UUID]


def tell(client: TestClient, clock: Clock, mover: Mover) -> Story:
    """A's January to March, then a hold still pending now."""
    a, b = customer(client), customer(client)
    ids: dict[str, uuid.UUID] = {}
    clock.now = at("2025-01-01 00:00")
    for user, currency in ((a, "CNY"), (b, "CNY"), (a, "USD")):
        mover.open(user, currency)
    clock.now = at("2025-01-10 02:00")
    ids["topup"] = mover.topup(a, 100_00, note="Salary")
    clock.now = at("2025-01-20 03:00")
    ids["hold"] = mover.withdrawal_hold(a, 30_00)
    clock.now = at("2025-01-31 16:30")  # 00:30 on 1 February in Shanghai
    ids["p2p_out"] = mover.p2p(a, b, 10_00, note="dinner 晚饭", payee_name="张三")
    clock.now = at("2025-02-02 01:00")
    ids["post"] = mover.post(ids["hold"], 25_00)  # less than was held
    clock.now = at("2025-02-03 01:00")
    ids["hold2"] = mover.withdrawal_hold(a, 5_00)
    clock.now = at("2025-02-04 01:00")
    ids["void"] = mover.void(ids["hold2"])
    clock.now = at("2025-02-10 01:00")
    ids["p2p_in"] = mover.p2p(b, a, 7_00, payer_name="张三", payee_name="138****0001")
    clock.now = at("2025-03-05 01:00")
    ids["sell"], ids["buy"] = mover.exchange(a, 20_00, 2_80)
    clock.now = None
    ids["pending"] = mover.withdrawal_hold(a, 1_00, timeout_s=3600)
    return Story(a, b, ids)


NEWEST_FIRST = ["pending", "buy", "sell", "p2p_in", "hold2", "p2p_out", "hold", "topup"]


def names(story: Story, items: list[dict]) -> list[str]:
    by_id = {str(v): k for k, v in story.ids.items()}
    return [by_id[item["id"]] for item in items]


def history(client: TestClient, user: Customer, query: str = "") -> list[dict]:
    r = client.get(f"/api/v1/history{query}", headers=user.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_one_list_newest_first_with_each_hold_as_one_entry(client: TestClient, clock: Clock,
                                                          mover: Mover) -> None:
    story = tell(client, clock, mover)
    items = history(client, story.a)
    assert names(story, items) == NEWEST_FIRST
    got = {n: i for n, i in zip(NEWEST_FIRST, items, strict=True)}
    assert got["topup"] == {
        "id": str(story.ids["topup"]), "direction": "in", "kind": "topup",
        "amount_minor": 100_00, "currency": "CNY", "counterparty": "Bank account ····1234",
        "note": "Salary", "status": "posted", "created_at": "2025-01-10T02:00:00Z",
        "ref": str(story.ids["topup"])}
    # The hold, its partial post: one entry, posted, for what was posted.
    assert (got["hold"]["status"], got["hold"]["amount_minor"], got["hold"]["direction"]) == (
        "posted", 25_00, "out")
    assert (got["hold2"]["status"], got["hold2"]["amount_minor"]) == ("voided", 5_00)
    assert (got["pending"]["status"], got["pending"]["amount_minor"]) == ("pending", 1_00)
    assert (got["p2p_out"]["counterparty"], got["p2p_out"]["note"]) == ("张三", "dinner 晚饭")
    assert (got["p2p_in"]["counterparty"], got["p2p_in"]["direction"]) == ("张三", "in")
    assert (got["sell"]["currency"], got["sell"]["direction"], got["sell"]["kind"]) == (
        "CNY", "out", "exchange")
    assert (got["buy"]["currency"], got["buy"]["amount_minor"]) == ("USD", 2_80)
    # The other side of the transfers sees them from its side, and nothing of A's else.
    b_items = history(client, story.b)
    assert names(story, b_items) == ["p2p_in", "p2p_out"]
    assert [(i["direction"], i["counterparty"]) for i in b_items] == [("out", "138****0001"),
                                                                       ("in", "138****0001")]


def test_pages_follow_the_cursor_without_gaps_or_repeats(client: TestClient, clock: Clock,
                                                         mover: Mover) -> None:
    story = tell(client, clock, mover)
    seen, cursor, sizes = [], None, []
    for _ in range(10):
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        r = client.get(f"/api/v1/history{query}", headers=story.a.headers)
        assert r.status_code == 200, r.text
        seen += r.json()["items"]
        sizes.append(len(r.json()["items"]))
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert sizes == [3, 3, 2]
    assert names(story, seen) == NEWEST_FIRST


FILTERS = [
    ("?kind=withdrawal", ["pending", "hold2", "hold"]),
    ("?kind=p2p&kind=topup", ["p2p_in", "p2p_out", "topup"]),
    ("?currency=USD", ["buy"]),
    ("?currency=usd&kind=exchange", ["buy"]),
    ("?date_from=2025-02-01&date_to=2025-02-01", ["p2p_out"]),  # the bank's day, not UTC's
    ("?date_from=2025-01-01&date_to=2025-01-31", ["hold", "topup"]),
    ("?date_to=2024-12-31", []),
    ("?kind=withdrawal&date_from=2025-02-01&date_to=2025-02-28", ["hold2"]),
    ("?counterparty=张三", ["p2p_in", "p2p_out"]),
    ("?counterparty=0001", []),  # A's own name on money A received is not a counterparty
    ("?counterparty=bank%20ACCOUNT", ["pending", "hold2", "hold", "topup"]),
    ("?q=dinner", ["p2p_out"]),
    ("?q=晚饭", ["p2p_out"]),
    ("?q=SALARY", ["topup"]),
    ("?q=5678", ["pending", "hold2", "hold"]),
    ("?q=%25", []),  # a literal "%", not a wildcard
    ("?q=_", []),
    ("?amount_min_minor=700&amount_max_minor=1000", ["p2p_in", "p2p_out"]),
    ("?amount_min_minor=3000", ["hold", "topup"]),  # a hold's amount: what was asked for
    ("?q=%20%20", NEWEST_FIRST),  # blank search text: no filter
]


def test_filters(client: TestClient, clock: Clock, mover: Mover) -> None:
    story = tell(client, clock, mover)
    wrong = {}
    for query, expected in FILTERS:
        got = names(story, history(client, story.a, query))
        if got != expected:
            wrong[query] = got
    assert wrong == {}


def test_a_rare_filter_reads_the_ledger_a_slice_at_a_time(client: TestClient, clock: Clock,
                                                          mover: Mover,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Short scan windows and one round per request: pages come back short, even empty, with
    a cursor, and following the cursors finds exactly what one long read finds."""
    story = tell(client, clock, mover)
    monkeypatch.setattr(ledger_store, "ACTIVITY_SCAN_WINDOW", 1)
    monkeypatch.setattr(service, "SCAN_ROUNDS_MAX", 1)
    for query, expected in [("kind=withdrawal", ["pending", "hold2", "hold"]),
                            ("q=no-such-thing", []), ("counterparty=张三", ["p2p_in", "p2p_out"]),
                            ("date_from=2025-01-01&date_to=2025-01-31", ["hold", "topup"])]:
        seen, cursor, requests = [], None, 0
        while requests < 30:
            suffix = f"&cursor={cursor}" if cursor else ""
            r = client.get(f"/api/v1/history?limit=2&{query}{suffix}", headers=story.a.headers)
            assert r.status_code == 200, r.text
            requests += 1
            seen += r.json()["items"]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
        assert names(story, seen) == expected, query
        assert requests > 1, query


BAD_FILTERS = [
    "?kind=lottery", "?currency=XAU", "?currency=ZZZ", "?date_from=2025-02-02&date_to=2025-02-01",
    "?amount_min_minor=10&amount_max_minor=9", "?amount_min_minor=-1", "?cursor=abc",
    "?cursor=0", "?cursor=-5", "?cursor=" + "9" * 19, "?limit=0", "?limit=101",
    "?date_from=yesterday", "?q=" + "x" * 65, "?counterparty=" + "y" * 65,
    "?amount_max_minor=1e3", "?amount_max_minor=" + "9" * 20,
]


def test_bad_filters_are_problems_not_errors(client: TestClient) -> None:
    user = customer(client)
    wrong = []
    for query in BAD_FILTERS:
        r = client.get(f"/api/v1/history{query}", headers=user.headers)
        if r.status_code != 422 or not r.headers["content-type"].startswith(
                "application/problem+json"):
            wrong.append((query, r.status_code, r.text[:200]))
    assert wrong == []


def test_receipts_and_who_may_see_them(client: TestClient, clock: Clock, mover: Mover) -> None:
    story = tell(client, clock, mover)
    a, b, ids = story.a, story.b, story.ids
    r = client.get(f"/api/v1/history/{ids['hold']}", headers=a.headers)
    assert r.status_code == 200, r.text
    receipt = r.json()
    hold = run(client, client.app.state.ledger.lookup_transfers, [ids["hold"], ids["post"]])
    assert receipt["ledger_transfer_id"] == str(ids["hold"])
    assert receipt["hash"] == hold[ids["hold"]].hash.hex() and len(receipt["hash"]) == 64
    assert receipt["ledger_seq"] == hold[ids["hold"]].seq
    assert receipt["status"] == "posted" and receipt["amount_minor"] == 25_00
    assert receipt["resolution"] == {
        "ledger_transfer_id": str(ids["post"]), "status": "posted", "amount_minor": 25_00,
        "created_at": "2025-02-02T01:00:00Z", "hash": hold[ids["post"]].hash.hex()}
    # The post's id finds the same movement.
    assert client.get(f"/api/v1/history/{ids['post']}", headers=a.headers).json() == receipt
    voided = client.get(f"/api/v1/history/{ids['void']}", headers=a.headers).json()
    assert (voided["id"], voided["status"]) == (str(ids["hold2"]), "voided")
    assert client.get(f"/api/v1/history/{ids['pending']}",
                      headers=a.headers).json()["resolution"] is None
    # B sees the transfers between them, nothing else of A's.
    assert client.get(f"/api/v1/history/{ids['p2p_out']}",
                      headers=b.headers).json()["direction"] == "in"
    for name in ("topup", "hold", "post", "void", "sell", "pending"):
        r = client.get(f"/api/v1/history/{ids[name]}", headers=b.headers)
        assert r.status_code == 404, name
        assert r.json()["code"] == "history_entry_not_found"
    assert client.get(f"/api/v1/history/{uuid.uuid4()}", headers=a.headers).status_code == 404
    assert client.get("/api/v1/history/not-an-id", headers=a.headers).status_code == 422
    assert client.get(f"/api/v1/history/{ids['hold']}").status_code == 401
    assert client.get("/api/v1/history").status_code == 401


def statement_rows(content: bytes) -> list[list[str]]:
    assert content.startswith(b"\xef\xbb\xbf"), "UTF-8 with a byte-order mark"
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def test_monthly_statement_as_csv(client: TestClient, clock: Clock, mover: Mover) -> None:
    story = tell(client, clock, mover)
    english = {**story.a.headers, "Accept-Language": "en"}
    r = client.get("/api/v1/statements/2025-02.csv", headers=english)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="statement-2025-02.csv"'
    assert r.headers["cache-control"] == "no-store"
    header, *rows = statement_rows(r.content)
    assert header == ["Date", "Currency", "Type", "Counterparty", "Note", "Reference",
                      "Transaction ID", "Amount", "Balance", "Amount (minor units)",
                      "Balance (minor units)"]
    cny = [row for row in rows if row[1] == "CNY"]
    assert [(row[0][:10], row[2], row[3], row[9], row[10]) for row in cny] == [
        ("2025-02-01", "Opening balance", "", "", "10000"),
        ("2025-02-01", "Transfer", "张三", "-1000", "9000"),  # 00:30 in Shanghai
        ("2025-02-02", "Withdrawal", "Bank account ····5678", "-2500", "6500"),
        ("2025-02-10", "Transfer", "张三", "700", "7200"),
        ("2025-02-28", "Closing balance", "", "", "7200")]
    assert cny[1][0] == "2025-02-01 00:30" and cny[1][4] == "dinner 晚饭"
    assert cny[1][6] == str(story.ids["p2p_out"]) and cny[2][6] == str(story.ids["post"])
    assert (cny[1][7], cny[1][8]) == ("-CN¥10.00", "CN¥90.00")  # the customer's locale
    usd = [row for row in rows if row[1] == "USD"]
    assert [(row[2], row[8]) for row in usd] == [("Opening balance", "$0.00"),
                                                ("Closing balance", "$0.00")]
    # Chinese by default (the user signed up in Chinese): amounts for that locale.
    zh = statement_rows(client.get("/api/v1/statements/2025-02.csv",
                                   headers=story.a.headers).content)
    assert zh[2][7] == "-¥10.00"
    # March: the exchange leaves CNY and arrives in USD; the pending hold is in no balance.
    march = statement_rows(client.get("/api/v1/statements/2025-03.csv",
                                      headers=english).content)[1:]
    assert [(r[1], r[2], r[9], r[10]) for r in march] == [
        ("CNY", "Opening balance", "", "7200"), ("CNY", "Exchange", "-2000", "5200"),
        ("CNY", "Closing balance", "", "5200"), ("USD", "Opening balance", "", "0"),
        ("USD", "Exchange", "280", "280"), ("USD", "Closing balance", "", "280")]
    # Before the wallet existed: no balances at all.
    assert statement_rows(client.get("/api/v1/statements/2024-12.csv",
                                     headers=english).content)[1:] == []


@pytest.mark.parametrize("window", [ledger_store.ACTIVITY_SCAN_WINDOW, 1])
def test_statement_arithmetic_matches_the_ledger_every_month(
        client: TestClient, clock: Clock, mover: Mover, monkeypatch: pytest.MonkeyPatch,
        window: int) -> None:
    """Each month opens where the one before closed, and the last closes at the balance,
    also when the ledger is read one row per index range at a time."""
    story = tell(client, clock, mover)
    monkeypatch.setattr(ledger_store, "ACTIVITY_SCAN_WINDOW", window)
    months = ["2025-01", "2025-02", "2025-03", "2025-04", *service.recent_months(2)[::-1]]
    closing: dict[str, int] = {"CNY": 0, "USD": 0}
    for month in months:
        statement = run(client, service.statement, client.app.state.ledger, story.a.id, month)
        for section in statement.sections:
            assert section.opening_minor == closing[section.currency], (month, section)
            total = sum(line.posting.amount_minor for line in section.lines)
            assert section.opening_minor + total == section.closing_minor
            closing[section.currency] = section.closing_minor
    balances = {b.currency: b.posted_minor
                for b in run(client, wallets.balances, client.app.state.ledger, story.a.id)}
    assert closing == balances == {"CNY": 52_00, "USD": 2_80}


def test_monthly_statement_as_pdf(client: TestClient, clock: Clock, mover: Mover) -> None:
    story = tell(client, clock, mover)
    r = client.get("/api/v1/statements/2025-02.pdf",
                   headers={**story.a.headers, "Accept-Language": "en"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == 'attachment; filename="statement-2025-02.pdf"'
    assert r.content.startswith(b"%PDF-")
    text, pages = pdf_text(r.content)
    user = run(client, _user, client, story.a.id)
    for expected in ("bankwallet", "2025-02-01 – 2025-02-28", mfa.masked_login(user),
                     f"Page 1 of {pages}", "Opening balance", "Closing balance", "张三",
                     "dinner 晚饭", "CN¥72.00", "-CN¥25.00"):
        assert expected in text, expected


async def _user(client: TestClient, user_id: uuid.UUID):
    from bankwallet.identity import service as identity_service

    async with client.app.state.db.unit_of_work() as session:
        return await identity_service.get_user(session, user_id)


def pdf_text(content: bytes) -> tuple[str, int]:
    try:
        import pypdf
    except ImportError:  # the header and the page objects, at least
        return content.decode("latin-1"), content.count(b"/Type /Page\n")
    reader = pypdf.PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


def test_a_long_statement_spans_pages_with_numbers(client: TestClient, clock: Clock,
                                                   mover: Mover) -> None:
    a = customer(client)
    clock.now = at("2025-05-01 00:00")
    mover.open(a)
    for day in (5, 15, 25):
        clock.now = at(f"2025-05-{day:02d} 04:00")
        mover.topups(a, [(1_00, "上海 " * 12)] * 28)
    clock.now = None
    r = client.get("/api/v1/statements/2025-05.pdf",
                   headers={**a.headers, "Accept-Language": "en"})
    text, pages = pdf_text(r.content)
    assert pages >= 2
    assert f"Page {pages} of {pages}" in text and "CN¥84.00" in text


def test_bad_statement_periods(client: TestClient) -> None:
    user = customer(client)
    wrong = []
    for extension in ("csv", "pdf"):
        for month in ("2025-13", "2025-00", "1999-12", "2999-01", "25-01", "2025-1", "abcd-ef",
                      "2025-01-01", service.recent_months(1)[0][:5] + "1x"):
            r = client.get(f"/api/v1/statements/{month}.{extension}", headers=user.headers)
            if r.status_code != 422 or r.json()["code"] != "invalid_statement_period":
                wrong.append((month, extension, r.status_code))
        assert client.get(f"/api/v1/statements/2025-01.{extension}").status_code == 401
        assert client.get(f"/api/v1/statements/2025-01.{extension}x",
                          headers=user.headers).status_code == 404
    assert wrong == []


def test_a_statement_read_while_money_keeps_moving_asks_to_retry(
        client: TestClient, mover: Mover, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from bankwallet.history import repository

    user = customer(client)
    mover.open(user)
    real = repository.lookup_accounts
    calls = {"n": 0}

    async def moving(ledger, ids):  # every look-up sees one more posting
        calls["n"] += 1
        return {i: dataclasses.replace(a, credits_posted=a.credits_posted + calls["n"])
                for i, a in (await real(ledger, ids)).items()}

    monkeypatch.setattr(repository, "lookup_accounts", moving)
    r = client.get(f"/api/v1/statements/{service.recent_months(1)[0]}.csv", headers=user.headers)
    assert r.status_code == 409 and r.json()["code"] == "statement_busy"
    assert r.headers["retry-after"] == "1"
    assert calls["n"] == 2 * service.SNAPSHOT_TRIES
