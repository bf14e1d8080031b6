"""The self-custody crypto wallet: create and import wallets, receive, balances, send on EVM
chains, sign messages — kept apart from the customer's bank balance (no ledger transfer).

The bank never holds a usable key. A wallet's secret (the recovery phrase's entropy and
passphrase, or one private key) is sealed under a PIN only the customer knows
(``vault.seal_secret``: Argon2id + AES-GCM) and the blob is envelope-encrypted again with the
bank's keyring, so a copied database is useless without the bank's keys and the bank's keys are
useless without the PIN. Wrong PINs are counted per user *before* a PIN is tried (concurrent
guesses cannot pass the limit) and lock the wallet PIN out with a doubling delay.

Showing the recovery phrase needs a fresh second factor and the PIN, also at creation (the one
time the words come back without being asked). Signing needs the PIN; the key lives only in
memory for the one signature and is never logged. An outgoing transaction follows the
money-movement pattern: it is recorded signed (the intent) and committed before it is
broadcast, its id derived from the Idempotency-Key; a job re-broadcasts what never left and
follows what did until it is confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import logging
import re
import secrets
import unicodedata
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson
from eth_account import Account
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.chains import evm_signing, uri, vault
from bankwallet.chains.addresses import validate_address
from bankwallet.chains.derive import DerivedAccount, derive_account, derive_keys
from bankwallet.chains.derive import import_private_key as parse_private_key
from bankwallet.chains.errors import (
    AddressInvalid,
    AmountInvalid,
    MnemonicInvalidWord,
    SealedSecretInvalid,
    WalletPinInvalid,
    WalletPinWrong,
)
from bankwallet.chains.mnemonic import (
    Mnemonic,
    generate_mnemonic,
    mnemonic_from_entropy,
    parse_mnemonic,
    split_words,
)
from bankwallet.chains.models import (
    SEALED_CONTEXT,
    Address,
    AddressBookEntry,
    BackupCheck,
    ChainTransaction,
    PinGuard,
    Wallet,
)
from bankwallet.chains.registry import CHAINS, Family, get_chain
from bankwallet.connectors.chains.base import (
    BroadcastClient,
    ChainFailure,
    ExecutionReverted,
    FeeEstimate,
    InsufficientFunds,
    NetworkUnreachable,
    SentTransaction,
    TxReceipt,
    TxRequest,
    TxStatus,
)
from bankwallet.connectors.chains.evm import EvmJsonRpcClient, erc20_transfer_data
from bankwallet.core import audit, outbox
from bankwallet.core.crypto import get_keyring
from bankwallet.core.db import utcnow
from bankwallet.core.errors import (
    BankwalletError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
)
from bankwallet.core.ids import derived_id, uuid7
from bankwallet.identity import mfa
from bankwallet.identity.service import Authenticated, RequestInfo
from bankwallet.risk import service as risk_service

log = logging.getLogger("bankwallet.chains")

MAX_WALLETS_PER_USER: Final = 20
MAX_WATCH_ADDRESSES: Final = 20
MAX_ADDRESS_BOOK_ENTRIES: Final = 200
MAX_NAME_CHARS: Final = 64
BACKUP_WORDS_ASKED: Final = 3
BACKUP_CHECK_TTL_S: Final = 15 * 60
BACKUP_CHECK_MAX_ATTEMPTS: Final = 3
PIN_LOCKOUT_MAX_S: Final = 24 * 3600
MAX_UINT256: Final = 2**256 - 1
GAS_HEADROOM_PERCENT: Final = 20  # contract calls: estimates can be a little short
NATIVE_TRANSFER_GAS: Final = 21_000
TRACK_BATCH_MAX: Final = 100
REBROADCAST_AFTER_S: Final = 30  # a request broadcasts its own transaction first
MAX_TOKENS_PER_CHAIN: Final = 20
SECRET_VERSION: Final = 1

KIND_MNEMONIC, KIND_PRIVATE_KEY, KIND_WATCH_ONLY = "mnemonic", "private_key", "watch_only"
SIGNED, PENDING, CONFIRMED, FAILED = "signed", "pending", "confirmed", "failed"
OPEN_STATUSES: Final = (SIGNED, PENDING)


# -- errors ------------------------------------------------------------------------------------


class WalletNotFound(NotFound):
    code = "chain_wallet_not_found"
    title = "No such wallet"


class TransactionNotFound(NotFound):
    code = "chain_transaction_not_found"
    title = "No such transaction"


class BackupCheckNotFound(NotFound):
    code = "backup_check_not_found"
    title = "No such backup check"


class AddressBookEntryNotFound(NotFound):
    code = "address_book_entry_not_found"
    title = "No such address book entry"


class WalletWatchOnly(Conflict):
    code = "wallet_watch_only"
    title = "A watch-only wallet holds no key: it cannot sign or show a recovery phrase"


class WalletHasNoRecoveryPhrase(Conflict):
    code = "wallet_has_no_recovery_phrase"
    title = "This wallet was imported from a private key: it has no recovery phrase"


class WalletLimitReached(Conflict):
    code = "wallet_limit_reached"
    title = f"You can keep at most {MAX_WALLETS_PER_USER} crypto wallets"


class WalletExists(Conflict):
    code = "wallet_exists"
    title = "You already have this wallet"


class WalletNameInvalid(InvalidInput):
    code = "wallet_name_invalid"
    title = f"A wallet name has 1 to {MAX_NAME_CHARS} characters"


class WalletPinLocked(BankwalletError):
    code = "wallet_pin_locked"
    status = 429
    title = "Too many wrong wallet PINs: wait before trying again"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"Try again in {retry_after_s} seconds.", retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class BackupCheckExpired(Conflict):
    code = "backup_check_expired"
    title = "This backup check is over: start a new one"


class BackupWordsWrong(InvalidInput):
    code = "backup_words_wrong"
    title = "Those are not the words of your recovery phrase"


class AddressBookEntryExists(Conflict):
    code = "address_book_entry_exists"
    title = "This address is already in your address book"


class AddressBookFull(Conflict):
    code = "address_book_full"
    title = f"An address book holds at most {MAX_ADDRESS_BOOK_ENTRIES} addresses"


class ChainNotEvm(InvalidInput):
    code = "chain_not_evm"
    title = "Sending and balances work on EVM chains (ETH, BSC, POLYGON, OKX)"


class TokenUnknown(InvalidInput):
    code = "chain_token_unknown"
    title = "This token is not offered on this chain"


class NetworkNotConfigured(Conflict):
    code = "chain_network_not_configured"
    title = "This chain's network is not set up at this bank"


class NetworkUnavailable(BankwalletError):
    code = "chain_network_unreachable"
    status = 503
    title = "The chain's network cannot be reached; nothing was sent"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class ChainNodeError(BankwalletError):
    code = "chain_node_error"
    status = 502
    title = "The chain's node gave no usable answer; nothing was sent"


class ChainWrongNetwork(Conflict):
    code = "chain_wrong_network"
    title = "The network this bank reaches is another chain than the one asked for"


class InsufficientFundsForAmount(InvalidInput):
    code = "chain_insufficient_funds"
    title = "The wallet holds less than this amount"


class InsufficientFundsForGas(InvalidInput):
    code = "chain_insufficient_gas"
    title = "The wallet cannot pay the network fee (gas) on top of this amount"


class InsufficientTokenBalance(InvalidInput):
    code = "chain_insufficient_token_balance"
    title = "The wallet holds fewer of these tokens than this amount"


class FeeAbovePreview(Conflict):
    code = "chain_fee_above_preview"
    title = "The network fee rose above the one you confirmed: check the new preview"


class TransactionRejected(InvalidInput):
    code = "chain_transaction_rejected"
    title = "The network refused the transaction"


class SendDenied(Forbidden):
    code = "chain_send_denied"
    title = "This transaction cannot be sent"


class ChainNotRelayed(InvalidInput):
    code = "chain_not_relayed"
    title = "Signed transactions are relayed for BTC, TRON and SOL"


class RelayFeeTooLow(TransactionRejected):
    code = "chain_fee_too_low"
    title = "The network refused the transaction: its fee is too low"


class RelayInputsMissingOrSpent(TransactionRejected):
    code = "chain_inputs_missing_or_spent"
    title = "The network refused the transaction: a coin it spends is unknown or spent"


class RelayTransactionExpired(TransactionRejected):
    code = "chain_transaction_expired"
    title = "The network refused the transaction: it was signed against a block too old"


class RelayTransactionInvalid(TransactionRejected):
    code = "chain_transaction_invalid"
    title = "The network refused the transaction: it is malformed or wrongly signed"


class RelayInsufficientFunds(TransactionRejected):
    code = "chain_insufficient_funds"
    title = "The network refused the transaction: the sender holds too little"


# -- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenSpec:
    chain: str
    address: str  # EIP-55; base58 on TRON (TRC-20 contract) and SOL (SPL mint)
    symbol: str
    decimals: int


@dataclass(frozen=True, slots=True)
class PinPolicy:
    max_failures: int = 5
    lockout_s: int = 900


@dataclass(frozen=True)
class ChainConfig:
    """What the bank set up: networks per EVM chain, their tokens, and the PIN policy. The
    URLs may carry a provider's API key: they are never logged nor shown."""

    urls: dict[str, str] = field(default_factory=dict)
    # Nodes that relay transactions signed offline: Bitcoin Core JSON-RPC (credentials in
    # the URL), a TRON full node's HTTP API, a Solana JSON-RPC endpoint.
    node_urls: dict[str, str] = field(default_factory=dict)
    chain_ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, tuple[TokenSpec, ...]] = field(default_factory=dict)
    timeout_s: float = 10.0
    confirmations: int = 1
    pin: PinPolicy = PinPolicy()
    kdf: vault.KdfCost = vault.PRODUCTION_COST

    @classmethod
    def from_settings(cls, settings: Any) -> ChainConfig:
        networks = {key: url for key, url in (settings.chain_networks or {}).items()
                    if isinstance(url, str) and url.startswith(("http://", "https://"))}
        relayed = {str(key).strip().upper(): url for key, url in networks.items()
                   if str(key).strip().upper() in NODE_CHAINS}
        urls = dict(_evm_keyed({k: v for k, v in networks.items()
                                if str(k).strip().upper() not in NODE_CHAINS}, "network"))
        chain_ids = {chain: int(value) for chain, value
                     in _evm_keyed(settings.chain_network_ids, "chain id")
                     if 0 < int(value) < 2**63}
        tokens = {chain: _token_specs(chain, entries)
                  for chain, entries in _token_keyed(settings.chain_tokens)}
        return cls(urls=urls, node_urls=relayed, chain_ids=chain_ids, tokens=tokens,
                   timeout_s=settings.chain_rpc_timeout_s,
                   confirmations=settings.chain_confirmations,
                   pin=PinPolicy(settings.chain_pin_max_failures, settings.chain_pin_lockout_s),
                   kdf=vault.KdfCost(time_cost=settings.chain_pin_kdf_time_cost,
                                     memory_kib=settings.chain_pin_kdf_memory_kib,
                                     parallelism=vault.PRODUCTION_COST.parallelism))

    def configured(self, chain: str) -> bool:
        return chain in self.urls

    def expected_chain_id(self, chain: str) -> int:
        spec = get_chain(chain)
        assert spec.evm_chain_id is not None
        return self.chain_ids.get(spec.symbol, spec.evm_chain_id)

    def tokens_of(self, chain: str) -> tuple[TokenSpec, ...]:
        return self.tokens.get(chain, ())

    def token(self, chain: str, address: str) -> TokenSpec:
        for spec in self.tokens_of(chain):
            if spec.address.lower() == address.strip().lower():
                return spec
        raise TokenUnknown()

    @contextlib.asynccontextmanager
    async def client(self, chain: str) -> AsyncIterator[EvmJsonRpcClient]:
        url = self.urls.get(chain)
        if url is None:
            raise NetworkNotConfigured(f"No {get_chain(chain).name} network is set up.")
        async with EvmJsonRpcClient(url, timeout_s=self.timeout_s) as client:
            yield client

    def relay_configured(self, chain: str) -> bool:
        return chain in self.node_urls

    @contextlib.asynccontextmanager
    async def relay_client(self, chain: str) -> AsyncIterator[BroadcastClient]:
        """The client of the node that relays ``chain``'s transactions (BTC, TRON, SOL)."""
        symbol = relayed_chain(chain)
        url = self.node_urls.get(symbol)
        if url is None:
            raise no_node_configured(symbol)
        client = relay_client_for(symbol, url, timeout_s=self.timeout_s)
        try:
            yield client
        finally:
            await client.aclose()


