"""The development inbox page (dev and test only) and the inbox API."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from bankwallet.app import create_app
from bankwallet.connectors.messaging.dev_sink import DevEmailSender, DevSmsSender
from bankwallet.core import outbox
from bankwallet.core.db import Database
from bankwallet.identity.deps import current_user_id
from bankwallet.notifications import service, tasks
from bankwallet.settings import Settings
from conftest import create_sqlite_database
from notifications.conftest import new_code, new_email, new_phone

ZH_SMS = "【bankwallet】验证码 {code}，5 分钟内有效。请勿告诉他人。"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return create_sqlite_database(tmp_path_factory.mktemp("notifications-web"))


@pytest.fixture
def app_for(url: str) -> Iterator:
    clients: list[TestClient] = []

    def make(env: str, *, run_workers: bool = False, **overrides) -> TestClient:
        settings = Settings(database_url=url, env=env, log_json=False, **overrides)
        client = TestClient(create_app(settings, run_workers=run_workers))
        clients.append(client)
        return client.__enter__()

    yield make
    for client in clients:
        client.__exit__(None, None, None)
    tasks.configure(None)


async def store_messages(url: str, *, phone: str, code: str, address: str) -> None:
    db = Database(url)
    try:
        async with db.unit_of_work() as session:
            await DevSmsSender(session).send(phone, service.otp_text(code, locale="zh_CN",
                                                                     minutes=5))
            await DevEmailSender(session, sender="bankwallet <a@b.example>").send(
                address, "Your bankwallet verification code", f"code {code}")
    finally:
        await db.dispose()


@pytest.mark.parametrize("env", ["dev", "test"])
async def test_dev_inbox_shows_the_codes(url: str, app_for, env: str) -> None:
    phone, code, address = new_phone(), new_code(), new_email()
    await store_messages(url, phone=phone, code=code, address=address)
    client = app_for(env)

    page = client.get("/dev/inbox", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "Development inbox" in page.text
    assert phone in page.text and ZH_SMS.format(code=code) in page.text
    assert page.text.index(address) < page.text.index(phone)  # newest first
    assert "<script>" not in page.text
    assert "开发收件箱" in client.get("/dev/inbox").text  # Chinese by default

    listing = client.get("/dev/inbox.json")
    assert listing.status_code == 200 and listing.headers["cache-control"] == "no-store"
    items = listing.json()["items"]
    assert len(items) <= service.DEV_INBOX_SIZE
    assert items[0]["to"] == address and items[0]["subject"]
    assert items[1] == {**items[1], "channel": "sms", "to": phone,
                        "text": ZH_SMS.format(code=code), "subject": None}


async def test_dev_inbox_does_not_exist_in_production(url: str, app_for) -> None:
    await store_messages(url, phone=new_phone(), code=new_code(), address=new_email())
    client = app_for("prod")
    for path in ("/dev/inbox", "/dev/inbox.json", "/dev/inbox/"):
        response = client.get(path)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert "/dev/inbox" not in client.get("/api/openapi.json").text


def test_the_running_app_delivers_an_otp_to_the_dev_inbox(url: str, app_for) -> None:
    """The lifespan's dispatcher picks up a committed event; no test calls dispatch."""
    import asyncio

    client = app_for("test", run_workers=True, outbox_interval_s=0.05)
    phone, code = new_phone(), new_code()

    async def publish() -> None:
        db = Database(url)
        try:
            async with db.unit_of_work() as session:
                await outbox.publish(session, tasks.OTP_TOPIC,
                                     {"purpose": "login", "channel": "sms", "locale": "zh_CN"},
                                     sensitive={"destination": phone, "code": code})
        finally:
            await db.dispose()

    asyncio.run(publish())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(m["to"] == phone for m in client.get("/dev/inbox.json").json()["items"]):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the in-process dispatcher did not deliver the code")
    (message,) = [m for m in client.get("/dev/inbox.json").json()["items"] if m["to"] == phone]
    assert message["text"] == ZH_SMS.format(code=code)


# -- the in-app inbox API ----------------------------------------------------------------


async def test_inbox_api_lists_and_marks_only_the_callers_messages(url: str, app_for) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    db = Database(url)
    try:
        async with db.unit_of_work() as session:
            mine = [await service.add_message(session, user_id=alice, kind="notice",
                                              title=f"t{n}", body="b") for n in range(3)]
            theirs = await service.add_message(session, user_id=bob, kind="notice",
                                               title="bob's", body="b")
    finally:
        await db.dispose()
    client = app_for("test")
    client.app.dependency_overrides[current_user_id] = lambda: alice

    first = client.get("/api/v1/notifications", params={"limit": 2})
    assert first.status_code == 200
    body = first.json()
    assert len(body["items"]) == 2 and body["next_cursor"]
    rest = client.get("/api/v1/notifications",
                      params={"limit": 2, "cursor": body["next_cursor"]}).json()
    assert rest["next_cursor"] is None
    listed = [m["id"] for m in body["items"] + rest["items"]]
    assert sorted(listed) == sorted(str(m.id) for m in mine)

    read = client.post(f"/api/v1/notifications/{mine[0].id}/read")
    assert read.status_code == 200 and read.json()["read_at"]
    stolen = client.post(f"/api/v1/notifications/{theirs.id}/read")
    assert stolen.status_code == 404 and stolen.json()["code"] == "notification_not_found"
    assert client.get("/api/v1/notifications",
                      params={"cursor": "forged"}).json()["code"] == "invalid_cursor"
    assert client.get("/api/v1/notifications", params={"limit": 1000}).status_code == 422


def test_inbox_api_needs_a_session(app_for) -> None:
    client = app_for("test")
    assert client.get("/api/v1/notifications").status_code == 401
    assert client.post(f"/api/v1/notifications/{uuid.uuid4()}/read").status_code == 401
