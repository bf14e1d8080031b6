"""The audit log: one gap-free hash chain, tamper evidence, redaction, pagination."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select, text

from bankwallet.core import audit
from bankwallet.core.audit import AuditEvent, AuditHead
from bankwallet.core.db import Database


@pytest.fixture
async def db(db_url: str):
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture
async def fresh_db(fresh_db_url: str):
    database = Database(fresh_db_url)
    yield database
    await database.dispose()


async def record_many(db: Database, count: int, **fields: object) -> list[uuid.UUID]:
    """Record ``count`` events in one transaction, then chain them (as the background job
    does on PostgreSQL; on SQLite they are chained as they are written)."""
    async with db.unit_of_work() as session:
        ids = [await audit.record(session, action="test.event.recorded", data={"n": i},
                                  **fields) for i in range(count)]
    await audit.chain_pending(db.engine)
    return ids


async def test_events_chain_to_each_other_and_the_head(db: Database) -> None:
    subject = str(uuid.uuid4())
    ids = await record_many(db, 3, actor_type="staff", actor_id="agent-7",
                            subject_type="user", subject_id=subject, ip="203.0.113.9",
                            user_agent="Mozilla/5.0")
    async with db.sessionmaker() as session:
        events = (await session.execute(select(AuditEvent).where(AuditEvent.id.in_(ids))
                                        .order_by(AuditEvent.seq))).scalars().all()
        head = (await session.execute(select(AuditHead))).scalar_one()
        before = (await session.execute(select(AuditEvent.hash).where(
            AuditEvent.seq == events[0].seq - 1))).scalar_one_or_none()
    assert [e.id for e in events] == ids
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 3))
    prev = bytes(before) if before is not None else audit.GENESIS_HASH
    for event in events:
        assert event.hash == audit.chain_hash(prev, event)
        prev = event.hash
    assert head.seq >= events[-1].seq
    first = events[0]
    assert (first.actor_type, first.actor_id, first.subject_type, first.subject_id, first.ip,
            first.action, first.data) == ("staff", "agent-7", "user", subject, "203.0.113.9",
                                          "test.event.recorded", {"n": 0})
    assert first.at.tzinfo is not None
    assert await audit.verify_chain(db.engine) == []


async def test_a_rolled_back_event_leaves_no_gap(db: Database) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with db.unit_of_work() as session:
            await audit.record(session, action="test.event.rolled_back")
            raise Boom
    async with db.unit_of_work() as session:
        await audit.record(session, action="test.event.kept")
        assert await audit.verify_chain(session) == []
    async with db.sessionmaker() as session:
        gone = (await session.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "test.event.rolled_back"))).scalar_one()
    assert gone == 0


async def test_concurrent_writers_keep_one_chain_without_gaps(pg_url: str) -> None:
    db = Database(pg_url, pool_size=20)
    try:
        async with db.sessionmaker() as session:
            start = (await session.execute(select(AuditHead.seq))).scalar_one()

        async def writer(n: int) -> None:
            async with db.unit_of_work() as session:
                for i in range(5):
                    await audit.record(session, action="test.concurrent.write",
                                       subject_type="writer", subject_id=str(n), data={"i": i})
                    await asyncio.sleep(0)

        await asyncio.gather(*(writer(n) for n in range(30)))
        await audit.chain_pending(db.engine)
        async with db.sessionmaker() as session:
            seqs = (await session.execute(select(AuditEvent.seq).where(
                AuditEvent.seq > start).order_by(AuditEvent.seq))).scalars().all()
            head = (await session.execute(select(AuditHead.seq))).scalar_one()
        # Other tests may write meanwhile; ours are 150 of a gap-free run after `start`.
        assert seqs == list(range(start + 1, head + 1))
        assert len(seqs) >= 150
        assert await audit.verify_chain(db.engine) == []
    finally:
        await db.dispose()


@pytest.mark.parametrize("fresh_db_url", ["sqlite", "postgres"], indirect=True)
async def test_verify_names_an_edited_row(fresh_db: Database) -> None:
    ids = await record_many(fresh_db, 5, subject_type="user", subject_id="u1")
    assert await audit.verify_chain(fresh_db.engine) == []
    async with fresh_db.engine.begin() as conn:
        await conn.execute(text("UPDATE core_audit_event SET subject_id = 'u2' WHERE seq = 3"))
    problems = await audit.verify_chain(fresh_db.engine)
    assert len(problems) == 1
    assert str(ids[2]) in problems[0] and "hash does not match" in problems[0]


@pytest.mark.parametrize("fresh_db_url", ["sqlite", "postgres"], indirect=True)
async def test_verify_names_edited_data(fresh_db: Database) -> None:
    await record_many(fresh_db, 3)
    async with fresh_db.sessionmaker() as session:
        event = (await session.execute(select(AuditEvent).where(AuditEvent.seq == 2))).scalar_one()
        event.data = {"n": 99}
        await session.commit()
    problems = await audit.verify_chain(fresh_db.engine)
    assert len(problems) == 1 and "(seq 2)" in problems[0]


@pytest.mark.parametrize("fresh_db_url", ["sqlite", "postgres"], indirect=True)
async def test_verify_names_deleted_rows(fresh_db: Database) -> None:
    await record_many(fresh_db, 5)
    async with fresh_db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM core_audit_event WHERE seq = 2"))
    problems = await audit.verify_chain(fresh_db.engine)
    assert len(problems) == 1 and "expected seq 2" in problems[0] and "missing" in problems[0]

    async with fresh_db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM core_audit_event WHERE seq = 5"))
    problems = await audit.verify_chain(fresh_db.engine)
    assert len(problems) == 2 and problems[1].startswith("audit head")


async def test_secrets_in_data_are_redacted(db: Database) -> None:
    subject = str(uuid.uuid4())
    async with db.unit_of_work() as session:
        await audit.record(session, action="test.secret.recorded", subject_type="probe",
                           subject_id=subject, user_agent="x" * 1000,
                           data={"password": "hunter2-swordfish", "otp_code": "493817",
                                 "note": "card 4111 1111 1111 1111 used",
                                 "nested": {"apiKey": "sk_live_abc"}, "ratio": 1e16,
                                 "role": "support"})
    async with db.engine.connect() as conn:
        raw = repr((await conn.execute(text(
            "SELECT * FROM core_audit_event WHERE subject_id = :s"), {"s": subject})).one())
    for secret in ("hunter2-swordfish", "493817", "4111 1111 1111 1111", "sk_live_abc"):
        assert secret not in raw
    async with db.sessionmaker() as session:
        [event] = await audit.list_events(session, subject_type="probe", subject_id=subject)
    assert event.data["password"] == "[REDACTED]"
    assert event.data["nested"] == {"apiKey": "[REDACTED]"}
    assert event.data["role"] == "support"
    assert len(event.user_agent) == audit.USER_AGENT_MAX_CHARS
    assert await audit.verify_chain(db.engine) == []  # floats and all, it hashes as read back


async def test_list_events_pages_newest_first(db: Database) -> None:
    subject, actor = str(uuid.uuid4()), str(uuid.uuid4())
    await record_many(db, 7, actor_type="user", actor_id=actor, subject_type="user",
                      subject_id=subject)
    await record_many(db, 2, subject_type="user", subject_id=str(uuid.uuid4()))
    pages, before = [], None
    async with db.sessionmaker() as session:
        while True:
            page = await audit.list_events(session, subject_type="user", subject_id=subject,
                                           before_seq=before, limit=3)
            if not page:
                break
            pages.append([e.data["n"] for e in page])
            before = page[-1].seq
        by_actor = await audit.list_events(session, actor_id=actor, limit=1000)
        clamped = await audit.list_events(session, limit=0)
    assert pages == [[6, 5, 4], [3, 2, 1], [0]]
    assert len(by_actor) == 7
    assert len(clamped) == 1


async def test_bad_fields_are_programming_errors(db: Database) -> None:
    async with db.unit_of_work() as session:
        with pytest.raises(ValueError):
            await audit.record(session, action="login")  # not domain.object.verb
        with pytest.raises(ValueError):
            await audit.record(session, action="test.event.x", actor_type="robot")
        with pytest.raises(ValueError):
            await audit.record(session, action="test.event.x", subject_id="s" * 500)
        with pytest.raises(ValueError):
            await audit.record(session, action="test.event.x", data={"blob": "x" * 10_000})


@pytest.mark.postgres
async def test_writers_do_not_wait_for_each_other_on_postgres(pg_url: str) -> None:
    """An open transaction that recorded an event does not hold up another writer (the head's
    lock used to queue every audited request until it committed)."""
    db = Database(pg_url)
    try:
        async with db.sessionmaker() as first:
            await audit.record(first, action="test.event.slow", subject_type="probe",
                               subject_id="slow")
            # `first` stays open and uncommitted while another writer records and commits.
            async with asyncio.timeout(5):
                async with db.unit_of_work() as second:
                    other = await audit.record(second, action="test.event.fast",
                                               subject_type="probe", subject_id="fast")
            async with db.sessionmaker() as reader:  # reading chains what was committed
                [event] = await audit.list_events(reader, subject_type="probe",
                                                  subject_id="fast")
                await reader.commit()
            assert event.id == other and event.seq is not None and event.hash is not None
            await first.commit()
        assert await audit.verify_chain(db.engine) == []
        async with db.sessionmaker() as session:
            unchained = (await session.execute(select(func.count()).select_from(AuditEvent)
                                               .where(AuditEvent.seq.is_(None)))).scalar_one()
        assert unchained == 0
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_the_background_job_chains_committed_events(pg_url: str) -> None:
    db = Database(pg_url)
    job = asyncio.create_task(audit.chain_forever(db.engine, interval_s=0.05))
    try:
        async with db.unit_of_work() as session:
            event_id = await audit.record(session, action="test.event.background")
        for _ in range(100):
            async with db.sessionmaker() as session:
                seq = (await session.execute(select(AuditEvent.seq).where(
                    AuditEvent.id == event_id))).scalar_one()
            if seq is not None:
                break
            await asyncio.sleep(0.05)
        assert seq is not None
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
        await db.dispose()
