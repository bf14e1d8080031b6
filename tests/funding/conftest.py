"""Funding fixtures.

- ``FakeBank``: an in-memory ``CoreBanking`` for the API tests (TestClient): accounts,
  instructions the test settles by hand, signed events for the webhook route.
- ``LiveWallet``: the real thing — ``bankwallet serve`` in its own process on a database of
  its own, and ``bankwallet sandbox-bank`` in another, whose webhooks travel over HTTP to the
  wallet's ``/webhooks/corebanking``. Tests talk to both over HTTP and read the ledger rows
  from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import servers
from conftest import (
    _pg_reachable,
    create_pg_database,
    create_sqlite_database,
    drop_pg_database,
    free_port,
    skip_or_fail,
)
from identity.test_api import STRONG, key_file, unique_phone  # noqa: F401 - one key file
from schwifty import IBAN
from sqlalchemy import text

from bankwallet.connectors.corebanking.base import (
    InstructionKind,
    InstructionResult,
    InstructionStatus,
    StatementEntry,
    StatementPage,
    VerificationResult,
    VerificationStatus,
)
from bankwallet.connectors.corebanking.sandbox import SandboxCoreBanking
from bankwallet.core import webhooks
from bankwallet.core.db import make_engine, utcnow
from bankwallet.funding.service import CRASH_ENV
from bankwallet.ledger.store import SqlLedgerStore
from bankwallet.ledger.types import Transfer

FAKE_SECRET = "whsec_fake_bank_0123456789abcdef"


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests make many users; argon2id at production cost would be most of their time.
    The parameters live in each hash, so the servers verify these hashes as usual."""
    from argon2 import PasswordHasher

    from bankwallet.identity import passwords

    monkeypatch.setattr(passwords, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
START_TIMEOUT_S = 30.0
HOLDER = "Li Lei"


# -- numbers ---------------------------------------------------------------------------------


def luhn_digit(body: str) -> str:
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char)
        if position % 2 == 0:  # doubled: these become the odd positions once the digit is added
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str((10 - total % 10) % 10)


def card_number(length: int = 16) -> str:
    body = "6" + "".join(random.choice("0123456789") for _ in range(length - 2))
    return body + luhn_digit(body)


def iban_number() -> str:
    account = f"{random.randrange(10**9, 10**10)}"
    return IBAN.generate("DE", bank_code="37040044", account_code=account).compact


# -- the in-memory bank ----------------------------------------------------------------------


@dataclass
class FakeInstruction:
    id: str
    kind: InstructionKind
    number: str
    amount_minor: int
    currency: str
    reference: str
    status: InstructionStatus
    reason: str | None = None


