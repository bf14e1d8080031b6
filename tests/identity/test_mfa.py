"""Two-factor authentication: TOTP, recovery codes, SMS codes, step-up; SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text, update

from .test_api import (  # noqa: F401
    STRONG,
    bearer,
    client,
    database_dump,
    key_file,
    last_code,
    sign_up,
    unique_email,
    unique_phone,
)


def enrol(client: TestClient, token: str) -> tuple[pyotp.TOTP, list[str]]:
    """Start and confirm an authenticator; returns it and the recovery codes."""
    r = client.post("/api/v1/auth/mfa/totp", headers=bearer(token))
    assert r.status_code == 201, r.text
    started = r.json()
    assert started["otpauth_uri"].startswith("otpauth://totp/bankwallet:")
    assert "issuer=bankwallet" in started["otpauth_uri"]
    assert started["qr_svg"].startswith("<svg") and "style=" not in started["qr_svg"]
    totp = pyotp.TOTP(started["secret"])
    r = client.post("/api/v1/auth/mfa/totp/confirm", headers=bearer(token),
                    json={"code": totp.now()})
    assert r.status_code == 200, r.text
    codes = r.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}", c) for c in codes)
    return totp, codes


def next_code(totp: pyotp.TOTP) -> str:
    """The code of the next time-step: within the allowed drift, newer than any used now."""
    return totp.at(time.time() + 30)


def wrong_code(totp: pyotp.TOTP) -> str:
    valid = {totp.at(time.time() + d) for d in (-60, -30, 0, 30, 60)}
    return next(f"{n:06d}" for n in range(10**6) if f"{n:06d}" not in valid)


def log_in(client: TestClient, login: str) -> dict:
    r = client.post("/api/v1/auth/login", json={"login": login, "password": STRONG})
    assert r.status_code == 200, r.text
    return r.json()


def second_factor(client: TestClient, challenge_id: str, method: str, code: str):
    return client.post("/api/v1/auth/login/second-factor",
                       json={"challenge_id": challenge_id, "method": method, "code": code})


def make_stale(client: TestClient, session_id: str) -> None:
    """Age the session's second factor past the step-up window."""
    from bankwallet.identity.models import Session

    async def run() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(update(Session).where(Session.id == uuid.UUID(session_id))
                                  .values(second_factor_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))

    client.portal.call(run)


def test_enrol_then_login_needs_the_second_factor(client: TestClient) -> None:
    phone = unique_phone()
    created = sign_up(client, phone)
    status = client.get("/api/v1/auth/mfa", headers=bearer(created["token"])).json()
    assert status == {"totp_active": False, "totp_pending": False, "recovery_codes_left": 0,
                      "sms_available": True, "passkeys": 0}
    totp, _ = enrol(client, created["token"])
    status = client.get("/api/v1/auth/mfa", headers=bearer(created["token"])).json()
    assert status["totp_active"] and status["recovery_codes_left"] == 10

    started = log_in(client, phone)
    assert started["second_factor_required"] is True
    assert started["methods"] == ["totp", "recovery_code", "sms"]
    assert "token" not in started and "session_id" not in started
    done = second_factor(client, started["challenge_id"], "totp", next_code(totp))
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["user"]["id"] == created["user"]["id"] and body["session_id"]
    assert client.get("/api/v1/me", headers=bearer(body["token"])).status_code == 200
    # The challenge is used up.
    again = second_factor(client, started["challenge_id"], "recovery_code", "aaaa-aaaa")
    assert again.status_code == 400


def test_a_totp_code_is_accepted_once(client: TestClient) -> None:
    phone = unique_phone()
    created = sign_up(client, phone)
    totp, _ = enrol(client, created["token"])
    # The code that confirmed the enrolment cannot log in.
    confirm_code = totp.now()
    r = second_factor(client, log_in(client, phone)["challenge_id"], "totp", confirm_code)
    if confirm_code != next_code(totp):  # (unless the clock moved on a step meanwhile)
        assert r.status_code == 400 and r.json()["code"] == "invalid_code"
    code = next_code(totp)
    assert second_factor(client, log_in(client, phone)["challenge_id"], "totp",
                         code).status_code == 200
    replay = second_factor(client, log_in(client, phone)["challenge_id"], "totp", code)
    assert replay.status_code == 400 and replay.json()["code"] == "invalid_code"
    # An older step is refused too.
    older = second_factor(client, log_in(client, phone)["challenge_id"], "totp",
                          totp.at(time.time() - 30))
    assert older.status_code == 400


