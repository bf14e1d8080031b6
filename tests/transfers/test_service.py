"""The transfers service's rules: the split rule (hypothesis), contact cards, notes, and the
same key sent twice at once straight to the service (a double-clicked form)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from identity.test_api import key_file  # noqa: F401

from bankwallet.core.errors import InvalidInput
from bankwallet.identity import service as identity_service
from bankwallet.transfers import service
from bankwallet.transfers.errors import InvalidContactCard

from .support import balance, customer, events, transfers_of


@given(total=st.integers(min_value=0, max_value=10**15), parts=st.integers(1, 50))
def test_equal_shares_add_up_and_differ_by_at_most_one_unit(total: int, parts: int) -> None:
    shares = service.split_equal(total, parts)
    assert len(shares) == parts and sum(shares) == total
    assert max(shares) - min(shares) <= 1
    assert shares == sorted(shares, reverse=True)  # the remainder goes to the first ones
    assert shares == service.split_equal(total, parts)


@pytest.fixture(scope="module")
def keys(key_file) -> Iterator[None]:  # noqa: F811
    """The session's key file (never a developer's ./var/keys.json)."""
    from bankwallet.core import crypto
    from bankwallet.settings import get_settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BANKWALLET_ENV", "test")
        get_settings.cache_clear()
        crypto.reset_keyring()
        yield
        crypto.reset_keyring()
        get_settings.cache_clear()


@given(st.uuids())
def test_a_contact_card_reads_back_and_no_other_id_matches_its_signature(
        keys: None, wallet_id: uuid.UUID) -> None:
    card = service.contact_card(wallet_id)
    assert service.parse_contact_card(card) == wallet_id
    assert service.parse_contact_card(f"  {card}\n") == wallet_id
    other = uuid.UUID(int=wallet_id.int ^ 1)
    with pytest.raises(InvalidContactCard):
        service.parse_contact_card(card.replace(str(wallet_id), str(other)))


@pytest.mark.parametrize("text", [
    "bankwallet:pay", "bankwallet:pay?", "bankwallet:pay?to=x&v=1&sig=y",
    "bankwallet:pay?to=1&to=2&v=1&sig=y", "bankwallet:pay?v=1&sig=y", "https://example.com",
    "bankwallet:pay?to=%s&v=1&sig=" + "A" * 300])
def test_malformed_contact_cards_are_refused(keys: None, text: str) -> None:
    with pytest.raises(InvalidContactCard):
        service.parse_contact_card(text)


def test_notes_are_one_clean_line_of_at_most_140_characters() -> None:
    assert service.clean_note("  lunch\n\twith\x00 Bo ") == "lunch with Bo"
    assert service.clean_note("   ") is None and service.clean_note(None) is None
    assert service.clean_note("好" * 140) == "好" * 140
    with pytest.raises(InvalidInput):
        service.clean_note("x" * 141)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_the_same_key_twice_at_once_moves_money_once(client: TestClient) -> None:
    alice, bob = customer(client, funded=50_00), customer(client)
    db, ledger = client.app.state.db, client.app.state.ledger

    async def one() -> uuid.UUID:
        async with db.unit_of_work() as session:
            auth = await identity_service.authenticate(session, alice.token)
            row = await service.send(session, ledger, auth, key="double-click", to=bob.login,
                                     amount_minor=20_00, currency="CNY", note="twice")
            return row.id

    async def both() -> list[uuid.UUID]:
        return await asyncio.gather(one(), one(), one())

    ids = client.portal.call(both)
    assert len(set(ids)) == 1
    assert balance(client, alice.id) == 30_00 and balance(client, bob.id) == 20_00
    (row,) = transfers_of(client, alice)
    assert row.status == "posted"
    assert len(events(client, "money.moved", str(row.id))) == 1


def test_the_healing_job_runs_only_with_workers(client: TestClient) -> None:
    from bankwallet.transfers import tasks

    assert tasks.startup(client.app, run_workers=False) == []
    (job,) = tasks.startup(client.app, run_workers=True)
    assert job.cr_code.co_name == "heal_forever"
    job.close()  # not started: the module's client runs without workers
