"""Back-office behaviour: locking ends sessions and refuses logins, events, the audit log,
and the cookie pages with their CSRF tokens."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from identity.test_api import STRONG, bearer, client, unique_phone  # noqa: F401
from identity.test_kyc import apply, make_user


def sign_up(client: TestClient, phone: str) -> dict:
    """A customer with this phone, shaped like a sign-up answer."""
    user = make_user(client, "customer", phone)
    return {"user": {"id": user["id"]}, "token": user["token"]}


def test_locking_ends_sessions_and_refuses_login_until_unlocked(client: TestClient) -> None:
    phone = unique_phone()
    victim = sign_up(client, phone)
    ops = make_user(client, "operations")
    url = f"/api/v1/admin/customers/{victim['user']['id']}"
    refused = client.post(f"{url}/lock", json={"reason": " "}, headers=bearer(ops["token"]))
    assert refused.status_code == 422 and refused.json()["code"] == "reason_required"
    assert client.get("/api/v1/me", headers=bearer(victim["token"])).status_code == 200

    r = client.post(f"{url}/lock", json={"reason": "reported stolen phone"},
                    headers=bearer(ops["token"]))
    assert r.status_code == 200 and r.json()["status"] == "locked"
    assert client.get("/api/v1/me", headers=bearer(victim["token"])).status_code == 401
    login = client.post("/api/v1/auth/login", json={"login": phone, "password": STRONG})
    assert login.status_code == 403 and login.json()["code"] == "account_locked"

    r = client.post(f"{url}/unlock", json={}, headers=bearer(ops["token"]))
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert client.post("/api/v1/auth/login",
                       json={"login": phone, "password": STRONG}).status_code == 200
    assert client.get("/api/v1/me", headers=bearer(victim["token"])).status_code == 401

    events = client.get(f"{url}/events", headers=bearer(ops["token"])).json()["items"]
    actions = [e["action"] for e in events]
    assert actions.index("identity.user.unlocked") < actions.index("identity.user.locked")
    assert "identity.user.created" in actions and "identity.login.succeeded" in actions
    locked = next(e for e in events if e["action"] == "identity.user.locked")
    assert locked["actor_type"] == "staff" and locked["actor_id"] == ops["id"]


def test_staff_cannot_lock_themselves_and_admins_can_lock_staff(client: TestClient) -> None:
    admin = make_user(client, "admin")
    r = client.post(f"/api/v1/admin/customers/{admin['id']}/lock", json={"reason": "x"},
                    headers=bearer(admin["token"]))
    assert r.status_code == 403
    support = make_user(client, "support")
    r = client.post(f"/api/v1/admin/customers/{support['id']}/lock", json={"reason": "left"},
                    headers=bearer(admin["token"]))
    assert r.status_code == 200
    # A locked staff member loses their powers at once.
    assert client.get("/api/v1/admin/audit", headers=bearer(support["token"])).status_code == 401


def test_finding_a_customer_is_audited_and_unknown_logins_are_404(client: TestClient) -> None:
    phone = unique_phone()
    victim = sign_up(client, phone)
    support = make_user(client, "support")
    r = client.get("/api/v1/admin/customers", params={"login": phone},
                   headers=bearer(support["token"]))
    assert r.status_code == 200 and r.json()["id"] == victim["user"]["id"]
    assert r.json()["phone"] == phone.replace(" ", "")
    for login in (unique_phone(), "nobody@example.com", "not a login"):
        r = client.get("/api/v1/admin/customers", params={"login": login},
                       headers=bearer(support["token"]))
        assert r.status_code == 404, login
    admin = make_user(client, "admin")
    log = client.get("/api/v1/admin/audit?limit=100", headers=bearer(admin["token"])).json()
    viewed = [e for e in log["items"] if e["action"] == "admin.customer.viewed"
              and e["actor_id"] == support["id"]]
    assert viewed and viewed[0]["subject_id"] == victim["user"]["id"]
    assert phone.replace(" ", "") not in str(viewed)


def test_the_audit_log_pages_backwards(client: TestClient) -> None:
    admin = make_user(client, "admin")
    first = client.get("/api/v1/admin/audit?limit=2", headers=bearer(admin["token"])).json()
    assert len(first["items"]) == 2 and first["next_before"] == first["items"][-1]["seq"]
    second = client.get(f"/api/v1/admin/audit?limit=2&before={first['next_before']}",
                        headers=bearer(admin["token"])).json()
    assert second["items"][0]["seq"] < first["items"][-1]["seq"]
    too_many = client.get("/api/v1/admin/audit?limit=100000", headers=bearer(admin["token"]))
    assert too_many.status_code == 422


def _cookie_login(client: TestClient, login: str, path: str) -> str:
    r = client.post("/login", data={"login": login, "password": STRONG, "next": path},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(path, headers={"accept-language": "en"})
    assert page.status_code == 200, page.text
    return page.text


def test_the_kyc_queue_page_approves_with_the_csrf_token(client: TestClient) -> None:
    applicant = sign_up(client, unique_phone())
    body, r = apply(client, applicant["token"])
    application_id = r.json()["id"]
    risk = make_user(client, "risk")
    page = _cookie_login(client, risk["login"], "/admin/kyc")
    assert body["legal_name"] in page and body["national_id"] not in page
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page).group(1)
    url = f"/admin/kyc/{application_id}/approve"
    refused = client.post(url, follow_redirects=False)
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    done = client.post(url, data={"csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    me = client.get("/api/v1/me", headers=bearer(applicant["token"])).json()
    assert me["kyc_tier"] == 1
    reject = client.post(f"/admin/kyc/{application_id}/reject", data={"csrf_token": csrf},
                         follow_redirects=False)
    assert reject.status_code == 303 and "error=reason_required" in reject.headers["location"]


def test_the_customer_page_finds_and_locks(client: TestClient) -> None:
    phone = unique_phone()
    victim = sign_up(client, phone)
    ops = make_user(client, "operations")
    _cookie_login(client, ops["login"], "/admin")
    page = client.get("/admin/customers", params={"login": phone},
                      headers={"accept-language": "en"})
    assert page.status_code == 200 and "Lock account" in page.text
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text).group(1)
    r = client.post(f"/admin/customers/{victim['user']['id']}/lock",
                    data={"csrf_token": csrf, "reason": "chargeback fraud"},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get(r.headers["location"], headers={"accept-language": "en"})
    assert "Unlock account" in page.text and "identity.user.locked" in page.text
    assert client.get("/admin/audit").status_code == 403  # operations: not the whole log
