"""The ledger's JSON API through FastAPI's TestClient, on SQLite and PostgreSQL: the operator
token, accounts, per-transfer results, reads, history pages and problem+json errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from bankwallet.app import create_app
from bankwallet.settings import Settings

TOKEN = "t"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "/api/v1/ledger"
PENDING, POST, LINKED = 2, 4, 1


def make_client(db_url: str, *, ops_token: str | None = TOKEN) -> TestClient:
    settings = Settings(database_url=db_url, ops_token=ops_token, log_json=False,
                        log_level="WARNING")
    return TestClient(create_app(settings, run_workers=False))


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with make_client(db_url) as c:
        c.headers.update(AUTH)
        yield c


def new_id() -> str:
    return str(uuid.uuid4())


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["type"] == f"/problems/{body['code']}"
    assert body["title"]
    if code is not None:
        assert body["code"] == code
    return body


def head_seq(client: TestClient) -> int:
    """The ledger chain's head, read on the app's own loop and engine."""
    async def read() -> int:
        async with client.app.state.db.engine.connect() as conn:  # type: ignore[attr-defined]
            return (await conn.execute(text("SELECT seq FROM ledger_chain WHERE id = 1"))
                    ).scalar_one()

    return client.portal.call(read)  # type: ignore[union-attr]


def open_accounts(client: TestClient, *flags: int, ledger: str = "CNY") -> list[str]:
    ids = [new_id() for _ in flags]
    accounts = [{"id": i, "ledger": ledger, "kind": "wallet", "flags": f}
                for i, f in zip(ids, flags, strict=True)]
    r = client.post(f"{BASE}/accounts", json={"accounts": accounts})
    assert r.status_code == 201, r.text
    assert r.json() == {"created": [True] * len(ids)}
    return ids


def transfer(debit: str, credit: str, amount: Any, **kw: Any) -> dict[str, Any]:
    return {"id": new_id(), "debit_account_id": debit, "credit_account_id": credit,
            "amount": amount, "ledger": "CNY", "code": 1, **kw}


def post_transfers(client: TestClient, *transfers: dict[str, Any]) -> list[dict[str, Any]]:
    r = client.post(f"{BASE}/transfers", json={"transfers": list(transfers)})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["index"] for x in results] == list(range(len(transfers)))
    return results


# -- the operator token -------------------------------------------------------------------------


ENDPOINTS = [("GET", "/accounts/{id}"), ("GET", "/accounts/{id}/transfers"),
             ("GET", "/transfers/{id}"), ("POST", "/accounts"), ("POST", "/transfers")]


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    url = BASE + path.format(id=new_id())
    if method == "GET":
        return client.get(url, headers=headers)
    return client.post(url, headers=headers, json={"accounts": [], "transfers": []})


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_needs_the_token(db_url: str, method: str, path: str) -> None:
    with make_client(db_url) as client:
        assert_problem(_call(client, method, path, {}), 401, "unauthenticated")
        for header in ("Basic dDp0", "Bearer", "Bearer ", "t", f"Token {TOKEN}"):
            assert_problem(_call(client, method, path, {"Authorization": header}), 401,
                           "unauthenticated")
        for wrong in ("Bearer x", "Bearer tt", f"Bearer {TOKEN} ", "Bearer T"):
            assert_problem(_call(client, method, path, {"Authorization": wrong}), 403,
                           "forbidden")


@pytest.mark.parametrize("unset", [None, ""])
def test_api_is_closed_when_no_token_is_configured(db_url: str, unset: str | None) -> None:
    with make_client(db_url, ops_token=unset) as client:
        for method, path in ENDPOINTS:
            assert_problem(_call(client, method, path, AUTH), 403, "forbidden")
            assert_problem(_call(client, method, path, {"Authorization": "Bearer "}), 403)


def test_refused_requests_write_nothing(db_url: str) -> None:
    with make_client(db_url) as client:
        before = head_seq(client)
        account = new_id()
        body = {"accounts": [{"id": account, "ledger": "CNY", "kind": "wallet"}]}
        assert_problem(client.post(f"{BASE}/accounts", json=body), 401)
        assert_problem(client.post(f"{BASE}/accounts", json=body,
                                   headers={"Authorization": "Bearer nope"}), 403)
        assert_problem(client.get(f"{BASE}/accounts/{account}", headers=AUTH), 404)
        assert head_seq(client) == before


# -- accounts -----------------------------------------------------------------------------------


def test_create_and_read_accounts(client: TestClient) -> None:
    wallet, bank = new_id(), new_id()
    r = client.post(f"{BASE}/accounts", json={"accounts": [
        {"id": wallet, "ledger": "CNY", "kind": "customer_wallet", "flags": 2,
         "owner_id": "user-1"},
        {"id": bank, "ledger": "CNY", "kind": "settlement"}]})
    assert r.status_code == 201
    assert r.json() == {"created": [True, True]}
    again = client.post(f"{BASE}/accounts", json={"accounts": [
        {"id": wallet, "ledger": "USD", "kind": "other", "flags": 4}]})
    assert again.json() == {"created": [False]}  # an existing account is left as it was
    a = client.get(f"{BASE}/accounts/{wallet}").json()
    assert {k: a[k] for k in ("id", "ledger", "kind", "flags", "owner_id", "debits_pending",
                              "debits_posted", "credits_pending", "credits_posted", "balance",
                              "available")} == {
        "id": wallet, "ledger": "CNY", "kind": "customer_wallet", "flags": 2,
        "owner_id": "user-1", "debits_pending": 0, "debits_posted": 0, "credits_pending": 0,
        "credits_posted": 0, "balance": 0, "available": 0}
    assert a["created_at"].endswith("Z") or a["created_at"].endswith("+00:00")


def test_unknown_ids_are_404_problems(client: TestClient) -> None:
    missing = new_id()
    assert_problem(client.get(f"{BASE}/accounts/{missing}"), 404, "ledger_account_not_found")
    assert_problem(client.get(f"{BASE}/accounts/{missing}/transfers"), 404,
                   "ledger_account_not_found")
    body = assert_problem(client.get(f"{BASE}/transfers/{missing}"), 404,
                          "ledger_transfer_not_found")
    assert body["instance"] == f"{BASE}/transfers/{missing}"
    assert missing in body["detail"]


# -- transfers ----------------------------------------------------------------------------------


def test_post_transfers_returns_a_result_per_transfer(client: TestClient) -> None:
    bank, merchant, fees = open_accounts(client, 0, 0, 0)
    (wallet,) = open_accounts(client, 2)
    fund = transfer(bank, wallet, 1000)
    spend = transfer(wallet, merchant, 300, user_data={"order": "A-1", "n": 3, "gift": False})
    overspend = transfer(wallet, merchant, 800)
    hold = transfer(wallet, merchant, 100, flags=PENDING, timeout_s=600)
    pay_leg = transfer(wallet, merchant, 50, flags=LINKED)
    fee_leg = transfer(wallet, fees, 10_000)  # too much: the chain fails as a whole
    too_large = transfer(bank, merchant, 2**63)
    negative = transfer(bank, merchant, -5)
    unknown = transfer(new_id(), merchant, 5)
    body = [fund, spend, overspend, hold, pay_leg, fee_leg, too_large, negative, unknown]
    results = post_transfers(client, *body)
    assert [(x["result"], x["ok"]) for x in results] == [
        ("created", True), ("created", True), ("exceeds_credits", False), ("created", True),
        ("linked_event_failed", False), ("exceeds_credits", False),
        ("amount_too_large", False), ("amount_must_not_be_zero", False),
        ("debit_account_not_found", False)]
    for x in results:
        assert x["message"]
        assert (x["transfer"] is not None) == x["ok"]
    made = results[1]["transfer"]
    assert made["id"] == spend["id"] and made["amount"] == 300 and made["seq"] > 0
    assert made["user_data"] == {"order": "A-1", "n": 3, "gift": False}
    assert len(bytes.fromhex(made["hash"])) == 32
    assert results[3]["transfer"]["expires_at"] is not None

    a = client.get(f"{BASE}/accounts/{wallet}").json()
    assert (a["debits_pending"], a["debits_posted"], a["credits_posted"]) == (100, 300, 1000)
    assert (a["balance"], a["available"]) == (700, 600)

    # The same request again: what was applied exists (same transfer), nothing applies twice.
    again = post_transfers(client, *body)
    assert [x["result"] for x in again][:4] == ["exists", "exists", "exceeds_credits", "exists"]
    assert again[1]["transfer"] == made
    assert client.get(f"{BASE}/accounts/{wallet}").json() == a

    # Read back by id; refused transfers were never stored.
    assert client.get(f"{BASE}/transfers/{spend['id']}").json() == made
    for refused in (overspend, pay_leg, fee_leg, too_large):
        assert_problem(client.get(f"{BASE}/transfers/{refused['id']}"), 404)

    # Post the hold partly; the rest goes back to the wallet.
    (posted,) = post_transfers(client, {"id": new_id(), "pending_id": hold["id"],
                                        "flags": POST, "amount": 40})
    assert posted["result"] == "created" and posted["transfer"]["amount"] == 40
    a = client.get(f"{BASE}/accounts/{wallet}").json()
    assert (a["debits_pending"], a["debits_posted"], a["available"]) == (0, 340, 660)


def test_same_id_with_other_fields_is_refused(client: TestClient) -> None:
    bank, merchant = open_accounts(client, 0, 0)
    t = transfer(bank, merchant, 10)
    assert post_transfers(client, t)[0]["result"] == "created"
    changed = post_transfers(client, {**t, "amount": 11}, {**t, "code": 2})
    assert [x["result"] for x in changed] == ["transfer_exists_with_different_fields"] * 2
    assert all(x["transfer"] is None for x in changed)
    assert client.get(f"{BASE}/transfers/{t['id']}").json()["amount"] == 10


def test_history_pages_by_cursor(client: TestClient) -> None:
    me, other = open_accounts(client, 0, 0)
    ids = []
    for k in range(7):
        t = transfer(me, other, k + 1) if k % 2 else transfer(other, me, k + 1)
        assert post_transfers(client, t)[0]["ok"]
        ids.append(t["id"])
    seen, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        r = client.get(f"{BASE}/accounts/{me}/transfers", params=params)
        assert r.status_code == 200
        page = r.json()
        pages += 1
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == page["items"][-1]["seq"]
    assert seen == ids[::-1] and pages == 3
    everything = client.get(f"{BASE}/accounts/{me}/transfers").json()
    assert [t["id"] for t in everything["items"]] == ids[::-1]
    assert everything["next_cursor"] is None
    for bad in ({"limit": 0}, {"limit": 501}, {"limit": "x"}, {"cursor": 0}, {"cursor": -1},
                {"cursor": "abc"}):
        assert_problem(client.get(f"{BASE}/accounts/{me}/transfers", params=bad), 422,
                       "invalid_input")


# -- malformed input ----------------------------------------------------------------------------

A = str(uuid.UUID(int=1))
B = str(uuid.UUID(int=2))


def _account(**kw: Any) -> dict[str, Any]:
    return {"accounts": [{"id": new_id(), "ledger": "CNY", "kind": "wallet", **kw}]}


def _transfer(**kw: Any) -> dict[str, Any]:
    return {"transfers": [{"id": new_id(), "debit_account_id": A, "credit_account_id": B,
                           "amount": 1, "ledger": "CNY", "code": 1, **kw}]}


MALFORMED_ACCOUNTS = {
    "bad uuid": _account(id="not-a-uuid"),
    "lowercase currency": _account(ledger="cny"),
    "long currency": _account(ledger="CNYY"),
    "unknown flags": _account(flags=8),
    "flags as a boolean": _account(flags=True),
    "negative flags": _account(flags=-1),
    "flags as text": _account(flags="two"),
    "empty kind": _account(kind=""),
    "extra field": _account(balance=100),
    "no accounts": {"accounts": []},
    "missing accounts": {},
    "extra top-level field": {**_account(), "dry_run": True},
    "a list": [{"id": new_id(), "ledger": "CNY", "kind": "wallet"}],
}

MALFORMED_TRANSFERS = {
    "bad uuid": _transfer(id="1234"),
    "bad debit uuid": _transfer(debit_account_id="alice"),
    "bad pending uuid": _transfer(pending_id="zzz"),
    "amount as words": _transfer(amount="ten"),
    "fractional amount": _transfer(amount=1.5),
    "amount as object": _transfer(amount={"value": 1}),
    "code as words": _transfer(code="rent"),
    "negative code": _transfer(code=-1),
    "code too big": _transfer(code=70000),
    "negative flags": _transfer(flags=-1),
    "negative timeout": _transfer(timeout_s=-1),
    "lowercase currency": _transfer(ledger="cny"),
    "nested user data": _transfer(user_data={"a": {"b": 1}}),
    "user data list": _transfer(user_data=[1, 2]),
    "extra field": _transfer(memo="hi"),
    "no transfers": {"transfers": []},
    "transfers not a list": {"transfers": {"id": new_id()}},
    "missing id": {"transfers": [{"amount": 1}]},
}


def _assert_refused_and_nothing_written(client: TestClient, path: str, body: Any) -> None:
    before = head_seq(client)
    problem = assert_problem(client.post(path, json=body), 422, "invalid_input")
    assert problem["errors"] and all("loc" in e and "msg" in e for e in problem["errors"])
    assert head_seq(client) == before
    for kind in ("accounts", "transfers"):
        items = body.get(kind) if isinstance(body, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and "id" in item:  # a bad uuid cannot even be looked up
                assert client.get(f"{BASE}/{kind}/{item['id']}").status_code in (404, 422)


@pytest.mark.parametrize("body", MALFORMED_ACCOUNTS.values(), ids=MALFORMED_ACCOUNTS.keys())
def test_malformed_account_bodies_are_422(client: TestClient, body: Any) -> None:
    _assert_refused_and_nothing_written(client, f"{BASE}/accounts", body)


@pytest.mark.parametrize("body", MALFORMED_TRANSFERS.values(), ids=MALFORMED_TRANSFERS.keys())
def test_malformed_transfer_bodies_are_422(client: TestClient, body: Any) -> None:
    _assert_refused_and_nothing_written(client, f"{BASE}/transfers", body)


def test_bodies_that_are_not_json_are_422(client: TestClient) -> None:
    before = head_seq(client)
    for raw in (b"{not json", b"", b"null", b'"text"'):
        r = client.post(f"{BASE}/transfers", content=raw,
                        headers={"content-type": "application/json"})
        assert_problem(r, 422, "invalid_input")
    assert head_seq(client) == before


def test_malformed_path_ids_are_422(client: TestClient) -> None:
    for path in ("/accounts/nope", "/accounts/123/transfers", "/transfers/not-a-uuid"):
        assert_problem(client.get(BASE + path), 422, "invalid_input")


# A money API does not guess: JSON true is not an amount, nor is the string "100".
@pytest.mark.parametrize("fields", [{"amount": True}, {"amount": "100"}, {"code": "1"},
                                    {"amount": 1.0}, {"flags": False}, {"timeout_s": "5"}],
                         ids=["amount true", "amount string", "code string", "amount 1.0",
                              "flags false", "timeout string"])
def test_coercible_wrong_types_are_422(client: TestClient, fields: dict[str, Any]) -> None:
    bank, merchant = open_accounts(client, 0, 0)
    body = {"transfers": [transfer(bank, merchant, 1) | fields]}
    _assert_refused_and_nothing_written(client, f"{BASE}/transfers", body)