@dataclass
class FakeBank:
    """``CoreBanking`` in memory. Debits and credits answer ``pending`` (``decline`` and
    ``insufficient_funds`` fail at once, ``timeout`` answers ``unknown``) until the test calls
    ``settle``; ``event`` signs a webhook for the route."""

    accounts: dict[str, str] = field(default_factory=dict)
    instructions: dict[str, FakeInstruction] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    unreachable: bool = False

    def __post_init__(self) -> None:
        self._parser = SandboxCoreBanking("http://fake-bank.invalid", FAKE_SECRET)

    def add_account(self, number: str, holder: str = HOLDER) -> str:
        self.accounts[number] = holder
        return number

    async def verify_account(self, number: str, holder_name: str) -> VerificationResult:
        self.calls.append(("verify", number))
        if self.unreachable:
            return VerificationResult(VerificationStatus.UNKNOWN, "timeout")
        holder = self.accounts.get(number)
        if holder is None:
            return VerificationResult(VerificationStatus.NOT_FOUND)
        if holder.casefold() != holder_name.casefold():
            return VerificationResult(VerificationStatus.NAME_MISMATCH)
        return VerificationResult(VerificationStatus.VERIFIED)

    async def debit(self, idempotency_key: str, account_number: str, amount_minor: int,
                    currency: str, reference: str,
                    failure_mode: str | None = None) -> InstructionResult:
        return self._instruct(InstructionKind.DEBIT, idempotency_key, account_number,
                              amount_minor, currency, reference, failure_mode)

    async def credit(self, idempotency_key: str, account_number: str, amount_minor: int,
                     currency: str, reference: str,
                     failure_mode: str | None = None) -> InstructionResult:
        return self._instruct(InstructionKind.CREDIT, idempotency_key, account_number,
                              amount_minor, currency, reference, failure_mode)

    def _instruct(self, kind: InstructionKind, key: str, number: str, amount_minor: int,
                  currency: str, reference: str, failure_mode: str | None) -> InstructionResult:
        self.calls.append((kind.value, key))
        if self.unreachable:
            return InstructionResult(InstructionStatus.FAILED, reference, kind=kind,
                                     reason="bank_unreachable", retryable=True)
        if key in self.by_key:
            return self.result(self.instructions[self.by_key[key]])
        status, reason = InstructionStatus.PENDING, None
        if failure_mode in ("decline", "insufficient_funds"):
            status = InstructionStatus.FAILED
            reason = "declined" if failure_mode == "decline" else "insufficient_funds"
        instruction = FakeInstruction(f"ins_{uuid.uuid4().hex}", kind, number, amount_minor,
                                      currency, reference, status, reason)
        self.instructions[instruction.id] = instruction
        self.by_key[key] = instruction.id
        if failure_mode == "timeout":
            return InstructionResult(InstructionStatus.UNKNOWN, reference, kind=kind,
                                     reason="timeout", retryable=True)
        return self.result(instruction)

    def result(self, ins: FakeInstruction) -> InstructionResult:
        return InstructionResult(ins.status, ins.reference, ins.id, ins.kind,
                                 ins.amount_minor, ins.currency, ins.reason)

    def by_reference(self, reference: str) -> FakeInstruction:
        return next(i for i in self.instructions.values() if i.reference == reference)

    def settle(self, reference: str, status: InstructionStatus,
               reason: str | None = None) -> FakeInstruction:
        ins = self.by_reference(reference)
        ins.status, ins.reason = status, reason
        return ins

    async def get_instruction(self, instruction_id: str) -> InstructionResult | None:
        ins = self.instructions.get(instruction_id)
        return self.result(ins) if ins else None

    async def find_by_reference(self, reference: str) -> InstructionResult | None:
        found = [i for i in self.instructions.values() if i.reference == reference]
        return self.result(found[-1]) if found else None

    async def statement(self, since: dt.datetime | None = None, *, after: int | None = None,
                        limit: int = 500) -> StatementPage:
        entries = []
        for seq, ins in enumerate(self.instructions.values(), start=1):
            if ins.status in (InstructionStatus.SUCCEEDED, InstructionStatus.REVERSED):
                sign = -1 if ins.kind is InstructionKind.DEBIT else 1
                entries.append(StatementEntry(seq, f"mov_{seq}", ins.id, ins.kind.value,
                                              ins.number[-4:], sign * ins.amount_minor,
                                              ins.currency, ins.reference, utcnow()))
        return StatementPage(tuple(entries), None)

    def parse_webhook(self, body: bytes, headers: Any):
        return self._parser.parse_webhook(body, headers)

    def event(self, ins: FakeInstruction, status: str, *, event_id: str | None = None,
              secret: str = FAKE_SECRET, **changes: Any) -> tuple[bytes, dict[str, str]]:
        """A signed webhook about ``ins`` (``status``: succeeded, failed, reversed)."""
        payload = {"id": event_id or f"evt_{uuid.uuid4().hex}",
                   "type": f"{ins.kind.value}.{status}", "instruction_id": ins.id,
                   "reference": ins.reference, "amount_minor": ins.amount_minor,
                   "currency": ins.currency, "created_at": utcnow().isoformat(),
                   **changes}
        body = orjson.dumps(payload)
        return body, {webhooks.SIGNATURE_HEADER: webhooks.sign(secret, body),
                      "Content-Type": "application/json"}


@pytest.fixture
def bank(client: Any) -> FakeBank:
    """The app of the ``client`` fixture talks to a fresh in-memory bank."""
    fake = FakeBank()
    client.app.state.corebanking = fake
    return fake


# -- reading the database directly -----------------------------------------------------------


async def _ledger_transfers(url: str, ids: list[uuid.UUID]) -> dict[uuid.UUID, Transfer]:
    engine = make_engine(url)
    store = SqlLedgerStore(engine)
    try:
        return await store.lookup_transfers(ids)
    finally:
        await store.close()
        await engine.dispose()


