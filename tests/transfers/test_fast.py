"""The P2P fast path (transfers/fast.py, PostgreSQL): it answers the everyday transfer as the
general path would, stores the same answer under the key, and hands everything else to the
general path untouched, which then decides it. On SQLite it is off."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from bankwallet.core import audit
from bankwallet.core.idempotency import IdempotencyKey
from bankwallet.transfers import service
from bankwallet.transfers.models import Transfer

from .support import (
    balance,
    customer,
    events,
    grant_tier,
    outflow_today,
    problem,
    rows,
    second_factor_at,
    send,
    set_status,
    transfers_of,
    web_session,
)

pg_only = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


@contextmanager
def counted(client: TestClient, *, taken: int, handed_on: int) -> Iterator[None]:
    """The block's requests: ``taken`` answered by the fast path, ``handed_on`` handed on."""
    fast = client.app.state.fast_p2p
    before = (fast.taken, fast.handed_on)
    yield
    assert (fast.taken - before[0], fast.handed_on - before[1]) == (taken, handed_on)


@contextmanager
def general_only(client: TestClient) -> Iterator[None]:
    fast = client.app.state.fast_p2p
    pool, fast.pool = fast.pool, None
    try:
        yield
    finally:
        fast.pool = pool


def stored(client: TestClient, who, key: str) -> IdempotencyKey:
    async def go() -> IdempotencyKey:
        async with client.app.state.db.sessionmaker() as session:
            return (await session.execute(select(IdempotencyKey).where(
                IdempotencyKey.scope == service.idempotency_scope(who.id),
                IdempotencyKey.key == key))).scalar_one()

    return client.portal.call(go)


def audit_actions(client: TestClient, transfer_id: str) -> list[str]:
    async def go() -> list[str]:
        async with client.app.state.db.sessionmaker() as session:
            found = await audit.list_events(session, subject_type="transfer",
                                            subject_id=transfer_id)
            await session.commit()
            return [e.action for e in found]

    return client.portal.call(go)


def test_off_on_sqlite_on_on_postgresql(client: TestClient, db_url: str) -> None:
    assert (client.app.state.fast_p2p.pool is not None) == db_url.startswith("postgresql")


@pg_only
def test_an_everyday_transfer_is_answered_recorded_and_replayed(client: TestClient) -> None:
    alice, bob = customer(client, funded=100_00), customer(client, email=True)
    key = uuid.uuid4().hex
    with counted(client, taken=1, handed_on=0):
        r = send(client, alice, bob.login, 25_00, key=key, note=" rent\tshare ")
    assert r.status_code == 201, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-request-id"]
    sent = r.json()
    assert sent["status"] == "posted" and sent["note"] == "rent share"
    assert sent["counterparty"].endswith(bob.login.split("@")[1]) and "***" in sent["counterparty"]
    assert balance(client, alice.id) == 75_00 and balance(client, bob.id) == 25_00
    assert outflow_today(client, alice) == 25_00

    (row,) = transfers_of(client, alice)
    assert str(row.id) == sent["id"] and row.status == "posted" and row.finished_at is not None
    assert service.ledger_transfer(row).id == row.ledger_transfer_id
    (event,) = events(client, "money.moved", sent["id"])
    assert event == service.money_moved(row)
    assert audit_actions(client, sent["id"]) == ["transfers.transfer.posted"]
    record = stored(client, alice, key)
    assert record.state == "done" and record.response_status == 201
    assert record.response_body == sent

    # The same key again: handed on, replayed by the general path, nothing moves twice.
    with counted(client, taken=0, handed_on=2):
        again = send(client, alice, bob.login, 25_00, key=key, note=" rent\tshare ")
        other = send(client, alice, bob.login, 26_00, key=key)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == sent
    problem(other, 409, "idempotency_key_reused")
    assert balance(client, alice.id) == 75_00 and len(transfers_of(client, alice)) == 1


@pg_only
def test_both_paths_answer_alike(client: TestClient) -> None:
    alice, bob = customer(client, funded=100_00), customer(client)
    with counted(client, taken=1, handed_on=0):
        fast = send(client, alice, bob.login, 10_00, note="a")
    with general_only(client):
        general = send(client, alice, bob.login, 10_00, note="a")
    assert fast.status_code == general.status_code == 201
    one, two = fast.json(), general.json()
    differ = {"id", "ledger_transfer_id", "created_at", "finished_at"}
    assert {k: v for k, v in one.items() if k not in differ} == \
        {k: v for k, v in two.items() if k not in differ}
    assert one.keys() == two.keys()
    first, second = sorted(transfers_of(client, alice), key=lambda t: t.created_at)
    columns = [c.key for c in Transfer.__table__.columns
               if c.key not in ("id", "ledger_transfer_id", "created_at", "finished_at")]
    assert [getattr(first, c) for c in columns] == [getattr(second, c) for c in columns]
    assert json.loads(json.dumps(events(client, "money.moved", one["id"])[0]))["status"] == \
        events(client, "money.moved", two["id"])[0]["status"] == "posted"


@pg_only
def test_a_session_seen_long_ago_is_taken_and_its_last_seen_time_written(
        client: TestClient) -> None:
    """Most customers send now and then: their session's last-seen time is due at nearly
    every transfer. The fast path writes it, as authentication does, and takes the transfer."""
    from bankwallet.identity.models import Session

    alice, bob = customer(client, funded=10_00), customer(client)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)

    def last_seen() -> dt.datetime:
        (row,) = rows(client, Session, Session.id == alice.session_id)
        return row.last_seen_at

    async def age() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(update(Session).where(Session.id == alice.session_id)
                                  .values(last_seen_at=long_ago))

    client.portal.call(age)
    with counted(client, taken=1, handed_on=0):
        assert send(client, alice, bob.login, 1_00).status_code == 201
    seen = last_seen()
    assert seen > long_ago + dt.timedelta(minutes=9)
    with counted(client, taken=1, handed_on=0):  # not due again: not written again
        assert send(client, alice, bob.login, 1_00).status_code == 201
    assert last_seen() == seen


