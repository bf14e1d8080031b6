"""Who may call what: every KYC and back-office endpoint, for every role and for another
customer's ids, answers exactly the expected status (on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi.testclient import TestClient

from identity.test_api import bearer, client  # noqa: F401
from identity.test_kyc import apply, customer, make_user

ROLES = ("customer", "support", "risk", "operations", "admin")
STAFF = ROLES[1:]


@dataclass
class Case:
    method: str
    path: Callable[[dict], str]
    expected: dict[str, int]  # role → status; "owner" is the customer the ids belong to
    body: Callable[[dict], dict | None] = lambda ctx: None
    fresh: Callable[[TestClient, dict], None] | None = None  # new objects before each call
    name: str = field(default="")


def allow(roles: tuple[str, ...], ok: int, *, denied: int = 403,
          owner: int | None = None) -> dict[str, int]:
    expected = {role: (ok if role in roles or role == "admin" else denied) for role in ROLES}
    if owner is not None:
        expected["owner"] = owner
    return expected


CUSTOMERS_READ = ("support", "risk", "operations")
KYC_REVIEW = ("risk", "operations")
LOCK = ("operations",)


def fresh_application(client: TestClient, ctx: dict) -> None:
    victim = customer(client)
    _, r = apply(client, victim["token"])
    assert r.status_code == 201
    ctx["app_id"] = r.json()["id"]


def fresh_victim(client: TestClient, ctx: dict) -> None:
    ctx["victim"] = customer(client)


def fresh_locked_victim(client: TestClient, ctx: dict) -> None:
    ctx["victim"] = customer(client)
    r = client.post(f"/api/v1/admin/customers/{ctx['victim']['id']}/lock",
                    json={"reason": "matrix"}, headers=bearer(ctx["tokens"]["admin"]))
    assert r.status_code == 200


CASES = [
    # The customer's own KYC.
    Case("GET", lambda c: "/api/v1/kyc", {r: 200 for r in (*ROLES, "owner")}),
    Case("GET", lambda c: f"/api/v1/kyc/applications/{c['owner_app']}",
         {**{r: 404 for r in ROLES}, "owner": 200}),
    # Finding customers and their security events.
    Case("GET", lambda c: f"/api/v1/admin/customers?login={c['owner_login']}",
         allow(CUSTOMERS_READ, 200, owner=403)),
    Case("GET", lambda c: f"/api/v1/admin/customers/{c['owner']['id']}",
         allow(CUSTOMERS_READ, 200, owner=403)),
    Case("GET", lambda c: f"/api/v1/admin/customers/{c['owner']['id']}/events",
         allow(CUSTOMERS_READ, 200, owner=403)),
    # Staff accounts are visible to admins only.
    Case("GET", lambda c: f"/api/v1/admin/customers/{c['staff_target']['id']}",
         {"customer": 403, "support": 404, "risk": 404, "operations": 404, "admin": 200,
          "owner": 403}),
    Case("GET", lambda c: "/api/v1/admin/customers/00000000-0000-7000-8000-000000000000",
         allow(CUSTOMERS_READ, 404, owner=403)),
    # Locking.
    Case("POST", lambda c: f"/api/v1/admin/customers/{c['victim']['id']}/lock",
         allow(LOCK, 200, owner=403), body=lambda c: {"reason": "fraud report"},
         fresh=fresh_victim),
    Case("POST", lambda c: f"/api/v1/admin/customers/{c['victim']['id']}/unlock",
         allow(LOCK, 200, owner=403), body=lambda c: {}, fresh=fresh_locked_victim),
    Case("POST", lambda c: f"/api/v1/admin/customers/{c['staff_target']['id']}/lock",
         {"customer": 403, "support": 403, "risk": 403, "operations": 404, "admin": 200,
          "owner": 403}, body=lambda c: {"reason": "left the bank"}),
    # The KYC queue.
    Case("GET", lambda c: "/api/v1/admin/kyc/applications", allow(KYC_REVIEW, 200, owner=403)),
    Case("GET", lambda c: f"/api/v1/admin/kyc/applications/{c['owner_app']}",
         allow(KYC_REVIEW, 200, owner=403)),
    Case("POST", lambda c: f"/api/v1/admin/kyc/applications/{c['app_id']}/approve",
         allow(KYC_REVIEW, 200, owner=403), fresh=fresh_application),
    Case("POST", lambda c: f"/api/v1/admin/kyc/applications/{c['app_id']}/reject",
         allow(KYC_REVIEW, 200, owner=403), body=lambda c: {"reason": "unreadable"},
         fresh=fresh_application),
    # The audit log.
    Case("GET", lambda c: "/api/v1/admin/audit", allow((), 200, owner=403)),
    # The pages (bearer tokens work there too; cookie forms are tested with CSRF elsewhere).
    Case("GET", lambda c: "/admin", allow(STAFF, 200, owner=403)),
    Case("GET", lambda c: f"/admin/customers?login={c['owner_login']}",
         allow(CUSTOMERS_READ, 200, owner=403)),
    Case("GET", lambda c: "/admin/kyc", allow(KYC_REVIEW, 200, owner=403)),
    Case("GET", lambda c: "/admin/audit", allow((), 200, owner=403)),
    Case("POST", lambda c: f"/admin/customers/{c['victim']['id']}/lock",
         allow(LOCK, 303, owner=403), body=lambda c: {"reason": "fraud"}, fresh=fresh_victim),
    Case("POST", lambda c: f"/admin/customers/{c['victim']['id']}/unlock",
         allow(LOCK, 303, owner=403), body=lambda c: {}, fresh=fresh_locked_victim),
    Case("POST", lambda c: f"/admin/kyc/{c['app_id']}/approve",
         allow(KYC_REVIEW, 303, owner=403), body=lambda c: {}, fresh=fresh_application),
    Case("POST", lambda c: f"/admin/kyc/{c['app_id']}/reject",
         allow(KYC_REVIEW, 303, owner=403), body=lambda c: {"reason": "blurry"},
         fresh=fresh_application),
]


def test_every_endpoint_answers_each_role_exactly(client: TestClient) -> None:
    from identity.test_api import unique_phone

    owner = make_user(client, "customer", unique_phone().replace(" ", ""))
    owner_login = owner["login"]
    _, r = apply(client, owner["token"])
    tokens = {"customer": customer(client)["token"], "owner": owner["token"],
              **{role: make_user(client, role)["token"] for role in STAFF}}
    ctx = {"owner": owner, "owner_login": owner_login.replace("+", "%2B"),
           "owner_app": r.json()["id"], "tokens": tokens,
           "staff_target": make_user(client, "support")}

    mismatches = []
    for case in CASES:
        for role, expected in case.expected.items():
            if case.fresh:
                case.fresh(client, ctx)
            path, body = case.path(ctx), case.body(ctx)
            if path.startswith("/api/"):
                r = client.request(case.method, path, json=body, headers=bearer(tokens[role]))
            else:
                r = client.request(case.method, path, data=body, headers=bearer(tokens[role]),
                                   follow_redirects=False)
            if r.status_code != expected:
                mismatches.append(f"{case.method} {path} as {role}: {r.status_code}, "
                                  f"expected {expected} ({r.text[:120]})")
            elif expected == 403 and path.startswith("/api/"):
                assert r.json()["code"] == "forbidden"
    assert not mismatches, "\n".join(mismatches)


def test_without_a_session_everything_is_401(client: TestClient) -> None:
    for method, path in [("GET", "/api/v1/kyc"), ("POST", "/api/v1/kyc/applications"),
                         ("GET", "/api/v1/admin/customers?login=a@b.cn"),
                         ("GET", "/api/v1/admin/kyc/applications"),
                         ("GET", "/api/v1/admin/audit"),
                         ("POST", "/api/v1/admin/customers/00000000-0000-7000-8000-000000000000/lock")]:
        r = client.request(method, path, json={})
        assert r.status_code == 401, (method, path, r.status_code)
    r = client.get("/admin", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fadmin"


# Routes anyone may call: they start or finish a login, or read nothing private.
PUBLIC_API = {
    ("POST", "/api/v1/auth/signup"), ("POST", "/api/v1/auth/signup/verify"),
    ("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/login/second-factor"),
    ("POST", "/api/v1/auth/login/second-factor/sms"), ("POST", "/api/v1/auth/password-reset"),
    ("POST", "/api/v1/auth/password-reset/verify"),
    ("POST", "/api/v1/auth/passkey/login/options"), ("POST", "/api/v1/auth/passkey/login"),
    ("GET", "/api/v1/fx/rates"),
}
# Called by the card processor, authenticated by their signature instead of a session: refused
# (400 unsigned, 503 while no gateway is configured) but never 2xx without one.
WEBHOOKS = {("POST", "/api/v1/cards/gateway/webhooks")}
# Called by a merchant's server with its secret API key; a customer's cookie is no credential.
API_KEY_ONLY = {("POST", "/api/v1/consumer-code-charges")}


def _api_routes(client: TestClient) -> list[tuple[str, str, str]]:
    """(method, route pattern, a concrete path) for every JSON API route the app serves, as
    its OpenAPI document lists them."""
    import re

    found = []
    for pattern, operations in client.app.openapi()["paths"].items():
        if pattern.startswith("/api/"):
            path = re.sub(r"\{[^}]+\}", "00000000-0000-7000-8000-000000000000", pattern)
            found += [(m.upper(), pattern, path) for m in sorted(operations)]
    return found


def test_every_api_route_needs_a_session_unless_public(client: TestClient) -> None:
    """A new endpoint is covered the day it is added: without credentials it is 401 (or, for
    the few public ones, anything but 401 and 5xx)."""
    routes = _api_routes(client)
    assert len(routes) > 40
    assert {(m, p) for m, p, _ in routes} >= PUBLIC_API, "a public route disappeared"
    wrong = []
    for method, pattern, path in routes:
        r = client.request(method, path, json={})
        public = (method, pattern) in PUBLIC_API
        if (method, pattern) in WEBHOOKS:
            if r.status_code not in (400, 503):
                wrong.append(f"{method} {pattern}: {r.status_code} without a signature")
            continue
        # The ledger's operator API is off (403) until BANKWALLET_OPS_TOKEN is set.
        expected = 403 if pattern.startswith("/api/v1/ledger") else 401
        if (public and (r.status_code == 401 or r.status_code >= 500)) or (
                not public and r.status_code != expected):
            wrong.append(f"{method} {pattern}: {r.status_code}")
        assert r.headers["content-type"].startswith(("application/problem+json",
                                                     "application/json")), pattern
    assert wrong == []


def test_every_unsafe_route_refuses_a_cookie_without_its_csrf_token(client: TestClient) -> None:
    """The web client's cookie is sent by the browser on its own: every state-changing route
    that accepts it also needs the CSRF token (the ledger's operator API takes no cookie)."""
    from bankwallet.identity.deps import SESSION_COOKIE

    token = customer(client)["token"]
    client.cookies.set(SESSION_COOKIE, token)
    wrong = []
    for method, pattern, path in _api_routes(client):
        if method == "GET" or (method, pattern) in PUBLIC_API | WEBHOOKS:
            continue
        r = client.request(method, path, json={})
        if (method, pattern) in API_KEY_ONLY:
            if r.status_code != 401:
                wrong.append(f"{method} {pattern}: {r.status_code} with only a cookie")
            continue
        code = "forbidden" if pattern.startswith("/api/v1/ledger") else "csrf_failed"
        if r.status_code != 403 or r.json()["code"] != code:
            wrong.append(f"{method} {pattern}: {r.status_code} {r.text[:80]}")
    client.cookies.clear()
    assert wrong == []
