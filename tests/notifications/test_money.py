"""Money notifications: ``money.moved`` → an inbox message per user involved, SMS and e-mail
as each user chose, never twice (SQLite and PostgreSQL; concurrent dispatchers on
PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from bankwallet.core import outbox
from bankwallet.notifications import money, service
from identity.test_api import (  # noqa: F401
    STRONG,
    bearer,
    client,
    key_file,
    last_code,
    unique_email,
    unique_phone,
)


@dataclass
class User:
    id: str
    login: str  # as stored: E.164 or lower-case e-mail
    headers: dict[str, str]


def sign_up_as(client: TestClient, login: str, locale: str = "en") -> User:
    r = client.post("/api/v1/auth/signup",
                    json={"login": login, "password": STRONG, "locale": locale})
    assert r.status_code == 202, r.text
    normalised = login.replace(" ", "")
    r = client.post("/api/v1/auth/signup/verify", json={
        "challenge_id": r.json()["challenge_id"], "code": last_code(client, normalised)})
    assert r.status_code == 201, r.text
    return User(r.json()["user"]["id"], normalised, bearer(r.json()["token"]))


def event(kind: str = "p2p", status: str = "posted", *, amount_minor: int = 600_00,
          payer: User | None = None, payee: User | None = None, **extra) -> dict:
    return {"kind": kind, "status": status, "ref": str(uuid.uuid4()),
            "amount_minor": amount_minor, "currency": "CNY",
            "ledger_transfer_id": str(uuid.uuid4()),
            "payer_user_id": payer.id if payer else None,
            "payee_user_id": payee.id if payee else None,
            "from": "138****0001", "to": "王五", "note": "", **extra}


def publish(client: TestClient, payload: dict) -> uuid.UUID:
    async def go() -> uuid.UUID:
        async with client.app.state.db.unit_of_work() as session:
            return await outbox.publish(session, money.TOPIC, payload, key=payload["ref"])

    return client.portal.call(go)


def dispatch(client: TestClient) -> int:
    async def go() -> int:
        return await outbox.dispatch_once(client.app.state.db, limit=1000)

    return client.portal.call(go)


def reopen(client: TestClient, event_id: uuid.UUID) -> None:
    """Offer an event again, as after a lost lease: its consumers must not run twice."""
    async def go() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(update(outbox.OutboxEvent)
                                  .where(outbox.OutboxEvent.id == event_id)
                                  .values(dispatched_at=None, attempts=0,
                                          next_attempt_at=outbox.utcnow()))

    client.portal.call(go)


def inbox(client: TestClient, user: User) -> list[dict]:
    r = client.get("/api/v1/notifications?limit=100", headers=user.headers)
    assert r.status_code == 200, r.text
    return [m for m in r.json()["items"] if m["kind"].startswith("money.")]


def _dev_messages(client: TestClient):
    async def go():
        async with client.app.state.db.unit_of_work() as session:
            return await service.list_dev_messages(session)

    return client.portal.call(go)


def codes_sent(client: TestClient) -> set[uuid.UUID]:
    """Deliver what is due (the sign-up codes) and note what the sink holds so far."""
    dispatch(client)
    return {m.id for m in _dev_messages(client)}


def sent_to(client: TestClient, user: User, before: set[uuid.UUID]) -> list[dict]:
    """What the development sink holds for the user since ``before``, newest first."""
    return [{"channel": m.channel, "subject": m.subject, "text": m.text}
            for m in _dev_messages(client) if m.to == user.login and m.id not in before]


def test_an_event_delivered_twice_tells_each_user_once(client: TestClient) -> None:
    payer, payee = sign_up_as(client, unique_phone()), sign_up_as(client, unique_email(), "zh_CN")
    before = codes_sent(client)
    event_id = publish(client, event(payer=payer, payee=payee, note="rent"))
    dispatch(client)
    dispatch(client)
    reopen(client, event_id)
    dispatch(client)
    [sent] = inbox(client, payer)
    assert (sent["kind"], sent["title"]) == ("money.p2p", "Money sent")
    assert sent["body"] == "You sent CN¥600.00 to 王五. Note: rent"
    [received] = inbox(client, payee)
    assert "¥600.00" in received["body"] and "138****0001" in received["body"]
    # 600.00 is over the default SMS threshold for money out; money in gets no SMS by default.
    assert sent_to(client, payer, before) == [{"channel": "sms", "subject": None,
                                       "text": "[bankwallet] Money sent: You sent CN¥600.00 to "
                                               "王五. Note: rent"}]
    assert sent_to(client, payee, before) == []


def test_preferences_choose_sms_and_email(client: TestClient) -> None:
    phone_user, email_user = sign_up_as(client, unique_phone()), sign_up_as(client,
                                                                            unique_email())
    before = codes_sent(client)
    # Defaults: every withdrawal by SMS; small money out and money in: inbox only.
    publish(client, event("withdrawal", amount_minor=1_00, payer=phone_user, to="Bank ····1"))
    publish(client, event(amount_minor=100_00, payer=phone_user, payee=email_user))
    dispatch(client)
    assert [m["title"] for m in inbox(client, phone_user)] == ["Money sent", "Withdrawal sent"]
    assert [m["text"][:30] for m in sent_to(client, phone_user, before)] == [
        "[bankwallet] Withdrawal sent: "]
    assert sent_to(client, email_user, before) == []

    r = client.put("/api/v1/notification-preferences", headers=phone_user.headers, json={
        "sms_withdrawals": False, "sms_money_out": True, "sms_money_out_min_minor": 50_00,
        "sms_money_in": True, "email": True})
    assert r.status_code == 200, r.text
    r = client.put("/api/v1/notification-preferences", headers=email_user.headers, json={
        "sms_withdrawals": True, "sms_money_out": True, "sms_money_out_min_minor": 0,
        "sms_money_in": True, "email": True})
    assert r.status_code == 200, r.text
    publish(client, event("withdrawal", amount_minor=1_00, payer=phone_user))  # below 50.00
    publish(client, event(amount_minor=50_00, payer=phone_user, payee=email_user))
    publish(client, event("topup", payee=phone_user, amount_minor=20_00,
                          **{"from": "Bank account ····1234"}))
    dispatch(client)
    texts = [m["text"] for m in sent_to(client, phone_user, before)]
    assert texts[:2] == ["[bankwallet] Top-up received: CN¥20.00 from Bank account ····1234 "
                         "is now in your wallet.",
                         "[bankwallet] Money sent: You sent CN¥50.00 to 王五."]
    assert len(texts) == 3  # the first withdrawal's only; this one was below the threshold
    # No e-mail address, no e-mail; the e-mail user has no phone, so e-mail only.
    assert {m["channel"] for m in sent_to(client, phone_user, before)} == {"sms"}
    [mail] = sent_to(client, email_user, before)
    assert (mail["channel"], mail["subject"]) == ("email", "Money received")
    assert mail["text"].startswith("138****0001 sent you CN¥50.00.\n\n")
    assert len(inbox(client, phone_user)) == 5 and len(inbox(client, email_user)) == 2


def test_failures_and_reversals(client: TestClient) -> None:
    payer, payee = sign_up_as(client, unique_phone()), sign_up_as(client, unique_phone())
    dispatch(client)
    publish(client, event("p2p", "failed", payer=payer, payee=payee, amount_minor=9_00))
    publish(client, event("topup", "failed", payee=payee, amount_minor=8_00))
    publish(client, event("payment", "reversed", payer=payer, payee=payee, amount_minor=7_00))
    dispatch(client)
    assert [(m["title"], m["body"]) for m in inbox(client, payer)] == [
        ("Transaction reversed", "CN¥7.00 to 王五 was reversed and is back in your wallet."),
        ("Transaction failed", "CN¥9.00 to 王五 did not go through. Nothing was taken from "
                               "your wallet.")]
    assert [m["title"] for m in inbox(client, payee)] == ["Transaction reversed",
                                                         "Top-up failed"]


def test_malformed_events_are_dropped_not_retried(client: TestClient) -> None:
    user = sign_up_as(client, unique_phone())
    dispatch(client)
    bad = [event(payer=user, amount_minor=-1), event(payer=user, currency="XYZ"),
           event(payer=user, status="maybe"), event(payer=user, kind="Bad Kind"),
           {**event(payer=user), "payer_user_id": "not-a-uuid"},
           {k: v for k, v in event(payer=user).items() if k != "amount_minor"}]
    ids = [publish(client, payload) for payload in bad]
    dispatch(client)
    assert inbox(client, user) == []

    async def states():
        async with client.app.state.db.unit_of_work() as session:
            return [(await session.get(outbox.OutboxEvent, i)).dispatched_at for i in ids]

    assert all(client.portal.call(states))  # delivered, so never tried again


def test_a_closed_or_unknown_user_is_skipped(client: TestClient) -> None:
    user = sign_up_as(client, unique_phone())
    dispatch(client)
    publish(client, event(payer=user, payee=None) | {"payee_user_id": str(uuid.uuid4())})
    dispatch(client)
    assert len(inbox(client, user)) == 1


def test_preferences_api(client: TestClient) -> None:
    a, b = sign_up_as(client, unique_phone()), sign_up_as(client, unique_phone())
    defaults = {"sms_withdrawals": True, "sms_money_out": True,
                "sms_money_out_min_minor": money.DEFAULT_SMS_MONEY_OUT_MIN_MINOR,
                "sms_money_in": False, "email": False}
    assert client.get("/api/v1/notification-preferences", headers=a.headers).json() == defaults
    chosen = {**defaults, "sms_money_in": True, "sms_money_out_min_minor": 1}
    r = client.put("/api/v1/notification-preferences", headers=a.headers, json=chosen)
    assert r.status_code == 200 and r.json() == chosen
    for bad in ({**chosen, "sms_money_out_min_minor": -1},
                {**chosen, "sms_money_out_min_minor": 2**63},
                {**chosen, "surprise": True}, {**chosen, "email": "perhaps"},
                {k: v for k, v in chosen.items() if k != "email"}, [], None):
        r = client.put("/api/v1/notification-preferences", headers=a.headers, json=bad)
        assert r.status_code == 422, (bad, r.status_code)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert client.get("/api/v1/notification-preferences", headers=a.headers).json() == chosen
    assert client.get("/api/v1/notification-preferences", headers=b.headers).json() == defaults
    assert client.get("/api/v1/notification-preferences").status_code == 401
    assert client.put("/api/v1/notification-preferences", json=chosen).status_code == 401


def test_wording_channels_and_recipients() -> None:
    payer, payee = uuid.uuid4(), uuid.uuid4()
    moved = money.parse_event({**event(), "payer_user_id": str(payer),
                               "payee_user_id": str(payee), "note": " a\nnote "})
    assert moved is not None and moved.note == "a note"
    assert money.recipients(moved) == [(payer, "payer"), (payee, "payee")]
    assert money.wording(moved, "payee", "en") == (
        "Money received", "138****0001 sent you CN¥600.00. Note: a note")
    exchange = money.parse_event({**event("exchange"), "payer_user_id": str(payer),
                                  "payee_user_id": str(payer)})
    assert money.recipients(exchange) == [(payer, "self")]
    assert money.wording(exchange, "self", "en") == ("Exchange completed",
                                                     "Your exchange of CN¥600.00 is complete.")
    fx = money.parse_event({**event("exchange"), "payer_user_id": str(payer),
                            "payee_user_id": str(payer), "buy_amount_minor": 8_300,
                            "buy_currency": "USD"})
    assert money.wording(fx, "self", "en")[1] == "You exchanged CN¥600.00 for $83.00."
    assert money.parse_event({**event("exchange"), "buy_amount_minor": "x",
                              "buy_currency": "USD"}) is None
    unknown = money.parse_event({**event("interest"), "payee_user_id": str(payee)})
    assert money.wording(unknown, "payee", "en") == ("Money in",
                                                     "CN¥600.00 arrived from 138****0001.")
    defaults = money.MoneyPreferences()
    cases = [("payer", "withdrawal", "posted", 1, {"sms"}),
             ("payer", "withdrawal", "failed", 1, {"sms"}),
             ("payer", "p2p", "posted", 49_999, set()), ("payer", "p2p", "posted", 50_000, {"sms"}),
             ("payer", "p2p", "failed", 90_000, set()), ("payee", "p2p", "posted", 90_000, set()),
             ("self", "exchange", "posted", 90_000, set())]
    for role, kind, status, amount, expected in cases:
        assert money.channels_for(defaults, role=role, kind=kind, status=status,
                                  amount_minor=amount) == expected, (role, kind, amount)
    assert money.channels_for(money.MoneyPreferences(sms_money_in=True, email=True),
                              role="payee", kind="p2p", status="posted",
                              amount_minor=1) == {"sms", "email"}
    assert len(money.sms_text("t", "x" * 1000)) == 480


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # concurrency: PostgreSQL
def test_concurrent_dispatchers_tell_each_user_once(client: TestClient) -> None:
    payer, payee = sign_up_as(client, unique_phone()), sign_up_as(client, unique_phone())
    dispatch(client)
    ids = [publish(client, event(payer=payer, payee=payee, amount_minor=n)) for n in
           range(1, 9)]

    async def race() -> None:
        db = client.app.state.db
        await asyncio.gather(*(outbox.dispatch_once(db, limit=3) for _ in range(4)))
        for event_id in ids:  # and once more with every event offered again
            async with db.unit_of_work() as session:
                await session.execute(update(outbox.OutboxEvent)
                                      .where(outbox.OutboxEvent.id == event_id)
                                      .values(dispatched_at=None, next_attempt_at=outbox.utcnow()))
        await asyncio.gather(*(outbox.dispatch_once(db, limit=1000) for _ in range(4)))

    client.portal.call(race)
    dispatch(client)
    assert sorted(m["body"] for m in inbox(client, payer)) == sorted(
        f"You sent CN¥{n / 100:.2f} to 王五." for n in range(1, 9))
    assert len(inbox(client, payee)) == 8
