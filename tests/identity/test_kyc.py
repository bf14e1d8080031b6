"""KYC: the resident identity number, limits per tier, applications and their review."""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from bankwallet.identity import kyc

from .test_api import STRONG, bearer, client, key_file, unique_email, unique_phone  # noqa: F401

# -- helpers -------------------------------------------------------------------------------

# ISO 7064 MOD 11-2 written out independently of the code under test: weight i = 2^(17-i) mod 11.
_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]


def with_check_digit(first17: str) -> str:
    return first17 + "10X98765432"[sum(w * int(d) for w, d in zip(_WEIGHTS, first17)) % 11]


def random_identity() -> tuple[str, dt.date]:
    born = dt.date(1950, 1, 1) + dt.timedelta(days=random.randrange(365 * 50))
    first17 = f"{random.choice(['110105', '310115', '440304', '510108'])}{born:%Y%m%d}" \
              f"{random.randrange(1000):03d}"
    return with_check_digit(first17), born


def random_name() -> str:
    return "".join(chr(random.randrange(0x4E00, 0x9FA5)) for _ in range(3))


def run(client: TestClient, work):
    """Run ``work(session)`` in a unit of work of the app's database; returns its result."""
    async def go():
        async with client.app.state.db.unit_of_work() as session:
            return await work(session)

    return client.portal.call(go)


def make_user(client: TestClient, role: str, login: str | None = None) -> dict:
    """A user of ``role`` logged in through the API: {"id", "token", "login"}. Created as an
    operator would (no sign-up), so tests do not run into the sign-up throttle per address."""
    from bankwallet.identity import service

    login = login or unique_email()

    async def create(session):
        return (await service.create_user(session, login_text=login, password=STRONG,
                                          role=role)).id

    user_id = run(client, create)
    r = client.post("/api/v1/auth/login", json={"login": login, "password": STRONG})
    assert r.status_code == 200, r.text
    return {"id": str(user_id), "token": r.json()["token"], "login": login}


def customer(client: TestClient) -> dict:
    return make_user(client, "customer", unique_phone())


def apply(client: TestClient, token: str, **overrides) -> tuple[dict, object]:
    number, born = random_identity()
    body = {"legal_name": random_name(), "national_id": number, "birth_date": born.isoformat()}
    body.update(overrides)
    return body, client.post("/api/v1/kyc/applications", json=body, headers=bearer(token))


# -- the resident identity number ----------------------------------------------------------

VALID = ["11010519491231002X", "440304199001011233", "310115200002294567",
         "510108198511150311", "110101201603010012"]


@pytest.mark.parametrize("number", VALID)
def test_valid_numbers_pass_and_are_normalised(number: str) -> None:
    assert kyc.parse_national_id(number) == number
    spaced = f"{number[:6]} {number[6:14]} {number[14:].lower()}"
    assert kyc.parse_national_id(spaced) == number
    born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    assert kyc.parse_national_id(number, birth_date=born) == number


def test_the_check_digit_matches_an_independent_computation() -> None:
    for _ in range(200):
        number, _born = random_identity()
        assert kyc.check_digit(number[:17]) == number[17]


@pytest.mark.parametrize(("number", "reason"), [
    ("", "length"),
    ("11010519491231002", "length"),
    ("11010519491231002X1", "length"),
    ("1101051949123100XX", "format"),
    ("11010519491231002A", "format"),
    ("１１０１０５１９４９１２３１００２Ｘ", "format"),  # full-width digits
    (with_check_digit("01010519491231002"), "region"),
    (with_check_digit("91010519491231002"), "region"),
    (with_check_digit("11010519490230002"), "birth_date"),  # 30 February
    (with_check_digit("11010519491301002"), "birth_date"),  # month 13
    (with_check_digit("11010518991231002"), "birth_date"),  # before 1900
    (with_check_digit("11010530991231002"), "birth_date"),  # in the future
    ("110105194912310021", "checksum"),
    ("110105194912310020", "checksum"),
])
def test_invalid_numbers_say_why(number: str, reason: str) -> None:
    with pytest.raises(kyc.InvalidNationalId) as caught:
        kyc.parse_national_id(number)
    assert caught.value.reason == reason
    assert caught.value.to_problem()["reason"] == reason
    assert caught.value.status == 422 and caught.value.code == "invalid_national_id"


