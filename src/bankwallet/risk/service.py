"""One question before money moves: allow, step up, review or deny.

Every money-moving service calls ``assess`` (ARCHITECTURE: "the call site is there from the
start"). Until fraud rules and anomaly scoring exist, the only rule is the step-up
threshold: a movement above it needs a fresh second factor.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

# Above this (CNY fen, or the same number of minor units elsewhere) a second factor is asked.
STEP_UP_THRESHOLD_MINOR = 2_000_00


class Decision(enum.StrEnum):
    ALLOW = "allow"
    STEP_UP = "step_up"
    REVIEW = "review"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Assessment:
    decision: Decision
    reasons: tuple[str, ...] = ()


async def assess(session: AsyncSession, *, user_id: uuid.UUID, action: str, amount_minor: int,
                 currency: str, counterparty: str | None = None) -> Assessment:
    """How risky is this movement? ``action`` names it (``p2p.send``, ``withdrawal`` …)."""
    del session, user_id, currency, counterparty  # the rules engine will read these
    return assess_amount(action=action, amount_minor=amount_minor)


def assess_amount(*, action: str, amount_minor: int) -> Assessment:
    """The rules that need nothing but the movement itself. The P2P fast path
    (transfers/fast.py) asks only these and leaves anything not ALLOW to the general path, so
    a rule that reads history belongs in ``assess`` and the fast path must ask it too."""
    if amount_minor > STEP_UP_THRESHOLD_MINOR:
        return Assessment(Decision.STEP_UP, (f"{action}: amount above the step-up threshold",))
    return Assessment(Decision.ALLOW)
