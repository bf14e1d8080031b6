"""Idempotency-Key with Stripe's semantics, on SQLite and PostgreSQL: one effect per key,
replays, conflicts, failures, stale claims and concurrent duplicates."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import func, select, update

from bankwallet.app import create_app
from bankwallet.core import audit, idempotency
from bankwallet.core.deps import DbSession
from bankwallet.core.errors import Conflict
from bankwallet.settings import Settings
from identity.test_api import key_file  # noqa: F401 - the session's key file

ACTION = "test.idempotent_work"


class Body(BaseModel):
    amount_minor: int
    fail: str | None = None


class Refused(Conflict):
    code = "test_refused"


def make_router(calls: list[int]) -> APIRouter:
    router = APIRouter()

    @router.post("/test/idem/{scope}", status_code=201)
    async def work(scope: str, body: Body, request: Request, session: DbSession):
        async def run() -> dict:
            calls.append(body.amount_minor)
            await audit.record(session, action=ACTION, subject_id=scope,
                               data={"amount_minor": body.amount_minor})
            if body.fail == "refuse":
                raise Refused("refused by the rules")
            if body.fail == "stepup":
                from bankwallet.identity.errors import StepUpRequired

                raise StepUpRequired()
            if body.fail == "crash":
                raise RuntimeError("the process fell over")
            await asyncio.sleep(0.05)  # long enough for concurrent duplicates to overlap
            return {"scope": scope, "amount_minor": body.amount_minor, "id": str(uuid.uuid4())}

        return await idempotency.run(request, session, scope=f"test:{scope}", body=body,
                                     work=run, status=201)

    return router


@pytest.fixture
def app_and_calls(db_url: str, key_file, monkeypatch: pytest.MonkeyPatch
                  ) -> Iterator[tuple[TestClient, list[int]]]:
    from bankwallet.core import crypto
    from bankwallet.settings import get_settings

    monkeypatch.setenv("BANKWALLET_ENV", "test")
    get_settings.cache_clear()
    crypto.reset_keyring()
    calls: list[int] = []
    app = create_app(Settings(database_url=db_url, env="test"), run_workers=False)
    app.include_router(make_router(calls))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, calls
    crypto.reset_keyring()
    get_settings.cache_clear()


def effects(client: TestClient, scope: str) -> int:
    async def count() -> int:
        async with client.app.state.db.sessionmaker() as session:
            return (await session.execute(select(func.count()).select_from(audit.AuditEvent)
                                          .where(audit.AuditEvent.action == ACTION,
                                                 audit.AuditEvent.subject_id == scope))
                    ).scalar_one()

    return client.portal.call(count)


def post(client: TestClient, scope: str, key: str | None, body: dict) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(f"/test/idem/{scope}", json=body, headers=headers)


def test_same_key_same_body_replays_the_first_answer(app_and_calls) -> None:
    client, calls = app_and_calls
    scope = uuid.uuid4().hex
    first = post(client, scope, "k-1", {"amount_minor": 100})
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    again = post(client, scope, "k-1", {"amount_minor": 100})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert effects(client, scope) == 1 and len(calls) == 1
    # Keys are scoped: another scope with the same key is another request.
    assert post(client, scope + "x", "k-1", {"amount_minor": 100}).status_code == 201


def test_same_key_other_body_is_a_conflict(app_and_calls) -> None:
    client, _ = app_and_calls
    scope = uuid.uuid4().hex
    assert post(client, scope, "k-2", {"amount_minor": 100}).status_code == 201
    r = post(client, scope, "k-2", {"amount_minor": 101})
    assert r.status_code == 409 and r.json()["code"] == "idempotency_key_reused"
    assert effects(client, scope) == 1


@pytest.mark.parametrize("key", [None, "", "x" * 256, "two words"])
def test_a_missing_or_bad_key_is_refused_before_any_work(app_and_calls, key) -> None:
    client, calls = app_and_calls
    r = post(client, uuid.uuid4().hex, key, {"amount_minor": 1})
    assert r.status_code == 400
    assert r.json()["code"] in ("idempotency_key_missing", "idempotency_key_invalid")
    assert calls == []


def test_a_refusal_is_stored_and_replayed_and_its_work_rolled_back(app_and_calls) -> None:
    client, calls = app_and_calls
    scope = uuid.uuid4().hex
    r = post(client, scope, "k-3", {"amount_minor": 5, "fail": "refuse"})
    assert r.status_code == 409 and r.json()["code"] == "test_refused"
    again = post(client, scope, "k-3", {"amount_minor": 5, "fail": "refuse"})
    assert again.status_code == 409 and again.json()["code"] == "test_refused"
    assert again.headers["idempotent-replayed"] == "true"
    assert len(calls) == 1 and effects(client, scope) == 0


def test_a_crash_releases_the_key_for_a_retry(app_and_calls) -> None:
    client, calls = app_and_calls
    scope = uuid.uuid4().hex
    r = post(client, scope, "k-4", {"amount_minor": 7, "fail": "crash"})
    assert r.status_code == 500 and effects(client, scope) == 0
    # A retry with the same key and body runs the work again (nothing was decided).
    r = post(client, scope, "k-4", {"amount_minor": 7, "fail": "crash"})
    assert r.status_code == 500 and len(calls) == 2


def test_a_stale_claim_is_taken_over(app_and_calls) -> None:
    client, calls = app_and_calls
    scope = uuid.uuid4().hex
    fingerprint = idempotency.fingerprint("POST", f"/test/idem/{scope}", {"amount_minor": 9,
                                                                        "fail": None})

    async def dead_claim(locked_until: dt.datetime) -> None:
        async with client.app.state.db.sessionmaker() as session:
            await idempotency.claim(session, scope=f"test:{scope}", key="k-5",
                                    fingerprint=fingerprint)
            async with client.app.state.db.unit_of_work() as own:
                await own.execute(update(idempotency.IdempotencyKey)
                                  .where(idempotency.IdempotencyKey.key == "k-5")
                                  .values(locked_until=locked_until))

    # A process died holding the claim a moment ago: a retry must wait.
    client.portal.call(dead_claim, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30))
    r = post(client, scope, "k-5", {"amount_minor": 9})
    assert r.status_code == 409 and r.json()["code"] == "idempotency_request_in_progress"
    assert r.headers["retry-after"] == "1"
    # Once the claim is stale, the retry takes it over and the work runs once.
    async def age() -> None:
        async with client.app.state.db.unit_of_work() as own:
            await own.execute(update(idempotency.IdempotencyKey)
                              .where(idempotency.IdempotencyKey.key == "k-5")
                              .values(locked_until=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))

    client.portal.call(age)
    assert post(client, scope, "k-5", {"amount_minor": 9}).status_code == 201
    assert effects(client, scope) == 1 and calls == [9]


def test_concurrent_duplicates_apply_once(app_and_calls, db_url: str) -> None:
    client, calls = app_and_calls
    scope = uuid.uuid4().hex

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            return await asyncio.gather(*[
                ac.post(f"/test/idem/{scope}", json={"amount_minor": 42},
                        headers={"Idempotency-Key": "k-burst"}) for _ in range(12)])

    answers = client.portal.call(burst)
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in answers if r.status_code == 201]
    assert len({r.json()["id"] for r in created}) == 1  # every 201 is the same answer
    for r in answers:
        if r.status_code == 409:
            assert r.json()["code"] == "idempotency_request_in_progress"
    assert effects(client, scope) == 1 and calls == [42]


def test_an_error_that_decides_nothing_releases_the_key(app_and_calls) -> None:
    """"Confirm it is you first" is not the answer: after the step-up, the same key runs."""
    client, calls = app_and_calls
    scope = uuid.uuid4().hex
    for _ in range(2):
        r = post(client, scope, "k-6", {"amount_minor": 3, "fail": "stepup"})
        assert r.status_code == 403 and r.json()["code"] == "step_up_required"
        assert "idempotent-replayed" not in r.headers
    assert len(calls) == 2 and effects(client, scope) == 0