def test_a_birth_date_other_than_the_numbers_is_refused() -> None:
    with pytest.raises(kyc.InvalidNationalId) as caught:
        kyc.parse_national_id(VALID[0], birth_date=dt.date(1949, 12, 30))
    assert caught.value.reason == "birth_date_mismatch"


def test_masking_keeps_only_region_and_check_digit() -> None:
    assert kyc.mask_national_id("11010519491231002X") == "110105**********2X"


# -- limits --------------------------------------------------------------------------------


def test_limits_per_tier_are_the_published_table() -> None:
    assert kyc.limits_for(0) == kyc.Limits(500_00, 1_000_00, 2_000_00)
    assert kyc.limits_for(1) == kyc.Limits(50_000_00, 100_000_00, 200_000_00)
    assert kyc.limits_for(2) == kyc.Limits(200_000_00, 500_000_00, 1_000_000_00)
    assert all(kyc.limits_for(t).currency == "CNY" for t in range(3))


def _exceeded(tier: int, **kwargs) -> kyc.LimitExceeded:
    with pytest.raises(kyc.LimitExceeded) as caught:
        kyc.evaluate_limits(kyc.limits_for(tier), tier=tier, **kwargs)
    return caught.value


def test_limits_name_the_limit_and_what_is_left() -> None:
    single = _exceeded(0, amount_minor=500_01, outflow_today_minor=0, balance_after_minor=0)
    assert single.extra == {"limit": "single", "limit_minor": 500_00, "remaining_minor": 500_00,
                            "currency": "CNY", "tier": 0}
    daily = _exceeded(0, amount_minor=300_00, outflow_today_minor=800_00, balance_after_minor=0)
    assert daily.extra["limit"] == "daily" and daily.extra["remaining_minor"] == 200_00
    spent = _exceeded(0, amount_minor=1, outflow_today_minor=1_000_00, balance_after_minor=0)
    assert spent.extra["remaining_minor"] == 0
    balance = _exceeded(0, amount_minor=600_00, outflow_today_minor=0,
                        balance_after_minor=2_100_00, outflow=False)
    assert balance.extra["limit"] == "balance" and balance.extra["remaining_minor"] == 500_00
    problem = balance.to_problem()
    assert problem["status"] == 422 and problem["code"] == "limit_exceeded"
    # Exactly at each limit is allowed; tier 1 allows what tier 0 refuses.
    kyc.evaluate_limits(kyc.limits_for(0), tier=0, amount_minor=500_00,
                        outflow_today_minor=500_00, balance_after_minor=0)
    kyc.evaluate_limits(kyc.limits_for(0), tier=0, amount_minor=2_000_00, outflow_today_minor=0,
                        balance_after_minor=2_000_00, outflow=False)
    kyc.evaluate_limits(kyc.limits_for(1), tier=1, amount_minor=500_01, outflow_today_minor=0,
                        balance_after_minor=0)
    # Spending from a wallet above its cap (after a downgrade) is not blocked by the cap.
    kyc.evaluate_limits(kyc.limits_for(0), tier=0, amount_minor=100, outflow_today_minor=0,
                        balance_after_minor=5_000_00)


def test_check_limits_reads_the_users_tier(client: TestClient) -> None:
    user = customer(client)
    user_id = uuid.UUID(user["id"])

    async def check(session, amount: int, currency: str = "CNY"):
        await kyc.check_limits(session, user_id=user_id, amount_minor=amount, currency=currency,
                               outflow_today_minor=0, balance_after_minor=0)

    run(client, lambda s: check(s, 500_00))
    with pytest.raises(kyc.LimitExceeded):
        run(client, lambda s: check(s, 500_01))
    with pytest.raises(kyc.LimitCurrencyUnsupported):
        run(client, lambda s: check(s, 1, "USD"))

    async def tier_up(session):
        with pytest.raises(kyc.KycTierOrder):  # a bank account needs a verified identity
            await kyc.grant_tier(session, user_id, 2, reason="bank account linked")
        assert await kyc.grant_tier(session, user_id, 1, reason="test") == 1
        assert await kyc.grant_tier(session, user_id, 2, reason="bank account linked") == 2
        assert await kyc.grant_tier(session, user_id, 1, reason="never lowers") == 2

    run(client, tier_up)
    run(client, lambda s: check(s, 200_000_00))
    r = client.get("/api/v1/kyc", headers=bearer(user["token"]))
    assert r.json()["tier"] == 2 and r.json()["limits"]["single_minor"] == 200_000_00


