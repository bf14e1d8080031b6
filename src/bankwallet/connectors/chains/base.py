"""The interface every chain family's client implements: ``ChainClient`` for EVM chains, and
its broadcasting half ``BroadcastClient`` for the others (Bitcoin Core, a TRON full node, Solana
JSON-RPC), which relay transactions signed offline and follow them.

A client reads a chain and sends transactions that were signed elsewhere: it holds no keys,
never touches the database, and never raises for what the network or the node did. Every
method returns its result or a ``ChainFailure`` subclass, so the caller decides (the UI says
"network unreachable" for ``NetworkUnreachable``, a wallet service re-tries the ``retryable``
ones). Amounts are integers in the chain's smallest unit (wei for ether, the token's base unit
for a token: decimals are not applied here). Addresses are 0x hex strings; results use the
EIP-55 checksummed form. On other families amounts are satoshi, sun and lamports, addresses and
transaction ids are as the chain writes them (bech32, base58, hex), and a "raw transaction" is
hex (Bitcoin, TRON's protobuf) or base64 (Solana's wire format).

An unknown provider status maps to ``TxStatus.PENDING``, never to success or failure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable


class TxStatus(enum.StrEnum):
    PENDING = "pending"      # not in a block yet, unknown to the node, or an unknown status
    CONFIRMED = "confirmed"  # in a block and executed successfully
    FAILED = "failed"        # in a block, but reverted: the fee was paid, nothing else moved


@dataclass(frozen=True, slots=True)
class ChainFailure:
    """Why a request to a chain gave no result. ``message`` is the node's words (or ours)."""

    code: ClassVar[str] = "chain_error"
    retryable: ClassVar[bool] = False  # may pass if the same request is made again later

    message: str
    rpc_code: int | None = None
    data: str | None = None  # 0x hex, e.g. the revert data of a failed call


@dataclass(frozen=True, slots=True)
class NetworkUnreachable(ChainFailure):
    """No answer: connection refused, DNS, TLS or a timeout. After a send, the transaction
    may or may not have reached the node: send the same signed bytes again (same hash)."""

    code: ClassVar[str] = "network_unreachable"
    retryable: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class ProviderError(ChainFailure):
    """The node answered, but not usefully: an HTTP error, a malformed answer, an RPC error
    this client does not know."""

    code: ClassVar[str] = "provider_error"
    retryable: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class InvalidRequest(ChainFailure):
    """The caller asked for something malformed (an address that is not one, a token
    address without an ERC-20 contract)."""

    code: ClassVar[str] = "invalid_request"


@dataclass(frozen=True, slots=True)
class InsufficientFunds(ChainFailure):
    code: ClassVar[str] = "insufficient_funds"


@dataclass(frozen=True, slots=True)
class NonceTooLow(ChainFailure):
    """The sender already used this nonce (in another transaction, or this one)."""

    code: ClassVar[str] = "nonce_too_low"


@dataclass(frozen=True, slots=True)
class NonceTooHigh(ChainFailure):
    code: ClassVar[str] = "nonce_too_high"
    retryable: ClassVar[bool] = True  # after the sender's earlier transactions land


@dataclass(frozen=True, slots=True)
class WrongChain(ChainFailure):
    """Signed for another chain id, or without one (no replay protection)."""

    code: ClassVar[str] = "wrong_chain"


@dataclass(frozen=True, slots=True)
class FeeTooLow(ChainFailure):
    """The fee is below the block's base fee, or too low to replace a pending transaction."""

    code: ClassVar[str] = "fee_too_low"


@dataclass(frozen=True, slots=True)
class InvalidTransaction(ChainFailure):
    """Undecodable bytes, a bad signature, too little gas or too much: never valid as is."""

    code: ClassVar[str] = "invalid_transaction"


@dataclass(frozen=True, slots=True)
class InputsMissingOrSpent(ChainFailure):
    """Bitcoin: a coin the transaction spends does not exist or is spent already (by a
    confirmed transaction, or by another one waiting in the mempool)."""

    code: ClassVar[str] = "inputs_missing_or_spent"


