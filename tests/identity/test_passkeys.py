"""Passkeys (WebAuthn) through the JSON API with a software authenticator, on SQLite and
PostgreSQL; e-mail step-up; closing an account."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from webauthn.helpers import bytes_to_base64url

from .soft_authenticator import SoftAuthenticator
from .test_api import (  # noqa: F401
    STRONG,
    bearer,
    client,
    key_file,
    last_code,
    sign_up,
    unique_email,
    unique_phone,
)
from .test_mfa import count_audit, log_in, make_stale


def register(client: TestClient, token: str, device: SoftAuthenticator,
             name: str = "My phone") -> dict:
    r = client.post("/api/v1/auth/passkeys/options", headers=bearer(token))
    assert r.status_code == 200, r.text
    started = r.json()
    options = started["options"]
    assert options["rp"]["id"] == "testserver"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    r = client.post("/api/v1/auth/passkeys", headers=bearer(token),
                    json={"ceremony_id": started["ceremony_id"],
                          "credential": device.create(options), "name": name})
    assert r.status_code == 201, r.text
    return r.json()


def passkey_login(client: TestClient, device: SoftAuthenticator, **answer) -> object:
    r = client.post("/api/v1/auth/passkey/login/options")
    assert r.status_code == 200, r.text
    started = r.json()
    assert started["options"].get("allowCredentials", []) == []  # nobody is named
    return client.post("/api/v1/auth/passkey/login",
                       json={"ceremony_id": started["ceremony_id"],
                             "credential": device.get(started["options"], **answer)})


def test_register_then_log_in_without_a_password(client: TestClient) -> None:
    created = sign_up(client, unique_phone())
    device = SoftAuthenticator()
    passkey = register(client, created["token"], device)
    assert passkey["name"] == "My phone" and passkey["last_used_at"] is None
    listed = client.get("/api/v1/auth/passkeys", headers=bearer(created["token"])).json()
    assert [p["id"] for p in listed["items"]] == [passkey["id"]]
    status = client.get("/api/v1/auth/mfa", headers=bearer(created["token"])).json()
    assert status["passkeys"] == 1

    r = passkey_login(client, device)
    assert r.status_code == 200, r.text
    session = r.json()
    assert session["user"]["id"] == created["user"]["id"]
    # A passkey login is a fresh second factor: sensitive actions pass without step-up.
    r = client.post("/api/v1/auth/passkeys/options", headers=bearer(session["token"]))
    assert r.status_code == 200
    listed = client.get("/api/v1/auth/passkeys", headers=bearer(session["token"])).json()
    assert listed["items"][0]["last_used_at"] is not None
    assert count_audit(client, "identity.passkey.registered", passkey["id"]) == 1


def test_an_answer_is_accepted_once(client: TestClient) -> None:
    created = sign_up(client, unique_phone())
    device = SoftAuthenticator()
    register(client, created["token"], device)
    started = client.post("/api/v1/auth/passkey/login/options").json()
    answer = device.get(started["options"])
    body = {"ceremony_id": started["ceremony_id"], "credential": answer}
    assert client.post("/api/v1/auth/passkey/login", json=body).status_code == 200
    r = client.post("/api/v1/auth/passkey/login", json=body)
    assert r.status_code == 400 and r.json()["code"] == "passkey_rejected"
    # Nor with a new ceremony: the signed challenge is the old one.
    again = client.post("/api/v1/auth/passkey/login/options").json()
    r = client.post("/api/v1/auth/passkey/login",
                    json={"ceremony_id": again["ceremony_id"], "credential": answer})
    assert r.status_code == 400 and r.json()["code"] == "passkey_rejected"


@pytest.mark.parametrize("answer", [{"origin": "https://evil.example"},
                                    {"rp_id": "evil.example"}])
def test_another_site_cannot_use_the_passkey(client: TestClient, answer: dict) -> None:
    created = sign_up(client, unique_phone())
    device = SoftAuthenticator()
    register(client, created["token"], device)
    r = passkey_login(client, device, **answer)
    assert r.status_code == 400 and r.json()["code"] == "passkey_rejected"
    assert r.headers["content-type"] == "application/problem+json"


def test_registering_for_another_site_is_refused(client: TestClient) -> None:
    created = sign_up(client, unique_phone())
    started = client.post("/api/v1/auth/passkeys/options", headers=bearer(created["token"])).json()
    device = SoftAuthenticator()
    r = client.post("/api/v1/auth/passkeys", headers=bearer(created["token"]),
                    json={"ceremony_id": started["ceremony_id"],
                          "credential": device.create(started["options"],
                                                      origin="https://evil.example")})
    assert r.status_code == 400 and r.json()["code"] == "passkey_rejected"
    assert client.get("/api/v1/auth/passkeys", headers=bearer(created["token"])
                      ).json()["items"] == []


def test_a_cloned_authenticator_is_refused(client: TestClient) -> None:
    created = sign_up(client, unique_phone())
    device = SoftAuthenticator()
    register(client, created["token"], device)
    assert passkey_login(client, device).status_code == 200
    assert passkey_login(client, device).status_code == 200
    device.sign_count -= 2  # a copy of the key, behind the real device's counter
    r = passkey_login(client, device)
    assert r.status_code == 400 and r.json()["code"] == "passkey_rejected"


def test_registration_needs_a_fresh_second_factor(client: TestClient) -> None:
    phone = unique_phone()
    sign_up(client, phone)
    stale = log_in(client, phone)  # password only
    r = client.post("/api/v1/auth/passkeys/options", headers=bearer(stale["token"]))
    assert r.status_code == 403 and r.json()["code"] == "step_up_required"
    assert r.json()["methods"] == ["sms"]
    assert client.post("/api/v1/auth/step-up/code", headers=bearer(stale["token"]),
                       json={"channel": "sms"}).status_code == 202
    r = client.post("/api/v1/auth/step-up", headers=bearer(stale["token"]),
                    json={"method": "sms", "code": last_code(client, phone.replace(" ", ""))})
    assert r.status_code == 200, r.text
    register(client, stale["token"], SoftAuthenticator())


def test_step_up_with_a_passkey_then_remove_it(client: TestClient) -> None:
    created = sign_up(client, unique_phone())
    device = SoftAuthenticator()
    passkey = register(client, created["token"], device)
    make_stale(client, created["session_id"])
    token = created["token"]
    r = client.delete(f"/api/v1/auth/passkeys/{passkey['id']}", headers=bearer(token))
    assert r.status_code == 403 and "passkey" in r.json()["methods"]
    started = client.post("/api/v1/auth/step-up/passkey/options", headers=bearer(token)).json()
    allowed = [c["id"] for c in started["options"]["allowCredentials"]]
    assert allowed == [bytes_to_base64url(device.credential_id)]
    r = client.post("/api/v1/auth/step-up/passkey", headers=bearer(token),
                    json={"ceremony_id": started["ceremony_id"],
                          "credential": device.get(started["options"])})
    assert r.status_code == 200, r.text
    assert client.delete(f"/api/v1/auth/passkeys/{passkey['id']}",
                         headers=bearer(token)).status_code == 204
    r = passkey_login(client, device)
    assert r.status_code == 400 and r.json()["code"] == "passkey_rejected"


def test_one_user_cannot_touch_anothers_passkeys(client: TestClient) -> None:
    alice, bob = sign_up(client, unique_phone()), sign_up(client, unique_phone())
    alice_device, bob_device = SoftAuthenticator(), SoftAuthenticator()
    alice_key = register(client, alice["token"], alice_device)
    register(client, bob["token"], bob_device)
    path = f"/api/v1/auth/passkeys/{alice_key['id']}"
    assert client.patch(path, headers=bearer(bob["token"]), json={"name": "mine"}
                        ).status_code == 404
    assert client.delete(path, headers=bearer(bob["token"])).status_code == 404
    assert [p["name"] for p in client.get("/api/v1/auth/passkeys", headers=bearer(bob["token"])
                                          ).json()["items"]] == ["My phone"]
    # Bob's step-up ceremony answered with Alice's passkey proves nothing for Bob.
    make_stale(client, bob["session_id"])
    started = client.post("/api/v1/auth/step-up/passkey/options",
                          headers=bearer(bob["token"])).json()
    r = client.post("/api/v1/auth/step-up/passkey", headers=bearer(bob["token"]),
                    json={"ceremony_id": started["ceremony_id"],
                          "credential": alice_device.get(started["options"])})
    assert r.status_code == 400
    # Nor can Alice finish Bob's ceremony.
    started = client.post("/api/v1/auth/step-up/passkey/options",
                          headers=bearer(bob["token"])).json()
    r = client.post("/api/v1/auth/step-up/passkey", headers=bearer(alice["token"]),
                    json={"ceremony_id": started["ceremony_id"],
                          "credential": alice_device.get(started["options"])})
    assert r.status_code == 400
    assert client.patch(path, headers=bearer(alice["token"]), json={"name": "Work key"}
                        ).json()["name"] == "Work key"


@pytest.mark.parametrize("credential", [{}, {"id": "!!"}, {"id": "AAAA", "rawId": "AAAA"},
                                        {"id": "x" * 2000, "response": {}}])
def test_garbage_is_a_problem_not_a_crash(client: TestClient, credential: dict) -> None:
    started = client.post("/api/v1/auth/passkey/login/options").json()
    r = client.post("/api/v1/auth/passkey/login",
                    json={"ceremony_id": started["ceremony_id"], "credential": credential})
    assert r.status_code in (400, 422) and r.headers["content-type"] == "application/problem+json"
    r = client.post("/api/v1/auth/passkey/login",
                    json={"ceremony_id": str(uuid.uuid4()), "credential": credential})
    assert r.status_code in (400, 422)


def test_step_up_by_e_mail(client: TestClient) -> None:
    email = unique_email()
    sign_up(client, email)
    stale = log_in(client, email)
    r = client.post("/api/v1/auth/passkeys/options", headers=bearer(stale["token"]))
    assert r.status_code == 403 and r.json()["methods"] == ["email"]
    # No phone: an SMS is not available.
    r = client.post("/api/v1/auth/step-up/code", headers=bearer(stale["token"]),
                    json={"channel": "sms"})
    assert r.status_code == 409 and r.json()["code"] == "second_factor_unavailable"
    assert client.post("/api/v1/auth/step-up/code", headers=bearer(stale["token"]),
                       json={"channel": "email"}).status_code == 202
    code = last_code(client, email)
    # The e-mailed code is not an SMS code.
    r = client.post("/api/v1/auth/step-up", headers=bearer(stale["token"]),
                    json={"method": "sms", "code": code})
    assert r.status_code == 400
    r = client.post("/api/v1/auth/step-up", headers=bearer(stale["token"]),
                    json={"method": "email", "code": code})
    assert r.status_code == 200, r.text


def _open_wallet(client: TestClient, owner: str, *, funded: int) -> None:
    """A wallet account for ``owner`` holding ``funded`` minor units (from a bank account)."""
    from bankwallet.ledger import service as ledger_service
    from bankwallet.ledger.types import AccountFlags, AccountIn, TransferIn

    async def run() -> None:
        ledger = client.app.state.ledger
        wallet, bank = uuid.uuid4(), uuid.uuid4()
        await ledger_service.open_accounts(ledger, [
            AccountIn(id=wallet, ledger="CNY", kind="customer_wallet", owner_id=owner,
                      flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
            AccountIn(id=bank, ledger="CNY", kind="bank_settlement", flags=AccountFlags.NONE)])
        if funded:
            await ledger_service.submit_one(ledger, TransferIn(
                id=uuid.uuid4(), debit_account_id=bank, credit_account_id=wallet,
                amount=funded, ledger="CNY", code=1))

    client.portal.call(run)


def test_closing_needs_empty_balances_then_ends_everything(client: TestClient) -> None:
    phone = unique_phone()
    created = sign_up(client, phone)
    token = created["token"]
    device = SoftAuthenticator()
    register(client, token, device)
    _open_wallet(client, created["user"]["id"], funded=0)
    _open_wallet(client, created["user"]["id"], funded=1234)
    r = client.post("/api/v1/me/close", headers=bearer(token), json={"password": STRONG})
    assert r.status_code == 409 and r.json()["code"] == "account_not_empty"
    assert r.json()["balances"] == [{"currency": "CNY", "amount_minor": 1234, "pending": False}]
    assert "12.34" in r.json()["detail"]
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200


def test_closing_an_empty_account(client: TestClient) -> None:
    phone = unique_phone()
    created = sign_up(client, phone)
    token = created["token"]
    device = SoftAuthenticator()
    register(client, token, device)
    other = log_in(client, phone)
    _open_wallet(client, created["user"]["id"], funded=0)
    r = client.post("/api/v1/me/close", headers=bearer(token), json={"password": "wrong"})
    assert r.status_code == 400 and r.json()["code"] == "wrong_password"
    make_stale(client, created["session_id"])
    r = client.post("/api/v1/me/close", headers=bearer(token), json={"password": STRONG})
    assert r.status_code == 403 and r.json()["code"] == "step_up_required"
    started = client.post("/api/v1/auth/step-up/passkey/options", headers=bearer(token)).json()
    assert client.post("/api/v1/auth/step-up/passkey", headers=bearer(token),
                       json={"ceremony_id": started["ceremony_id"],
                             "credential": device.get(started["options"])}).status_code == 200
    r = client.post("/api/v1/me/close", headers=bearer(token), json={"password": STRONG})
    assert r.status_code == 204, r.text
    for t in (token, other["token"]):
        assert client.get("/api/v1/me", headers=bearer(t)).status_code == 401
    assert client.post("/api/v1/auth/login", json={"login": phone, "password": STRONG}
                       ).status_code == 401
    assert passkey_login(client, device).status_code == 400
    assert count_audit(client, "identity.account.closed", created["user"]["id"]) == 1
    # The number is free again.
    sign_up(client, phone)


def test_a_password_alone_cannot_bind_a_new_authenticator(client: TestClient) -> None:
    phone = unique_phone()
    sign_up(client, phone)
    stale = log_in(client, phone)
    r = client.post("/api/v1/auth/mfa/totp", headers=bearer(stale["token"]))
    assert r.status_code == 403 and r.json()["code"] == "step_up_required"
    # The web page sends the customer to confirm first, then back.
    client.cookies.set("bw_session", stale["token"])
    r = client.post("/me/security/totp/start", follow_redirects=False,
                    data={"csrf_token": _csrf(stale["token"])})
    client.cookies.clear()
    assert r.status_code == 303
    assert r.headers["location"] == "/me/step-up?next=%2Fme%2Fsecurity%2Ftotp"


def _csrf(token: str) -> str:
    from bankwallet.identity import service

    return service.csrf_token_for(token)
