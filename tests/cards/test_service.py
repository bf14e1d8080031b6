"""The reconciliation job settles verifications that neither the returning customer nor a
webhook settled, and gives up challenges left unfinished; the app builds its gateway from
the settings."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from fastapi.testclient import TestClient

from bankwallet.cards import service, tasks
from bankwallet.core.db import utcnow
from bankwallet.settings import Settings

from .conftest import (
    CARDS,
    SandboxGateway,
    add,
    answer_challenge,
    bearer,
    new_user,
    verification_of,
)


def reconcile(client: TestClient, *, after_s: float) -> int:
    async def run() -> int:
        return await service.reconcile(client.app.state.db, client.app.state.card_gateway,
                                       now=utcnow() + dt.timedelta(seconds=after_s))

    return client.portal.call(run)


def statuses(client: TestClient, token: str) -> dict[str, str]:
    return {c["id"]: c["status"]
            for c in client.get(CARDS, headers=bearer(token)).json()["items"]}


def test_reconcile_settles_a_finished_challenge_and_gives_up_an_old_one(
        client: TestClient, sandbox_gateway: SandboxGateway) -> None:
    user = new_user(client)
    finished = add(client, user["token"], "4000002500003155").json()
    forgotten_body = add(client, user["token"], "4000002500003155", exp_month=1)
    assert forgotten_body.status_code == 409  # the same card: one verification at a time
    answer_challenge(finished["next_action"]["url"], "complete")
    assert reconcile(client, after_s=0) == 0  # too recent: the customer may still come back
    assert statuses(client, user["token"])[finished["id"]] == "requires_action"
    assert reconcile(client, after_s=service.VERIFYING_STALE_S + 5) >= 1
    assert statuses(client, user["token"])[finished["id"]] == "active"
    assert verification_of(sandbox_gateway, finished["id"])["status"] == "voided"

    other = new_user(client)
    abandoned = add(client, other["token"], "4000002500003155").json()
    reconcile(client, after_s=service.CHALLENGE_TTL_S + 5)
    assert abandoned["id"] not in statuses(client, other["token"])
    assert verification_of(sandbox_gateway, abandoned["id"])["status"] == "voided"


def test_the_gateway_comes_from_the_settings() -> None:
    assert tasks.build_gateway(Settings(gateway_url=None)) is None
    assert tasks.build_gateway(Settings(gateway_url="  ")) is None
    with pytest.raises(ValueError, match="GATEWAY_SECRET"):
        tasks.build_gateway(Settings(gateway_url="http://127.0.0.1:9"))
    gateway = tasks.build_gateway(Settings(gateway_url="http://127.0.0.1:9",
                                           gateway_secret="whsec_0123456789abcdef"))
    assert gateway is not None and gateway.secrets == ["whsec_0123456789abcdef"]
    asyncio.run(gateway.aclose())
    assert "whsec" not in repr(Settings(gateway_url="http://x", gateway_secret="whsec_abc"))
