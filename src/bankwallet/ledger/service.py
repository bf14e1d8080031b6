"""Ledger use cases. Other domains call these; nothing else writes balances."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence

from bankwallet.core.db import utcnow
from bankwallet.core.ids import derived_id
from bankwallet.ledger.errors import AccountNotFound, TransferNotFound, TransferRejected
from bankwallet.ledger.store import Activity, ActivityQuery, LedgerStore
from bankwallet.ledger.types import (
    Account,
    AccountIn,
    Outcome,
    Result,
    Transfer,
    TransferFlags,
    TransferIn,
)

log = logging.getLogger("bankwallet.ledger")

EXPIRY_BATCH_MAX = 1000


async def open_accounts(ledger: LedgerStore, accounts: Sequence[AccountIn]) -> list[bool]:
    return await ledger.create_accounts(accounts)


async def submit(ledger: LedgerStore, transfers: Sequence[TransferIn]) -> list[Outcome]:
    """Submit transfers; one outcome each. Retrying with the same ids is always safe."""
    return await ledger.create_transfers(transfers)


async def submit_one(ledger: LedgerStore, transfer: TransferIn) -> Transfer:
    """Submit one transfer and raise a typed error when the ledger refuses it."""
    (outcome,) = await ledger.create_transfers([transfer])
    if not outcome.ok:
        raise TransferRejected(outcome.result.value, outcome.message)
    assert outcome.transfer is not None
    return outcome.transfer


async def get_account(ledger: LedgerStore, account_id: uuid.UUID) -> Account:
    found = (await ledger.lookup_accounts([account_id])).get(account_id)
    if found is None:
        raise AccountNotFound(f"No ledger account {account_id}.")
    return found


MAX_ACCOUNTS_PER_OWNER = 1000


async def accounts_of_owner(ledger: LedgerStore, owner_id: str) -> list[Account]:
    """Every account an owner (a user, a merchant) holds, in id order (bounded)."""
    return await ledger.accounts_of_owner(owner_id, limit=MAX_ACCOUNTS_PER_OWNER)


async def get_transfer(ledger: LedgerStore, transfer_id: uuid.UUID) -> Transfer:
    found = (await ledger.lookup_transfers([transfer_id])).get(transfer_id)
    if found is None:
        raise TransferNotFound(f"No transfer {transfer_id}.")
    return found


async def account_history(ledger: LedgerStore, account_id: uuid.UUID, *,
                          before_seq: int | None = None, limit: int = 50
                          ) -> tuple[list[Transfer], int | None]:
    """A page of an account's transfers, newest first, and the cursor for the next page."""
    await get_account(ledger, account_id)
    page = await ledger.account_transfers(account_id, before_seq=before_seq, limit=limit + 1)
    more = len(page) > limit
    page = page[:limit]
    return page, (page[-1].seq if more and page else None)


async def account_activity(ledger: LedgerStore, query: ActivityQuery) -> Activity:
    """A page of what happened to a set of accounts (a customer's wallets), filtered, newest
    first; ``next_before_seq`` is the cursor of the next page. See ``ActivityQuery``."""
    return await ledger.account_activity(query)


async def expire_holds(ledger: LedgerStore, *, now: dt.datetime | None = None) -> int:
    """Void every hold whose timeout has passed. Idempotent: the void's id derives from the
    hold's, so a job that runs twice (or in two processes) voids each hold once."""
    now = now or utcnow()
    expired = await ledger.expired_holds(now, limit=EXPIRY_BATCH_MAX)
    if not expired:
        return 0
    voids = [TransferIn(id=derived_id("ledger.expire", pending_id), pending_id=pending_id,
                        flags=TransferFlags.VOID_PENDING, user_data={"reason": "expired"},
                        expire=True) for pending_id in expired]
    outcomes = await ledger.create_transfers(voids)
    voided = sum(1 for o in outcomes if o.result is Result.CREATED)
    for pending_id, o in zip(expired, outcomes, strict=True):
        if not o.ok and o.result not in (Result.PENDING_TRANSFER_ALREADY_POSTED,
                                         Result.PENDING_TRANSFER_ALREADY_VOIDED):
            log.error("could not void an expired hold",
                      extra={"pending_id": str(pending_id), "result": o.result.value})
    return voided
