"""The funding pages: bank accounts, top up, withdraw and the status page that HTMX refreshes,
in English and Chinese, with nothing the CSP would block; and without a bank, a clear
message instead of a crash."""

from __future__ import annotations

import re
import secrets
import uuid

from fastapi.testclient import TestClient
from identity.test_api import client, key_file  # noqa: F401
from web.test_pages import audit

from bankwallet.connectors.corebanking.base import InstructionStatus
from bankwallet.funding.models import Movement

from .conftest import HOLDER, FakeBank, card_number
from .test_api import balance, count, deliver, link, new_user

PAGES = ["/me/bank-accounts", "/wallet/topup", "/wallet/withdraw"]


def token_of(html: str) -> str:
    return re.search(r'name="token" value="([^"]+)"', html).group(1)


def test_pages_render_in_both_languages_without_inline_code(client: TestClient,  # noqa: F811
                                                           bank: FakeBank) -> None:
    _, h, _ = new_user(client)
    link(client, bank, h)
    for lang in ("en", "zh_CN"):
        client.cookies.set("lang", lang)
        for path in PAGES:
            r = client.get(path, headers=h)
            assert r.status_code == 200, path
            assert audit(r.text).violations == [], path
            assert r.headers["cache-control"] == "no-store"
    client.cookies.set("lang", "en")
    page = client.get("/me/bank-accounts", headers=h).text
    assert "Salary" in page and "Link a bank account" in page
    assert 'name="holder_name"' in page  # no verified identity: the name is asked
    assert client.get("/me/bank-accounts", follow_redirects=False).headers["location"] \
        == "/login?next=%2Fme%2Fbank-accounts"
    assert client.get("/wallet/topup", follow_redirects=False).status_code == 303


