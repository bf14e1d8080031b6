"""The cards page of the web client (cookie sessions): list, add with step-up, 3-D Secure
through the gateway's page and back, remove; CSRF, another user's card, bad input shown
without echoing the card number."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from fastapi.testclient import TestClient
from identity.test_api import STRONG

from .conftest import (
    FUTURE_YEAR,
    SandboxGateway,
    add,
    answer_challenge,
    make_fresh,
    new_user,
)

PAGE = "/me/cards"


def log_in(client: TestClient) -> tuple[dict, str]:
    """A customer logged in with a cookie; returns them and the page's CSRF token."""
    user = new_user(client)
    r = client.post("/login", data={"login": user["user"]["phone"], "password": STRONG,
                                    "next": PAGE}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == PAGE
    return user, csrf_of(client.get(PAGE).text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', html)
    return found.group(1) if found else ""  # a page without forms has none


def form(csrf: str, number: str = "4242 4242 4242 4242", **changes: str) -> dict[str, str]:
    return {"csrf_token": csrf, "number": number, "exp_month": "12",
            "exp_year": str(FUTURE_YEAR), "cvc": "739", "holder_name": "Li Lei", **changes}


class Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, dict[str, str | None]] = {}
        self.violations: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "input" and attributes.get("name"):
            self.inputs[attributes["name"] or ""] = attributes
        if tag == "script" and not attributes.get("src"):
            self.violations.append("inline script")
        if tag == "style" or "style" in attributes or any(a.startswith("on") for a in attributes):
            self.violations.append(f"inline style or handler on <{tag}>")


def parse(html: str) -> Inputs:
    parser = Inputs()
    parser.feed(html)
    return parser


def test_the_page_needs_a_session(client: TestClient) -> None:
    r = client.get(PAGE, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fme%2Fcards"


def test_the_add_form_names_its_fields_for_autofill(client: TestClient) -> None:
    log_in(client)
    page = client.get(PAGE, headers={"accept-language": "en"})
    assert page.status_code == 200 and "Add a debit or credit card" in page.text
    assert 'href="/me/cards"' in page.text and 'aria-current="page"' in page.text
    audit = parse(page.text)
    assert audit.violations == []
    autocomplete = {name: audit.inputs[name].get("autocomplete")
                    for name in ("number", "holder_name", "exp_month", "exp_year", "cvc")}
    assert autocomplete == {"number": "cc-number", "holder_name": "cc-name",
                            "exp_month": "cc-exp-month", "exp_year": "cc-exp-year",
                            "cvc": "cc-csc"}
    assert audit.inputs["number"]["inputmode"] == "numeric"
    chinese = client.get(PAGE, headers={"accept-language": "zh-CN"})
    assert chinese.status_code == 200


def test_add_steps_up_then_lists_the_card_masked_then_removes_it(client: TestClient) -> None:
    user, csrf = log_in(client)
    r = client.post(PAGE, data=form(csrf), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/me/step-up?next=%2Fme%2Fcards"
    assert "4242" not in r.headers["location"]
    make_fresh(client, user["user"]["id"])
    r = client.post(PAGE, data=form(csrf), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}?notice=added"
    page = client.get(f"{PAGE}?notice=added", headers={"accept-language": "en"})
    assert "Card added." in page.text and "•••• 4242" in page.text
    assert "4242424242424242" not in page.text and "4242 4242 4242 4242" not in page.text
    card_id = re.search(r'action="/me/cards/([0-9a-f-]{36})/remove"', page.text).group(1)
    no_csrf = client.post(f"{PAGE}/{card_id}/remove", follow_redirects=False)
    assert no_csrf.status_code == 403
    removed = client.post(f"{PAGE}/{card_id}/remove", data={"csrf_token": csrf},
                          follow_redirects=False)
    assert removed.status_code == 303 and removed.headers["location"] == f"{PAGE}?notice=removed"
    assert "•••• 4242" not in client.get(PAGE).text


def test_a_refused_card_is_shown_again_without_its_number(client: TestClient) -> None:
    user, csrf = log_in(client)
    make_fresh(client, user["user"]["id"])
    r = client.post(PAGE, data=form(csrf, "4242 4242 4242 4241", holder_name="Han Meimei"),
                    headers={"accept-language": "en"})
    assert r.status_code == 422 and "Check the card number: it has a typo." in r.text
    assert "4242 4242 4242 4241" not in r.text and "424242424242424" not in r.text
    assert 'value="Han Meimei"' in r.text and 'value="739"' not in r.text
    bad_expiry = client.post(PAGE, data=form(csrf, exp_month="xx"),
                             headers={"accept-language": "en"})
    assert bad_expiry.status_code == 422 and "Enter the expiry month" in bad_expiry.text
    declined = client.post(PAGE, data=form(csrf, "4000 0000 0000 9995"),
                           headers={"accept-language": "en"})
    assert declined.status_code == 402 and "insufficient funds" in declined.text
    assert "4000000000009995" not in declined.text


def test_3ds_through_the_gateway_page_and_back(client: TestClient,
                                               sandbox_gateway: SandboxGateway) -> None:
    user, csrf = log_in(client)
    make_fresh(client, user["user"]["id"])
    r = client.post(PAGE, data=form(csrf, "4000 0025 0000 3155"),
                    headers={"accept-language": "en"})
    assert r.status_code == 200 and "Continue to your bank" in r.text
    challenge = re.search(r'href="(http://127\.0\.0\.1:\d+/3ds/pay_[0-9a-f]+)"', r.text).group(1)
    assert challenge.startswith(sandbox_gateway.url)
    assert "Waiting for your bank" in client.get(PAGE, headers={"accept-language": "en"}).text
    back = urlsplit(answer_challenge(challenge, "complete"))
    assert back.netloc == "testserver" and back.path.startswith(PAGE)
    returned = client.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert returned.status_code == 303 and returned.headers["location"] == f"{PAGE}?notice=added"
    page = client.get(PAGE, headers={"accept-language": "en"}).text
    assert "•••• 3155" in page and "Waiting for your bank" not in page


def test_a_failed_challenge_says_so(client: TestClient) -> None:
    user, csrf = log_in(client)
    make_fresh(client, user["user"]["id"])
    r = client.post(PAGE, data=form(csrf, "4000002500003155"))
    challenge = re.search(r'href="(http://127\.0\.0\.1:\d+/3ds/pay_[0-9a-f]+)"', r.text).group(1)
    back = urlsplit(answer_challenge(challenge, "fail"))
    returned = client.get(f"{back.path}?{back.query}", headers={"accept-language": "en"})
    assert returned.status_code == 200
    assert "Your bank could not confirm it is you" in returned.text


def test_the_return_page_needs_the_owner(client: TestClient) -> None:
    owner = new_user(client)
    card = add(client, owner["token"], "4000002500003155").json()
    client.cookies.clear()
    r = client.get(f"{PAGE}/{card['id']}/return", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    _, csrf = log_in(client)  # someone else
    assert client.get(f"{PAGE}/{card['id']}/return").status_code == 404
    removed = client.post(f"{PAGE}/{card['id']}/remove", data={"csrf_token": csrf})
    assert removed.status_code == 404
    assert add(client, owner["token"], "4242424242424242").status_code == 201  # owner unharmed


def test_without_a_gateway_the_page_says_cards_are_not_connected(
        unconnected_client: TestClient) -> None:
    log_in(unconnected_client)
    page = unconnected_client.get(PAGE, headers={"accept-language": "en"})
    assert page.status_code == 200 and "Card payments are not connected yet." in page.text
    assert 'name="number"' not in page.text
