"""The history pages: list with filters and HTMX "load more", receipts, statements and the
notification preferences form (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient

from bankwallet.identity.deps import SESSION_COOKIE
from bankwallet.identity.service import csrf_token_for
from history.conftest import Clock, Customer, Mover, at, customer
from web.test_pages import audit


def log_in(client: TestClient, user: Customer, lang: str = "en") -> None:
    client.cookies.set(SESSION_COOKIE, user.token)
    client.cookies.set("lang", lang)


@pytest.fixture
def story(client: TestClient, clock: Clock, mover: Mover) -> tuple[Customer, dict]:
    a, b = customer(client), customer(client)
    clock.now = at("2025-04-01 02:00")
    mover.open(a)
    mover.open(b)
    ids = {"topups": mover.topups(a, [(10_00 + n, f"top-up {n}") for n in range(25)])}
    ids["hold"] = mover.withdrawal_hold(a, 3_00)
    ids["p2p"] = mover.p2p(a, b, 2_00, note="<b>tea</b>", payee_name="王五")
    clock.now = None
    return a, {**ids, "b": b}


def test_pages_need_a_login(client: TestClient) -> None:
    client.cookies.clear()
    for path in ("/wallet/history", f"/wallet/history/{uuid.uuid4()}", "/wallet/statements",
                 "/me/notifications"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2F"), path


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_the_list_loads_more_with_htmx(client: TestClient, story, lang: str) -> None:
    a, ids = story
    log_in(client, a, lang)
    r = client.get("/wallet/history")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "private, no-cache"
    page = audit(r.text)
    assert page.violations == [] and page.html_lang == lang.replace("_", "-")
    assert r.text.count('class="history-entry"') == 20
    assert "王五" in r.text and "&lt;b&gt;tea&lt;/b&gt;" in r.text  # escaped, not markup
    more = re.search(r'hx-get="([^"]+)"', r.text).group(1).replace("&amp;", "&")
    assert "cursor=" in more
    r = client.get(more, headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert "<html" not in r.text and 'hx-swap-oob="true"' in r.text
    assert r.text.count('class="history-entry"') == 7
    assert "hx-get" not in r.text  # the last page: no more button
    # Without JavaScript the same link is a full page of the older entries.
    r = client.get(more)
    assert "<html" in r.text and r.text.count('class="history-entry"') == 7
    assert audit(r.text).violations == []


def test_filters_on_the_page(client: TestClient, story) -> None:
    a, ids = story
    log_in(client, a)
    r = client.get("/wallet/history?kind=p2p&currency=CNY&amount_min=1.50&amount_max=2&q=")
    assert r.status_code == 200
    assert r.text.count('class="history-entry"') == 1 and "王五" in r.text
    assert 'value="1.50"' in r.text and '<option value="p2p" selected>' in r.text
    r = client.get("/wallet/history?date_from=2025-04-02")
    assert "No transactions match these filters." in r.text
    for bad in ("date_from=tomorrow", "amount_min=1.234", "amount_min=abc",
                "amount_min=5&amount_max=1", "currency=XAU", "kind=lottery", "cursor=x"):
        r = client.get(f"/wallet/history?{bad}")
        assert r.status_code == 422, bad
        assert 'class="form-error"' in r.text and audit(r.text).violations == [], bad


def test_receipts(client: TestClient, story) -> None:
    a, ids = story
    log_in(client, a)
    r = client.get(f"/wallet/history/{ids['hold']}")
    assert r.status_code == 200
    assert audit(r.text).violations == []
    assert "Pending" in r.text and str(ids["hold"]) in r.text
    assert re.search(r"<code>[0-9a-f]{64}</code>", r.text)
    assert 'data-print hidden' in r.text and "/wallet/assets/history.js?v=" in r.text
    for missing in (str(uuid.uuid4()), "not-an-id", str(ids["topups"][0]).upper()[:-1]):
        r = client.get(f"/wallet/history/{missing}")
        assert r.status_code == 404 and "Transaction not found" in r.text
    # The other customer sees the transfer between them, not A's top-up.
    log_in(client, ids["b"])
    assert client.get(f"/wallet/history/{ids['p2p']}").status_code == 200
    assert client.get(f"/wallet/history/{ids['topups'][0]}").status_code == 404


def test_statements_page_links_each_month(client: TestClient, story) -> None:
    a, _ = story
    log_in(client, a)
    r = client.get("/wallet/statements")
    assert r.status_code == 200 and audit(r.text).violations == []
    links = re.findall(r'href="(/api/v1/statements/[0-9-]+\.(?:pdf|csv))"', r.text)
    assert len(links) == 24
    assert client.get(links[0]).status_code == 200  # the cookie works for the download
    assert client.get(links[1]).content.startswith(b"\xef\xbb\xbf")


def test_assets(client: TestClient) -> None:
    r = client.get("/wallet/assets/history.css")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
    assert client.get("/wallet/assets/history.js").headers["content-type"].startswith(
        "text/javascript")
    assert client.get("/wallet/assets/list.html").status_code == 404
    assert client.get("/wallet/assets/..%2Fweb.py").status_code == 404


def test_notification_preferences_form(client: TestClient) -> None:
    user = customer(client)
    log_in(client, user)
    r = client.get("/me/notifications")
    assert r.status_code == 200 and audit(r.text).violations == []
    assert 'name="sms_withdrawals" value="on" checked' in r.text
    assert 'name="sms_money_in" value="on">' in r.text and 'value="500.00"' in r.text
    form = {"sms_money_in": "on", "email": "on", "sms_money_out_min": "12.5"}
    r = client.post("/me/notifications", data=form, follow_redirects=False)
    assert r.status_code == 403  # no CSRF token
    form["csrf_token"] = csrf_token_for(user.token)
    r = client.post("/me/notifications", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/me/notifications?saved=true"
    assert client.get("/api/v1/notification-preferences").json() == {
        "sms_withdrawals": False, "sms_money_out": False, "sms_money_out_min_minor": 12_50,
        "sms_money_in": True, "email": True}
    r = client.post("/me/notifications", data={**form, "sms_money_out_min": "1.999"})
    assert r.status_code == 422 and 'class="form-error"' in r.text
    assert client.get("/api/v1/notification-preferences").json()["sms_money_out_min_minor"] \
        == 12_50