def test_link_rename_and_remove_through_the_page(client: TestClient,  # noqa: F811
                                                 bank: FakeBank) -> None:
    _, h, _ = new_user(client)
    client.cookies.set("lang", "en")
    r = client.post("/me/bank-accounts", headers=h, data={"number": "4111111111111112",
                                                          "holder_name": HOLDER})
    assert r.status_code == 422 and "its check digit is wrong" in r.text
    assert 'value="4111111111111112"' in r.text  # what was typed stays in the form
    number = bank.add_account(card_number())
    r = client.post("/me/bank-accounts", headers=h, follow_redirects=False,
                    data={"number": number, "holder_name": "Somebody Else"})
    assert r.status_code == 422 and "in another name" in r.text
    r = client.post("/me/bank-accounts", headers=h, follow_redirects=False,
                    data={"number": number, "holder_name": HOLDER, "name": "Daily"})
    assert r.status_code == 303 and r.headers["location"] == "/me/bank-accounts?linked=1"
    (account,) = client.get("/api/v1/bank-accounts", headers=h).json()["items"]
    assert "It is linked" in client.get(r.headers["location"], headers=h).text
    r = client.post(f"/me/bank-accounts/{account['id']}/rename", headers=h,
                    data={"name": "Groceries"}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/api/v1/bank-accounts", headers=h).json()["items"][0]["name"] == "Groceries"
    r = client.post(f"/me/bank-accounts/{account['id']}/rename", headers=h,
                    data={"name": "\x07bell"})
    assert r.status_code == 422
    r = client.post(f"/me/bank-accounts/{account['id']}/remove", headers=h,
                    follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/api/v1/bank-accounts", headers=h).json()["items"] == []


def test_top_up_through_the_page_until_it_settles(client: TestClient,  # noqa: F811
                                                  bank: FakeBank) -> None:
    user_id, h, _ = new_user(client)
    account = link(client, bank, h)
    client.cookies.set("lang", "en")
    form = client.get("/wallet/topup", headers=h).text
    token = token_of(form)
    data = {"bank_account_id": account, "amount": "12.5", "currency": "CNY", "token": token}
    r = client.post("/wallet/topup", headers=h, data=data, follow_redirects=False)
    assert r.status_code == 303
    status_page = r.headers["location"]
    assert re.fullmatch(r"/wallet/topups/[0-9a-f-]{36}", status_page)
    # The same form sent twice is one top-up.
    again = client.post("/wallet/topup", headers=h, data=data, follow_redirects=False)
    assert again.headers["location"] == status_page
    assert count(client, Movement, user_id=uuid.UUID(user_id)) == 1
    assert balance(client, user_id).incoming_minor == 12_50

    page = client.get(status_page, headers=h).text
    assert "Pending" in page and f'hx-get="{status_page}/status"' in page
    assert audit(page).violations == []
    ins = bank.settle(f"bankwallet-topup-{status_page.rsplit('/', 1)[1]}",
                      InstructionStatus.SUCCEEDED)
    deliver(client, bank, ins, "succeeded")
    fragment = client.get(f"{status_page}/status", headers=h).text
    assert "The money is in your wallet." in fragment and "hx-get" not in fragment
    assert balance(client, user_id).posted_minor == 12_50


def test_form_mistakes_are_shown_not_raised(client: TestClient, bank: FakeBank) -> None:  # noqa: F811
    user_id, h, _ = new_user(client)
    account = link(client, bank, h)
    client.cookies.set("lang", "en")
    cases = [({"amount": "1.234"}, 422, "such as 100 or 100.50"),
             ({"amount": "-5"}, 422, "such as 100 or 100.50"),
             ({"amount": "0"}, 422, "such as 100 or 100.50"),
             ({"currency": "JPY"}, 422, "currencies offered"),
             ({"bank_account_id": "nope"}, 404, "one of your linked bank accounts"),
             ({"bank_account_id": str(uuid.uuid4())}, 404, "one of your linked bank accounts"),
             ({"token": "bad token"}, 400, "Something went wrong"),
             ({"amount": "600"}, 422, "over the limit")]  # tier 0: 500.00 at a time
    for change, status, text in cases:
        data = {"bank_account_id": account, "amount": "10", "currency": "CNY",
                "token": secrets.token_urlsafe(12), **change}
        r = client.post("/wallet/withdraw", headers=h, data=data)
        assert r.status_code == status, (change, r.text[-2000:])
        assert text in r.text, change
        assert audit(r.text).violations == []
    r = client.post("/wallet/withdraw", headers=h, data={
        "bank_account_id": account, "amount": "10", "currency": "CNY", "token": "t" * 30})
    assert r.status_code == 422 and "does not hold enough" in r.text
    assert balance(client, user_id).available_minor == 0


def test_withdraw_through_the_page(client: TestClient, bank: FakeBank) -> None:  # noqa: F811
    from .test_api import topped_up

    user_id, h, account = topped_up(client, bank, 50_00)
    client.cookies.set("lang", "en")
    form = client.get("/wallet/withdraw", headers=h).text
    assert "50.00" in form  # what can be withdrawn
    r = client.post("/wallet/withdraw", headers=h, follow_redirects=False, data={
        "bank_account_id": account, "amount": "20", "currency": "CNY",
        "token": token_of(form)})
    assert r.status_code == 303 and "/wallet/withdrawals/" in r.headers["location"]
    ins = bank.settle(f"bankwallet-withdrawal-{r.headers['location'].rsplit('/', 1)[1]}",
                      InstructionStatus.FAILED, "declined")
    deliver(client, bank, ins, "failed", reason="declined")
    page = client.get(r.headers["location"], headers=h).text
    assert "The money is back in your wallet." in page and "Your bank declined it." in page
    assert balance(client, user_id).available_minor == 50_00


def test_without_a_bank_the_pages_say_so(client: TestClient) -> None:  # noqa: F811
    client.app.state.corebanking = None
    _, h, _ = new_user(client)
    client.cookies.set("lang", "en")
    for path in PAGES:
        r = client.get(path, headers=h)
        assert r.status_code == 200 and "Your bank is not connected yet" in r.text, path
        assert "<form method=\"post\" action=\"/wallet" not in r.text
    r = client.post("/wallet/topup", headers=h, data={
        "bank_account_id": str(uuid.uuid4()), "amount": "10", "token": "abc"})
    assert r.status_code == 503 and "not connected" in r.text
    r = client.post("/me/bank-accounts", headers=h, data={"number": card_number(),
                                                          "holder_name": HOLDER})
    assert r.status_code == 503 and "not connected" in r.text


def test_a_big_top_up_asks_for_a_second_factor_first(client: TestClient,  # noqa: F811
                                                     bank: FakeBank) -> None:
    from identity.test_mfa import make_stale
    from sqlalchemy import update

    from bankwallet.identity.models import User

    from .test_api import run

    user_id, h, created = new_user(client)
    account = link(client, bank, h)

    async def tier_one(session):
        await session.execute(update(User).where(User.id == uuid.UUID(user_id))
                              .values(kyc_tier=1))

    run(client, tier_one)
    make_stale(client, created["session_id"])
    r = client.post("/wallet/topup", headers=h, follow_redirects=False, data={
        "bank_account_id": account, "amount": "2500", "token": secrets.token_urlsafe(12)})
    assert r.status_code == 303 and r.headers["location"] == "/me/step-up?next=%2Fwallet%2Ftopup"
    assert count(client, Movement, user_id=uuid.UUID(user_id)) == 0
