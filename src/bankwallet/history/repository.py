"""The reads history makes. History owns no tables: the ledger is the record, read through
``ledger.service.account_activity`` (indexed, bounded pages) and the account look-ups."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Final

from bankwallet.history.errors import StatementTooLarge
from bankwallet.ledger import service as ledger_service
from bankwallet.ledger.store import Activity, ActivityQuery, LedgerStore
from bankwallet.ledger.types import Account, Transfer, TransferFlags
from bankwallet.wallets import service as wallets_service

POSTINGS_PAGE: Final = 500
# A statement reads every posting from its month's start until now; past this it refuses
# (a customer that busy asks the bank for an export instead).
STATEMENT_POSTINGS_MAX: Final = 20_000
assert STATEMENT_POSTINGS_MAX % POSTINGS_PAGE == 0


def wallet_accounts(user_id: uuid.UUID, currency: str | None = None) -> tuple[uuid.UUID, ...]:
    """The customer's wallet account ids: one per currency offered, opened or not (an account
    that was never opened has no transfers)."""
    currencies = (currency,) if currency else wallets_service.SUPPORTED_CURRENCIES
    return tuple(wallets_service.wallet_account_id(user_id, c) for c in currencies)


async def activity(ledger: LedgerStore, query: ActivityQuery) -> Activity:
    return await ledger_service.account_activity(ledger, query)


async def entry_with_resolution(ledger: LedgerStore, transfer: Transfer,
                                account_id: uuid.UUID) -> Transfer | None:
    """The post or void of a hold, if any. The activity page that ends at the hold holds it."""
    if not transfer.flags & TransferFlags.PENDING:
        return None
    page = await activity(ledger, ActivityQuery((account_id,), "entries",
                                                before_seq=transfer.seq + 1, limit=1))
    assert page.transfers and page.transfers[0].id == transfer.id, "the hold left its account"
    return page.related.get(transfer.id)


async def lookup_transfer(ledger: LedgerStore, transfer_id: uuid.UUID) -> Transfer | None:
    return (await ledger.lookup_transfers([transfer_id])).get(transfer_id)


async def lookup_accounts(ledger: LedgerStore,
                          ids: tuple[uuid.UUID, ...]) -> dict[uuid.UUID, Account]:
    return await ledger.lookup_accounts(ids)


async def postings_since(ledger: LedgerStore, account_ids: tuple[uuid.UUID, ...],
                         start: dt.datetime) -> tuple[list[Transfer], dict[uuid.UUID, Transfer]]:
    """Every transfer that changed the accounts' posted balances at or after ``start``,
    newest first, and the holds those that are posts resolved (for their ``user_data``)."""
    query = ActivityQuery(account_ids, "postings", limit=POSTINGS_PAGE, created_from=start)
    transfers: list[Transfer] = []
    holds: dict[uuid.UUID, Transfer] = {}
    cursor: int | None = None
    for _ in range(STATEMENT_POSTINGS_MAX // POSTINGS_PAGE * 4):  # short pages included
        page = await activity(ledger, dataclasses.replace(query, before_seq=cursor))
        transfers += page.transfers
        holds.update(page.related)
        cursor = page.next_before_seq
        if cursor is None:
            return transfers, holds
        if len(transfers) > STATEMENT_POSTINGS_MAX:
            break
    raise StatementTooLarge(f"More than {STATEMENT_POSTINGS_MAX} movements since the start of "
                            "this month: ask the bank for an export.")
