"""The funding API against an in-memory bank (``FakeBank``), on SQLite and PostgreSQL:
linking and its outcomes, validation, authorisation (another user's things are 404
everywhere), idempotency, limits and step-up, and the webhook route."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from identity.test_api import bearer, client, key_file, last_code, sign_up, unique_phone  # noqa: F401
from identity.test_mfa import make_stale
from sqlalchemy import func, select

from bankwallet.connectors.corebanking.base import InstructionStatus
from bankwallet.core import outbox
from bankwallet.funding.models import BankAccount, Movement, WebhookEvent
from bankwallet.wallets import service as wallets_service

from .conftest import HOLDER, FakeBank, card_number, iban_number


def run(client: TestClient, work):  # noqa: F811
    async def go():
        async with client.app.state.db.unit_of_work() as session:
            return await work(session)

    return client.portal.call(go)


def new_user(client: TestClient) -> tuple[str, dict[str, str], dict[str, Any]]:  # noqa: F811
    created = sign_up(client, unique_phone())
    return created["user"]["id"], bearer(created["token"]), created


def link(client: TestClient, bank: FakeBank, headers: dict[str, str],  # noqa: F811
         number: str | None = None) -> str:
    number = bank.add_account(number or card_number())
    r = client.post("/api/v1/bank-accounts", headers=headers,
                    json={"number": number, "holder_name": HOLDER, "name": "Salary"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def move(client: TestClient, headers: dict[str, str], kind: str, account: str,  # noqa: F811
         amount_minor: int, *, key: str | None = None, **extra: Any):
    return client.post(f"/api/v1/{kind}s", headers={**headers, "Idempotency-Key":
                                                     key or secrets.token_hex(8)},
                       json={"bank_account_id": account, "amount_minor": amount_minor,
                             "currency": "CNY", **extra})


def balance(client: TestClient, user_id: str) -> wallets_service.Balance:  # noqa: F811
    return client.portal.call(wallets_service.balance, client.app.state.ledger,
                              uuid.UUID(user_id), "CNY")


def deliver(client: TestClient, bank: FakeBank, ins, status: str, **kw: Any):  # noqa: F811
    body, headers = bank.event(ins, status, **kw)
    return client.post("/webhooks/corebanking", content=body, headers=headers)


def count(client: TestClient, model, **where: Any) -> int:  # noqa: F811
    async def work(session):
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return await session.scalar(query)

    return run(client, work)


def topped_up(client: TestClient, bank: FakeBank, amount_minor: int = 100_00  # noqa: F811
              ) -> tuple[str, dict[str, str], str]:
    """A user with a linked bank account and ``amount_minor`` in the wallet."""
    user_id, headers, _ = new_user(client)
    account = link(client, bank, headers)
    r = move(client, headers, "topup", account, amount_minor)
    assert r.status_code == 201, r.text
    ins = bank.settle(_reference(r), InstructionStatus.SUCCEEDED)
    assert deliver(client, bank, ins, "succeeded").json() == {"status": "applied"}
    return user_id, headers, account


def _reference(response) -> str:
    return f"bankwallet-{response.json()['kind']}-{response.json()['id']}"


# -- bank accounts ---------------------------------------------------------------------------


def test_link_list_rename_remove(client: TestClient, bank: FakeBank) -> None:  # noqa: F811
    _, h, _ = new_user(client)
    number = card_number()
    account = link(client, bank, h, number)
    listed = client.get("/api/v1/bank-accounts", headers=h).json()["items"]
    assert [a["id"] for a in listed] == [account]
    assert listed[0] == {**listed[0], "name": "Salary", "kind": "card", "country": None,
                         "number_masked": f"····{number[-4:]}"}
    assert number not in client.get("/api/v1/bank-accounts", headers=h).text

    r = client.patch(f"/api/v1/bank-accounts/{account}", headers=h, json={"name": "  Rent  "})
    assert r.status_code == 200 and r.json()["name"] == "Rent"
    assert client.get(f"/api/v1/bank-accounts/{account}", headers=h).json()["name"] == "Rent"
    assert client.delete(f"/api/v1/bank-accounts/{account}", headers=h).status_code == 204
    assert client.get("/api/v1/bank-accounts", headers=h).json()["items"] == []
    assert client.get(f"/api/v1/bank-accounts/{account}", headers=h).status_code == 404

    # Stored encrypted with a blind index: the number is nowhere in the row in clear.
    async def row(session):
        return await session.get(BankAccount, uuid.UUID(account))

    stored = run(client, row)
    assert number.encode() not in stored.number_enc and stored.number_claim is None
    assert stored.last4 == number[-4:]

    # An IBAN, typed in groups and lower case, links with its country.
    iban = iban_number()
    spaced = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4)).lower()
    bank.add_account(iban)
    r = client.post("/api/v1/bank-accounts", headers=h,
                    json={"number": spaced, "holder_name": HOLDER.upper()})
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "iban" and r.json()["country"] == "DE"
    assert r.json()["name"] == f"DE ····{iban[-4:]}"
    assert bank.calls[-1] == ("verify", iban)


INVALID_NUMBERS = [("4111111111111112", "luhn"), ("1234", "length"),
                   ("DE89370400440532013001", "iban_checksum"),
                   ("ZZ89370400440532013000", "iban_country"), ("not a number", "format")]
MALFORMED_LINKS = [
    {}, {"number": ""}, {"number": "4" * 65}, {"number": 4111111111111111},
    {"number": "4111111111111111", "holder_name": ""},
    {"number": "4111111111111111", "name": "x" * 65},
    {"number": "4111111111111111", "extra": 1}]


def test_invalid_link_requests_are_refused_before_the_bank_is_asked(
        client: TestClient, bank: FakeBank) -> None:  # noqa: F811
    _, h, _ = new_user(client)
    for number, reason in INVALID_NUMBERS:
        r = client.post("/api/v1/bank-accounts", headers=h,
                        json={"number": number, "holder_name": HOLDER})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "invalid_bank_account_number", number
        assert r.json()["reason"] == reason, number
    for body in MALFORMED_LINKS:
        r = client.post("/api/v1/bank-accounts", headers=h, json=body)
        assert r.status_code == 422, body
        assert r.headers["content-type"] == "application/problem+json"
    assert bank.calls == [] and client.get("/api/v1/bank-accounts", headers=h).json()["items"] == []


def test_verification_outcomes(client: TestClient, bank: FakeBank) -> None:  # noqa: F811
    _, h, _ = new_user(client)
    number = bank.add_account(card_number(), "Han Meimei")
    r = client.post("/api/v1/bank-accounts", headers=h,
                    json={"number": number, "holder_name": HOLDER})
    assert r.status_code == 422 and r.json()["code"] == "bank_account_name_mismatch"
    r = client.post("/api/v1/bank-accounts", headers=h,
                    json={"number": card_number(), "holder_name": HOLDER})
    assert r.status_code == 422 and r.json()["code"] == "bank_account_unknown_at_bank"
    r = client.post("/api/v1/bank-accounts", headers=h, json={"number": number})
    assert r.status_code == 422 and r.json()["code"] == "holder_name_required"
    bank.unreachable = True
    r = client.post("/api/v1/bank-accounts", headers=h,
                    json={"number": number, "holder_name": "Han Meimei"})
    assert r.status_code == 503 and r.json()["code"] == "bank_unavailable"
    assert client.get("/api/v1/bank-accounts", headers=h).json()["items"] == []
    bank.unreachable = False
    assert client.post("/api/v1/bank-accounts", headers=h, json={
        "number": number, "holder_name": "han  meimei"}).status_code == 201


def test_failed_verifications_are_throttled(client: TestClient, bank: FakeBank) -> None:  # noqa: F811
    _, h, _ = new_user(client)
    number = bank.add_account(card_number(), "Han Meimei")
    for _ in range(5):
        r = client.post("/api/v1/bank-accounts", headers=h,
                        json={"number": number, "holder_name": "Somebody"})
        assert r.json()["code"] == "bank_account_name_mismatch"
    r = client.post("/api/v1/bank-accounts", headers=h,
                    json={"number": number, "holder_name": "Han Meimei"})
    assert r.status_code == 429 and r.json()["code"] == "too_many_link_attempts"
    assert int(r.headers["retry-after"]) > 0
    assert len([c for c in bank.calls if c[0] == "verify"]) == 5


def test_one_bank_account_one_wallet(client: TestClient, bank: FakeBank) -> None:  # noqa: F811
    _, alice, _ = new_user(client)
    _, bob, _ = new_user(client)
    number = card_number()
    account = link(client, bank, alice, number)
    r = client.post("/api/v1/bank-accounts", headers=alice,
                    json={"number": number, "holder_name": HOLDER})
    assert r.status_code == 409 and r.json()["code"] == "bank_account_already_linked"
    r = client.post("/api/v1/bank-accounts", headers=bob,
                    json={"number": number, "holder_name": HOLDER})
    assert r.status_code == 409 and r.json()["code"] == "bank_account_linked_elsewhere"
    # Once Alice removes it, Bob may link it.
    assert client.delete(f"/api/v1/bank-accounts/{account}", headers=alice).status_code == 204
    assert link(client, bank, bob, number)


def test_a_verified_identity_is_what_the_bank_checks_and_links_raise_the_tier(
        client: TestClient, bank: FakeBank) -> None:  # noqa: F811
    from identity.test_kyc import random_identity

    from bankwallet.identity import kyc
    from bankwallet.identity import service as identity_service

    user_id, h, _ = new_user(client)
    legal_name = "王小明"
    national_id, born = random_identity()

    async def verify_identity(session):
        user = await identity_service.get_user(session, uuid.UUID(user_id))
        application = await kyc.submit_application(session, user, legal_name=legal_name,
                                                   national_id=national_id, birth_date=born)
        reviewer = await identity_service.create_user(
            session, login_text=f"ops-{uuid.uuid4().hex[:8]}@example.com",
            password="Plum-Harbour-Quietly-42", role="operations")
        await kyc.decide_application(session, reviewer=reviewer, application_id=application.id,
                                     approve=True, reason=None)

    run(client, verify_identity)
    assert client.get("/api/v1/me", headers=h).json()["kyc_tier"] == 1
    # The typed name is ignored: the account must be in the verified name.
    elsewhere = bank.add_account(card_number(), "Somebody Else")
    r = client.post("/api/v1/bank-accounts", headers=h,
                    json={"number": elsewhere, "holder_name": "Somebody Else"})
    assert r.status_code == 422 and r.json()["code"] == "bank_account_name_mismatch"
    own = bank.add_account(card_number(), legal_name)
    r = client.post("/api/v1/bank-accounts", headers=h, json={"number": own})
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/me", headers=h).json()["kyc_tier"] == 2


def test_without_a_bank_nothing_links_or_moves(client: TestClient) -> None:  # noqa: F811
    client.app.state.corebanking = None
    _, h, _ = new_user(client)
    r = client.post("/api/v1/bank-accounts", headers=h,
                    json={"number": card_number(), "holder_name": HOLDER})
    assert r.status_code == 503 and r.json()["code"] == "bank_not_connected"
    r = move(client, h, "topup", str(uuid.uuid4()), 100)
    assert r.status_code == 503 and r.json()["code"] == "bank_not_connected"
    assert client.get("/api/v1/topups", headers=h).json() == {"items": [], "next_cursor": None}


# -- authorisation ---------------------------------------------------------------------------


def test_another_users_things_are_not_found_everywhere(client: TestClient,  # noqa: F811
                                                       bank: FakeBank) -> None:
    _, alice, _ = new_user(client)
    _, bob, _ = new_user(client)
    account = link(client, bank, alice, card_number())
    topup = move(client, alice, "topup", account, 10_00).json()
    bank.settle(f"bankwallet-topup-{topup['id']}", InstructionStatus.SUCCEEDED)
    calls = len(bank.calls)

    for method, path, body in [
            ("GET", f"/api/v1/bank-accounts/{account}", None),
            ("PATCH", f"/api/v1/bank-accounts/{account}", {"name": "mine"}),
            ("DELETE", f"/api/v1/bank-accounts/{account}", None),
            ("GET", f"/api/v1/topups/{topup['id']}", None),
            ("GET", f"/api/v1/withdrawals/{topup['id']}", None),
            ("GET", f"/wallet/topups/{topup['id']}", None),
            ("GET", f"/wallet/topups/{topup['id']}/status", None),
            ("POST", f"/me/bank-accounts/{account}/remove", None)]:
        r = client.request(method, path, headers=bob, json=body)
        assert r.status_code == 404, (method, path, r.text)
    for kind in ("topup", "withdrawal"):
        r = move(client, bob, kind, account, 10_00)
        assert r.status_code == 404 and r.json()["code"] == "bank_account_not_found"
    r = client.post(f"/me/bank-accounts/{account}/rename", headers=bob, data={"name": "x"})
    assert r.status_code == 404
    assert client.get("/api/v1/topups", headers=bob).json()["items"] == []
    assert client.get("/api/v1/bank-accounts", headers=bob).json()["items"] == []
    assert len(bank.calls) == calls
    # Alice's things are untouched; her own top-up is hers only.
    assert client.get(f"/api/v1/bank-accounts/{account}", headers=alice).json()["name"] == "Salary"
    assert client.get(f"/api/v1/topups/{topup['id']}", headers=alice).status_code == 200
    # Without a session: 401.
    assert client.get("/api/v1/topups").status_code == 401
    assert client.post("/api/v1/bank-accounts", json={"number": "x"}).status_code == 401


# -- top-ups and withdrawals -----------------------------------------------------------------


BAD_MOVEMENTS = [
    {"amount_minor": 0}, {"amount_minor": -5}, {"amount_minor": 1.5}, {"amount_minor": "100"},
    {"amount_minor": 10**16}, {"currency": "XXX"}, {"currency": "JPY"}, {"currency": "cn"},
    {"bank_account_id": "nope"}, {"failure_mode": "explode"}, {"surprise": True}]


def test_bad_movement_input_is_4xx_and_changes_nothing(client: TestClient,  # noqa: F811
                                                      bank: FakeBank) -> None:
    user_id, h, _ = new_user(client)
    account = link(client, bank, h)
    for body in BAD_MOVEMENTS:
        for kind in ("topup", "withdrawal"):
            payload = {"bank_account_id": account, "amount_minor": 100, "currency": "CNY",
                       **body}
            r = client.post(f"/api/v1/{kind}s", json=payload,
                            headers={**h, "Idempotency-Key": secrets.token_hex(8)})
            assert 400 <= r.status_code < 500, (body, r.text)
            assert r.headers["content-type"] == "application/problem+json"
    for kind in ("topup", "withdrawal"):
        body = {"bank_account_id": account, "amount_minor": 100}
        r = client.post(f"/api/v1/{kind}s", headers=h, json=body)
        assert r.status_code == 400 and r.json()["code"] == "idempotency_key_missing"
        r = client.post(f"/api/v1/{kind}s", headers={**h, "Idempotency-Key": "bad key"},
                        json=body)
        assert r.status_code == 400 and r.json()["code"] == "idempotency_key_invalid"
    assert count(client, Movement, user_id=uuid.UUID(user_id)) == 0
    assert [c for c in bank.calls if c[0] != "verify"] == []


def test_a_retry_with_the_same_key_is_one_top_up(client: TestClient,  # noqa: F811
                                                 bank: FakeBank) -> None:
    user_id, h, _ = new_user(client)
    account = link(client, bank, h)
    first = move(client, h, "topup", account, 25_00, key="same-key")
    again = move(client, h, "topup", account, 25_00, key="same-key")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = move(client, h, "topup", account, 26_00, key="same-key")
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert count(client, Movement, user_id=uuid.UUID(user_id)) == 1
    assert [c[0] for c in bank.calls] == ["verify", "debit"]
    assert balance(client, user_id).incoming_minor == 25_00
    # Another user's same key is another top-up.
    _, h2, _ = new_user(client)
    account2 = link(client, bank, h2)
    assert move(client, h2, "topup", account2, 25_00, key="same-key").json()["id"] \
        != first.json()["id"]


def test_a_top_up_settles_once_whatever_arrives(client: TestClient,  # noqa: F811
                                                bank: FakeBank) -> None:
    user_id, h, _ = new_user(client)
    account = link(client, bank, h)
    r = move(client, h, "topup", account, 88_00)
    topup = r.json()
    assert topup["status"] == "pending" and balance(client, user_id).incoming_minor == 88_00
    ins = bank.settle(_reference(r), InstructionStatus.SUCCEEDED)
    event_id = f"evt_{uuid.uuid4().hex}"
    assert deliver(client, bank, ins, "succeeded", event_id=event_id).json()["status"] == "applied"
    assert deliver(client, bank, ins, "succeeded", event_id=event_id).json()["status"] == "duplicate"
    # The same outcome under a new id (a bank's redelivery bug): applied once all the same.
    assert deliver(client, bank, ins, "succeeded").json()["status"] == "applied"
    # A contradicting late failure changes nothing.
    assert deliver(client, bank, ins, "failed", reason="declined").status_code == 200
    now = balance(client, user_id)
    assert (now.posted_minor, now.incoming_minor) == (88_00, 0)
    got = client.get(f"/api/v1/topups/{topup['id']}", headers=h).json()
    assert got["status"] == "succeeded" and got["settled_at"]

    async def published(session):
        rows = (await session.scalars(select(outbox.OutboxEvent).where(
            outbox.OutboxEvent.topic == "money.moved"))).all()
        return [r.payload for r in rows if r.payload["ref"] == topup["id"]]

    (moved,) = run(client, published)
    assert moved == {"kind": "topup", "status": "posted", "ref": topup["id"],
                     "amount_minor": 88_00, "currency": "CNY",
                     "ledger_transfer_id": moved["ledger_transfer_id"], "payer_user_id": None,
                     "payee_user_id": user_id, "from": f"Bank account ····{moved['from'][-4:]}",
                     "to": moved["to"]}
    assert "****" in moved["to"]


def test_a_declined_top_up_voids_its_hold(client: TestClient, bank: FakeBank) -> None:  # noqa: F811
    user_id, h, _ = new_user(client)
    account = link(client, bank, h)
    r = move(client, h, "topup", account, 10_00, failure_mode="decline")
    assert r.status_code == 201 and r.json()["status"] == "failed"
    assert r.json()["failure_reason"] == "declined"
    ins = bank.by_reference(_reference(r))
    assert deliver(client, bank, ins, "failed", reason="declined").json()["status"] == "applied"
    now = balance(client, user_id)
    assert (now.posted_minor, now.incoming_minor) == (0, 0)


def test_a_reversal_before_its_success_is_applied_after_it(client: TestClient,  # noqa: F811
                                                           bank: FakeBank) -> None:
    user_id, h, _ = new_user(client)
    account = link(client, bank, h)
    r = move(client, h, "topup", account, 30_00)
    ins = bank.settle(_reference(r), InstructionStatus.REVERSED, "sandbox_reversal")
    assert deliver(client, bank, ins, "reversed", reason="sandbox_reversal").json() == {
        "status": "applied"}
    assert deliver(client, bank, ins, "succeeded").status_code == 200  # late, out of order
    got = client.get(f"/api/v1/topups/{r.json()['id']}", headers=h).json()
    assert got["status"] == "reversed" and got["shortfall_minor"] == 0
    now = balance(client, user_id)
    assert (now.posted_minor, now.incoming_minor) == (0, 0)


def test_a_reversal_the_wallet_cannot_cover_records_a_shortfall(client: TestClient,  # noqa: F811
                                                                bank: FakeBank) -> None:
    user_id, h, account = topped_up(client, bank, 100_00)
    topup_id = client.get("/api/v1/topups", headers=h).json()["items"][0]["id"]
    w = move(client, h, "withdrawal", account, 60_00)
    assert w.status_code == 201 and w.json()["status"] == "pending"
    deliver(client, bank, bank.settle(_reference(w), InstructionStatus.SUCCEEDED), "succeeded")
    assert balance(client, user_id).posted_minor == 40_00
    ins = bank.settle(f"bankwallet-topup-{topup_id}", InstructionStatus.REVERSED)
    deliver(client, bank, ins, "reversed")
    got = client.get(f"/api/v1/topups/{topup_id}", headers=h).json()
    assert got["status"] == "reversed" and got["shortfall_minor"] == 60_00
    assert balance(client, user_id).posted_minor == 0

    async def shortfalls(session):
        return (await session.scalars(select(outbox.OutboxEvent).where(
            outbox.OutboxEvent.topic == "funding.shortfall"))).all()

    assert any(e.payload["movement_id"] == topup_id and e.payload["shortfall_minor"] == 60_00
               for e in run(client, shortfalls))


def test_withdrawals_hold_then_leave_or_come_back(client: TestClient,  # noqa: F811
                                                 bank: FakeBank) -> None:
    user_id, h, account = topped_up(client, bank, 100_00)
    ok = move(client, h, "withdrawal", account, 30_00)
    declined = move(client, h, "withdrawal", account, 20_00, failure_mode="decline")
    returned = move(client, h, "withdrawal", account, 10_00)
    assert declined.json()["status"] == "failed"
    assert balance(client, user_id).available_minor == 60_00
    deliver(client, bank, bank.settle(_reference(ok), InstructionStatus.SUCCEEDED), "succeeded")
    deliver(client, bank, bank.settle(_reference(returned), InstructionStatus.REVERSED),
            "reversed")
    now = balance(client, user_id)
    assert (now.posted_minor, now.available_minor, now.outgoing_minor) == (70_00, 70_00, 0)
    statuses = {m["id"]: m["status"] for m in
                client.get("/api/v1/withdrawals", headers=h).json()["items"]}
    assert statuses == {ok.json()["id"]: "succeeded", declined.json()["id"]: "failed",
                        returned.json()["id"]: "reversed"}


def test_a_withdrawal_over_the_balance_is_refused_and_replayed(client: TestClient,  # noqa: F811
                                                              bank: FakeBank) -> None:
    user_id, h, account = topped_up(client, bank, 10_00)
    calls = len(bank.calls)
    r = move(client, h, "withdrawal", account, 10_01, key="too-much")
    assert r.status_code == 422 and r.json()["code"] == "insufficient_funds"
    again = move(client, h, "withdrawal", account, 10_01, key="too-much")
    assert again.status_code == 422 and again.headers["idempotent-replayed"] == "true"
    assert len(bank.calls) == calls  # the bank was never asked
    assert balance(client, user_id).available_minor == 10_00
    (failed,) = client.get("/api/v1/withdrawals", headers=h).json()["items"]
    assert failed["status"] == "failed" and failed["failure_reason"] == "insufficient_funds"
    # The daily outflow it reserved was given back: the whole limit is still there.
    assert move(client, h, "withdrawal", account, 10_00).status_code == 201


def test_limits_and_step_up(client: TestClient, bank: FakeBank) -> None:  # noqa: F811
    from sqlalchemy import update

    from bankwallet.identity.models import User

    user_id, h, created = new_user(client)
    account = link(client, bank, h)
    # Tier 0: the balance cap (2,000.00) stops a bigger top-up; nothing is asked of the bank.
    r = move(client, h, "topup", account, 2_000_01)
    assert r.status_code == 422 and r.json()["code"] == "limit_exceeded"
    assert r.json()["limit"] == "balance"

    async def tier_one(session):
        await session.execute(update(User).where(User.id == uuid.UUID(user_id))
                              .values(kyc_tier=1))

    run(client, tier_one)
    make_stale(client, created["session_id"])
    r = move(client, h, "topup", account, 2_500_00, key="big")
    assert r.status_code == 403 and r.json()["code"] == "step_up_required"
    assert count(client, Movement, user_id=uuid.UUID(user_id)) == 0
    assert client.post("/api/v1/auth/step-up/sms", headers=h).status_code == 202
    code = last_code(client, created["user"]["phone"])
    assert client.post("/api/v1/auth/step-up", headers=h,
                       json={"method": "sms", "code": code}).status_code == 200
    # The same key works after the step-up: the refusal was never stored against it.
    r = move(client, h, "topup", account, 2_500_00, key="big")
    assert r.status_code == 201 and r.json()["status"] == "pending"


def test_failure_modes_are_refused_in_production(client: TestClient, bank: FakeBank,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from bankwallet.settings import get_settings

    user_id, h, _ = new_user(client)
    account = link(client, bank, h)
    monkeypatch.setenv("BANKWALLET_ENV", "prod")
    get_settings.cache_clear()
    r = move(client, h, "topup", account, 100, failure_mode="decline")
    assert r.status_code == 422 and r.json()["code"] == "failure_mode_not_allowed"
    assert count(client, Movement, user_id=uuid.UUID(user_id)) == 0


def test_lists_page_newest_first(client: TestClient, bank: FakeBank) -> None:  # noqa: F811
    _, h, _ = new_user(client)
    account = link(client, bank, h)
    ids = [move(client, h, "topup", account, 100 + i).json()["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/topups", headers=h, params=params).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    for bad in (str(uuid.uuid4()), "nope"):
        r = client.get("/api/v1/topups", headers=h, params={"cursor": bad})
        assert r.status_code == 422 and r.json()["code"] == "invalid_cursor"
    assert client.get("/api/v1/topups", headers=h, params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/topups", headers=h, params={"limit": 101}).status_code == 422


# -- the webhook route -----------------------------------------------------------------------


def test_a_webhook_that_fails_verification_changes_nothing(client: TestClient,  # noqa: F811
                                                          bank: FakeBank) -> None:
    from bankwallet.core import webhooks

    user_id, h, _ = new_user(client)
    account = link(client, bank, h)
    r = move(client, h, "topup", account, 5_00)
    ins = bank.settle(_reference(r), InstructionStatus.SUCCEEDED)
    body, headers = bank.event(ins, "succeeded", secret="whsec_not_the_banks_secret_at_all")
    before = count(client, WebhookEvent)
    for content, hdrs in [
            (body, headers),
            (body, {}),
            (body + b" ", bank.event(ins, "succeeded")[1]),
            (body, {webhooks.SIGNATURE_HEADER: webhooks.sign(
                "whsec_fake_bank_0123456789abcdef", body, timestamp=1_000_000_000)}),
            (b"not json", {webhooks.SIGNATURE_HEADER: webhooks.sign(
                "whsec_fake_bank_0123456789abcdef", b"not json")}),
            (b'{"id": "evt_1"}', {webhooks.SIGNATURE_HEADER: webhooks.sign(
                "whsec_fake_bank_0123456789abcdef", b'{"id": "evt_1"}')})]:
        answer = client.post("/webhooks/corebanking", content=content, headers=hdrs)
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    assert count(client, WebhookEvent) == before
    assert client.get(f"/api/v1/topups/{r.json()['id']}", headers=h).json()["status"] == "pending"
    assert balance(client, user_id).posted_minor == 0

    # Verified, but about something else: acknowledged (the bank stops retrying), not applied.
    assert deliver(client, bank, ins, "succeeded", reference="someone-elses").json() == {
        "status": "ignored"}
    assert deliver(client, bank, ins, "succeeded", amount_minor=5_01).json() == {
        "status": "ignored"}
    assert deliver(client, bank, ins, "succeeded", event_id="x" * 200).status_code == 400
    assert balance(client, user_id).posted_minor == 0


def test_the_poll_job_heals_what_webhooks_never_said(client: TestClient,  # noqa: F811
                                                    bank: FakeBank) -> None:
    import datetime as dt

    from bankwallet.core.db import utcnow
    from bankwallet.funding import tasks

    user_id, h, _ = new_user(client)
    account = link(client, bank, h)
    silent = move(client, h, "topup", account, 7_00)
    unknown = move(client, h, "topup", account, 8_00, failure_mode="timeout")
    assert unknown.json()["status"] == "pending"
    bank.settle(_reference(silent), InstructionStatus.SUCCEEDED)
    bank.settle(_reference(unknown), InstructionStatus.SUCCEEDED)
    later = utcnow() + dt.timedelta(hours=1)
    for _ in range(3):  # an unanswered instruction: found by reference, then asked about
        client.portal.call(lambda: tasks.poll_once(client.app.state.db, client.app.state.ledger,
                                                   bank, now=later))
    for r in (silent, unknown):
        assert client.get(f"/api/v1/topups/{r.json()['id']}", headers=h).json()["status"] \
            == "succeeded"
    assert balance(client, user_id).posted_minor == 15_00


class CrashingBank(FakeBank):
    """Records the instruction, then the process 'dies' before the answer is recorded."""

    async def debit(self, *args: Any, **kwargs: Any):
        await super().debit(*args, **kwargs)
        raise RuntimeError("power cut")


def test_a_crash_after_the_bank_call_heals_by_polling(client: TestClient) -> None:  # noqa: F811
    import datetime as dt

    from bankwallet.core.db import utcnow
    from bankwallet.funding import tasks

    crashing = CrashingBank()
    client.app.state.corebanking = crashing
    user_id, h, _ = new_user(client)
    account = link(client, crashing, h)
    with pytest.raises(RuntimeError):
        move(client, h, "topup", account, 9_00, key="crash")
    assert balance(client, user_id).incoming_minor == 9_00  # held, outcome unknown
    healthy = FakeBank(accounts=crashing.accounts, instructions=crashing.instructions,
                       by_key=crashing.by_key)
    client.app.state.corebanking = healthy
    (ins,) = healthy.instructions.values()
    healthy.settle(ins.reference, InstructionStatus.SUCCEEDED)
    client.portal.call(lambda: tasks.poll_once(client.app.state.db, client.app.state.ledger,
                                               healthy, now=utcnow() + dt.timedelta(hours=1)))
    now = balance(client, user_id)
    assert (now.posted_minor, now.incoming_minor) == (9_00, 0)
    # Never sent twice (the job also checked other tests' pending movements with this bank).
    assert [i.reference for i in healthy.instructions.values()].count(ins.reference) == 1