def test_wrong_second_factor_codes_are_throttled_and_audited(client: TestClient) -> None:
    phone = unique_phone()
    created = sign_up(client, phone)
    totp, _ = enrol(client, created["token"])
    statuses = []
    for _ in range(8):
        challenge = log_in(client, phone)["challenge_id"]
        statuses.append(second_factor(client, challenge, "totp", wrong_code(totp)).status_code)
    assert statuses[:5] == [400] * 5 and 429 in statuses[5:], statuses
    r = second_factor(client, log_in(client, phone)["challenge_id"], "totp", next_code(totp))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["code"] == "too_many_attempts"
    failures = count_audit(client, "identity.second_factor.failed", created["user"]["id"])
    assert failures >= 5


def test_a_login_challenge_allows_a_bounded_number_of_attempts(client: TestClient) -> None:
    phone = unique_phone()
    created = sign_up(client, phone)
    totp, _ = enrol(client, created["token"])
    challenge = log_in(client, phone)["challenge_id"]
    for _ in range(4):
        assert second_factor(client, challenge, "totp", wrong_code(totp)).status_code == 400
    clear_throttle(client, created["user"]["id"])
    assert second_factor(client, challenge, "totp", wrong_code(totp)).status_code == 400
    clear_throttle(client, created["user"]["id"])
    # Five attempts used: the right code no longer completes this challenge.
    assert second_factor(client, challenge, "totp", next_code(totp)).status_code == 400


def test_a_recovery_code_works_once(client: TestClient) -> None:
    email = unique_email()
    created = sign_up(client, email)
    _, codes = enrol(client, created["token"])
    started = log_in(client, email)
    assert started["methods"] == ["totp", "recovery_code"]  # no phone: no SMS
    r = second_factor(client, started["challenge_id"], "recovery_code", codes[3].upper())
    assert r.status_code == 200, r.text
    again = second_factor(client, log_in(client, email)["challenge_id"], "recovery_code",
                          codes[3])
    assert again.status_code == 400
    status = client.get("/api/v1/auth/mfa", headers=bearer(created["token"])).json()
    assert status["recovery_codes_left"] == 9
    r = client.post("/api/v1/auth/login/second-factor/sms",
                    json={"challenge_id": log_in(client, email)["challenge_id"]})
    assert r.status_code == 409 and r.json()["code"] == "second_factor_unavailable"


def test_sms_second_factor_through_the_outbox(client: TestClient) -> None:
    phone = unique_phone()
    created = sign_up(client, phone)
    totp, _ = enrol(client, created["token"])
    challenge = log_in(client, phone)["challenge_id"]
    # Before a code is sent, no SMS code can work.
    assert second_factor(client, challenge, "sms", "123456").status_code == 400
    r = client.post("/api/v1/auth/login/second-factor/sms", json={"challenge_id": challenge})
    assert r.status_code == 202 and r.json()["channel"] == "sms"
    code = last_code(client, phone.replace(" ", ""))
    done = second_factor(client, challenge, "sms", code)
    assert done.status_code == 200, done.text
    assert second_factor(client, challenge, "sms", code).status_code == 400


def test_step_up_dependency_fails_stale_and_passes_after_step_up(client: TestClient) -> None:
    phone = unique_phone()
    created = sign_up(client, phone)
    token = created["token"]
    totp, codes = enrol(client, token)
    # Fresh after sign-up and confirmation: regenerating works at once.
    r = client.post("/api/v1/auth/mfa/recovery-codes", headers=bearer(token))
    assert r.status_code == 200 and len(r.json()["recovery_codes"]) == 10
    new_codes = r.json()["recovery_codes"]
    assert not set(new_codes) & set(codes)

    make_stale(client, created["session_id"])
    r = client.post("/api/v1/auth/mfa/recovery-codes", headers=bearer(token))
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "step_up_required"
    assert problem["step_up_url"] == "/api/v1/auth/step-up"
    assert problem["methods"] == ["totp", "recovery_code", "sms"]
    r = client.delete("/api/v1/auth/mfa/totp", headers=bearer(token))
    assert r.status_code == 403 and r.json()["code"] == "step_up_required"

    # The old recovery codes died with regeneration.
    r = client.post("/api/v1/auth/step-up", headers=bearer(token),
                    json={"method": "recovery_code", "code": codes[0]})
    assert r.status_code == 400
    r = client.post("/api/v1/auth/step-up", headers=bearer(token),
                    json={"method": "totp", "code": next_code(totp)})
    assert r.status_code == 200, r.text
    assert client.delete("/api/v1/auth/mfa/totp", headers=bearer(token)).status_code == 204
    # Without TOTP, login needs no second factor any more.
    assert "token" in log_in(client, phone)


