"""Sign-up, login, sessions and passwords through the JSON API, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from bankwallet.app import create_app
from bankwallet.settings import Settings

STRONG = "Plum-Harbour-Quietly-42"
CLIENT_ADDRESSES = (f"198.51.{n // 256 % 256}.{n % 256}" for n in itertools.count(1))
OTHER_STRONG = "Lantern.Orchard.Seventy9"


_KEY_FILE: list[Path] = []  # the one path, whichever module's copy of the fixture runs first


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One key file for the session: the databases are shared across tests too. Modules that
    import this fixture each get their own copy of it from pytest; all of them must hand out
    the same file, or a server started with one copy's path reads other keys than the test."""
    if not _KEY_FILE:
        _KEY_FILE.append(tmp_path_factory.mktemp("keys") / "keys.json")
    path = _KEY_FILE[0]
    saved = os.environ.get("BANKWALLET_KEY_FILE")
    os.environ["BANKWALLET_KEY_FILE"] = str(path)
    yield path
    if saved is None:
        os.environ.pop("BANKWALLET_KEY_FILE", None)
    else:
        os.environ["BANKWALLET_KEY_FILE"] = saved


@pytest.fixture
def client(db_url: str, key_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from bankwallet.core import crypto
    from bankwallet.settings import get_settings

    monkeypatch.setenv("BANKWALLET_ENV", "test")
    get_settings.cache_clear()
    crypto.reset_keyring()
    app = create_app(Settings(database_url=db_url, env="test"), run_workers=False)
    # Each test calls from an address of its own (RFC 5737 documentation ranges): per-address
    # throttles then never carry over between tests sharing a database.
    with TestClient(app, client=(next(CLIENT_ADDRESSES), 50000)) as test_client:
        yield test_client
    crypto.reset_keyring()
    get_settings.cache_clear()


# Consecutive from a random start: thousands of sign-ups share the session's databases, and
# random suffixes would collide (birthday odds of several per cent).
_PHONE_SUFFIXES = itertools.count(uuid.uuid4().int % 10**8)


def unique_phone() -> str:
    return f"+86 138{next(_PHONE_SUFFIXES) % 10**8:08d}"


def unique_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


def last_code(client: TestClient, destination: str) -> str:
    """The one-time code the outbox holds for ``destination`` (decrypted, as the sender would)."""
    from bankwallet.core import outbox

    async def read() -> str:
        async with client.app.state.db.sessionmaker() as session:
            rows = (await session.execute(
                select(outbox.OutboxEvent).where(outbox.OutboxEvent.topic == "notification.otp")
                .order_by(outbox.OutboxEvent.id.desc()))).scalars().all()
        for row in rows:
            sensitive = outbox._unseal(row.sealed)  # what the SMS/e-mail sender will read
            if sensitive.get("destination") == destination:
                return sensitive["code"]
        raise AssertionError("no code was sent")

    return client.portal.call(read)


def sign_up(client: TestClient, login: str, password: str = STRONG) -> dict:
    r = client.post("/api/v1/auth/signup", json={"login": login, "password": password})
    assert r.status_code == 202, r.text
    challenge = r.json()
    normalised = login.replace(" ", "") if login.startswith("+") else login.lower()
    code = last_code(client, normalised)
    r = client.post("/api/v1/auth/signup/verify",
                    json={"challenge_id": challenge["challenge_id"], "code": code})
    assert r.status_code == 201, r.text
    return r.json()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_sign_up_by_phone_then_log_in(client: TestClient) -> None:
    phone = unique_phone()
    created = sign_up(client, phone)
    assert created["user"]["phone"] == phone.replace(" ", "")
    assert created["user"]["kyc_tier"] == 0 and created["user"]["role"] == "customer"
    me = client.get("/api/v1/me", headers=bearer(created["token"]))
    assert me.status_code == 200 and me.json()["id"] == created["user"]["id"]

    # Local numbers default to +86.
    r = client.post("/api/v1/auth/login", json={"login": phone[4:], "password": STRONG})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == created["user"]["id"]


def test_sign_up_by_email(client: TestClient) -> None:
    email = unique_email()
    created = sign_up(client, email.upper().replace("USER", "User"))
    assert created["user"]["email"] == email


def test_wrong_code_counts_and_then_locks_the_challenge(client: TestClient) -> None:
    phone = unique_phone()
    r = client.post("/api/v1/auth/signup", json={"login": phone, "password": STRONG})
    challenge_id = r.json()["challenge_id"]
    code = last_code(client, phone.replace(" ", ""))
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        r = client.post("/api/v1/auth/signup/verify",
                        json={"challenge_id": challenge_id, "code": wrong})
        assert r.status_code == 400 and r.json()["code"] == "invalid_code"
    # Attempts are used up: even the right code no longer works.
    r = client.post("/api/v1/auth/signup/verify", json={"challenge_id": challenge_id, "code": code})
    assert r.status_code == 400
    assert client.post("/api/v1/auth/login", json={"login": phone, "password": STRONG}
                       ).status_code == 401


def test_a_code_works_once(client: TestClient) -> None:
    phone = unique_phone()
    r = client.post("/api/v1/auth/signup", json={"login": phone, "password": STRONG})
    challenge_id = r.json()["challenge_id"]
    code = last_code(client, phone.replace(" ", ""))
    body = {"challenge_id": challenge_id, "code": code}
    assert client.post("/api/v1/auth/signup/verify", json=body).status_code == 201
    assert client.post("/api/v1/auth/signup/verify", json=body).status_code == 400


@pytest.mark.parametrize("password,reason", [
    ("short", "too_short"), ("x" * 129, "too_long"), ("password1234", "guessable"),
    ("abcdefghijklmnop", "guessable")])
def test_weak_passwords_are_refused_with_a_reason(client: TestClient, password: str,
                                                  reason: str) -> None:
    r = client.post("/api/v1/auth/signup", json={"login": unique_phone(), "password": password})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "weak_password" and r.json()["reason"] == reason


@pytest.mark.parametrize("body", [
    {"login": "not a phone", "password": STRONG},
    {"login": "+86 123", "password": STRONG},
    {"login": "a@b", "password": STRONG},
    {"login": 12345678901, "password": STRONG},
    {"login": "x" * 300 + "@example.com", "password": STRONG},
    {"login": "+8613800138000"},
    {"login": "+8613800138000", "password": STRONG, "role": "admin"},
])
def test_bad_sign_up_input_is_4xx_and_writes_nothing(client: TestClient, body: dict) -> None:
    before = count(client, "identity_challenge")
    r = client.post("/api/v1/auth/signup", json=body)
    assert 400 <= r.status_code < 500 and r.headers["content-type"] == "application/problem+json"
    assert count(client, "identity_challenge") == before


def count(client: TestClient, table: str) -> int:
    async def run() -> int:
        async with client.app.state.db.engine.connect() as conn:
            return (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()

    return client.portal.call(run)


def test_wrong_password_is_401_and_does_not_say_whether_the_account_exists(
        client: TestClient) -> None:
    phone = unique_phone()
    sign_up(client, phone)
    known = client.post("/api/v1/auth/login", json={"login": phone, "password": "Wrong-pass-123"})
    unknown = client.post("/api/v1/auth/login",
                          json={"login": unique_phone(), "password": "Wrong-pass-123"})
    assert known.status_code == unknown.status_code == 401
    assert known.json()["code"] == unknown.json()["code"] == "bad_credentials"
    assert known.json()["detail"] == unknown.json()["detail"]


def test_repeated_wrong_passwords_are_throttled_with_retry_after(client: TestClient) -> None:
    phone = unique_phone()
    sign_up(client, phone)
    statuses = [client.post("/api/v1/auth/login",
                            json={"login": phone, "password": f"Wrong-pass-{i:03d}"}).status_code
                for i in range(8)]
    assert statuses[:5] == [401] * 5 and 429 in statuses[5:], statuses
    r = client.post("/api/v1/auth/login", json={"login": phone, "password": STRONG})
    assert r.status_code == 429, "the right password does not bypass the lock-out"
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["code"] == "too_many_attempts"


def test_sessions_list_revoke_and_logout(client: TestClient) -> None:
    phone = unique_phone()
    first = sign_up(client, phone)["token"]
    second = client.post("/api/v1/auth/login", json={"login": phone, "password": STRONG}).json()
    listed = client.get("/api/v1/auth/sessions", headers=bearer(first)).json()["items"]
    assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
    r = client.delete(f"/api/v1/auth/sessions/{second['session_id']}", headers=bearer(first))
    assert r.status_code == 204
    assert client.get("/api/v1/me", headers=bearer(second["token"])).status_code == 401
    assert client.post("/api/v1/auth/logout", headers=bearer(first)).status_code == 204
    assert client.get("/api/v1/me", headers=bearer(first)).status_code == 401


def test_another_users_session_cannot_be_seen_or_revoked(client: TestClient) -> None:
    alice = sign_up(client, unique_phone())
    bob = sign_up(client, unique_phone())
    r = client.delete(f"/api/v1/auth/sessions/{bob['session_id']}", headers=bearer(alice["token"]))
    assert r.status_code == 404
    assert client.get("/api/v1/me", headers=bearer(bob["token"])).status_code == 200
    ids = {s["id"] for s in client.get("/api/v1/auth/sessions",
                                       headers=bearer(alice["token"])).json()["items"]}
    assert bob["session_id"] not in ids


def test_changing_the_password_ends_every_other_session(client: TestClient) -> None:
    phone = unique_phone()
    first = sign_up(client, phone)["token"]
    second = client.post("/api/v1/auth/login", json={"login": phone, "password": STRONG}
                         ).json()["token"]
    r = client.post("/api/v1/auth/password", headers=bearer(first),
                    json={"current_password": STRONG, "new_password": OTHER_STRONG})
    assert r.status_code == 200 and r.json()["sessions_ended"] == 1
    assert client.get("/api/v1/me", headers=bearer(second)).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(first)).status_code == 200
    assert client.post("/api/v1/auth/login", json={"login": phone, "password": STRONG}
                       ).status_code == 401
    assert client.post("/api/v1/auth/login", json={"login": phone, "password": OTHER_STRONG}
                       ).status_code == 200


def test_password_reset_by_code_ends_every_session(client: TestClient) -> None:
    email = unique_email()
    token = sign_up(client, email)["token"]
    r = client.post("/api/v1/auth/password-reset", json={"login": email})
    assert r.status_code == 202
    code = last_code(client, email)
    r = client.post("/api/v1/auth/password-reset/verify",
                    json={"challenge_id": r.json()["challenge_id"], "code": code,
                          "new_password": OTHER_STRONG})
    assert r.status_code == 204, r.text
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    assert client.post("/api/v1/auth/login", json={"login": email, "password": OTHER_STRONG}
                       ).status_code == 200


def test_reset_for_an_unknown_login_looks_the_same(client: TestClient) -> None:
    r = client.post("/api/v1/auth/password-reset", json={"login": unique_email()})
    assert r.status_code == 202 and set(r.json()) == {"challenge_id", "channel", "expires_in_s"}


def test_every_authenticated_endpoint_needs_a_session(client: TestClient) -> None:
    for method, path in [("GET", "/api/v1/me"), ("GET", "/api/v1/auth/sessions"),
                         ("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/auth/logout-everywhere"),
                         ("DELETE", f"/api/v1/auth/sessions/{uuid.uuid4()}"),
                         ("POST", "/api/v1/auth/password")]:
        for headers in ({}, bearer("not-a-token"), bearer("x" * 500)):
            r = client.request(method, path, headers=headers,
                               json={"current_password": STRONG, "new_password": OTHER_STRONG})
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json()["code"] == "unauthenticated"


def test_no_secret_is_stored_in_the_clear(client: TestClient) -> None:
    phone, email = unique_phone(), unique_email()
    phone_token = sign_up(client, phone)["token"]
    sign_up(client, email)
    dump = database_dump(client)
    for secret in (STRONG, phone.replace(" ", ""), phone.replace(" ", "")[3:], email,
                   phone_token):
        assert secret not in dump, f"{secret!r} is stored in the clear"


def database_dump(client: TestClient) -> str:
    async def run() -> str:
        parts = []
        async with client.app.state.db.engine.connect() as conn:
            for table in ("identity_user", "identity_session", "identity_challenge",
                          "identity_throttle", "core_outbox_event", "core_audit_event"):
                for row in await conn.execute(text(f"SELECT * FROM {table}")):
                    parts.append(repr(tuple(row)))
        return "\n".join(parts)

    return client.portal.call(run)


def test_users_create_cli(db_url: str, key_file: Path) -> None:
    env = {"BANKWALLET_KEY_FILE": str(key_file), "BANKWALLET_ENV": "test",
           "PATH": "/usr/bin:/bin"}
    email = unique_email()
    result = subprocess.run([sys.executable, "-m", "bankwallet", "users", "create", "--email",
                             email, "--password-stdin", "--role", "support", "--database-url",
                             db_url], input=STRONG + "\n", capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["role"] == "support"
    assert STRONG not in result.stdout + result.stderr
    again = subprocess.run([sys.executable, "-m", "bankwallet", "users", "create", "--email",
                            email, "--password-stdin", "--database-url", db_url],
                           input=STRONG + "\n", capture_output=True, text=True, env=env,
                           timeout=60)
    assert again.returncode == 2 and "exists" in again.stderr


def test_no_secret_reaches_a_log_line(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    phone = unique_phone()
    r = client.post("/api/v1/auth/signup", json={"login": phone, "password": STRONG})
    code = last_code(client, phone.replace(" ", ""))
    r = client.post("/api/v1/auth/signup/verify",
                    json={"challenge_id": r.json()["challenge_id"], "code": code})
    token = r.json()["token"]
    client.post("/api/v1/auth/login", json={"login": phone, "password": "Wrong-pass-123"})
    logged = "\n".join(f"{rec.getMessage()} {vars(rec)}" for rec in caplog.records)
    for secret in (STRONG, token, phone.replace(" ", "")):
        assert secret not in logged
    assert f" {code} " not in logged and f"'{code}'" not in logged


def test_an_aged_session_does_not_hold_the_write_lock_while_the_request_works(
        client: TestClient) -> None:
    """The last-seen update (at most every 30 s) must not keep SQLite's one write lock for the
    rest of the request: a route that reads through its session and then writes through
    another connection (as the ledger store does) would wait on itself. On PostgreSQL the
    session row's lock is harmless; the test runs on both."""
    import asyncio
    import datetime as dt

    from fastapi import Depends
    from sqlalchemy import text, update

    from bankwallet.core.deps import _db_session
    from bankwallet.identity.deps import current_auth
    from bankwallet.identity.models import Session as SessionRow

    async def probe(session=Depends(_db_session, scope="function"),  # noqa: B008
                    auth=Depends(current_auth)) -> dict[str, bool]:  # noqa: B008
        await session.execute(text("SELECT 1"))  # a read: autoflush writes anything dirty
        async with asyncio.timeout(5):
            async with client.app.state.db.engine.begin() as other:
                await other.execute(text("CREATE TABLE IF NOT EXISTS lock_probe (n INTEGER)"))
                await other.execute(text("INSERT INTO lock_probe (n) VALUES (1)"))
        return {"ok": True}

    client.app.add_api_route("/test/lock-probe", probe, methods=["GET"])
    created = sign_up(client, unique_phone())
    a_minute_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)

    async def age() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(update(SessionRow).where(
                SessionRow.id == uuid.UUID(created["session_id"])).values(last_seen_at=a_minute_ago))

    async def drop_probe() -> None:  # the database is shared: leave no table behind
        async with client.app.state.db.engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS lock_probe"))

    client.portal.call(age)
    try:
        r = client.get("/test/lock-probe", headers=bearer(created["token"]))
    finally:
        client.portal.call(drop_probe)
    assert r.status_code == 200, r.text

    async def seen() -> dt.datetime:
        async with client.app.state.db.sessionmaker() as session:
            return (await session.get(SessionRow, uuid.UUID(created["session_id"]))).last_seen_at

    assert client.portal.call(seen) > a_minute_ago + dt.timedelta(seconds=30)
