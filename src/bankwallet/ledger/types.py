"""The ledger's value types, shared by the engine, the stores and the service.

Modelled on TigerBeetle: accounts with flags and four balances, transfers with a
client-chosen id, two-phase holds and linked chains, and one result code per transfer.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

AMOUNT_MAX = 2**63 - 1  # BIGINT; balances are bounded by it too
TIMEOUT_MAX_S = 366 * 24 * 3600
CODE_MAX = 65535  # why money moved: a small number, as TigerBeetle's u16 code
USER_DATA_MAX_BYTES = 2048
GENESIS_HASH = bytes(32)


class AccountFlags(enum.IntFlag):
    NONE = 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 2
    CREDITS_MUST_NOT_EXCEED_DEBITS = 4


class TransferFlags(enum.IntFlag):
    NONE = 0
    LINKED = 1
    PENDING = 2
    POST_PENDING = 4
    VOID_PENDING = 8


TWO_PHASE = TransferFlags.PENDING | TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING
RESOLVES = TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING
KNOWN_TRANSFER_FLAGS = TransferFlags.LINKED | TWO_PHASE


class Result(enum.StrEnum):
    """One result per transfer. ``created`` and ``exists`` are successes."""

    CREATED = "created"
    EXISTS = "exists"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    FLAGS_UNKNOWN = "flags_unknown"
    AMOUNT_MUST_NOT_BE_ZERO = "amount_must_not_be_zero"
    AMOUNT_TOO_LARGE = "amount_too_large"
    CODE_MUST_NOT_BE_ZERO = "code_must_not_be_zero"
    CODE_TOO_LARGE = "code_too_large"
    DEBIT_ACCOUNT_REQUIRED = "debit_account_required"
    CREDIT_ACCOUNT_REQUIRED = "credit_account_required"
    LEDGER_REQUIRED = "ledger_required"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    PENDING_ID_MUST_BE_ZERO = "pending_id_must_be_zero"
    PENDING_ID_REQUIRED = "pending_id_required"
    PENDING_ID_MUST_BE_DIFFERENT = "pending_id_must_be_different"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    TIMEOUT_INVALID = "timeout_invalid"
    USER_DATA_INVALID = "user_data_invalid"
    EXISTS_WITH_DIFFERENT_FIELDS = "transfer_exists_with_different_fields"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER = "accounts_must_have_the_same_ledger"
    TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS = "transfer_must_have_the_same_ledger_as_accounts"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT = "pending_transfer_has_different_debit_account_id"
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT = "pending_transfer_has_different_credit_account_id"
    PENDING_TRANSFER_HAS_DIFFERENT_LEDGER = "pending_transfer_has_different_ledger"
    PENDING_TRANSFER_HAS_DIFFERENT_CODE = "pending_transfer_has_different_code"
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = "pending_transfer_has_different_amount"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"
    OVERFLOWS_DEBITS = "overflows_debits"
    OVERFLOWS_CREDITS = "overflows_credits"

    @property
    def ok(self) -> bool:
        return self in (Result.CREATED, Result.EXISTS)


MESSAGES: dict[Result, str] = {
    Result.CREATED: "The transfer was applied.",
    Result.EXISTS: "A transfer with this id and the same fields was already applied.",
    Result.LINKED_EVENT_FAILED: "Another transfer in the same linked chain failed.",
    Result.LINKED_EVENT_CHAIN_OPEN: "The last transfer of the request is flagged linked.",
    Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE: "pending, post_pending and void_pending exclude each other.",
    Result.FLAGS_UNKNOWN: "The transfer has flags this ledger does not know.",
    Result.AMOUNT_MUST_NOT_BE_ZERO: "The amount must be greater than zero.",
    Result.AMOUNT_TOO_LARGE: "The amount is larger than 2^63-1 minor units.",
    Result.CODE_MUST_NOT_BE_ZERO: "A transfer needs a code that says why it was made.",
    Result.CODE_TOO_LARGE: "The code is larger than 65535.",
    Result.DEBIT_ACCOUNT_REQUIRED: "The debit account is missing.",
    Result.CREDIT_ACCOUNT_REQUIRED: "The credit account is missing.",
    Result.LEDGER_REQUIRED: "The ledger (currency) is missing.",
    Result.ACCOUNTS_MUST_BE_DIFFERENT: "The debit and credit accounts are the same.",
    Result.PENDING_ID_MUST_BE_ZERO: "Only post_pending and void_pending transfers name a pending id.",
    Result.PENDING_ID_REQUIRED: "post_pending and void_pending need the pending transfer's id.",
    Result.PENDING_ID_MUST_BE_DIFFERENT: "A transfer cannot resolve itself.",
    Result.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER: "Only pending transfers have a timeout.",
    Result.TIMEOUT_INVALID: "The timeout is negative or longer than a year.",
    Result.USER_DATA_INVALID: "Metadata must be a small object of strings, integers and booleans.",
    Result.EXISTS_WITH_DIFFERENT_FIELDS: "A transfer with this id exists with other fields.",
    Result.DEBIT_ACCOUNT_NOT_FOUND: "The debit account does not exist.",
    Result.CREDIT_ACCOUNT_NOT_FOUND: "The credit account does not exist.",
    Result.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER: "The two accounts are in different currencies.",
    Result.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS: "The transfer's currency is not the accounts' currency.",
    Result.PENDING_TRANSFER_NOT_FOUND: "The pending transfer does not exist.",
    Result.PENDING_TRANSFER_NOT_PENDING: "The referenced transfer is not a pending transfer.",
    Result.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT: "The pending transfer has another debit account.",
    Result.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT: "The pending transfer has another credit account.",
    Result.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER: "The pending transfer is in another currency.",
    Result.PENDING_TRANSFER_HAS_DIFFERENT_CODE: "The pending transfer has another code.",
    Result.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT: "A void must release the whole pending amount.",
    Result.EXCEEDS_PENDING_TRANSFER_AMOUNT: "The amount posted is more than the hold.",
    Result.PENDING_TRANSFER_ALREADY_POSTED: "The hold was already posted.",
    Result.PENDING_TRANSFER_ALREADY_VOIDED: "The hold was already voided.",
    Result.PENDING_TRANSFER_EXPIRED: "The hold has expired.",
    Result.EXCEEDS_CREDITS: "The debit account does not have enough funds.",
    Result.EXCEEDS_DEBITS: "The credit account would exceed its debits.",
    Result.OVERFLOWS_DEBITS: "The debit account's balance would overflow.",
    Result.OVERFLOWS_CREDITS: "The credit account's balance would overflow.",
}


@dataclass(slots=True)
class AccountState:
    id: uuid.UUID
    ledger: str
    flags: int
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    def balances(self) -> tuple[int, int, int, int]:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)


@dataclass(frozen=True, slots=True)
class TransferIn:
    """What a client asks for. For post/void the accounts, ledger, code and amount may be
    left out: they come from the pending transfer (amount: the whole hold)."""

    id: uuid.UUID
    debit_account_id: uuid.UUID | None = None
    credit_account_id: uuid.UUID | None = None
    amount: int | None = None
    ledger: str | None = None
    code: int = 0
    flags: int = 0
    pending_id: uuid.UUID | None = None
    timeout_s: int = 0
    user_data: dict[str, Any] | None = None
    # Set only by the hold-expiry job: lets a void release a hold past its timeout.
    expire: bool = False


@dataclass(slots=True)
class Transfer:
    """A transfer as stored: immutable once written; ``hash`` chains it to the one before."""

    id: uuid.UUID
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    ledger: str
    code: int
    flags: int
    pending_id: uuid.UUID | None
    timeout_s: int
    user_data: dict[str, Any] | None
    created_at: dt.datetime
    expires_at: dt.datetime | None = None
    seq: int = 0
    hash: bytes = b""

    def canonical_bytes(self) -> bytes:
        """Every field in a fixed binary layout (big-endian), metadata as sorted JSON."""
        data = b"" if self.user_data is None else orjson.dumps(self.user_data,
                                                               option=orjson.OPT_SORT_KEYS)
        return b"".join((
            _CANONICAL.pack(self.seq, self.amount, self.code, self.flags, self.timeout_s,
                            _epoch_micros(self.created_at), self.ledger.encode()),
            self.id.bytes, self.debit_account_id.bytes, self.credit_account_id.bytes,
            self.pending_id.bytes if self.pending_id is not None else _NO_ID, data))


_CANONICAL = struct.Struct(">qqiiiq3s")
_NO_ID = bytes(16)


def chain_hash(prev_hash: bytes, transfer: Transfer) -> bytes:
    return hashlib.sha256(prev_hash + transfer.canonical_bytes()).digest()


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _epoch_micros(value: dt.datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(slots=True)
class Outcome:
    result: Result
    transfer: Transfer | None = None

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def message(self) -> str:
        return MESSAGES[self.result]


@dataclass(slots=True)
class AccountIn:
    id: uuid.UUID
    ledger: str
    kind: str
    flags: int = 0
    owner_id: str | None = None
    user_data: dict[str, Any] | None = None


@dataclass(slots=True)
class Account:
    id: uuid.UUID
    ledger: str
    kind: str
    flags: int
    owner_id: str | None
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    created_at: dt.datetime
    user_data: dict[str, Any] | None = field(default=None)

    @property
    def balance(self) -> int:
        """Posted credits minus posted debits: what a customer wallet holds."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What can be spent now: posted balance less the holds."""
        return self.credits_posted - self.debits_posted - self.debits_pending