def test_step_up_by_sms_and_by_recovery_code(client: TestClient) -> None:
    phone = unique_phone()
    created = sign_up(client, phone)
    token = created["token"]
    _, codes = enrol(client, token)
    make_stale(client, created["session_id"])
    r = client.post("/api/v1/auth/step-up/sms", headers=bearer(token))
    assert r.status_code == 202
    code = last_code(client, phone.replace(" ", ""))
    assert client.post("/api/v1/auth/step-up", headers=bearer(token),
                       json={"method": "sms", "code": code}).status_code == 200
    assert client.post("/api/v1/auth/mfa/recovery-codes", headers=bearer(token)
                       ).status_code == 200
    # The SMS code works once.
    make_stale(client, created["session_id"])
    assert client.post("/api/v1/auth/step-up", headers=bearer(token),
                       json={"method": "sms", "code": code}).status_code == 400


def test_a_user_without_totp_steps_up_by_sms_only(client: TestClient) -> None:
    phone = unique_phone()
    sign_up(client, phone)
    logged_in = log_in(client, phone)  # password only: not fresh
    r = client.post("/api/v1/auth/mfa/recovery-codes", headers=bearer(logged_in["token"]))
    assert r.status_code == 403 and r.json()["methods"] == ["sms"]


def test_one_user_cannot_confirm_or_disable_anothers_factor(client: TestClient) -> None:
    alice_phone, bob_phone = unique_phone(), unique_phone()
    alice = sign_up(client, alice_phone)
    bob = sign_up(client, bob_phone)
    client.post("/api/v1/auth/mfa/totp", headers=bearer(alice["token"]))
    bob_secret = client.post("/api/v1/auth/mfa/totp", headers=bearer(bob["token"])).json()["secret"]
    # Alice sends Bob's current code: it confirms nothing, for either of them.
    r = client.post("/api/v1/auth/mfa/totp/confirm", headers=bearer(alice["token"]),
                    json={"code": pyotp.TOTP(bob_secret).now()})
    assert r.status_code == 400
    for who in (alice, bob):
        status = client.get("/api/v1/auth/mfa", headers=bearer(who["token"])).json()
        assert status["totp_pending"] and not status["totp_active"]
    r = client.post("/api/v1/auth/mfa/totp/confirm", headers=bearer(bob["token"]),
                    json={"code": pyotp.TOTP(bob_secret).now()})
    assert r.status_code == 200
    # Alice's (fresh) session removes only her own enrolment; Bob's factor stays.
    assert client.delete("/api/v1/auth/mfa/totp", headers=bearer(alice["token"])
                         ).status_code == 204
    assert client.delete("/api/v1/auth/mfa/totp", headers=bearer(alice["token"])
                         ).status_code == 409
    assert client.get("/api/v1/auth/mfa", headers=bearer(bob["token"])).json()["totp_active"]
    assert log_in(client, bob_phone)["second_factor_required"] is True
    # Bob's codes prove nothing for Alice's session.
    r = client.post("/api/v1/auth/step-up", headers=bearer(alice["token"]),
                    json={"method": "totp", "code": next_code(pyotp.TOTP(bob_secret))})
    assert r.status_code == 400


