"""The web client's sign-in pages: cookies, CSRF, cross-site refusal."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from .test_api import STRONG, client, key_file, sign_up, unique_phone  # noqa: F401


def log_in_with_cookie(client: TestClient, login: str) -> str:
    r = client.post("/login", data={"login": login, "password": STRONG, "next": "/me/security"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/me/security"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    page = client.get("/me/security")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text).group(1)


def test_cookie_login_shows_the_security_page_and_logout_needs_the_csrf_token(
        client: TestClient) -> None:
    phone = unique_phone()
    sign_up(client, phone)
    csrf = log_in_with_cookie(client, phone)
    refused = client.post("/logout", follow_redirects=False)
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    assert client.get("/me/security").status_code == 200  # still signed in
    done = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    assert client.get("/me/security", follow_redirects=False).status_code == 303


def test_cross_site_login_posts_are_refused(client: TestClient) -> None:
    r = client.post("/login", data={"login": unique_phone(), "password": STRONG},
                    headers={"sec-fetch-site": "cross-site"}, follow_redirects=False)
    assert r.status_code == 403


def test_wrong_password_page_says_so_without_naming_the_account(client: TestClient) -> None:
    r = client.post("/login", data={"login": unique_phone(), "password": "Wrong-pass-123"},
                    headers={"accept-language": "en"})
    assert r.status_code == 401 and "Wrong login or password." in r.text


def test_the_security_page_needs_a_session(client: TestClient) -> None:
    r = client.get("/me/security", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/me/security"
