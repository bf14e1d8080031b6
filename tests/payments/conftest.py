"""Helpers for the payments tests: customers with funded wallets, merchants, API keys, a local
webhook receiver."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from identity.test_api import (  # noqa: F401 - key_file: one key file for every test
    CLIENT_ADDRESSES,
    bearer,
    key_file,
    sign_up,
    unique_phone,
)

from bankwallet.app import create_app
from bankwallet.settings import Settings

IBAN = "DE89 3704 0044 0532 0130 00"
CARD_ACCOUNT = "6222 0212 3456 7890 128"  # 19 digits with a valid Luhn digit


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sign-ups here are set-up, not the subject: argon2id at the library's cost (~0.5 s a
    hash) would dominate the run, so these tests hash with the cheapest parameters."""
    from argon2 import PasswordHasher

    from bankwallet.identity import passwords

    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                             parallelism=1))


def idem(key: str | None = None) -> dict[str, str]:
    return {"Idempotency-Key": key or str(uuid.uuid4())}


@dataclass
class Customer:
    token: str
    user_id: str
    session_id: str
    login: str = ""

    @property
    def h(self) -> dict[str, str]:
        return bearer(self.token)


def customer(client: TestClient, *, funded: int = 0, currency: str = "CNY") -> Customer:
    login = unique_phone()
    created = sign_up(client, login)
    person = Customer(created["token"], created["user"]["id"], created["session_id"], login)
    fund(client, person.user_id, funded, currency=currency)
    return person


def fund(client: TestClient, user_id: str, amount: int, *, currency: str = "CNY") -> None:
    """Money in from the bank's settlement account (as a top-up would bring it)."""
    from bankwallet.ledger import service as ledger_service
    from bankwallet.ledger.types import TransferIn
    from bankwallet.wallets import service as wallets_service

    async def run() -> None:
        ledger = client.app.state.ledger
        account = await wallets_service.open_wallet(ledger, uuid.UUID(user_id), currency)
        if amount:
            await ledger_service.submit_one(ledger, TransferIn(
                id=uuid.uuid4(), debit_account_id=wallets_service.system_account_id(
                    wallets_service.SystemAccount.BANK_SETTLEMENT, currency),
                credit_account_id=account, amount=amount, ledger=currency, code=1001))

    client.portal.call(run)


def balance_of(client: TestClient, account_id: uuid.UUID) -> int:
    """Posted balance (credits − debits) of any ledger account; 0 when it does not exist."""

    async def run() -> int:
        found = await client.app.state.ledger.lookup_accounts([account_id])
        account = found.get(account_id)
        return account.credits_posted - account.debits_posted if account else 0

    return client.portal.call(run)


def available_of(client: TestClient, account_id: uuid.UUID) -> int:
    async def run() -> int:
        account = (await client.app.state.ledger.lookup_accounts([account_id])).get(account_id)
        return account.available if account else 0

    return client.portal.call(run)


def wallet_balance(client: TestClient, user_id: str, currency: str = "CNY") -> int:
    from bankwallet.wallets import service as wallets_service

    return balance_of(client, wallets_service.wallet_account_id(uuid.UUID(user_id), currency))


def merchant_balance(client: TestClient, merchant_id: str, currency: str = "CNY") -> int:
    from bankwallet.payments import service

    return balance_of(client, service.merchant_account_id(uuid.UUID(merchant_id), currency))


def fees_balance(client: TestClient, currency: str = "CNY") -> int:
    from bankwallet.wallets import service as wallets_service

    return balance_of(client, wallets_service.system_account_id(
        wallets_service.SystemAccount.FEES, currency))


def merchant(client: TestClient, owner: Customer, **overrides: str) -> dict:
    body = {"name": "Lotus Noodle Bar", "mcc": "5812", "city": "Shanghai", "country": "CN",
            "bank_account": CARD_ACCOUNT, **overrides}
    r = client.post("/api/v1/merchants", json=body, headers=owner.h)
    assert r.status_code == 201, r.text
    return r.json()


def api_key(client: TestClient, owner: Customer, merchant_id: str, **body) -> str:
    r = client.post(f"/api/v1/merchants/{merchant_id}/api-keys", json=body, headers=owner.h)
    assert r.status_code == 201, r.text
    return r.json()["key"]


def intent(client: TestClient, owner: Customer, merchant_id: str, amount: int = 100_00,
           **body) -> dict:
    r = client.post(f"/api/v1/merchants/{merchant_id}/payment-intents",
                    json={"amount_minor": amount, "currency": "CNY", **body}, headers=owner.h)
    assert r.status_code == 201, r.text
    return r.json()


def pay(client: TestClient, payer: Customer, handle: str, key: str | None = None):
    return client.post(f"/api/v1/payment-intents/{handle}/pay", headers={**payer.h, **idem(key)})


@contextlib.contextmanager
def _app_client(database_url: str) -> Iterator[TestClient]:
    """The app on ``database_url`` in a test client, as ``identity.test_api.client`` makes it,
    but for a whole module: every test makes its own customers and merchants, so they share
    one app (and one client address: the per-address sign-up throttle is lifted here)."""
    from bankwallet.core import crypto
    from bankwallet.settings import get_settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BANKWALLET_ENV", "test")
        patch.setenv("BANKWALLET_IP_MAX_FAILURES", "1000000")
        get_settings.cache_clear()
        crypto.reset_keyring()
        app = create_app(Settings(database_url=database_url, env="test"), run_workers=False)
        with TestClient(app, client=(next(CLIENT_ADDRESSES), 50000)) as test_client:
            yield test_client
        crypto.reset_keyring()
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def client(db_url: str, key_file: Path) -> Iterator[TestClient]:
    with _app_client(db_url) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def pg_client(pg_url: str, key_file: Path) -> Iterator[TestClient]:
    """The ``client`` on PostgreSQL only (concurrency, the real-server tests)."""
    with _app_client(pg_url) as test_client:
        yield test_client


@dataclass
class Shop:
    owner: Customer
    merchant: dict
    base: str = ""

    def __post_init__(self) -> None:
        self.base = f"/api/v1/merchants/{self.merchant['id']}"


@pytest.fixture
def shop(client: TestClient) -> Shop:
    owner = customer(client)
    return Shop(owner, merchant(client, owner))


# -- a local webhook receiver ----------------------------------------------------------------


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)  # answers to give, then 200
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200

    def bodies(self) -> list[dict]:
        with self.lock:
            return [json.loads(b) for b, _ in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: dict[str, Receiver] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            target = box["r"]
            with target.lock:
                target.received.append((body, {k.lower(): v for k, v in self.headers.items()}))
            status = target.next_status()
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box["r"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box["r"]
    server.shutdown()
    server.server_close()