def test_enrolling_twice_and_confirming_nothing_are_refused(client: TestClient) -> None:
    created = sign_up(client, unique_phone())
    token = created["token"]
    r = client.post("/api/v1/auth/mfa/totp/confirm", headers=bearer(token), json={"code": "123456"})
    assert r.status_code == 409 and r.json()["code"] == "totp_not_enrolled"
    enrol(client, token)
    r = client.post("/api/v1/auth/mfa/totp", headers=bearer(token))
    assert r.status_code == 409 and r.json()["code"] == "totp_already_active"


def test_no_second_factor_secret_is_stored_in_the_clear(client: TestClient) -> None:
    created = sign_up(client, unique_phone())
    r = client.post("/api/v1/auth/mfa/totp", headers=bearer(created["token"]))
    secret = r.json()["secret"]
    codes = client.post("/api/v1/auth/mfa/totp/confirm", headers=bearer(created["token"]),
                        json={"code": pyotp.TOTP(secret).now()}).json()["recovery_codes"]
    dump = database_dump(client) + dump_tables(client, "identity_totp", "identity_recovery_code")
    assert len(dump) > 0
    for value in [secret, secret.lower(), *codes, *(c.replace("-", "") for c in codes)]:
        assert value not in dump, f"{value!r} is stored in the clear"
    assert count_rows(client, "identity_recovery_code", created["user"]["id"]) == 10


@pytest.mark.parametrize("path,body", [
    ("/api/v1/auth/login/second-factor", {"challenge_id": "nope", "method": "totp",
                                           "code": "123456"}),
    ("/api/v1/auth/login/second-factor", {"challenge_id": "0190f0a0-0000-7000-8000-000000000000",
                                           "method": "carrier-pigeon", "code": "123456"}),
    ("/api/v1/auth/login/second-factor", {"challenge_id": "0190f0a0-0000-7000-8000-000000000000",
                                           "method": "totp", "code": "x" * 100}),
    ("/api/v1/auth/login/second-factor", {"challenge_id": "0190f0a0-0000-7000-8000-000000000000",
                                           "method": "totp", "code": "123456", "extra": 1}),
    ("/api/v1/auth/login/second-factor", {"challenge_id": "0190f0a0-0000-7000-8000-000000000000",
                                           "method": "totp", "code": "123456"}),
    ("/api/v1/auth/login/second-factor/sms",
     {"challenge_id": "0190f0a0-0000-7000-8000-000000000000"}),
    ("/api/v1/auth/login/second-factor/sms", {}),
])
def test_bad_second_factor_input_is_a_4xx_problem(client: TestClient, path: str,
                                                  body: dict) -> None:
    r = client.post(path, json=body)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_bad_authenticated_mfa_input_is_a_4xx_problem(client: TestClient) -> None:
    token = sign_up(client, unique_phone())["token"]
    for path, body in [("/api/v1/auth/mfa/totp/confirm", {"code": "abc"}),
                       ("/api/v1/auth/mfa/totp/confirm", {}),
                       ("/api/v1/auth/step-up", {"method": "totp"}),
                       ("/api/v1/auth/step-up", {"method": "fax", "code": "123456"})]:
        r = client.post(path, headers=bearer(token), json=body)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    for method, path in [("POST", "/api/v1/auth/mfa/totp"), ("GET", "/api/v1/auth/mfa"),
                         ("DELETE", "/api/v1/auth/mfa/totp"),
                         ("POST", "/api/v1/auth/mfa/recovery-codes"),
                         ("POST", "/api/v1/auth/step-up"), ("POST", "/api/v1/auth/step-up/sms")]:
        r = client.request(method, path, json={"method": "totp", "code": "123456"})
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated"


# -- helpers ---------------------------------------------------------------------------------


def dump_tables(client: TestClient, *tables: str) -> str:
    async def run() -> str:
        parts = []
        async with client.app.state.db.engine.connect() as conn:
            for table in tables:
                for row in await conn.execute(text(f"SELECT * FROM {table}")):
                    parts.append(repr(tuple(row)))
        return "\n".join(parts)

    return client.portal.call(run)


def count_rows(client: TestClient, table: str, user_id: str) -> int:
    from bankwallet.identity.models import RecoveryCode
    from sqlalchemy import func, select

    assert table == "identity_recovery_code"

    async def run() -> int:
        async with client.app.state.db.sessionmaker() as session:
            return (await session.execute(select(func.count()).select_from(RecoveryCode).where(
                RecoveryCode.user_id == uuid.UUID(user_id)))).scalar_one()

    return client.portal.call(run)