async def _rows(url: str, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(text(sql), params)]
    finally:
        await engine.dispose()


async def _execute(url: str, sql: str, params: dict[str, Any]) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


def uuid_param(url: str, value: uuid.UUID) -> str:
    """How a Uuid column stores a value: 32 hex digits on SQLite, a uuid on PostgreSQL."""
    return value.hex if url.startswith("sqlite") else str(value)


def db_rows(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    return asyncio.run(_rows(url, sql, params))


def db_execute(url: str, sql: str, **params: Any) -> None:
    asyncio.run(_execute(url, sql, params))


def ledger_transfers(url: str, ids: list[uuid.UUID]) -> dict[uuid.UUID, Transfer]:
    return asyncio.run(_ledger_transfers(url, ids))


def ledger_balance(url: str, user_id: uuid.UUID, currency: str = "CNY"):
    """The wallet's balance as the ledger holds it (no server needed)."""
    from bankwallet.wallets import service as wallets_service

    async def read():
        engine = make_engine(url)
        store = SqlLedgerStore(engine)
        try:
            return await wallets_service.balance(store, user_id, currency)
        finally:
            await store.close()
            await engine.dispose()

    return asyncio.run(read())


# -- real processes --------------------------------------------------------------------------


class Process:
    def __init__(self, args: list[str], *, env: dict[str, str], workdir: Path, name: str,
                 health_url: str) -> None:
        self.log_path = workdir / f"{name}.log"
        self.process = servers.start(args, env=env, cwd=workdir, log_path=self.log_path)
        self.health_url = health_url

    def wait_healthy(self) -> None:
        servers.wait_until_ready(self.health_url, self.process, self.log_path, path="",
                                 timeout_s=START_TIMEOUT_S, name=self.log_path.name,
                                 poll_s=0.05)

    def stop(self) -> None:
        servers.stop(self.process)


@dataclass
class LiveWallet:
    """A wallet server and its sandbox bank, both real processes."""

    db_url: str
    wallet_url: str
    bank_url: str
    secret: str
    env: dict[str, str]
    workdir: Path
    processes: list[Process] = field(default_factory=list)

    @property
    def http(self) -> httpx.Client:
        return httpx.Client(timeout=10)

    # the wallet

    def new_user(self, *, tier: int = 0) -> tuple[uuid.UUID, dict[str, str]]:
        from bankwallet.core.db import Database
        from bankwallet.identity import service as identity_service

        phone = unique_phone().replace(" ", "")

        async def create() -> uuid.UUID:
            db = Database(self.db_url)
            try:
                async with db.unit_of_work() as session:
                    user = await identity_service.create_user(session, login_text=phone,
                                                              password=STRONG)
                    user.kyc_tier = tier
                    return user.id
            finally:
                await db.dispose()

        user_id = asyncio.run(create())
        r = httpx.post(f"{self.wallet_url}/api/v1/auth/login",
                       json={"login": phone, "password": STRONG}, timeout=10)
        assert r.status_code == 200, r.text
        return user_id, {"authorization": f"Bearer {r.json()['token']}"}

    def post(self, path: str, headers: dict[str, str], body: Any,
             key: str | None = None) -> httpx.Response:
        if key is not None:
            headers = {**headers, "Idempotency-Key": key}
        return httpx.post(f"{self.wallet_url}{path}", json=body, headers=headers, timeout=15)

    def get(self, path: str, headers: dict[str, str]) -> httpx.Response:
        return httpx.get(f"{self.wallet_url}{path}", headers=headers, timeout=10)

    def balance(self, headers: dict[str, str], currency: str = "CNY") -> dict[str, int]:
        r = self.get("/api/v1/wallet", headers)
        assert r.status_code == 200, r.text
        found = [b for b in r.json()["balances"] if b["currency"] == currency]
        return found[0] if found else {"available_minor": 0, "posted_minor": 0,
                                       "incoming_minor": 0, "outgoing_minor": 0}

    def link(self, headers: dict[str, str], *, balance_minor: int = 1_000_000,
             currency: str = "CNY", number: str | None = None) -> tuple[str, str]:
        """A new account at the sandbox bank, linked; returns (bank account id, number)."""
        number = number or card_number()
        r = httpx.post(f"{self.bank_url}/sandbox/accounts", timeout=10,
                       json={"number": number, "holder_name": HOLDER, "currency": currency,
                             "balance_minor": balance_minor})
        assert r.status_code == 201, r.text
        r = self.post("/api/v1/bank-accounts", headers,
                      {"number": number, "holder_name": HOLDER})
        assert r.status_code == 201, r.text
        return r.json()["id"], number

    def move(self, kind: str, headers: dict[str, str], account_id: str, amount_minor: int, *,
             mode: str | None = None, key: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"bank_account_id": account_id, "amount_minor": amount_minor,
                                "currency": "CNY"}
        if mode:
            body["failure_mode"] = mode
        return self.post(f"/api/v1/{kind}s", headers, body, key=key or secrets.token_hex(8))

    def wait_for(self, kind: str, headers: dict[str, str], movement_id: str,
                 done: Callable[[dict[str, Any]], bool], timeout_s: float = 15.0
                 ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            r = self.get(f"/api/v1/{kind}s/{movement_id}", headers)
            assert r.status_code == 200, r.text
            if done(r.json()):
                return r.json()
            if time.monotonic() > deadline:
                pytest.fail(f"{kind} {movement_id} stayed {r.json()['status']}:\n"
                            f"{self.logs()}")
            time.sleep(0.1)

    def movement_row(self, movement_id: str) -> dict[str, Any]:
        (row,) = db_rows(self.db_url, "SELECT * FROM funding_movement WHERE id = :id",
                         id=uuid_param(self.db_url, uuid.UUID(movement_id)))
        return row

    def ledger_effects(self, movement_id: str) -> dict[str, Transfer]:
        """Every ledger transfer the movement can have, by role, as the ledger holds them."""
        from bankwallet.core.ids import derived_id

        mid = uuid.UUID(movement_id)
        row = self.movement_row(movement_id)
        ids = {"hold": derived_id("funding.hold", mid), "post": derived_id("funding.post", mid),
               "void": derived_id("funding.void", mid)}
        if row["reversal_transfer_id"] is not None:
            ids["reversal"] = uuid.UUID(str(row["reversal_transfer_id"]))
        found = ledger_transfers(self.db_url, list(ids.values()))
        return {role: found[i] for role, i in ids.items() if i in found}

    def transfers_mentioning(self, movement_id: str) -> int:
        """Ledger transfers whose user_data names the movement (there must be no stray one)."""
        rows = db_rows(self.db_url, "SELECT user_data FROM ledger_transfer")
        count = 0
        for row in rows:
            data = row["user_data"]
            if isinstance(data, (str, bytes)):
                data = orjson.loads(data)
            if data and data.get("ref") == movement_id:
                count += 1
        return count

    # the bank

    def bank_account(self, number: str) -> dict[str, Any]:
        r = httpx.get(f"{self.bank_url}/sandbox/accounts/{number}", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def bank_events(self, instruction_id: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.bank_url}/sandbox/events",
                      params={"instruction_id": instruction_id}, timeout=10)
        return r.json()["events"]

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log_path.read_text()[-3000:]}"
                         for p in self.processes)

    def cli(self, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bankwallet", *args], check=False,
                              cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=timeout_s)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def launch_live(db_url: str, workdir: Path, key_path: Path, *,
                extra_env: dict[str, str] | None = None) -> LiveWallet:
    """Start the sandbox bank (its webhooks retry until the wallet answers) and the wallet,
    told where the bank is; ``wait_healthy`` waits for both."""
    secret = f"whsec_{secrets.token_hex(16)}"
    wallet_port, bank_port = free_port(), free_port()
    wallet_url = f"http://127.0.0.1:{wallet_port}"
    bank_url = f"http://127.0.0.1:{bank_port}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("BANKWALLET_")}
    env = {**base_env, "BANKWALLET_DATABASE_URL": db_url, "BANKWALLET_ENV": "test",
           "BANKWALLET_LOG_JSON": "false", "BANKWALLET_KEY_FILE": str(key_path),
           "BANKWALLET_COREBANKING_URL": bank_url, "BANKWALLET_COREBANKING_SECRET": secret,
           "BANKWALLET_COREBANKING_TIMEOUT_S": "1.0",
           "BANKWALLET_COREBANKING_POLL_INTERVAL_S": "0.3",
           "BANKWALLET_COREBANKING_POLL_AFTER_S": "0.5",
           "BANKWALLET_COREBANKING_SANDBOX_DELAY_S": "2.0",
           "BANKWALLET_SANDBOX_BANK_SECRET": secret}
    live = LiveWallet(db_url, wallet_url, bank_url, secret, env, workdir)
    live.processes.append(Process(
        servers.bankwallet("sandbox-bank", "--host", "127.0.0.1", "--port", str(bank_port),
                           "--webhook-url", f"{wallet_url}/webhooks/corebanking"),
        env=env, workdir=workdir, name=f"sandbox-bank-{bank_port}",
        health_url=f"{bank_url}/healthz"))
    live.processes.append(Process(
        servers.serve_argv(wallet_port), env={**env, **(extra_env or {})}, workdir=workdir,
        name=f"wallet-{wallet_port}", health_url=f"{wallet_url}/healthz"))
    return live


