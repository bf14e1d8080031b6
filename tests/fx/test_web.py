"""The exchange page with a cookie session: rates, a quote with its countdown, confirm, open a
balance; refusals shown on the page; another user's exchange never shown."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from identity.test_api import STRONG
from web.test_pages import audit

from bankwallet.fx import service
from bankwallet.fx.web import PAGE

from .support import balances, fund, new_customer, stored_quote

CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


def web_login(client: TestClient, phone: str) -> str:
    r = client.post("/login", data={"login": phone, "password": STRONG, "next": PAGE},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == PAGE
    page = client.get(PAGE)
    assert page.status_code == 200
    return CSRF_RE.search(page.text).group(1)


def field(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]+)"', html).group(1)


def test_the_page_needs_a_session(client: TestClient) -> None:
    client.cookies.clear()
    r = client.get(PAGE, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fwallet%2Fexchange"


def test_quote_then_confirm_from_the_page(client: TestClient) -> None:
    alice = new_customer(client)
    fund(client, alice.user_id, 300_00)
    client.headers["accept-language"] = "en"
    csrf = web_login(client, alice.phone)
    page = client.get(PAGE)
    assert "Exchange currencies" in page.text and "7.1357" in page.text  # the USD board price
    assert page.headers["cache-control"] == "no-store"

    quoted = client.post(f"{PAGE}/quote", data={
        "csrf_token": csrf, "sell_currency": "CNY", "buy_currency": "USD", "amount": "100",
        "side": "sell"})
    assert quoted.status_code == 200, quoted.text
    assert "$14.01" in quoted.text and "1 USD = 7.1357 CNY" in quoted.text
    assert re.search(r'data-seconds-left="(29|30)"', quoted.text)
    assert audit(quoted.text).violations == []  # nothing the CSP would block
    quote_id, confirm_key = field(quoted.text, "quote_id"), field(quoted.text, "key")

    # Without the CSRF token a cookie post is refused.
    refused = client.post(f"{PAGE}/confirm", data={"quote_id": quote_id, "key": confirm_key})
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"

    form = {"csrf_token": csrf, "quote_id": quote_id, "key": confirm_key}
    done = client.post(f"{PAGE}/confirm", data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith(f"{PAGE}?done=")
    shown = client.get(done.headers["location"])
    assert "you sold CN¥100.00 and received $14.01" in shown.text
    # A double submit of the same form exchanges once.
    again = client.post(f"{PAGE}/confirm", data=form, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == done.headers["location"]
    assert balances(client, alice.user_id) == {"CNY": 200_00, "USD": 14_01}

    # Buying an exact amount, then a refusal shown on the page (not enough CNY).
    quoted = client.post(f"{PAGE}/quote", data={
        "csrf_token": csrf, "sell_currency": "CNY", "buy_currency": "EUR", "amount": "500",
        "side": "buy"})
    assert "€500.00" in quoted.text
    eur_quote = field(quoted.text, "quote_id")
    r = client.post(f"{PAGE}/confirm", data={
        "csrf_token": csrf, "quote_id": eur_quote, "key": field(quoted.text, "key")})
    assert r.status_code == 422 and "not enough money" in r.text
    assert balances(client, alice.user_id) == {"CNY": 200_00, "USD": 14_01}

    # Another customer can neither see this exchange nor use this quote.
    client.cookies.clear()
    other = new_customer(client)
    fund(client, other.user_id, 5_000_00)
    other_csrf = web_login(client, other.phone)
    assert "you sold" not in client.get(done.headers["location"]).text
    r = client.post(f"{PAGE}/confirm", data={"csrf_token": other_csrf, "quote_id": eur_quote,
                                              "key": "k" * 24})
    assert r.status_code == 404 and "could not find that quote" in r.text
    assert balances(client, other.user_id) == {"CNY": 5_000_00}
    assert stored_quote(client, eur_quote).used_at is None


@pytest.mark.parametrize(("form", "message"), [
    ({"sell_currency": "CNY", "buy_currency": "CNY", "amount": "1"}, "two different currencies"),
    ({"sell_currency": "CNY", "buy_currency": "USD", "amount": "1.234"}, "Enter an amount"),
    ({"sell_currency": "CNY", "buy_currency": "USD", "amount": "lots"}, "Enter an amount"),
    ({"sell_currency": "XAU", "buy_currency": "USD", "amount": "1"}, "not offered"),
    ({"sell_currency": "HKD", "buy_currency": "USD", "amount": "0.07"}, "too small"),
])
def test_bad_quote_forms_say_why(client: TestClient, form: dict, message: str) -> None:
    bob = new_customer(client)
    client.headers["accept-language"] = "en"
    csrf = web_login(client, bob.phone)
    r = client.post(f"{PAGE}/quote", data={"csrf_token": csrf, "side": "sell", **form})
    assert 400 <= r.status_code < 500 and message in r.text, r.text
    assert 'role="alert"' in r.text


def test_an_expired_quote_is_refused_on_the_page(client: TestClient,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    carol = new_customer(client)
    fund(client, carol.user_id, 300_00)
    client.headers["accept-language"] = "en"
    csrf = web_login(client, carol.phone)
    quoted = client.post(f"{PAGE}/quote", data={
        "csrf_token": csrf, "sell_currency": "CNY", "buy_currency": "USD", "amount": "10",
        "side": "sell"})
    quote_id = field(quoted.text, "quote_id")
    expires = stored_quote(client, quote_id).expires_at
    monkeypatch.setattr(service, "clock", lambda: expires)
    r = client.post(f"{PAGE}/confirm", data={"csrf_token": csrf, "quote_id": quote_id,
                                              "key": field(quoted.text, "key")})
    assert r.status_code == 409 and "This quote has expired" in r.text
    assert balances(client, carol.user_id) == {"CNY": 300_00}
    assert stored_quote(client, quote_id).used_at is None


def test_open_another_balance(client: TestClient) -> None:
    dave = new_customer(client)
    client.headers["accept-language"] = "en"
    csrf = web_login(client, dave.phone)
    assert balances(client, dave.user_id) == {"CNY": 0}
    r = client.post(f"{PAGE}/balances", data={"csrf_token": csrf, "currency": "HKD"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}?opened=HKD"
    assert "Your HKD balance is open." in client.get(r.headers["location"]).text
    assert balances(client, dave.user_id) == {"CNY": 0, "HKD": 0}
    bad = client.post(f"{PAGE}/balances", data={"csrf_token": csrf, "currency": "XAU"})
    assert bad.status_code == 422 and "not offered" in bad.text


def test_the_page_assets_are_served_with_their_hash(client: TestClient) -> None:
    dave = new_customer(client)
    web_login(client, dave.phone)
    page = client.get(PAGE).text
    for name, media in (("exchange.js", "text/javascript"), ("exchange.css", "text/css")):
        url = re.search(rf'"({PAGE}/{name}\?v=[0-9a-f]{{12}})"', page).group(1)
        r = client.get(url)
        assert r.status_code == 200 and r.headers["content-type"].startswith(media)
    assert client.get(f"{PAGE}/other.js").status_code == 422


def test_the_page_renders_in_chinese(client: TestClient) -> None:
    erin = new_customer(client)
    client.headers["accept-language"] = "zh-CN"
    web_login(client, erin.phone)
    page = client.get(PAGE)
    assert page.status_code == 200 and 'lang="zh-CN"' in page.text
    assert "CN¥" in page.text or "¥" in page.text