@pg_only
def test_a_refusal_by_the_ledger_is_stored_and_gives_the_outflow_back(
        client: TestClient) -> None:
    alice, bob = customer(client, funded=5_00), customer(client)
    key = uuid.uuid4().hex
    with counted(client, taken=1, handed_on=0):
        r = send(client, alice, bob.login, 6_00, key=key)
    body = problem(r, 422, "insufficient_funds")
    (row,) = transfers_of(client, alice)
    assert body["transfer_id"] == str(row.id) and row.status == "failed"
    assert row.failure_code == "insufficient_funds"
    assert outflow_today(client, alice) == 0  # given back
    assert balance(client, alice.id) == 5_00 and balance(client, bob.id) == 0
    (event,) = events(client, "money.moved", str(row.id))
    assert event["status"] == "failed"
    assert audit_actions(client, str(row.id)) == ["transfers.transfer.failed"]
    with counted(client, taken=0, handed_on=1):
        again = send(client, alice, bob.login, 6_00, key=key)
    assert again.json() == body and again.headers["idempotent-replayed"] == "true"


@pg_only
def test_what_it_does_not_take_the_general_path_decides(client: TestClient) -> None:
    alice, bob = customer(client, funded=3_000_00), customer(client)
    grant_tier(client, alice, 0)  # single 500.00, daily 1,000.00
    with counted(client, taken=2, handed_on=0):
        assert send(client, alice, bob.login, 450_00).status_code == 201
        assert send(client, alice, bob.login, 450_00).status_code == 201
    with counted(client, taken=0, handed_on=7):
        # Over the daily limit: the intent refuses, nothing is left behind, the general
        # path answers (and stores) the limit.
        key = uuid.uuid4().hex
        body = problem(send(client, alice, bob.login, 450_00, key=key), 422, "limit_exceeded")
        assert body["limit"] == "daily" and stored(client, alice, key).state == "done"
        problem(send(client, alice, bob.login, 600_00), 422, "limit_exceeded")  # single
        problem(send(client, alice, "+8613000000000", 1_00), 404, "recipient_not_found")
        problem(send(client, alice, alice.login, 1_00), 422, "self_transfer")
        # Not the limits' currency (no USD wallet yet, so no money either).
        problem(send(client, alice, bob.login, 1_00, currency="USD"), 422, "insufficient_funds")
        problem(send(client, alice, bob.login, -1), 422, "invalid_input")
        r = client.post("/api/v1/transfers", headers={**alice.headers, "Idempotency-Key": "k",
                                                      "Content-Type": "application/json"},
                        content=b'{"to": "x"')
        problem(r, 422, "invalid_input")
    assert outflow_today(client, alice) == 900_00
    assert balance(client, alice.id) == 2_100_00 and balance(client, bob.id) == 900_00

    # Above the step-up threshold (a session whose second factor is old): the general path.
    rich = customer(client, funded=3_000_00)
    grant_tier(client, rich, 2)
    second_factor_at(client, rich, dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    with counted(client, taken=0, handed_on=1):
        problem(send(client, rich, bob.login, 2_000_01), 403, "step_up_required")
    # A cookie session: the general path (and its CSRF check).
    web_session(client, alice)
    with counted(client, taken=0, handed_on=1):
        r = client.post("/api/v1/transfers", json={"to": bob.login, "amount_minor": 1_00},
                        headers={"Idempotency-Key": uuid.uuid4().hex})
    problem(r, 403, "csrf_failed")
    client.cookies.clear()

    set_status(client, bob, "locked")
    with counted(client, taken=0, handed_on=1):
        problem(send(client, alice, bob.login, 1_00), 404, "recipient_not_found")
    assert not rows(client, Transfer, Transfer.status == "pending")


@pg_only
def test_a_batch_the_database_refuses_is_recorded_one_by_one(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent transfers share batches; when the database refuses a batch statement, each
    transfer of it is recorded on its own, and each is still answered exactly once."""
    people = [customer(client, funded=50_00) for _ in range(6)]
    fast = client.app.state.fast_p2p
    refused = {"SELECT bankwallet_p2p_intents(": 0, "SELECT bankwallet_p2p_outcomes(": 0}
    original = asyncpg.Connection.fetchval

    async def refusing(self, query, *args, **kwargs):  # type: ignore[no-untyped-def]
        for prefix in refused:
            if query.startswith(prefix) and len(args[0]) > 1:
                refused[prefix] += 1
                raise asyncpg.DeadlockDetectedError("deadlock detected (by the test)")
        return await original(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "fetchval", refusing)

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            return await asyncio.gather(*[ac.post(
                "/api/v1/transfers", json={"to": people[(n + 1) % 6].login, "amount_minor": 7_00},
                headers={**people[n].headers, "Idempotency-Key": f"batch-{n}"})
                for n in range(6)])

    with counted(client, taken=6, handed_on=0):
        answers = client.portal.call(burst)
    assert [r.status_code for r in answers] == [201] * 6, [r.text for r in answers]
    assert all(refused.values()), refused  # both kinds of batch were refused at least once
    assert all(balance(client, p.id) == 50_00 for p in people)  # each sent 7.00, got 7.00
    for n, person in enumerate(people):
        (row,) = transfers_of(client, person)
        assert row.status == "posted" and str(row.id) == answers[n].json()["id"]
        assert stored(client, person, f"batch-{n}").response_body == answers[n].json()
    assert fast.intents.items > fast.intents.batches