def start_all(lives: list[LiveWallet]) -> list[LiveWallet]:
    """Wait until every process of every environment answers (they start side by side)."""
    try:
        for live in lives:
            for process in live.processes:
                process.wait_healthy()
    except BaseException:
        for live in lives:
            live.stop()
        raise
    return lives


@contextlib.contextmanager
def live_wallet(workdir: Path) -> Iterator[LiveWallet]:
    """A wallet server and its sandbox bank on a fresh SQLite database in ``workdir`` (key
    file ``workdir/keys.json``), both answering; stopped on the way out."""
    key_path = workdir / "keys.json"
    ensure_key_file(key_path)
    live = launch_live(create_sqlite_database(workdir), workdir, key_path)
    start_all([live])
    try:
        yield live
    finally:
        live.stop()


def ensure_key_file(path: Path) -> None:
    """Create the shared key file before several processes race to create it."""
    from bankwallet.core import crypto

    if not path.exists():
        crypto.write_key_file(path, crypto.new_key_set(), replace=False)


def databases(directory: Path) -> dict[str, str]:
    """A fresh migrated SQLite database, and a PostgreSQL one when the server is there (under
    CI its absence fails the run)."""
    urls = {"sqlite": create_sqlite_database(directory)}
    if _pg_reachable():
        urls["postgres"] = create_pg_database()
    return urls


