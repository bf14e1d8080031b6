"""The in-app inbox: add, page through, mark read; a user reaches only their own messages."""

from __future__ import annotations

import uuid

import pytest

from bankwallet.core.db import Database
from bankwallet.notifications import service
from bankwallet.notifications.errors import InvalidCursor, MessageNotFound


async def fill(db: Database, user_id: str, count: int) -> list[uuid.UUID]:
    async with db.unit_of_work() as session:
        return [(await service.add_message(session, user_id=user_id, kind="transfer.received",
                                           title=f"t{n}", body=f"b{n}")).id
                for n in range(count)]


async def test_pages_walk_the_inbox_newest_first(db: Database) -> None:
    alice, bob = uuid.uuid4().hex, uuid.uuid4().hex
    ids = await fill(db, alice, 25)
    await fill(db, bob, 3)

    seen, cursor, pages = [], None, 0
    while True:
        async with db.unit_of_work() as session:
            page = await service.list_messages(session, user_id=alice, cursor=cursor, limit=10)
        seen += [m.id for m in page.items]
        pages += 1
        assert all(m.user_id == alice for m in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    # Every message once, newest first (UUIDv7 order: by millisecond, then at random).
    assert seen == sorted(ids, reverse=True)


async def test_an_exact_page_has_no_next_cursor(db: Database) -> None:
    user = uuid.uuid4().hex
    await fill(db, user, 5)
    async with db.unit_of_work() as session:
        page = await service.list_messages(session, user_id=user, limit=5)
        assert len(page.items) == 5 and page.next_cursor is None
        empty = await service.list_messages(session, user_id=uuid.uuid4().hex)
        assert empty.items == [] and empty.next_cursor is None


async def test_page_size_is_bounded(db: Database) -> None:
    user = uuid.uuid4().hex
    await fill(db, user, service.PAGE_SIZE_MAX + 1)
    async with db.unit_of_work() as session:
        page = await service.list_messages(session, user_id=user, limit=10_000)
    assert len(page.items) == service.PAGE_SIZE_MAX and page.next_cursor


@pytest.mark.parametrize("cursor", ["nope", "1234", "'; drop table x; --"])
async def test_a_forged_cursor_is_refused(db: Database, cursor: str) -> None:
    async with db.unit_of_work() as session:
        with pytest.raises(InvalidCursor):
            await service.list_messages(session, user_id="u", cursor=cursor)


async def test_mark_read_once_and_unread_count(db: Database) -> None:
    user = uuid.uuid4().hex
    first, second = await fill(db, user, 2)
    async with db.unit_of_work() as session:
        assert await service.unread_count(session, user_id=user) == 2
        message = await service.mark_read(session, user_id=user, message_id=first)
        read_at = message.read_at
        assert read_at is not None
    async with db.unit_of_work() as session:
        again = await service.mark_read(session, user_id=user, message_id=first)
        assert again.read_at == read_at  # reading again keeps the first time
        assert await service.unread_count(session, user_id=user) == 1


async def test_another_users_message_is_not_found(db: Database) -> None:
    alice, mallory = uuid.uuid4().hex, uuid.uuid4().hex
    (message_id,) = await fill(db, alice, 1)
    async with db.unit_of_work() as session:
        with pytest.raises(MessageNotFound):
            await service.mark_read(session, user_id=mallory, message_id=message_id)
        with pytest.raises(MessageNotFound):
            await service.mark_read(session, user_id=alice, message_id=uuid.uuid4())
    async with db.unit_of_work() as session:
        assert await service.unread_count(session, user_id=alice) == 1


async def test_long_texts_are_bounded(db: Database) -> None:
    user = uuid.uuid4().hex
    async with db.unit_of_work() as session:
        message = await service.add_message(session, user_id=user, kind="notice",
                                            title="t" * 500, body="b" * 5000)
    assert len(message.title) == 200 and message.title.endswith("…")
    assert len(message.body) == 2000