def count_audit(client: TestClient, action: str, user_id: str) -> int:
    from bankwallet.core.audit import AuditEvent
    from sqlalchemy import func, select

    async def run() -> int:
        async with client.app.state.db.sessionmaker() as session:
            return (await session.execute(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action == action, AuditEvent.subject_id == user_id))).scalar_one()

    return client.portal.call(run)


def clear_throttle(client: TestClient, user_id: str) -> None:
    from bankwallet.identity.models import Throttle
    from sqlalchemy import delete

    async def run() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(delete(Throttle).where(Throttle.key == f"mfa:user:{user_id}"))

    client.portal.call(run)


# -- web pages -------------------------------------------------------------------------------


def test_web_enrolment_then_login_with_the_second_step(client: TestClient) -> None:
    phone = unique_phone()
    sign_up(client, phone)
    r = client.post("/login", data={"login": phone, "password": STRONG, "next": "/me/security"},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/me/security", headers={"accept-language": "en"})
    assert 'href="/me/security/totp"' in page.text
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text).group(1)
    # A password-only login is not enough to change second factors: confirm by SMS first.
    r = client.post("/me/security/totp/start", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/me/step-up?")
    step = client.get(r.headers["location"], headers={"accept-language": "en"})
    assert step.status_code == 200 and "Confirm it is you" in step.text
    sent = client.post("/me/step-up/send", data={"csrf_token": csrf, "channel": "sms",
                                                 "next": "/me/security/totp"},
                       headers={"accept-language": "en"})
    assert sent.status_code == 200 and "We sent a 6-digit code by SMS." in sent.text
    r = client.post("/me/step-up", data={"csrf_token": csrf, "method": "sms",
                                         "code": last_code(client, phone.replace(" ", "")),
                                         "next": "/me/security/totp"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/me/security/totp"
    assert client.post("/me/security/totp/start", data={"csrf_token": csrf},
                       follow_redirects=False).status_code == 303
    page = client.get("/me/security/totp", headers={"accept-language": "en"})
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "<svg" in page.text and "style=" not in page.text and "<script>" not in page.text
    secret = re.search(r"<code>([A-Z2-7]{32})</code>", page.text).group(1)
    totp = pyotp.TOTP(secret)
    shown = client.post("/me/security/totp/confirm", data={"csrf_token": csrf, "code": totp.now()},
                        headers={"accept-language": "en"})
    assert shown.status_code == 200 and "Your recovery codes" in shown.text
    assert len(re.findall(r"<code>[a-z2-9]{4}-[a-z2-9]{4}</code>", shown.text)) == 10
    assert "Your recovery codes" not in client.get("/me/security/totp").text  # shown once

    client.cookies.clear()
    r = client.post("/login", data={"login": phone, "password": STRONG, "next": "/me/security"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login/second-factor?")
    assert "set-cookie" not in r.headers
    step = client.get(r.headers["location"], headers={"accept-language": "zh-CN"})
    assert step.status_code == 200 and "两步验证" in step.text
    challenge = re.search(r'name="challenge_id" value="([0-9a-f-]{36})"', step.text).group(1)
    wrong = client.post("/login/second-factor", data={"challenge_id": challenge, "method": "totp",
                                                      "code": wrong_code(totp)})
    assert wrong.status_code == 400 and "set-cookie" not in wrong.headers
    done = client.post("/login/second-factor",
                       data={"challenge_id": challenge, "method": "totp", "code": next_code(totp),
                             "next": "/me/security"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/me/security"
    assert "HttpOnly" in done.headers["set-cookie"]
    assert client.get("/me/security/totp").status_code == 200


def test_an_api_login_challenge_cannot_open_a_web_session(client: TestClient) -> None:
    phone = unique_phone()
    created = sign_up(client, phone)
    totp, _ = enrol(client, created["token"])
    challenge = log_in(client, phone)["challenge_id"]
    r = client.post("/login/second-factor", data={"challenge_id": challenge, "method": "totp",
                                                  "code": next_code(totp)}, follow_redirects=False)
    assert r.status_code == 400 and "set-cookie" not in r.headers
