"""Demo data: customers, merchants and a few hundred ledger transfers. Idempotent: every id
is derived from a fixed name, so a second run changes nothing."""

from __future__ import annotations

import random
from typing import Any

from bankwallet.core.db import make_engine
from bankwallet.core.ids import derived_id
from bankwallet.core.money import from_minor
from bankwallet.ledger import service as ledger_service
from bankwallet.ledger.store import SqlLedgerStore
from bankwallet.ledger.types import AccountFlags, AccountIn, TransferFlags, TransferIn

CURRENCY = "CNY"
CUSTOMERS = ["alice", "bob", "carol", "dave", "li.wei", "wang.fang"]
MERCHANTS = ["cafe-lumiere", "metro-books", "fresh-market"]
TRANSFERS = 300

# Transfer codes: why money moved. Domains will own theirs; the demo uses these.
CODE_TOPUP, CODE_P2P, CODE_PAYMENT, CODE_FEE = 1001, 2001, 3001, 3002


def _account(kind: str, owner: str, flags: int = 0) -> AccountIn:
    return AccountIn(id=derived_id("demo.account", kind, owner), ledger=CURRENCY, kind=kind,
                     owner_id=f"demo:{owner}", flags=flags)


async def load_demo(database_url: str) -> dict[str, Any]:
    engine = make_engine(database_url)
    store = SqlLedgerStore(engine)
    try:
        wallet_flags = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
        bank = _account("bank_settlement", "bank")
        fees = _account("fees", "bank")
        customers = [_account("customer_wallet", c, wallet_flags) for c in CUSTOMERS]
        merchants = [_account("merchant", m, wallet_flags) for m in MERCHANTS]
        created = await ledger_service.open_accounts(store, [bank, fees, *customers, *merchants])
        outcomes = await ledger_service.submit(store, _transfers(bank, fees, customers, merchants))
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.result.value] = counts.get(o.result.value, 0) + 1
        balances = await store.lookup_accounts([a.id for a in customers])
        return {
            "accounts_created": sum(created),
            "transfers": counts,
            "customers": {c: f"{from_minor(balances[a.id].balance, CURRENCY)} {CURRENCY}"
                          for c, a in zip(CUSTOMERS, customers, strict=True)},
            "note": "Sign-in arrives with the identity domain; the operator API at "
                    "/api/v1/ledger is enabled by BANKWALLET_OPS_TOKEN.",
        }
    finally:
        await store.close()
        await engine.dispose()


def _transfers(bank, fees, customers, merchants) -> list[TransferIn]:
    rng = random.Random(20261124)  # fixed: the same demo every time
    out: list[TransferIn] = []
    for c in customers:  # everyone starts with a top-up
        out.append(TransferIn(id=derived_id("demo.transfer", "topup", c.id), debit_account_id=bank.id,
                              credit_account_id=c.id, amount=500_000, ledger=CURRENCY,
                              code=CODE_TOPUP))
    while len(out) < TRANSFERS:
        n = len(out)
        payer = rng.choice(customers)
        if rng.random() < 0.5:
            payee = rng.choice([c for c in customers if c is not payer])
            out.append(TransferIn(id=derived_id("demo.transfer", n), debit_account_id=payer.id,
                                  credit_account_id=payee.id, amount=rng.randint(100, 5_000),
                                  ledger=CURRENCY, code=CODE_P2P))
            continue
        merchant = rng.choice(merchants)
        amount = rng.randint(500, 20_000)
        # A payment and its fee apply together or not at all.
        out.append(TransferIn(id=derived_id("demo.transfer", n), debit_account_id=payer.id,
                              credit_account_id=merchant.id, amount=amount, ledger=CURRENCY,
                              code=CODE_PAYMENT, flags=TransferFlags.LINKED))
        out.append(TransferIn(id=derived_id("demo.transfer", n, "fee"),
                              debit_account_id=merchant.id, credit_account_id=fees.id,
                              amount=max(1, amount * 6 // 1000), ledger=CURRENCY,
                              code=CODE_FEE))
    return out