# -- applications --------------------------------------------------------------------------


def _count(client: TestClient, sql: str, **params) -> int:
    return run(client, lambda s: s.scalar(text(sql), params))


def test_apply_review_approve_raises_the_tier(client: TestClient) -> None:
    user = customer(client)
    status = client.get("/api/v1/kyc", headers=bearer(user["token"])).json()
    assert status == {"tier": 0, "application": None,
                      "limits": {"currency": "CNY", "single_minor": 500_00,
                                 "daily_minor": 1_000_00, "balance_minor": 2_000_00}}
    body, r = apply(client, user["token"])
    assert r.status_code == 201, r.text
    application = r.json()
    assert application["status"] == "pending" and application["legal_name"] == body["legal_name"]
    assert application["national_id_masked"] == kyc.mask_national_id(body["national_id"])
    assert body["national_id"] not in r.text
    _, again = apply(client, user["token"])
    assert again.status_code == 409 and again.json()["code"] == "kyc_application_pending"

    risk = make_user(client, "risk")
    queue = client.get("/api/v1/admin/kyc/applications?limit=100", headers=bearer(risk["token"]))
    assert queue.status_code == 200
    r = client.post(f"/api/v1/admin/kyc/applications/{application['id']}/approve",
                    headers=bearer(risk["token"]))
    assert r.status_code == 200 and r.json()["status"] == "approved"
    again = client.post(f"/api/v1/admin/kyc/applications/{application['id']}/approve",
                        headers=bearer(risk["token"]))
    assert again.status_code == 409 and again.json()["code"] == "kyc_already_decided"

    status = client.get("/api/v1/kyc", headers=bearer(user["token"])).json()
    assert status["tier"] == 1 and status["application"]["status"] == "approved"
    assert status["limits"]["single_minor"] == 50_000_00
    assert client.get("/api/v1/me", headers=bearer(user["token"])).json()["kyc_tier"] == 1
    _, after = apply(client, user["token"])
    assert after.status_code == 409 and after.json()["code"] == "kyc_already_verified"

    actions = {row for row in run(client, lambda s: s.scalars(text(
        "SELECT action FROM core_audit_event WHERE subject_id IN (:u, :a)"),
        {"u": user["id"], "a": application["id"]}))}
    assert {"identity.kyc.submitted", "identity.kyc.approved",
            "identity.kyc.tier_changed"} <= actions
    events = _count(client, "SELECT count(*) FROM core_outbox_event WHERE topic = 'kyc.tier_changed'"
                    " AND key = :k", k=user["id"])
    assert events == 1


def test_reject_needs_a_reason_and_the_customer_may_apply_again(client: TestClient) -> None:
    user = customer(client)
    _, r = apply(client, user["token"])
    application_id = r.json()["id"]
    ops = make_user(client, "operations")
    url = f"/api/v1/admin/kyc/applications/{application_id}/reject"
    for body in ({}, {"reason": "   "}):
        refused = client.post(url, json=body, headers=bearer(ops["token"]))
        assert refused.status_code == 422 and refused.json()["code"] == "reason_required"
    r = client.post(url, json={"reason": "The photo is unreadable"}, headers=bearer(ops["token"]))
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    status = client.get("/api/v1/kyc", headers=bearer(user["token"])).json()
    assert status["tier"] == 0 and status["application"]["reason"] == "The photo is unreadable"
    _, again = apply(client, user["token"])
    assert again.status_code == 201


def test_one_national_id_verifies_one_user(client: TestClient) -> None:
    first, second = customer(client), customer(client)
    body, r = apply(client, first["token"])
    assert r.status_code == 201
    taken = client.post("/api/v1/kyc/applications", json={**body, "legal_name": random_name()},
                        headers=bearer(second["token"]))
    assert taken.status_code == 409 and taken.json()["code"] == "national_id_in_use"


def test_reviewers_never_decide_their_own_application(client: TestClient) -> None:
    risk = make_user(client, "risk")
    _, r = apply(client, risk["token"])
    assert r.status_code == 201
    own = client.post(f"/api/v1/admin/kyc/applications/{r.json()['id']}/approve",
                      headers=bearer(risk["token"]))
    assert own.status_code == 403


