"""The interface every core-banking provider implements: the bank on the other side of top-ups
(we pull from the customer's bank account: a *debit*) and withdrawals (we push to it: a
*credit*).

A provider maps the bank's outcomes onto these results and returns them: it never raises for a
declined, failed or unanswered instruction, and never touches the database (the funding
service persists). Two statuses are easy to confuse:

- ``PENDING``: the bank accepted the instruction and will settle it later (webhook or poll);
- ``UNKNOWN``: we do not know whether the bank received it (a timeout, a 5xx). The caller
  keeps its intent and asks again (``get_instruction`` / ``find_by_reference``), or re-sends
  with the *same* idempotency key, which is safe.

A bank status this code does not know is read as ``PENDING`` (unknown → pending): it is never
taken for a success or a failure.

Only ``parse_webhook`` raises: a request with a bad signature or body must be refused by the
route that received it (``WebhookVerificationFailed`` / ``WebhookPayloadInvalid``, both 400).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol, runtime_checkable

from bankwallet.core.errors import InvalidInput

IDEMPOTENCY_KEY_MAX_CHARS: Final = 255
REFERENCE_MAX_CHARS: Final = 140  # ISO 20022 unstructured remittance information
HOLDER_NAME_MAX_CHARS: Final = 140
STATEMENT_PAGE_MAX: Final = 500
WEBHOOK_BODY_MAX_BYTES: Final = 64 * 1024


class InstructionKind(enum.StrEnum):
    DEBIT = "debit"    # pull from the customer's bank account (top-up)
    CREDIT = "credit"  # push to the customer's bank account (withdrawal)


class InstructionStatus(enum.StrEnum):
    PENDING = "pending"      # accepted, not settled yet
    SUCCEEDED = "succeeded"  # money moved
    FAILED = "failed"        # final: no money moved
    REVERSED = "reversed"    # moved, then moved back by the bank
    UNKNOWN = "unknown"      # no answer: ask again before deciding anything

    @property
    def is_final(self) -> bool:
        # REVERSED can follow SUCCEEDED, so only FAILED and REVERSED are truly final.
        return self in (InstructionStatus.FAILED, InstructionStatus.REVERSED)


class VerificationStatus(enum.StrEnum):
    VERIFIED = "verified"            # the account exists and the holder's name matches
    NAME_MISMATCH = "name_mismatch"  # the account exists in someone else's name
    NOT_FOUND = "not_found"
    UNKNOWN = "unknown"              # the bank did not answer


class EventType(enum.StrEnum):
    DEBIT_SUCCEEDED = "debit.succeeded"
    DEBIT_FAILED = "debit.failed"
    DEBIT_REVERSED = "debit.reversed"
    CREDIT_SUCCEEDED = "credit.succeeded"
    CREDIT_FAILED = "credit.failed"
    CREDIT_REVERSED = "credit.reversed"

    @property
    def kind(self) -> InstructionKind:
        return InstructionKind(self.value.partition(".")[0])

    @property
    def status(self) -> InstructionStatus:
        return InstructionStatus(self.value.partition(".")[2])


class WebhookPayloadInvalid(InvalidInput):
    code = "webhook_payload_invalid"
    status = 400
    title = "Webhook payload invalid"


@dataclass(frozen=True, slots=True)
class VerificationResult:
    status: VerificationStatus
    error: str | None = None  # a short code, safe to log: never the number or the name

    @property
    def verified(self) -> bool:
        return self.status is VerificationStatus.VERIFIED


@dataclass(frozen=True, slots=True)
class InstructionResult:
    status: InstructionStatus
    reference: str
    instruction_id: str | None = None  # the bank's id; None when the bank never answered
    kind: InstructionKind | None = None
    amount_minor: int | None = None
    currency: str | None = None
    reason: str | None = None   # the bank's reason code for a failure or reversal
    retryable: bool = False     # re-sending with the same idempotency key may get an answer
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """One settled movement on a customer's bank account, as the bank books it."""

    sequence: int               # the bank's order of booking; the cursor of the next page
    movement_id: str
    instruction_id: str
    kind: str                   # "debit", "credit", "debit_reversal", "credit_reversal"
    account_last4: str
    amount_minor: int           # signed, from the customer's side: a debit is negative
    currency: str
    reference: str
    booked_at: datetime


@dataclass(frozen=True, slots=True)
class StatementPage:
    entries: tuple[StatementEntry, ...]
    next_cursor: int | None = None  # pass as ``after`` for the next page; None at the end
    error: str | None = None        # set when the bank did not answer: the page is incomplete

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str  # unique per event; a duplicate delivery repeats it
    type: EventType
    instruction_id: str
    reference: str
    amount_minor: int
    currency: str
    created_at: datetime
    reason: str | None = None

    @property
    def kind(self) -> InstructionKind:
        return self.type.kind

    @property
    def status(self) -> InstructionStatus:
        return self.type.status


@runtime_checkable
class CoreBanking(Protocol):
    async def verify_account(self, number: str, holder_name: str) -> VerificationResult: ...

    async def debit(self, idempotency_key: str, account_number: str, amount_minor: int,
                    currency: str, reference: str,
                    failure_mode: str | None = None) -> InstructionResult: ...

    async def credit(self, idempotency_key: str, account_number: str, amount_minor: int,
                     currency: str, reference: str,
                     failure_mode: str | None = None) -> InstructionResult: ...

    async def get_instruction(self, instruction_id: str) -> InstructionResult | None:
        """The instruction's current status; None when the bank has no such instruction."""
        ...

    async def find_by_reference(self, reference: str) -> InstructionResult | None:
        """The bank's instruction for our reference; None when it has none."""
        ...

    async def statement(self, since: datetime | None = None, *, after: int | None = None,
                        limit: int = STATEMENT_PAGE_MAX) -> StatementPage: ...

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent: ...
