"""The wallet's home page points a customer to the requests waiting for them to pay, and
stops once none is open."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .support import customer, web_session
from .test_requests import ask, pay

NOTICE = "Requests for money waiting for you"


def home(client: TestClient, who) -> str:
    client.cookies.clear()
    client.cookies.set("lang", "en")
    web_session(client, who)
    r = client.get("/wallet")
    assert r.status_code == 200, r.text
    return r.text


def test_the_home_page_links_to_open_requests_until_they_are_paid(client: TestClient) -> None:
    alice, bob = customer(client), customer(client, funded=50_00)
    assert NOTICE not in home(client, bob)
    made = [ask(client, alice, bob.login, amount).json() for amount in (5_00, 7_00)]

    page = home(client, bob)
    assert f'<a href="/wallet/requests">{NOTICE}: 2</a>' in page
    assert NOTICE not in home(client, alice)  # the one who asked has nothing to answer

    for request in made:
        assert pay(client, bob, request["id"]).status_code == 201
    assert NOTICE not in home(client, bob)
