"""``bankwallet merchants create``: a merchant for an existing user and a working secret key."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bankwallet.cli import app
from bankwallet.settings import get_settings
from payments.conftest import customer, idem

runner = CliRunner()


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch):
    """The command's settings on the test database; restored afterwards."""
    monkeypatch.setenv("BANKWALLET_DATABASE_URL", db_url)
    monkeypatch.setenv("BANKWALLET_ENV", "test")
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def test_create_prints_id_and_a_secret_key_that_works(client: TestClient, cli_env: str) -> None:
    owner = customer(client)
    result = runner.invoke(app, ["merchants", "create", "--name", "Lotus Noodle Bar",
                                 "--mcc", "5812", "--city", "Shanghai",
                                 "--owner-phone", owner.login, "--database-url", cli_env])
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["secret_key"].startswith("sk_")
    r = client.post("/stripe/v1/payment_intents", data={"amount": "1500", "currency": "cny"},
                    headers={"Authorization": f"Bearer {created['secret_key']}", **idem()})
    assert r.status_code == 200, r.text
    assert r.json()["amount"] == 1500
    # The owner sees it in the dashboard's JSON API too.
    r = client.get(f"/api/v1/merchants/{created['id']}", headers=owner.h)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Lotus Noodle Bar"


def test_an_unknown_owner_or_bad_mcc_exits_2_and_creates_nothing(client: TestClient,
                                                                 cli_env: str) -> None:
    result = runner.invoke(app, ["merchants", "create", "--name", "Ghost",
                                 "--owner-email", "nobody-here@example.com"])
    assert result.exit_code == 2
    assert "No user has that login" in result.stderr
    owner = customer(client)
    result = runner.invoke(app, ["merchants", "create", "--name", "Bad", "--mcc", "12",
                                 "--owner-phone", owner.login])
    assert result.exit_code == 2
    r = client.get("/api/v1/merchants", headers=owner.h)
    assert r.status_code == 200
    body = r.json()
    assert (body.get("data", body) if isinstance(body, dict) else body) == []


def test_exactly_one_owner_is_required(cli_env: str) -> None:
    result = runner.invoke(app, ["merchants", "create", "--name", "X"])
    assert result.exit_code == 2
    assert "exactly one of --owner-email and --owner-phone" in result.stderr