def pick(environments: dict[str, LiveWallet], kind: str) -> LiveWallet:
    if kind not in environments:
        skip_or_fail("PostgreSQL is not reachable on 127.0.0.1:5432")
    return environments[kind]


def stop_environments(lives: dict[str, LiveWallet], urls: dict[str, str]) -> None:
    for live in lives.values():
        live.stop()
    if "postgres" in urls:
        drop_pg_database(urls["postgres"])


@pytest.fixture(scope="session")
def environments(key_file: Path,  # noqa: F811
                 tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[dict[str, dict[str, LiveWallet]]]:
    """Every real-process environment the funding tests use, started side by side (process
    start-up is most of their cost), each on databases of its own:

    - ``live``: per database, a wallet server and its sandbox bank, shared by the tests of
      the session (each test uses users and bank accounts of its own);
    - ``crashing``: per database, the same with a wallet that exits hard (137) right after
      its first bank call, as a power cut between "the bank moved money" and "the ledger
      knows" would.
    """
    urls = {name: databases(tmp_path_factory.mktemp(f"{name}-db"))
            for name in ("live", "crashing")}
    ensure_key_file(key_file)
    extra = {"live": None, "crashing": {CRASH_ENV: "1"}}
    lives = {name: {kind: launch_live(url, tmp_path_factory.mktemp(f"{name}-{kind}"),
                                      key_file, extra_env=extra[name])
                    for kind, url in urls[name].items()}
             for name in urls}
    start_all([live for group in lives.values() for live in group.values()])
    yield lives
    for name, group in lives.items():
        stop_environments(group, urls[name])


@pytest.fixture(params=["sqlite", "postgres"], scope="session")
def live(request: pytest.FixtureRequest,
         environments: dict[str, dict[str, LiveWallet]]) -> LiveWallet:
    return pick(environments["live"], request.param)


@pytest.fixture(params=["sqlite", "postgres"])
def crashing(request: pytest.FixtureRequest,
             environments: dict[str, dict[str, LiveWallet]]) -> LiveWallet:
    return pick(environments["crashing"], request.param)