RELAYED_CHAINS: Final = ("BTC", "TRON", "SOL")
# Chains with a node of their own for balances: the relayed ones, Aptos and EOS, and
# Polkadot and Kusama (a Substrate node's JSON-RPC; a local network: "#genesis=0x…" on the URL).
NODE_CHAINS: Final = (*RELAYED_CHAINS, "APT", "EOS", "DOT", "KSM")
# Non-EVM chains whose tokens (TRC-20 contracts, SPL mints, base58) chain_tokens may list.
NODE_TOKEN_CHAINS: Final = ("TRON", "SOL")


def balance_client_for(chain: str, url: str, *, timeout_s: float = 10.0) -> Any:
    """A client reading balances from a node of ``chain`` (one of ``NODE_CHAINS``)."""
    from bankwallet.connectors.chains.aptos import AptosRestClient
    from bankwallet.connectors.chains.eos import EosChainClient

    symbol = get_chain(chain).symbol
    if symbol == "APT":
        return AptosRestClient(url, timeout_s=timeout_s)
    if symbol == "EOS":
        return EosChainClient(url, timeout_s=timeout_s)
    if symbol in ("DOT", "KSM"):
        from bankwallet.connectors.chains.substrate import SubstrateRpcClient

        return SubstrateRpcClient(symbol, url, timeout_s=timeout_s)
    return relay_client_for(symbol, url, timeout_s=timeout_s)


def no_node_configured(chain: str) -> NetworkNotConfigured:
    return NetworkNotConfigured(f"No {get_chain(chain).name} node is configured.")


def relayed_chain(chain: str) -> str:
    symbol = get_chain(chain).symbol
    if symbol not in RELAYED_CHAINS:
        raise ChainNotRelayed()
    return symbol


def relay_client_for(chain: str, url: str, *, timeout_s: float = 10.0) -> BroadcastClient:
    """A client for a node of ``chain`` at ``url`` (also for the CLI's ``--node``)."""
    from bankwallet.connectors.chains.bitcoin import BitcoinCoreClient
    from bankwallet.connectors.chains.solana import SolanaRpcClient
    from bankwallet.connectors.chains.tron import TronHttpClient

    kinds = {"BTC": BitcoinCoreClient, "TRON": TronHttpClient, "SOL": SolanaRpcClient}
    return kinds[relayed_chain(chain)](url, timeout_s=timeout_s)


def _evm_keyed(mapping: dict[str, Any], what: str) -> Iterable[tuple[str, Any]]:
    for key, value in (mapping or {}).items():
        chain = CHAINS.get(str(key).strip().upper())
        if chain is None or chain.family is not Family.EVM:
            log.warning("chains: ignoring a %s for %r: not an EVM chain", what, str(key)[:16])
            continue
        yield chain.symbol, value