@dataclass(frozen=True, slots=True)
class TransactionExpired(ChainFailure):
    """Signed against a block that is too old (Solana's recent blockhash, TRON's reference
    block and expiration): sign it again against a recent one."""

    code: ClassVar[str] = "transaction_expired"


@dataclass(frozen=True, slots=True)
class ExecutionReverted(ChainFailure):
    """A call or a gas estimate ran into a revert; ``data`` holds the revert data if any."""

    code: ClassVar[str] = "execution_reverted"


@dataclass(frozen=True, slots=True)
class NativeBalance:
    address: str
    balance_wei: int  # the smallest unit of the chain's coin (satoshi, sun, lamports off EVM)

    @property
    def balance_minor(self) -> int:
        return self.balance_wei


@dataclass(frozen=True, slots=True)
class TokenBalance:
    token: str
    address: str
    balance_minor: int  # in the token's base unit: divide by 10**decimals to show it


@dataclass(frozen=True, slots=True)
class FeeEstimate:
    """What to offer per gas unit. On an EIP-1559 chain all four are set and a transaction
    offers ``max_fee_wei`` and ``max_priority_fee_wei``; on a legacy chain the three EIP-1559
    fields are None and it offers ``gas_price_wei``."""

    gas_price_wei: int                   # legacy price; on EIP-1559: base fee + priority fee
    base_fee_wei: int | None = None      # of the next block
    max_priority_fee_wei: int | None = None
    max_fee_wei: int | None = None       # room for the base fee to rise, plus the tip

    @property
    def eip1559(self) -> bool:
        return self.max_fee_wei is not None


@dataclass(frozen=True, slots=True)
class TxRequest:
    """A transaction to estimate (unsigned, no fees): ``to_address`` None creates a contract."""

    from_address: str | None
    to_address: str | None
    value_wei: int = 0
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class SentTransaction:
    tx_hash: str
    already_known: bool = False  # the node had it already (a re-send of the same bytes)


@dataclass(frozen=True, slots=True)
class TxLog:
    """An event a transaction emitted (EVM logs; empty on families without them)."""

    address: str
    topics: tuple[str, ...]
    data: str  # 0x hex
    log_index: int


@dataclass(frozen=True, slots=True)
class TxReceipt:
    tx_hash: str
    status: TxStatus
    block_number: int | None = None
    confirmations: int = 0  # 1 when in the newest block
    gas_used: int | None = None
    effective_gas_price_wei: int | None = None
    contract_address: str | None = None  # of a contract this transaction created
    logs: tuple[TxLog, ...] = field(default=())

    @property
    def fee_wei(self) -> int | None:
        if self.gas_used is None or self.effective_gas_price_wei is None:
            return None
        return self.gas_used * self.effective_gas_price_wei


@runtime_checkable
class BroadcastClient(Protocol):
    """What every family's client does: a balance, relay signed bytes, follow a transaction.

    ``get_receipt`` of a transaction the node does not know is ``PENDING`` (it may still be
    on its way); ``confirmations`` counts blocks (Bitcoin, TRON) or slots (Solana)."""

    async def get_balance(self, address: str) -> NativeBalance | ChainFailure: ...

    async def send_raw_transaction(self, raw: str, /) -> SentTransaction | ChainFailure:
        """Broadcast signed bytes. Safe to repeat: the same bytes are the same transaction."""
        ...

    async def get_receipt(self, tx_hash: str, /) -> TxReceipt | ChainFailure: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ChainClient(BroadcastClient, Protocol):
    """An EVM chain: also tokens, nonces, gas."""

    async def chain_id(self) -> int | ChainFailure: ...

    async def get_token_balance(self, token: str,
                                address: str) -> TokenBalance | ChainFailure: ...

    async def get_nonce(self, address: str) -> int | ChainFailure:
        """The next nonce to sign with, counting the sender's pending transactions."""
        ...

    async def estimate_fees(self) -> FeeEstimate | ChainFailure: ...

    async def estimate_gas(self, tx: TxRequest) -> int | ChainFailure: ...
