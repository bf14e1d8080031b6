"""The pages: send (form → review → result), requests and split bills, my contact card; with
a cookie session and its CSRF token, in both languages, nothing the CSP would block."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from identity.test_api import STRONG
from sqlalchemy import update
from web.test_pages import audit

from bankwallet.identity.models import Session

from .support import (
    Customer,
    balance,
    customer,
    grant_tier,
    requests_of,
    web_session,
)

PAGES = ["/wallet/send", "/wallet/requests", "/wallet/receive"]


def log_in(client: TestClient, who: Customer, *, lang: str = "en",
           with_password: bool = False) -> str:
    """A web session for ``who`` (through the login form if ``with_password``); returns the
    page's CSRF token."""
    client.cookies.clear()
    client.cookies.set("lang", lang)
    if with_password:
        r = client.post("/login", data={"login": who.login, "password": STRONG,
                                        "next": "/wallet/send"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/wallet/send", r.text
    else:
        web_session(client, who)
    return csrf_of(client.get("/wallet/send").text)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]{64})"', html).group(1)


def hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


def review(client: TestClient, csrf: str, to: str, amount: str, note: str = ""):
    return client.post("/wallet/send/review", data={"csrf_token": csrf, "to": to,
                                                    "amount": amount, "currency": "CNY",
                                                    "note": note})


def confirm(client: TestClient, page: str):
    fields = {name: hidden(page, name) for name in ("csrf_token", "to", "amount_minor",
                                                    "currency", "note", "key")}
    return client.post("/wallet/send", data=fields, follow_redirects=False)


