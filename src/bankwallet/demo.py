"""Demo data: customers who can log in, with wallets, top-ups and money sent between them.

Idempotent: users are found by their login and every ledger id derives from a fixed name, so a
second run changes nothing. The password is printed: this is for a laptop, never production.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from sqlalchemy import update

from bankwallet.core.crypto import get_keyring
from bankwallet.core.db import Database
from bankwallet.core.ids import derived_id
from bankwallet.core.money import format_money
from bankwallet.identity import mfa
from bankwallet.identity import service as identity_service
from bankwallet.identity.models import User
from bankwallet.ledger import service as ledger_service
from bankwallet.ledger.store import SqlLedgerStore
from bankwallet.ledger.types import TransferIn
from bankwallet.wallets import service as wallets
from bankwallet.wallets.codes import KIND_OF_CODE, Code

CURRENCY = "CNY"
PASSWORD = "Demo-Harbour-Quietly-2026"
CUSTOMERS = {"alice": "+8613800138001", "bob": "+8613800138002",
             "carol": "carol@demo.bankwallet.cn", "wang.fang": "+8613900139003"}
TOPUP_MINOR = 5_000_00
P2P_TRANSFERS = 40
NOTES = ("Lunch", "Taxi", "电影票", "Coffee", "水果", "Rent share", "Birthday gift", None)


async def load_demo(database_url: str) -> dict[str, Any]:
    get_keyring()  # in development this writes ./var/keys.json on first use
    db = Database(database_url)
    ledger = SqlLedgerStore(db.engine)
    try:
        users, shown = await _users(db)
        for user in users.values():
            await wallets.open_wallet(ledger, user.id, CURRENCY)
        outcomes = await ledger_service.submit(ledger, _transfers(users, shown))
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.result.value] = counts.get(o.result.value, 0) + 1
        return {
            "customers": {name: {"login": CUSTOMERS[name], "password": PASSWORD,
                                 "balance": format_money(
                                     (await wallets.balance(ledger, u.id, CURRENCY)).posted_minor,
                                     CURRENCY, "en")}
                          for name, u in users.items()},
            "transfers": counts,
            "next": "Log in at /login with a customer above; one-time codes show at /dev/inbox.",
        }
    finally:
        await ledger.close()
        await db.dispose()


async def _users(db: Database) -> tuple[dict[str, User], dict[str, str]]:
    """The demo customers, and how each is shown to the others (masked login)."""
    found: dict[str, User] = {}
    async with db.unit_of_work() as session:
        for name, login in CUSTOMERS.items():
            user = await identity_service.find_user(session, identity_service.parse_login(login))
            if user is None:
                user = await identity_service.create_user(session, login_text=login,
                                                          password=PASSWORD)
            found[name] = user
        # Identity verified (tier 1): the demo shows everyday amounts, not tier 0's.
        await session.execute(update(User).where(User.id.in_([u.id for u in found.values()]),
                                                 User.kyc_tier < 1).values(kyc_tier=1))
        shown = {name: mfa.masked_login(u) for name, u in found.items()}
    return found, shown


def _transfers(users: dict[str, User], shown: dict[str, str]) -> list[TransferIn]:
    rng = random.Random(20261124)  # fixed: the same demo every time
    bank = wallets.system_account_id(wallets.SystemAccount.BANK_SETTLEMENT, CURRENCY)
    out: list[TransferIn] = []
    for name, user in users.items():
        ref = derived_id("demo.topup", name)
        out.append(TransferIn(
            id=derived_id("demo.transfer", "topup", name), debit_account_id=bank,
            credit_account_id=wallets.wallet_account_id(user.id, CURRENCY), amount=TOPUP_MINOR,
            ledger=CURRENCY, code=Code.TOPUP,
            user_data={"kind": KIND_OF_CODE[Code.TOPUP], "ref": str(ref),
                       "from": "Bank account ····8001", "to": shown[name]}))
    names = sorted(users)
    for n in range(P2P_TRANSFERS):
        payer, payee = rng.sample(names, 2)
        note = rng.choice(NOTES)
        data = {"kind": KIND_OF_CODE[Code.P2P], "ref": str(derived_id("demo.p2p", n)),
                "from": shown[payer], "to": shown[payee]}
        if note:
            data["note"] = note
        out.append(TransferIn(
            id=derived_id("demo.transfer", n),
            debit_account_id=wallets.wallet_account_id(users[payer].id, CURRENCY),
            credit_account_id=wallets.wallet_account_id(users[payee].id, CURRENCY),
            amount=rng.randint(1_00, 300_00), ledger=CURRENCY, code=Code.P2P, user_data=data))
    return out


# -- the sandbox bank beside `demo --serve` ------------------------------------------------

DEMO_BANK_ACCOUNTS = {"alice": "6222020200112233446", "bob": "6222020200112233453",
                      "carol": "DE89370400440532013000", "wang.fang": "6222020200112233461"}
BANK_START_TIMEOUT_S = 30.0


@dataclass
class SandboxBank:
    url: str
    process: subprocess.Popen[bytes]
    accounts: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_sandbox_bank(*, webhook_url: str) -> SandboxBank:
    """Start ``bankwallet sandbox-bank`` on a free port, point this process's settings at it
    (the server started next reads them) and give each demo customer a funded bank account
    to link at /me/bank-accounts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = secrets.token_urlsafe(24)
    env = {**os.environ, "BANKWALLET_SANDBOX_BANK_SECRET": secret}
    process = subprocess.Popen([sys.executable, "-m", "bankwallet", "sandbox-bank", "--port",
                                str(port), "--webhook-url", webhook_url], env=env)
    bank = SandboxBank(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + BANK_START_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"{bank.url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                bank.stop()
                raise RuntimeError("the sandbox bank did not start") from None
            time.sleep(0.2)
    for name, number in DEMO_BANK_ACCOUNTS.items():
        httpx.post(f"{bank.url}/sandbox/accounts", json={
            "number": number, "holder_name": name, "currency": CURRENCY,
            "balance_minor": 100_000_00}, timeout=10).raise_for_status()
        bank.accounts[name] = number
    os.environ["BANKWALLET_COREBANKING_URL"] = bank.url
    os.environ["BANKWALLET_COREBANKING_SECRET"] = secret
    from bankwallet.settings import get_settings

    get_settings.cache_clear()
    return bank