def _token_keyed(mapping: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    """chain_tokens of the EVM chains, TRON (TRC-20) and Solana (SPL mints)."""
    evm = {k: v for k, v in (mapping or {}).items()
           if str(k).strip().upper() not in NODE_TOKEN_CHAINS}
    yield from _evm_keyed(evm, "tokens")
    for key, value in (mapping or {}).items():
        if str(key).strip().upper() in NODE_TOKEN_CHAINS:
            yield str(key).strip().upper(), value


def _token_specs(chain: str, entries: Any) -> tuple[TokenSpec, ...]:
    specs = []
    for entry in list(entries or [])[:MAX_TOKENS_PER_CHAIN]:
        try:
            address = validate_address(chain, str(entry["address"]))
            symbol = str(entry["symbol"]).strip()
            decimals = int(entry["decimals"])
        except (KeyError, TypeError, ValueError, AddressInvalid):
            log.warning("chains: ignoring a malformed token of %s", chain)
            continue
        if 0 < len(symbol) <= 16 and 0 <= decimals <= 36:
            specs.append(TokenSpec(chain, address, symbol, decimals))
    return tuple(specs)


DEFAULT_CONFIG: Final = ChainConfig()


# -- the secret behind the PIN -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class UnlockedSecret:
    """A wallet's secret after the right PIN: in memory for one operation only."""

    wallet_id: uuid.UUID
    mnemonic: Mnemonic | None = None
    passphrase: str = ""
    private_key: bytes | None = None

    def __repr__(self) -> str:
        return "UnlockedSecret(<secret>)"

    def evm_key(self, address: Address) -> bytes:
        """The private key behind one of the wallet's EVM addresses (checked against it)."""
        if self.mnemonic is not None:
            _, keys = derive_keys("ETH", self.mnemonic, passphrase=self.passphrase,
                                  path=address.path)
            key = keys.private_key
        else:
            assert self.private_key is not None
            key = self.private_key
        if Account.from_key(key).address != address.address:
            raise SealedSecretInvalid("the sealed key does not match the wallet's address")
        return key


def _secret_bytes(wallet_id: uuid.UUID, **fields: Any) -> bytes:
    return orjson.dumps({"v": SECRET_VERSION, "wallet": str(wallet_id), **fields})


def _unlocked(wallet: Wallet, plaintext: bytes) -> UnlockedSecret:
    try:
        data = orjson.loads(plaintext)
        if data.get("v") != SECRET_VERSION or data.get("wallet") != str(wallet.id):
            raise ValueError
        if data["kind"] == KIND_MNEMONIC:
            mnemonic = mnemonic_from_entropy(bytes.fromhex(data["entropy"]), data["language"])
            return UnlockedSecret(wallet.id, mnemonic=mnemonic, passphrase=data["passphrase"])
        return UnlockedSecret(wallet.id, private_key=bytes.fromhex(data["key"]))
    except (ValueError, KeyError, TypeError, AssertionError):
        # Another wallet's blob copied in, or a damaged one: never a usable secret.
        raise SealedSecretInvalid("the sealed secret does not belong to this wallet") from None


async def _seal(plaintext: bytes, pin: str, cost: vault.KdfCost) -> bytes:
    sealed = await asyncio.to_thread(vault.seal_secret, plaintext, pin, cost=cost)
    return get_keyring().encrypt(sealed, context=SEALED_CONTEXT)


def check_pin_format(pin: str) -> str:
    """The PIN a customer chooses: 6 to 64 characters (vault normalises with NFKC)."""
    normalized = unicodedata.normalize("NFKC", pin)
    if not vault.MIN_PIN_CHARS <= len(normalized) <= 64:
        raise WalletPinInvalid()
    return pin


# -- PIN attempts ------------------------------------------------------------------------------


async def _in_own_transaction(session: AsyncSession,
                              work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    """Security counters must commit even when the request fails. Call only before the
    request's session has written anything (SQLite has one writer)."""
    async with AsyncSession(session.bind, expire_on_commit=False) as own:
        result = await work(own)
        await own.commit()
        return result


def _insert(session: AsyncSession):
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


async def _reserve_pin_attempt(session: AsyncSession, user_id: uuid.UUID,
                               policy: PinPolicy) -> int:
    """Count one PIN attempt before it is made; returns how many are left after it."""

    async def reserve(own: AsyncSession) -> int | WalletPinLocked:
        now = utcnow()
        await own.execute(_insert(own)(PinGuard).values(
            user_id=user_id, failures=0, locked_until=None, updated_at=now)
            .on_conflict_do_nothing())
        guard = (await own.execute(select(PinGuard).where(PinGuard.user_id == user_id)
                                   .with_for_update())).scalar_one()
        if guard.locked_until is not None and now < guard.locked_until:
            return WalletPinLocked(int((guard.locked_until - now).total_seconds()) + 1)
        guard.failures += 1
        guard.updated_at = now
        if guard.failures >= policy.max_failures:
            # This is the last attempt before a lock-out, which doubles with each one after.
            delay = min(PIN_LOCKOUT_MAX_S,
                        policy.lockout_s * 2 ** min(20, guard.failures - policy.max_failures))
            guard.locked_until = now + dt.timedelta(seconds=delay)
        return max(0, policy.max_failures - guard.failures)

    outcome = await _in_own_transaction(session, reserve)
    if isinstance(outcome, WalletPinLocked):
        raise outcome
    return outcome


async def _clear_pin_attempts(session: AsyncSession, user_id: uuid.UUID) -> None:
    async def clear(own: AsyncSession) -> None:
        await own.execute(update(PinGuard).where(PinGuard.user_id == user_id)
                          .values(failures=0, locked_until=None, updated_at=utcnow()))

    await _in_own_transaction(session, clear)


async def _record_in_own_transaction(session: AsyncSession, **event: Any) -> None:
    async def record(own: AsyncSession) -> None:
        await audit.record(own, **event)

    await _in_own_transaction(session, record)


async def unlock(session: AsyncSession, user_id: uuid.UUID, wallet_id: uuid.UUID, pin: str, *,
                 config: ChainConfig, info: RequestInfo | None = None) -> UnlockedSecret:
    """The wallet's secret for the right PIN; a wrong PIN is counted (and locks out)."""
    with session.no_autoflush:  # nothing of the request may be written before the counters
        wallet = await _own_wallet(session, user_id, wallet_id)
    if wallet.kind == KIND_WATCH_ONLY or wallet.sealed_enc is None:
        raise WalletWatchOnly()
    check_pin_format(pin)
    left = await _reserve_pin_attempt(session, user_id, config.pin)
    sealed = get_keyring().decrypt(wallet.sealed_enc, context=SEALED_CONTEXT)
    try:
        plaintext = await asyncio.to_thread(vault.open_secret, sealed, pin)
    except WalletPinWrong:
        await _record_in_own_transaction(
            session, action="chains.pin.failed", actor_type="user", actor_id=str(user_id),
            subject_type="chains_wallet", subject_id=str(wallet.id),
            ip=info.ip if info else None, user_agent=info.user_agent if info else None,
            data={"attempts_left": left})
        raise WalletPinWrong(attempts_left=left) from None
    await _clear_pin_attempts(session, user_id)
    secret = _unlocked(wallet, plaintext)
    if vault.needs_reseal(sealed, config.kdf):
        await _reseal(session, wallet, plaintext, pin, config.kdf)
    return secret


async def _reseal(session: AsyncSession, wallet: Wallet, plaintext: bytes, pin: str,
                  cost: vault.KdfCost) -> None:
    """Seal again at today's cost (the PIN is only ever known at this moment)."""
    old, new = wallet.sealed_enc, await _seal(plaintext, pin, cost)

    async def store(own: AsyncSession) -> None:
        await own.execute(update(Wallet).where(Wallet.id == wallet.id, Wallet.sealed_enc == old)
                          .values(sealed_enc=new))

    await _in_own_transaction(session, store)
    await session.refresh(wallet, ["sealed_enc"])


# -- wallets -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WalletView:
    wallet: Wallet
    addresses: list[Address]

    def address_on(self, chain: str) -> Address | None:
        return next((a for a in self.addresses if a.chain == chain), None)


def check_name(name: str) -> str:
    name = " ".join(name.split())
    if not 1 <= len(name) <= MAX_NAME_CHARS or any(unicodedata.category(c) == "Cc"
                                                   for c in name):
        raise WalletNameInvalid()
    return name


async def _own_wallet(session: AsyncSession, user_id: uuid.UUID,
                      wallet_id: uuid.UUID) -> Wallet:
    wallet = await session.get(Wallet, wallet_id)
    if wallet is None or wallet.user_id != user_id:
        raise WalletNotFound()  # another customer's wallet does not exist for this one
    return wallet


async def _addresses(session: AsyncSession, wallet_ids: Sequence[uuid.UUID]
                     ) -> dict[uuid.UUID, list[Address]]:
    found: dict[uuid.UUID, list[Address]] = {wallet_id: [] for wallet_id in wallet_ids}
    if not wallet_ids:
        return found
    rows = (await session.execute(select(Address).where(Address.wallet_id.in_(wallet_ids))
                                  .order_by(Address.created_at, Address.id))).scalars()
    order = {symbol: i for i, symbol in enumerate(CHAINS)}
    for row in rows:
        found[row.wallet_id].append(row)
    for rows_of_wallet in found.values():
        rows_of_wallet.sort(key=lambda a: order.get(a.chain, len(order)))
    return found


async def list_wallets(session: AsyncSession, user_id: uuid.UUID) -> list[WalletView]:
    wallets = (await session.execute(select(Wallet).where(Wallet.user_id == user_id)
                                     .order_by(Wallet.created_at, Wallet.id))).scalars().all()
    addresses = await _addresses(session, [w.id for w in wallets])
    return [WalletView(w, addresses[w.id]) for w in wallets]


async def get_wallet(session: AsyncSession, user_id: uuid.UUID,
                     wallet_id: uuid.UUID) -> WalletView:
    wallet = await _own_wallet(session, user_id, wallet_id)
    return WalletView(wallet, (await _addresses(session, [wallet.id]))[wallet.id])


async def _check_room(session: AsyncSession, user_id: uuid.UUID) -> None:
    count = (await session.execute(select(func.count()).select_from(Wallet)
                                   .where(Wallet.user_id == user_id))).scalar_one()
    if count >= MAX_WALLETS_PER_USER:
        raise WalletLimitReached()


async def _check_not_held(session: AsyncSession, user_id: uuid.UUID,
                          accounts: Sequence[DerivedAccount | tuple[str, str]]) -> None:
    """The same keys twice would be one wallet shown as two (watch-only copies are fine)."""
    pairs = [(a.chain, a.address) if isinstance(a, DerivedAccount) else a for a in accounts]
    held = (await session.execute(
        select(Address.chain, Address.address).join(Wallet, Wallet.id == Address.wallet_id)
        .where(Wallet.user_id == user_id, Wallet.kind != KIND_WATCH_ONLY,
               Address.address.in_([address for _, address in pairs])))).all()
    if set(map(tuple, held)) & set(pairs):
        raise WalletExists()


def _derive_all(mnemonic: Mnemonic, passphrase: str) -> list[DerivedAccount]:
    return [derive_account(symbol, mnemonic, passphrase=passphrase) for symbol in CHAINS]


async def _store_wallet(session: AsyncSession, *, user_id: uuid.UUID, wallet: Wallet,
                        accounts: Sequence[DerivedAccount | tuple[str, str]],
                        info: RequestInfo | None) -> WalletView:
    session.add(wallet)
    await session.flush()
    now = wallet.created_at
    rows = []
    for account in accounts:
        if isinstance(account, DerivedAccount):
            chain, address = account.chain, account.address
            path, scheme = account.path, account.scheme.value
        else:
            (chain, address), path, scheme = account, None, None
        rows.append(Address(id=uuid7(), wallet_id=wallet.id, user_id=user_id, chain=chain,
                            address=address, path=path, scheme=scheme, created_at=now))
    session.add_all(rows)
    await session.flush()
    await audit.record(session, action="chains.wallet.created", actor_type="user",
                       actor_id=str(user_id), subject_type="chains_wallet",
                       subject_id=str(wallet.id), ip=info.ip if info else None,
                       user_agent=info.user_agent if info else None,
                       data={"kind": wallet.kind, "origin": wallet.origin})
    await outbox.publish(session, "chains.wallet.created",
                         {"wallet_id": str(wallet.id), "user_id": str(user_id),
                          "kind": wallet.kind, "origin": wallet.origin}, key=str(user_id))
    return WalletView(wallet, rows)


def _new_wallet(user_id: uuid.UUID, name: str, kind: str, origin: str, **values: Any) -> Wallet:
    now = utcnow()
    return Wallet(id=uuid7(), user_id=user_id, name=check_name(name), kind=kind, origin=origin,
                  language=values.get("language"), word_count=values.get("word_count"),
                  has_passphrase=bool(values.get("has_passphrase")), sealed_enc=None,
                  backed_up_at=values.get("backed_up_at"), created_at=now)


async def create_wallet(session: AsyncSession, auth: Authenticated, *, name: str,
                        word_count: int = 12, language: str = "en", passphrase: str = "",
                        pin: str, config: ChainConfig = DEFAULT_CONFIG,
                        info: RequestInfo | None = None) -> tuple[WalletView, Mnemonic]:
    """A new recovery phrase. The words come back this once, so a fresh second factor is
    needed, as for every later showing."""
    user_id = auth.user.id
    check_name(name)
    check_pin_format(pin)
    with session.no_autoflush:
        await mfa.ensure_recent_second_factor(session, auth)
        await _check_room(session, user_id)
    mnemonic = generate_mnemonic(word_count, language)
    accounts = await asyncio.to_thread(_derive_all, mnemonic, passphrase)
    wallet = _new_wallet(user_id, name, KIND_MNEMONIC, "created", language=mnemonic.language.value,
                         word_count=len(mnemonic.words), has_passphrase=bool(passphrase))
    wallet.sealed_enc = await _seal(_secret_bytes(
        wallet.id, kind=KIND_MNEMONIC, entropy=mnemonic.entropy().hex(),
        language=mnemonic.language.value, passphrase=passphrase), pin, config.kdf)
    view = await _store_wallet(session, user_id=user_id, wallet=wallet, accounts=accounts,
                               info=info)
    return view, mnemonic


def parse_phrase(text: str) -> Mnemonic:
    """``parse_mnemonic`` whose errors say *where* a word is wrong but never repeat the words:
    an error message must not carry any part of a recovery phrase."""
    try:
        return parse_mnemonic(text)
    except MnemonicInvalidWord as exc:
        positions = [entry["position"] for entry in exc.extra.get("words", [])]
        where = ", ".join(str(p) for p in positions)
        raise MnemonicInvalidWord(f"word {where} is not in the word list",
                                  positions=positions) from None


async def import_mnemonic(session: AsyncSession, user_id: uuid.UUID, *, name: str, phrase: str,
                          passphrase: str = "", pin: str, config: ChainConfig = DEFAULT_CONFIG,
                          info: RequestInfo | None = None) -> WalletView:
    check_name(name)
    check_pin_format(pin)
    mnemonic = parse_phrase(phrase)
    accounts = await asyncio.to_thread(_derive_all, mnemonic, passphrase)
    with session.no_autoflush:  # nothing written (SQLite: no lock) while the PIN seals
        await _check_room(session, user_id)
        await _check_not_held(session, user_id, accounts)
    # The customer brought the words, so they hold a copy already.
    wallet = _new_wallet(user_id, name, KIND_MNEMONIC, "imported",
                         language=mnemonic.language.value, word_count=len(mnemonic.words),
                         has_passphrase=bool(passphrase), backed_up_at=utcnow())
    wallet.sealed_enc = await _seal(_secret_bytes(
        wallet.id, kind=KIND_MNEMONIC, entropy=mnemonic.entropy().hex(),
        language=mnemonic.language.value, passphrase=passphrase), pin, config.kdf)
    return await _store_wallet(session, user_id=user_id, wallet=wallet, accounts=accounts,
                               info=info)


async def import_private_key(session: AsyncSession, user_id: uuid.UUID, *, name: str, chain: str,
                             key_text: str, pin: str, config: ChainConfig = DEFAULT_CONFIG,
                             info: RequestInfo | None = None) -> WalletView:
    """One key. An EVM key is the same account on every EVM chain, so it gets all four."""
    check_name(name)
    check_pin_format(pin)
    spec = get_chain(chain)
    imported = parse_private_key(spec.symbol, key_text)
    symbols = ([c.symbol for c in CHAINS.values() if c.family is Family.EVM]
               if spec.family is Family.EVM else [spec.symbol])
    accounts = [(symbol, imported.address) for symbol in symbols]
    with session.no_autoflush:  # nothing written (SQLite: no lock) while the PIN seals
        await _check_room(session, user_id)
        await _check_not_held(session, user_id, accounts)
    wallet = _new_wallet(user_id, name, KIND_PRIVATE_KEY, "imported", backed_up_at=utcnow())
    wallet.sealed_enc = await _seal(_secret_bytes(
        wallet.id, kind=KIND_PRIVATE_KEY, chain=spec.symbol, scheme=imported.scheme.value,
        key=imported.keys.private_key.hex()), pin, config.kdf)
    return await _store_wallet(session, user_id=user_id, wallet=wallet, accounts=accounts,
                               info=info)


async def import_watch_only(session: AsyncSession, user_id: uuid.UUID, *, name: str,
                            addresses: Sequence[tuple[str, str]],
                            info: RequestInfo | None = None) -> WalletView:
    """Addresses to follow without their keys: receive and balances, never signing."""
    check_name(name)
    if not 1 <= len(addresses) <= MAX_WATCH_ADDRESSES:
        raise InvalidInput(f"give 1 to {MAX_WATCH_ADDRESSES} addresses")
    accounts = []
    for chain, address in addresses:
        symbol = get_chain(chain).symbol
        accounts.append((symbol, validate_address(symbol, address)))
    await _check_room(session, user_id)
    wallet = _new_wallet(user_id, name, KIND_WATCH_ONLY, "imported")
    return await _store_wallet(session, user_id=user_id, wallet=wallet,
                               accounts=list(dict.fromkeys(accounts)), info=info)


def receive_link(address: Address) -> str | None:
    """The payment link for the QR code; None where the chain has no address to receive at
    yet (EOS: the public key, which an account must be created for)."""
    try:
        return uri.receive_uri(address.chain, address.address)
    except AddressInvalid:
        return None


# -- recovery phrase: show it, check the backup ------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class Revealed:
    words: tuple[str, ...] | None
    language: str | None
    private_key_hex: str | None

    def __repr__(self) -> str:
        return "Revealed(<secret>)"


async def reveal(session: AsyncSession, auth: Authenticated, wallet_id: uuid.UUID, *, pin: str,
                 config: ChainConfig, info: RequestInfo | None = None) -> Revealed:
    """The recovery phrase (or the imported key): a fresh second factor AND the PIN."""
    user_id = auth.user.id
    with session.no_autoflush:
        wallet = await _own_wallet(session, user_id, wallet_id)
        if wallet.kind == KIND_WATCH_ONLY:
            raise WalletWatchOnly()
        # The second factor first: a missing one must not spend a PIN attempt.
        await mfa.ensure_recent_second_factor(session, auth)
    secret = await unlock(session, user_id, wallet_id, pin, config=config, info=info)
    await audit.record(session, action="chains.wallet.revealed", actor_type="user",
                       actor_id=str(user_id), subject_type="chains_wallet",
                       subject_id=str(wallet_id), ip=info.ip if info else None,
                       user_agent=info.user_agent if info else None)
    if secret.mnemonic is not None:
        return Revealed(secret.mnemonic.words, secret.mnemonic.language.value, None)
    assert secret.private_key is not None
    return Revealed(None, None, "0x" + secret.private_key.hex())


async def start_backup_check(session: AsyncSession, user_id: uuid.UUID,
                             wallet_id: uuid.UUID) -> BackupCheck:
    """Ask for three words of the phrase back, at positions the server picks and keeps."""
    wallet = await _own_wallet(session, user_id, wallet_id)
    if wallet.kind == KIND_WATCH_ONLY:
        raise WalletWatchOnly()
    if wallet.kind != KIND_MNEMONIC or not wallet.word_count:
        raise WalletHasNoRecoveryPhrase()
    picker = secrets.SystemRandom()
    positions = sorted(picker.sample(range(1, wallet.word_count + 1), BACKUP_WORDS_ASKED))
    now = utcnow()
    check = BackupCheck(id=uuid7(), wallet_id=wallet.id, positions=positions, attempts=0,
                        created_at=now, expires_at=now + dt.timedelta(seconds=BACKUP_CHECK_TTL_S),
                        passed_at=None)
    session.add(check)
    await session.flush()
    return check


async def get_backup_check(session: AsyncSession, user_id: uuid.UUID, wallet_id: uuid.UUID,
                           check_id: uuid.UUID) -> BackupCheck:
    wallet = await _own_wallet(session, user_id, wallet_id)
    check = await session.get(BackupCheck, check_id)
    if check is None or check.wallet_id != wallet.id:
        raise BackupCheckNotFound()
    return check


def backup_check_open(check: BackupCheck, now: dt.datetime | None = None) -> bool:
    return (check.passed_at is None and (now or utcnow()) < check.expires_at
            and check.attempts < BACKUP_CHECK_MAX_ATTEMPTS)


async def answer_backup_check(session: AsyncSession, user_id: uuid.UUID, wallet_id: uuid.UUID,
                              check_id: uuid.UUID, *, words: Sequence[str], pin: str,
                              config: ChainConfig, info: RequestInfo | None = None) -> Wallet:
    with session.no_autoflush:
        check = await get_backup_check(session, user_id, wallet_id, check_id)
        if not backup_check_open(check):
            raise BackupCheckExpired()
        if len(words) != len(check.positions):
            raise InvalidInput(f"give the {len(check.positions)} words asked for")
        secret = await unlock(session, user_id, wallet_id, pin, config=config, info=info)
    assert secret.mnemonic is not None
    expected = [secret.mnemonic.words[p - 1] for p in check.positions]
    given = [" ".join(split_words(w)) for w in words]
    # Every word is compared (no early exit), so timing says nothing about which was right.
    right = all([hmac.compare_digest(e.encode(), g.encode())  # noqa: C419
                 for e, g in zip(expected, given, strict=True)])
    if not right:
        async def count(own: AsyncSession) -> int:
            row = (await own.execute(select(BackupCheck).where(BackupCheck.id == check.id)
                                     .with_for_update())).scalar_one()
            row.attempts += 1
            return BACKUP_CHECK_MAX_ATTEMPTS - row.attempts

        left = await _in_own_transaction(session, count)
        raise BackupWordsWrong(attempts_left=max(0, left))
    now = utcnow()
    check.passed_at = now
    wallet = await _own_wallet(session, user_id, wallet_id)
    wallet.backed_up_at = wallet.backed_up_at or now
    await audit.record(session, action="chains.wallet.backed_up", actor_type="user",
                       actor_id=str(user_id), subject_type="chains_wallet",
                       subject_id=str(wallet_id), ip=info.ip if info else None,
                       user_agent=info.user_agent if info else None)
    await outbox.publish(session, "chains.wallet.backed_up",
                         {"wallet_id": str(wallet_id), "user_id": str(user_id)},
                         key=str(user_id))
    await session.flush()
    return wallet


# -- address book ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OwnAddress:
    wallet_id: uuid.UUID
    wallet_name: str
    chain: str
    address: str


async def address_book(session: AsyncSession, user_id: uuid.UUID
                       ) -> tuple[list[OwnAddress], list[AddressBookEntry]]:
    """The customer's own addresses (from their wallets) and the ones they saved."""
    own = (await session.execute(
        select(Address, Wallet.name).join(Wallet, Wallet.id == Address.wallet_id)
        .where(Wallet.user_id == user_id).order_by(Wallet.created_at, Address.created_at))).all()
    saved = (await session.execute(
        select(AddressBookEntry).where(AddressBookEntry.user_id == user_id)
        .order_by(AddressBookEntry.label, AddressBookEntry.id))).scalars().all()
    return ([OwnAddress(a.wallet_id, name, a.chain, a.address) for a, name in own],
            list(saved))


async def add_address_book_entry(session: AsyncSession, user_id: uuid.UUID, *, chain: str,
                                 address: str, label: str) -> AddressBookEntry:
    symbol = get_chain(chain).symbol
    canonical = validate_address(symbol, address)  # a wrong checksum is refused, not fixed
    label = check_name(label)
    entries = (await session.execute(select(AddressBookEntry.chain, AddressBookEntry.address)
                                     .where(AddressBookEntry.user_id == user_id))).all()
    if (symbol, canonical) in set(map(tuple, entries)):
        raise AddressBookEntryExists()
    if len(entries) >= MAX_ADDRESS_BOOK_ENTRIES:
        raise AddressBookFull()
    entry = AddressBookEntry(id=uuid7(), user_id=user_id, chain=symbol, address=canonical,
                             label=label, created_at=utcnow())
    session.add(entry)
    await session.flush()
    return entry


async def remove_address_book_entry(session: AsyncSession, user_id: uuid.UUID,
                                    entry_id: uuid.UUID) -> None:
    entry = await session.get(AddressBookEntry, entry_id)
    if entry is None or entry.user_id != user_id:
        raise AddressBookEntryNotFound()
    await session.delete(entry)
    await session.flush()


# -- amounts -----------------------------------------------------------------------------------

_DECIMAL_RE = re.compile(r"^[0-9]{1,78}(\.[0-9]{1,36})?$")


def parse_amount(text: str, decimals: int) -> int:
    """"0.5" ETH → 500000000000000000 wei; never through a float."""
    text = text.strip().replace(",", "")
    if not _DECIMAL_RE.match(text):
        raise AmountInvalid("an amount is a number like 0.5")
    _, _, fraction = text.partition(".")
    if len(fraction) > decimals:
        raise AmountInvalid(f"at most {decimals} digits after the point")
    try:
        minor = int(Decimal(text).scaleb(decimals))
    except InvalidOperation:
        raise AmountInvalid("an amount is a number like 0.5") from None
    if not 0 < minor <= MAX_UINT256:
        raise AmountInvalid("an amount is more than zero")
    return minor


def format_amount(amount_minor: int, decimals: int) -> str:
    return uri.minor_to_decimal(amount_minor, decimals)


# -- talking to a chain ------------------------------------------------------------------------


def _evm_chain(chain: str) -> str:
    spec = get_chain(chain)
    if spec.family is not Family.EVM:
        raise ChainNotEvm()
    return spec.symbol


def _ok(result: Any) -> Any:
    """A client's result, or the typed error its ``ChainFailure`` means for the customer."""
    if not isinstance(result, ChainFailure):
        return result
    if isinstance(result, NetworkUnreachable):
        raise NetworkUnavailable()
    if isinstance(result, InsufficientFunds):
        raise InsufficientFundsForGas()
    if result.retryable:
        raise ChainNodeError()
    raise TransactionRejected(_REJECTION_DETAIL.get(result.code, "The network refused it."),
                              reason=result.code)


_REJECTION_DETAIL = {
    "wrong_chain": "It was signed for another chain.",
    "nonce_too_low": "Another transaction of this wallet took its place; try again.",
    "fee_too_low": "The network fee is too low right now; try again.",
    "invalid_transaction": "The network cannot accept this transaction.",
    "execution_reverted": "The contract refused the transfer.",
    "invalid_request": "The network did not understand the request.",
}


async def _check_network(client: EvmJsonRpcClient, config: ChainConfig, chain: str) -> None:
    found = _ok(await client.chain_id())
    if found != config.expected_chain_id(chain):
        raise ChainWrongNetwork(f"The {get_chain(chain).name} network answers as chain {found}, "
                                f"not {config.expected_chain_id(chain)}.")


# -- portfolio ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssetBalance:
    symbol: str
    decimals: int
    amount_minor: int | None  # None: not known right now
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Holding:
    chain: str
    address: str
    # ok | not_configured | unreachable | wrong_network | error | no_account (EOS)
    status: str
    native: AssetBalance
    tokens: tuple[AssetBalance, ...] = ()


async def portfolio(session: AsyncSession, user_id: uuid.UUID, wallet_id: uuid.UUID, *,
                    config: ChainConfig) -> list[Holding]:
    """Balances per EVM chain of the wallet, and on BTC, TRON, SOL, APT and EOS (with TRC-20
    and SPL tokens) where a node is configured; a chain without a reachable network says so."""
    with session.no_autoflush:  # no write (SQLite: no lock) is held while the network answers
        view = await get_wallet(session, user_id, wallet_id)
    evm = [a for a in view.addresses if get_chain(a.chain).family is Family.EVM]
    # The other chains are shown where the bank has a node for them (none: not listed; the
    # broadcast page says which chains have one).
    relayed = [a for a in view.addresses if a.chain in NODE_CHAINS
               and config.relay_configured(a.chain)]
    found: list[Holding | list[Holding]] = list(await asyncio.gather(
        *(_holding(config, a) for a in evm), *(_node_holdings(config, a) for a in relayed)))
    return [h for item in found for h in (item if isinstance(item, list) else [item])]


MAX_EOS_ACCOUNTS: Final = 10  # accounts shown per EOS key


async def _node_holdings(config: ChainConfig, address: Address) -> list[Holding]:
    """A chain read from a node of its own. EOS: the wallet holds a public key, and accounts
    are names registered on chain with it: one holding per account the key controls, or
    ``no_account`` (an imported watch-only EOS address is an account name already)."""
    spec = get_chain(address.chain)
    client = balance_client_for(spec.symbol, config.node_urls[spec.symbol],
                                timeout_s=config.timeout_s)
    try:
        owners: Any = [address.address]
        if spec.family is Family.EOS and address.address.startswith(("EOS", "PUB_")):
            owners = await client.key_accounts(address.address)
            if isinstance(owners, ChainFailure):
                return [_node_failed(config, spec.symbol, address.address, owners)]
            if not owners:
                return [Holding(spec.symbol, address.address, "no_account",
                                AssetBalance(spec.native_symbol, spec.decimals, None))]
        return [await _node_holding(client, config, spec.symbol, owner)
                for owner in owners[:MAX_EOS_ACCOUNTS]]
    finally:
        await client.aclose()


def _node_failed(config: ChainConfig, chain: str, owner: str, failure: ChainFailure) -> Holding:
    spec = get_chain(chain)
    status = {"network_unreachable": "unreachable",
              "wrong_network": "wrong_network"}.get(failure.code, "error")
    return Holding(chain, owner, status, AssetBalance(spec.native_symbol, spec.decimals, None),
                   tuple(AssetBalance(t.symbol, t.decimals, None, t.address)
                         for t in config.tokens_of(chain)))


async def _node_holding(client: Any, config: ChainConfig, chain: str, owner: str) -> Holding:
    spec = get_chain(chain)
    balance = await client.get_balance(owner)
    if isinstance(balance, ChainFailure):
        return _node_failed(config, chain, owner, balance)
    found = []
    for token in config.tokens_of(chain) if chain in NODE_TOKEN_CHAINS else ():
        held = await client.get_token_balance(token.address, owner)
        found.append(AssetBalance(token.symbol, token.decimals,
                                  None if isinstance(held, ChainFailure)
                                  else held.balance_minor, token.address))
    return Holding(chain, owner, "ok",
                   AssetBalance(spec.native_symbol, spec.decimals, balance.balance_minor),
                   tuple(found))


async def _holding(config: ChainConfig, address: Address) -> Holding:
    spec = get_chain(address.chain)
    unknown = AssetBalance(spec.native_symbol, spec.decimals, None)
    tokens = tuple(AssetBalance(t.symbol, t.decimals, None, t.address)
                   for t in config.tokens_of(spec.symbol))

    def status(code: str) -> Holding:
        return Holding(spec.symbol, address.address, code, unknown, tokens)

    if not config.configured(spec.symbol):
        return status("not_configured")
    try:
        async with config.client(spec.symbol) as client:
            await _check_network(client, config, spec.symbol)
            balance = _ok(await client.get_balance(address.address))
            found = []
            for token in config.tokens_of(spec.symbol):
                held = await client.get_token_balance(token.address, address.address)
                found.append(AssetBalance(token.symbol, token.decimals,
                                          None if isinstance(held, ChainFailure)
                                          else held.balance_minor, token.address))
    except NetworkUnavailable:
        return status("unreachable")
    except ChainWrongNetwork:
        return status("wrong_network")
    except BankwalletError:
        return status("error")
    return Holding(spec.symbol, address.address, "ok",
                   AssetBalance(spec.native_symbol, spec.decimals, balance.balance_wei),
                   tuple(found))


# -- send --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendPlan:
    """What will be signed, as the customer confirms it."""

    wallet_id: uuid.UUID
    chain: str
    chain_id: int
    from_address: str
    to_address: str
    token: TokenSpec | None
    symbol: str
    decimals: int
    amount_minor: int
    nonce: int
    gas_limit: int
    max_fee_per_gas_wei: int
    max_priority_fee_per_gas_wei: int
    eip1559: bool

    @property
    def max_fee_wei(self) -> int:
        """The most the network fee can cost (gas limit × max fee per gas)."""
        return self.gas_limit * self.max_fee_per_gas_wei

    def fields(self) -> dict[str, Any]:
        """The transaction for ``evm_signing.sign_transaction``."""
        if self.token is not None:
            to, value = self.token.address, 0
            data = erc20_transfer_data(self.to_address, self.amount_minor)
        else:
            to, value, data = self.to_address, self.amount_minor, b""
        tx: dict[str, Any] = {"chainId": self.chain_id, "nonce": self.nonce,
                              "gas": self.gas_limit, "to": to, "value": value,
                              "data": "0x" + data.hex()}
        if self.eip1559:
            tx.update(maxFeePerGas=self.max_fee_per_gas_wei,
                      maxPriorityFeePerGas=self.max_priority_fee_per_gas_wei)
        else:
            tx["gasPrice"] = self.max_fee_per_gas_wei
        return tx


async def _sending_address(session: AsyncSession, user_id: uuid.UUID, wallet_id: uuid.UUID,
                           chain: str) -> tuple[Wallet, Address]:
    view = await get_wallet(session, user_id, wallet_id)
    if view.wallet.kind == KIND_WATCH_ONLY:
        raise WalletWatchOnly()
    address = view.address_on(_evm_chain(chain))
    if address is None:
        raise ChainNotEvm(f"This wallet has no {get_chain(chain).name} address.")
    return view.wallet, address


async def plan_send(session: AsyncSession, user_id: uuid.UUID, wallet_id: uuid.UUID, *,
                    chain: str, to: str, amount_minor: int, token: str | None = None,
                    config: ChainConfig) -> SendPlan:
    """Build the transaction against the live chain: nonce, EIP-1559 fees, gas, balances."""
    symbol = _evm_chain(chain)
    with session.no_autoflush:  # no write (SQLite: no lock) is held while the network answers
        _, source = await _sending_address(session, user_id, wallet_id, symbol)
        local_nonce = await _next_local_nonce(session, symbol, source.address)
    recipient = validate_address(symbol, to)
    if isinstance(amount_minor, bool) or not 0 < amount_minor <= MAX_UINT256:
        raise AmountInvalid("an amount is a whole number of the smallest unit, above zero")
    token_spec = config.token(symbol, token) if token else None
    async with config.client(symbol) as client:
        await _check_network(client, config, symbol)
        balance = _ok(await client.get_balance(source.address)).balance_wei
        if token_spec is not None:
            held = _ok(await client.get_token_balance(token_spec.address, source.address))
            if held.balance_minor < amount_minor:
                raise InsufficientTokenBalance()
            request = TxRequest(source.address, token_spec.address, 0,
                                erc20_transfer_data(recipient, amount_minor))
        else:
            if balance < amount_minor:
                raise InsufficientFundsForAmount()
            request = TxRequest(source.address, recipient, amount_minor)
        fees: FeeEstimate = _ok(await client.estimate_fees())
        gas = await client.estimate_gas(request)
        if isinstance(gas, ExecutionReverted):
            raise TransactionRejected(_REJECTION_DETAIL["execution_reverted"],
                                      reason=gas.code)
        gas = _ok(gas)
        node_nonce = _ok(await client.get_nonce(source.address))
    gas_limit = gas if gas == NATIVE_TRANSFER_GAS else gas * (100 + GAS_HEADROOM_PERCENT) // 100
    max_fee = fees.max_fee_wei if fees.eip1559 else fees.gas_price_wei
    priority = fees.max_priority_fee_wei if fees.eip1559 else fees.gas_price_wei
    assert max_fee is not None and priority is not None
    plan = SendPlan(
        wallet_id=wallet_id, chain=symbol, chain_id=config.expected_chain_id(symbol),
        from_address=source.address, to_address=recipient, token=token_spec,
        symbol=token_spec.symbol if token_spec else get_chain(symbol).native_symbol,
        decimals=token_spec.decimals if token_spec else get_chain(symbol).decimals,
        amount_minor=amount_minor,
        nonce=max(node_nonce, local_nonce),
        gas_limit=gas_limit, max_fee_per_gas_wei=max_fee,
        max_priority_fee_per_gas_wei=priority, eip1559=fees.eip1559)
    native_needed = plan.max_fee_wei + (0 if token_spec else amount_minor)
    if balance < native_needed:
        raise InsufficientFundsForGas(
            f"The fee can reach {format_amount(plan.max_fee_wei, 18)} "
            f"{get_chain(symbol).native_symbol}.")
    return plan


async def _next_local_nonce(session: AsyncSession, chain: str, from_address: str) -> int:
    """Past our own transactions that the node may not have seen yet (signed, not sent)."""
    highest = (await session.execute(
        select(func.max(ChainTransaction.nonce)).where(
            ChainTransaction.chain == chain, ChainTransaction.from_address == from_address,
            ChainTransaction.status.in_(OPEN_STATUSES)))).scalar_one()
    return 0 if highest is None else highest + 1


async def send(session: AsyncSession, user_id: uuid.UUID, wallet_id: uuid.UUID, *,
               chain: str, to: str, amount_minor: int, token: str | None = None,
               secret: UnlockedSecret, idempotency_key: str, config: ChainConfig,
               max_fee_wei: int | None = None,
               info: RequestInfo | None = None) -> ChainTransaction:
    """Sign and broadcast. The signed transaction is committed before it leaves, so the same
    Idempotency-Key never signs twice and a crash is healed by sending the same bytes."""
    assert secret.wallet_id == wallet_id, "a secret unlocked for another wallet"
    tx_id = derived_id("chains.send", user_id, idempotency_key)
    with session.no_autoflush:
        existing = await session.get(ChainTransaction, tx_id)
        if existing is not None:
            if existing.wallet_id != wallet_id:
                raise Conflict("This Idempotency-Key was used for another wallet.")
            return existing
        await _lock_wallet(session, user_id, wallet_id)
    plan = await plan_send(session, user_id, wallet_id, chain=chain, to=to,
                           amount_minor=amount_minor, token=token, config=config)
    if max_fee_wei is not None and plan.max_fee_wei > max_fee_wei:
        raise FeeAbovePreview(max_fee_wei=plan.max_fee_wei)
    assessment = await risk_service.assess(
        session, user_id=user_id, action="chains.send", amount_minor=plan.amount_minor,
        currency=plan.symbol, counterparty=plan.to_address)
    # Self-custody: the customer's PIN is the confirmation, so STEP_UP (which any amount in
    # wei would trigger) is not asked; a DENY or REVIEW still stops the send.
    if assessment.decision in (risk_service.Decision.DENY, risk_service.Decision.REVIEW):
        raise SendDenied()
    _, source = await _sending_address(session, user_id, wallet_id, plan.chain)
    signed = evm_signing.sign_transaction(plan.fields(), secret.evm_key(source))
    assert signed.sender == plan.from_address
    now = utcnow()
    row = ChainTransaction(
        id=tx_id, wallet_id=wallet_id, user_id=user_id, chain=plan.chain,
        chain_id=plan.chain_id, from_address=plan.from_address, to_address=plan.to_address,
        token_address=plan.token.address if plan.token else None, symbol=plan.symbol,
        decimals=plan.decimals, amount_minor=str(plan.amount_minor), nonce=plan.nonce,
        gas_limit=plan.gas_limit, max_fee_per_gas_wei=str(plan.max_fee_per_gas_wei),
        max_priority_fee_per_gas_wei=str(plan.max_priority_fee_per_gas_wei),
        raw_tx=signed.raw, tx_hash=signed.hash, status=SIGNED, failure_code=None,
        block_number=None, fee_wei=None, created_at=now, broadcast_at=None, finished_at=None)
    session.add(row)
    await audit.record(session, action="chains.transaction.signed", actor_type="user",
                       actor_id=str(user_id), subject_type="chains_transaction",
                       subject_id=str(tx_id), ip=info.ip if info else None,
                       user_agent=info.user_agent if info else None,
                       data={"chain": plan.chain, "tx_hash": signed.hash})
    await session.commit()  # the intent is durable before anything leaves
    await broadcast(session, row, config=config, raise_on_failure=True)
    return row


async def _lock_wallet(session: AsyncSession, user_id: uuid.UUID, wallet_id: uuid.UUID) -> None:
    """One send per wallet at a time (PostgreSQL row lock until the intent commits), so two
    sends get consecutive nonces; SQLite serialises writers anyway."""
    locked = (await session.execute(select(Wallet.id).where(
        Wallet.id == wallet_id, Wallet.user_id == user_id).with_for_update())).scalar_one_or_none()
    if locked is None:
        raise WalletNotFound()


async def _transition(session: AsyncSession, row: ChainTransaction, expected: str,
                      **values: Any) -> bool:
    """Move ``row`` out of ``expected`` unless someone else did first (one event each)."""
    moved = await session.execute(
        update(ChainTransaction).where(ChainTransaction.id == row.id,
                                       ChainTransaction.status == expected)
        .values(**values).execution_options(synchronize_session=False))
    await session.refresh(row)
    return moved.rowcount == 1


def _event(row: ChainTransaction) -> dict[str, Any]:
    return {"transaction_id": str(row.id), "wallet_id": str(row.wallet_id),
            "user_id": str(row.user_id), "chain": row.chain, "tx_hash": row.tx_hash,
            "status": row.status, "symbol": row.symbol, "amount_minor": row.amount_minor,
            "token": row.token_address, "to": row.to_address,
            "failure_code": row.failure_code}


async def broadcast(session: AsyncSession, row: ChainTransaction, *, config: ChainConfig,
                    raise_on_failure: bool = False) -> None:
    """Send the signed bytes (again: the same bytes are the same transaction)."""
    if row.status != SIGNED:
        return
    try:
        async with config.client(row.chain) as client:
            result = await client.send_raw_transaction(row.raw_tx)
    except NetworkNotConfigured:
        return
    if isinstance(result, SentTransaction):
        if await _transition(session, row, SIGNED, status=PENDING, broadcast_at=utcnow()):
            await outbox.publish(session, "chains.transaction.broadcast", _event(row),
                                 key=str(row.user_id))
        return
    if result.retryable:
        return  # still signed: the tracking job sends it again
    if await _transition(session, row, SIGNED, status=FAILED, failure_code=result.code,
                         finished_at=utcnow()):
        await outbox.publish(session, "chains.transaction.failed", _event(row),
                             key=str(row.user_id))
    if raise_on_failure:
        await session.commit()  # the outcome is recorded before the error is reported
        _ok(result)


async def refresh(session: AsyncSession, row: ChainTransaction, *, config: ChainConfig) -> None:
    """Move a transaction on: send it if it never left, follow its receipt if it did."""
    if row.status == SIGNED:
        await broadcast(session, row, config=config)
    if row.status != PENDING:
        return
    try:
        async with config.client(row.chain) as client:
            receipt = await client.get_receipt(row.tx_hash)
    except NetworkNotConfigured:
        return
    if not isinstance(receipt, TxReceipt) or receipt.status is TxStatus.PENDING:
        return
    if receipt.status is TxStatus.CONFIRMED and receipt.confirmations < config.confirmations:
        return
    status = CONFIRMED if receipt.status is TxStatus.CONFIRMED else FAILED
    fee = receipt.fee_wei
    if await _transition(session, row, PENDING, status=status, block_number=receipt.block_number,
                         fee_wei=None if fee is None else str(fee),
                         failure_code=None if status == CONFIRMED else "reverted",
                         finished_at=utcnow()):
        await outbox.publish(session, f"chains.transaction.{status}", _event(row),
                             key=str(row.user_id))


async def list_transactions(session: AsyncSession, user_id: uuid.UUID, wallet_id: uuid.UUID, *,
                            limit: int = 50) -> list[ChainTransaction]:
    wallet = await _own_wallet(session, user_id, wallet_id)
    return list((await session.execute(
        select(ChainTransaction).where(ChainTransaction.wallet_id == wallet.id)
        .order_by(ChainTransaction.created_at.desc(), ChainTransaction.id.desc())
        .limit(max(1, min(limit, 100))))).scalars())


async def get_transaction(session: AsyncSession, user_id: uuid.UUID, wallet_id: uuid.UUID,
                          tx_id: uuid.UUID, *, config: ChainConfig | None = None
                          ) -> ChainTransaction:
    """One transaction; with ``config``, moved on first (the status page polls this)."""
    with session.no_autoflush:
        wallet = await _own_wallet(session, user_id, wallet_id)
        row = await session.get(ChainTransaction, tx_id)
    if row is None or row.wallet_id != wallet.id:
        raise TransactionNotFound()
    if config is not None and row.status in OPEN_STATUSES:
        await refresh(session, row, config=config)
    return row


async def open_transaction_ids(session: AsyncSession, *,
                               limit: int = TRACK_BATCH_MAX) -> list[uuid.UUID]:
    """What the tracking job looks at: sent and unconfirmed, or signed and never sent (a
    request broadcasts its own transaction first, so only after ``REBROADCAST_AFTER_S``)."""
    cutoff = utcnow() - dt.timedelta(seconds=REBROADCAST_AFTER_S)
    return list((await session.execute(
        select(ChainTransaction.id).where(
            (ChainTransaction.status == PENDING)
            | ((ChainTransaction.status == SIGNED) & (ChainTransaction.created_at < cutoff)))
        .order_by(ChainTransaction.created_at).limit(limit))).scalars())


async def refresh_by_id(session: AsyncSession, tx_id: uuid.UUID, *,
                        config: ChainConfig) -> None:
    row = await session.get(ChainTransaction, tx_id)
    if row is not None and row.status in OPEN_STATUSES:
        await refresh(session, row, config=config)


# -- relaying transactions signed offline (BTC, TRON, SOL) --------------------------------------


MAX_RELAY_CHARS: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class Relayed:
    """A transaction signed elsewhere, as the chain's node sees it now."""

    chain: str
    txid: str  # Bitcoin and TRON: hex; Solana: the first signature, base58
    status: str  # pending | confirmed | failed
    already_known: bool = False
    block_number: int | None = None  # Solana: the slot
    confirmations: int = 0


def relay_payload(chain: str, text: str) -> str:
    """What the node takes: Bitcoin raw hex (a finalized PSBT in base64 is extracted first),
    TRON's signed protobuf in hex, Solana's wire transaction in base64."""
    symbol = relayed_chain(chain)
    text = (text or "").strip()
    if not text or len(text) > MAX_RELAY_CHARS:
        raise InvalidInput("paste the signed transaction")
    if symbol == "BTC":
        from bankwallet.chains.btc_psbt import raw_transaction

        return raw_transaction(text)
    return text.removeprefix("0x") if symbol == "TRON" else text


async def relay(session: AsyncSession, user_id: uuid.UUID, *, chain: str, signed: str,
                config: ChainConfig, info: RequestInfo | None = None) -> Relayed:
    """Broadcast a transaction the customer signed offline (``chains sign-tx``, a PSBT signer,
    another wallet) through the bank's node. The bank holds nothing here: it passes bytes on,
    which is safe to repeat (the same bytes are the same transaction)."""
    symbol = relayed_chain(chain)
    if not config.relay_configured(symbol):
        raise no_node_configured(symbol)  # whatever was pasted: first say there is no node
    raw = relay_payload(symbol, signed)  # refuse malformed input before reaching the node
    async with config.relay_client(symbol) as client:
        relayed = await broadcast_signed(client, chain=symbol, signed=raw)
    await audit.record(session, action="chains.transaction.relayed", actor_type="user",
                       actor_id=str(user_id), subject_type="chains_relayed",
                       subject_id=relayed.txid[:128], ip=info.ip if info else None,
                       user_agent=info.user_agent if info else None,
                       data={"chain": symbol, "already_known": relayed.already_known})
    return relayed


async def broadcast_signed(client: BroadcastClient, *, chain: str, signed: str) -> Relayed:
    """Send through ``client`` and look once at what the node says of it (the CLI's path)."""
    symbol = relayed_chain(chain)
    sent = relay_ok(await client.send_raw_transaction(relay_payload(symbol, signed)))
    receipt = await client.get_receipt(sent.tx_hash)
    return _relayed(symbol, sent.tx_hash, receipt, already_known=sent.already_known)


async def relayed_status(*, chain: str, txid: str, config: ChainConfig) -> Relayed:
    symbol = relayed_chain(chain)
    async with config.relay_client(symbol) as client:
        return await status_of(client, chain=symbol, txid=txid)


async def status_of(client: BroadcastClient, *, chain: str, txid: str) -> Relayed:
    symbol = relayed_chain(chain)
    txid = (txid or "").strip()
    if not 0 < len(txid) <= 128:
        raise InvalidInput("a transaction id is 1 to 128 characters")
    return _relayed(symbol, txid, relay_ok(await client.get_receipt(txid)))


def _relayed(chain: str, txid: str, receipt: TxReceipt | ChainFailure, *,
             already_known: bool = False) -> Relayed:
    if not isinstance(receipt, TxReceipt):  # sent; the status is not known yet
        return Relayed(chain, txid, PENDING, already_known)
    status = {TxStatus.CONFIRMED: CONFIRMED, TxStatus.FAILED: FAILED}.get(receipt.status,
                                                                          PENDING)
    return Relayed(chain, receipt.tx_hash, status, already_known, receipt.block_number,
                   receipt.confirmations)


_RELAY_REJECTIONS: Final[dict[str, type[TransactionRejected]]] = {
    "fee_too_low": RelayFeeTooLow,
    "inputs_missing_or_spent": RelayInputsMissingOrSpent,
    "transaction_expired": RelayTransactionExpired,
    "invalid_transaction": RelayTransactionInvalid,
    "insufficient_funds": RelayInsufficientFunds,
}


def relay_ok(result: Any) -> Any:
    """A relay client's result, or the problem its ``ChainFailure`` is for the customer;
    the node's own words go along (they name the rule, never a secret)."""
    if not isinstance(result, ChainFailure):
        return result
    if isinstance(result, NetworkUnreachable):
        raise NetworkUnavailable()
    rejection = _RELAY_REJECTIONS.get(result.code)
    if rejection is None:
        if result.retryable:
            raise ChainNodeError(node_message=result.message[:300])
        rejection = TransactionRejected
    raise rejection(node_message=result.message[:300], reason=result.code)


# -- signing messages --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageSignature:
    address: str
    signature: str


async def _signing_address(session: AsyncSession, user_id: uuid.UUID,
                           wallet_id: uuid.UUID) -> Address:
    _, address = await _sending_address(session, user_id, wallet_id, "ETH")
    return address


def decode_message(message: str, encoding: str = "text") -> bytes:
    if encoding == "hex":
        text = message.strip()
        if not text.startswith("0x"):
            raise InvalidInput("a hex message starts with 0x")
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise InvalidInput("not valid hex") from None
    return message.encode()


async def sign_message(session: AsyncSession, user_id: uuid.UUID, wallet_id: uuid.UUID, *,
                       message: bytes, secret: UnlockedSecret,
                       info: RequestInfo | None = None) -> MessageSignature:
    """EIP-191 ``personal_sign`` with the wallet's EVM key."""
    assert secret.wallet_id == wallet_id, "a secret unlocked for another wallet"
    address = await _signing_address(session, user_id, wallet_id)
    signature = evm_signing.personal_sign(message, secret.evm_key(address))
    await audit.record(session, action="chains.message.signed", actor_type="user",
                       actor_id=str(user_id), subject_type="chains_wallet",
                       subject_id=str(wallet_id), ip=info.ip if info else None,
                       user_agent=info.user_agent if info else None,
                       data={"kind": "personal_sign", "bytes": len(message)})
    return MessageSignature(address.address, signature)


async def sign_typed_data(session: AsyncSession, user_id: uuid.UUID, wallet_id: uuid.UUID, *,
                          typed_data: dict[str, Any], secret: UnlockedSecret,
                          info: RequestInfo | None = None) -> evm_signing.TypedDataSignature:
    """EIP-712 (``eth_signTypedData_v4``) with the wallet's EVM key."""
    assert secret.wallet_id == wallet_id, "a secret unlocked for another wallet"
    address = await _signing_address(session, user_id, wallet_id)
    preview = evm_signing.preview_typed_data(typed_data)
    signed = evm_signing.sign_typed_data(typed_data, secret.evm_key(address))
    await audit.record(session, action="chains.message.signed", actor_type="user",
                       actor_id=str(user_id), subject_type="chains_wallet",
                       subject_id=str(wallet_id), ip=info.ip if info else None,
                       user_agent=info.user_agent if info else None,
                       data={"kind": "eip712", "primary_type": preview.primary_type[:64],
                             "warnings": preview.warnings})
    return signed


async def check_signing_wallet(session: AsyncSession, user_id: uuid.UUID,
                               wallet_id: uuid.UUID) -> Address:
    """The address that signs for this wallet (404 if not the customer's, 409 if watch-only)."""
    return await _signing_address(session, user_id, wallet_id)