@pytest.mark.parametrize(("change", "code", "reason"), [
    ({"national_id": "110105194912310021"}, "invalid_national_id", "checksum"),
    ({"national_id": "1101051949"}, "invalid_national_id", "length"),
    ({"birth_date": "1949-12-30"}, "invalid_national_id", "birth_date_mismatch"),
    ({"legal_name": "   "}, "invalid_legal_name", None),
    ({"legal_name": "Robert'); DROP TABLE--"}, "invalid_legal_name", None),
    ({"legal_name": "名" * 65}, "invalid_legal_name", None),
    ({"birth_date": "31/12/1949"}, "invalid_input", None),
    ({"extra": "field"}, "invalid_input", None),
    ({"national_id": None}, "invalid_input", None),
])
def test_bad_input_is_a_problem_and_writes_nothing(client: TestClient, change: dict, code: str,
                                                   reason: str | None) -> None:
    user = customer(client)
    audit_before = _count(client, "SELECT count(*) FROM core_audit_event WHERE actor_id = :u",
                          u=user["id"])
    body = {"legal_name": "张三", "national_id": "11010519491231002X",
            "birth_date": "1949-12-31", **change}
    r = client.post("/api/v1/kyc/applications", json=body, headers=bearer(user["token"]))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code and r.json().get("reason") == reason
    from bankwallet.identity.models import KycApplication

    written = run(client, lambda s: s.scalar(select(func.count()).select_from(KycApplication)
                                             .where(KycApplication.user_id == uuid.UUID(user["id"]))))
    assert written == 0
    assert _count(client, "SELECT count(*) FROM core_audit_event WHERE actor_id = :u",
                  u=user["id"]) == audit_before


def test_unauthenticated_callers_get_401(client: TestClient) -> None:
    assert client.get("/api/v1/kyc").status_code == 401
    number, born = random_identity()
    r = client.post("/api/v1/kyc/applications", json={
        "legal_name": "张三", "national_id": number, "birth_date": born.isoformat()})
    assert r.status_code == 401


def test_no_name_or_national_id_in_plain_text_anywhere_in_the_database(
        client: TestClient) -> None:
    user = customer(client)
    body, r = apply(client, user["token"])
    assert r.status_code == 201
    risk = make_user(client, "risk")
    assert client.post(f"/api/v1/admin/kyc/applications/{r.json()['id']}/approve",
                       headers=bearer(risk["token"])).status_code == 200
    from bankwallet.models import metadata

    async def dump(session) -> bytes:
        chunks: list[bytes] = []
        for table in metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                for value in row:
                    chunks.append(bytes(value) if isinstance(value, (bytes, memoryview))
                                  else str(value).encode())
        return b"\x00".join(chunks)

    everything = run(client, dump)
    secrets = [body["national_id"], body["national_id"][6:14], body["legal_name"],
               body["birth_date"]]
    for secret in secrets:
        assert secret.encode() not in everything, secret
        assert secret.encode("utf-16-le") not in everything, secret
    rows = run(client, lambda s: s.scalar(select(func.count()).select_from(
        metadata.tables["identity_kyc_application"])))
    assert rows >= 1
    url = str(client.app.state.db.url)
    if url.startswith("sqlite"):  # the raw file and its write-ahead log too
        path = url.split("///", 1)[1]
        raw = b"".join(open(p, "rb").read() for p in (path, path + "-wal")
                       if __import__("os").path.exists(p))
        for secret in secrets:
            assert secret.encode() not in raw, secret


# -- the page ------------------------------------------------------------------------------


def test_the_kyc_page_applies_with_the_csrf_token(client: TestClient) -> None:
    phone = make_user(client, "customer", unique_phone())["login"]
    r = client.post("/login", data={"login": phone, "password": STRONG, "next": "/me/kyc"},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/me/kyc", headers={"accept-language": "en"})
    assert page.status_code == 200 and "Resident identity number" in page.text
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text).group(1)
    number, born = random_identity()
    form = {"legal_name": "李四", "national_id": number, "birth_date": born.isoformat()}
    refused = client.post("/me/kyc", data=form, follow_redirects=False)
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    bad = client.post("/me/kyc", data={**form, "national_id": number[:17] + "0"
                                       if number[17] != "0" else number[:17] + "1",
                                       "csrf_token": csrf}, headers={"accept-language": "en"})
    assert bad.status_code == 422 and "typo" in bad.text
    done = client.post("/me/kyc", data={**form, "csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    page = client.get("/me/kyc", headers={"accept-language": "zh-CN"})
    assert "审核中" in page.text