def test_pages_need_a_session(client: TestClient) -> None:
    for path in PAGES:
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_pages_render_in_both_languages_with_labels_and_nothing_the_csp_blocks(
        client: TestClient, lang: str) -> None:
    alice = customer(client, funded=10_00)
    log_in(client, alice, lang=lang)
    for path in PAGES:
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["cache-control"] == "no-store"
        assert audit(r.text).violations == [], path
        assert audit(r.text).h1, path
        # Every visible input has a label.
        ids = set(re.findall(r'<input id="([^"]+)"(?![^>]*type="hidden")', r.text))
        labelled = set(re.findall(r'<label for="([^"]+)"', r.text))
        assert ids <= labelled, (path, ids - labelled)
    css = client.get("/wallet/assets/transfers.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_send_review_and_result(client: TestClient) -> None:
    alice, bob = customer(client, funded=100_00), customer(client)
    csrf = log_in(client, alice, with_password=True)
    page = review(client, csrf, bob.login, "12.34", note="books")
    assert page.status_code == 200, page.text
    assert "Check and send" in page.text and "CN¥12.34" in page.text
    assert bob.login[-4:] in page.text and "****" in page.text
    assert balance(client, bob.id) == 0  # nothing moves before the confirmation
    done = confirm(client, page.text)
    assert done.status_code == 303 and done.headers["location"].startswith("/wallet/transfers/")
    result = client.get(done.headers["location"])
    assert result.status_code == 200 and "Money sent" in result.text and "books" in result.text
    # The same confirmation again (a double click, a reload) moves nothing more.
    again = confirm(client, page.text)
    assert again.headers["location"] == done.headers["location"]
    assert balance(client, bob.id) == 12_34 and balance(client, alice.id) == 87_66
    assert "books" in client.get("/wallet/send").text  # in the recent transfers
    # Bob sees it as received; a stranger gets the not-found page.
    log_in(client, bob)
    assert "Money received" in client.get(done.headers["location"]).text
    log_in(client, customer(client))
    assert client.get(done.headers["location"]).status_code == 404


REFUSALS = [
    ("BOB", "12.345", 422, "no more decimal places than the currency has"),
    ("BOB", "0", 422, "greater than zero"),
    ("BOB", "abc", 422, "greater than zero"),
    ("+86 139 0000 0000", "1", 404, "could not find a wallet"),
    ("SELF", "1", 422, "your own wallet"),
]


def test_refusals_show_the_form_again_and_move_nothing(client: TestClient) -> None:
    alice, bob = customer(client, funded=1_000_00), customer(client)
    csrf = log_in(client, alice)
    for to, amount, status, message in REFUSALS:
        target = {"BOB": bob.login, "SELF": alice.login}.get(to, to)
        page = review(client, csrf, target, amount)
        assert page.status_code == status and message in page.text, (to, amount, page.text)
        assert f'value="{amount}"' in page.text  # what was typed is kept
    assert balance(client, alice.id) == 1_000_00 and balance(client, bob.id) == 0


def test_a_refusal_at_confirmation_shows_the_form(client: TestClient) -> None:
    alice, bob = customer(client, funded=20_00), customer(client)
    csrf = log_in(client, alice)
    page = review(client, csrf, bob.login, "15")
    client.post("/wallet/send", data={"csrf_token": csrf, "to": bob.login,
                                      "amount_minor": "10_00", "currency": "CNY",
                                      "key": "other"})  # malformed: refused, nothing moves
    assert balance(client, bob.id) == 0
    # The money went elsewhere in the meantime.
    from .support import send
    assert send(client, alice, bob.login, 10_00).status_code == 201
    r = confirm(client, page.text)
    assert r.status_code == 422 and "not enough" in r.text
    assert balance(client, alice.id) == 10_00
    # Limits are kept at the confirmation (the review only checks what it can without
    # counting the outflow).
    page = review(client, csrf, bob.login, "600")
    assert page.status_code == 200
    r = confirm(client, page.text)
    assert r.status_code == 422 and "limit for one payment (CN¥500.00)" in r.text
    assert 'value="600.00"' in r.text
    # Without the CSRF token nothing is even tried.
    fields = {n: hidden(page.text, n) for n in ("to", "amount_minor", "currency", "key")}
    assert client.post("/wallet/send", data=fields).status_code == 403


def test_a_large_amount_steps_up_first(client: TestClient) -> None:
    alice, bob = customer(client), customer(client)
    grant_tier(client, alice, 1)
    grant_tier(client, bob, 1)
    csrf = log_in(client, alice)

    async def stale() -> None:  # every session of Alice's proved a factor long ago
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(update(Session).where(Session.user_id == alice.id)
                                  .values(second_factor_at=dt.datetime(2020, 1, 1,
                                                                       tzinfo=dt.UTC)))

    client.portal.call(stale)
    r = client.post("/wallet/send/review", data={"csrf_token": csrf, "to": bob.login,
                                                 "amount": "2500", "currency": "CNY"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/me/step-up?next=")
    assert "amount%3D2500" in r.headers["location"]


def test_requests_pay_decline_and_cancel_from_the_page(client: TestClient) -> None:
    alice, bob = customer(client), customer(client, funded=30_00)
    csrf = log_in(client, alice)
    r = client.post("/wallet/requests", data={"csrf_token": csrf, "payer": bob.login,
                                              "amount": "12.50", "note": "taxi"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/wallet/requests?done=created"
    client.post("/wallet/requests", data={"csrf_token": csrf, "payer": bob.login,
                                          "amount": "3", "note": "coffee"})
    client.post("/wallet/requests", data={"csrf_token": csrf, "payer": bob.login,
                                          "amount": "4", "note": "snack"})
    mine = client.get("/wallet/requests").text
    assert "taxi" in mine and "Cancel" in mine
    bad = client.post("/wallet/requests", data={"csrf_token": csrf, "payer": alice.login,
                                                "amount": "1"})
    assert bad.status_code == 422 and "your own wallet" in bad.text
    by_note = {q.note: q for q in requests_of(client, alice)}
    taxi, coffee, snack = by_note["taxi"], by_note["coffee"], by_note["snack"]
    cancelled = client.post(f"/wallet/requests/{snack.id}/cancel", data={"csrf_token": csrf},
                            follow_redirects=False)
    assert cancelled.headers["location"] == "/wallet/requests?done=cancelled"

    csrf = log_in(client, bob)
    page = client.get("/wallet/requests").text
    assert "Pay CN¥12.50" in page and "snack" not in page.split("Earlier requests")[0]
    key = re.search(rf'/wallet/requests/{taxi.id}/pay">\s*<input[^>]*>\s*<input type="hidden" '
                    r'name="key" value="([0-9a-f]+)"', page).group(1)
    paid = client.post(f"/wallet/requests/{taxi.id}/pay", data={"csrf_token": csrf, "key": key},
                       follow_redirects=False)
    assert paid.status_code == 303 and paid.headers["location"].startswith("/wallet/transfers/")
    assert balance(client, alice.id) == 12_50
    again = client.post(f"/wallet/requests/{taxi.id}/pay", data={"csrf_token": csrf,
                                                                 "key": "another"})
    assert again.status_code == 409 and "no longer open" in again.text
    declined = client.post(f"/wallet/requests/{coffee.id}/decline", data={"csrf_token": csrf},
                           follow_redirects=False)
    assert declined.headers["location"] == "/wallet/requests?done=declined"
    # The payer cannot cancel, the requester's request is not theirs to decline twice.
    r = client.post(f"/wallet/requests/{snack.id}/cancel", data={"csrf_token": csrf})
    assert r.status_code == 403
    assert balance(client, alice.id) == 12_50 and balance(client, bob.id) == 17_50
    assert {q.status for q in requests_of(client, alice)} == {"paid", "declined", "cancelled"}


def test_split_a_bill_from_the_page(client: TestClient) -> None:
    alice, bob, carol = customer(client), customer(client), customer(client, email=True)
    csrf = log_in(client, alice)
    r = client.post("/wallet/splits", data={
        "csrf_token": csrf, "total": "100", "currency": "CNY", "note": "hotpot",
        "participant_0": bob.login, "participant_1": carol.login, "include_me": "on"},
        follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/wallet/splits/")
    page = client.get(r.headers["location"]).text
    assert "CN¥33.34" in page and page.count("CN¥33.33") == 2 and "Equally" in page
    r = client.post("/wallet/splits", data={
        "csrf_token": csrf, "total": "50", "participant_0": bob.login, "amount_0": "20",
        "participant_1": carol.login, "amount_1": "20", "my_share": "10"},
        follow_redirects=False)
    assert r.status_code == 303
    assert "By the amounts given" in client.get(r.headers["location"]).text
    bad = client.post("/wallet/splits", data={
        "csrf_token": csrf, "total": "50", "participant_0": bob.login, "amount_0": "20",
        "participant_1": carol.login, "amount_1": "20"})
    assert bad.status_code == 422 and "do not add up" in bad.text
    assert 'value="20"' in bad.text  # the form keeps what was typed
    assert len(requests_of(client, alice)) == 4
    log_in(client, bob)
    assert client.get(r.headers["location"]).status_code == 404


def test_my_contact_card_page_shows_a_code_others_can_pay(client: TestClient) -> None:
    alice, bob = customer(client, funded=5_00), customer(client)
    log_in(client, bob)
    page = client.get("/wallet/receive").text
    assert "<svg" in page and "contact-card-qr" in page
    payload = re.search(r"(bankwallet:pay\?to=[^<\s]+)", page).group(1).replace("&amp;", "&")
    assert str(bob.id) in payload
    from .support import send
    assert send(client, alice, payload, 5_00).status_code == 201
    assert balance(client, bob.id) == 5_00
