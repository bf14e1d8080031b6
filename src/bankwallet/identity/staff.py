"""Back-office use cases: who may do what, and the staff actions themselves.

Every function here takes the acting user and checks the role itself, so the JSON API, the
``/admin`` pages and any future caller share one rule (routes may check too, never instead):

==============================  ==========================================
permission                      roles
==============================  ==========================================
find customers, their events    support, risk, operations, admin
review KYC applications         risk, operations, admin
lock / unlock accounts          operations, admin
read the whole audit log        admin
==============================  ==========================================

``admin`` passes every check; a customer passes none. Staff accounts are visible to, and
lockable by, admins only. Every staff action, including looking a customer up, is audited.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Final

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core import audit, outbox
from bankwallet.core.db import utcnow
from bankwallet.core.errors import Conflict, Forbidden, NotFound
from bankwallet.identity import kyc
from bankwallet.identity.errors import InvalidLogin
from bankwallet.identity.models import Session, User
from bankwallet.identity.service import contact_of, find_user, parse_login

ADMIN: Final = "admin"
CUSTOMERS_READ: Final = ("support", "risk", "operations", ADMIN)
KYC_REVIEW: Final = ("risk", "operations", ADMIN)
ACCOUNTS_LOCK: Final = ("operations", ADMIN)
AUDIT_READ: Final = (ADMIN,)
STAFF: Final = ("support", "risk", "operations", ADMIN)
EVENTS_PAGE_MAX: Final = 100


def require_role(actor: User, *roles: str) -> None:
    """Raise 403 ``forbidden`` unless the actor is active and has one of ``roles`` (or is an
    admin)."""
    if actor.status != "active" or (actor.role != ADMIN and actor.role not in roles):
        raise Forbidden("Your role does not allow this.")


def is_staff(user: User) -> bool:
    return user.role in STAFF


@dataclass(frozen=True, slots=True)
class CustomerView:
    id: uuid.UUID
    email: str | None
    phone: str | None
    role: str
    status: str
    kyc_tier: int
    created_at: dt.datetime


def customer_view(user: User) -> CustomerView:
    contact = contact_of(user)
    return CustomerView(user.id, contact["email"], contact["phone"], user.role, user.status,
                        user.kyc_tier, user.created_at)


# -- customers -----------------------------------------------------------------------------


async def _visible_user(session: AsyncSession, actor: User, user_id: uuid.UUID) -> User:
    """The user, if this actor may see them: customers to any staff, staff to admins."""
    user = await session.get(User, user_id)
    if user is None or (user.role != "customer" and actor.role != ADMIN):
        raise NotFound("No such customer.")
    return user


async def find_customer(session: AsyncSession, actor: User, *, login_text: str) -> CustomerView:
    """By phone number or e-mail address (a blind-index look-up)."""
    require_role(actor, *CUSTOMERS_READ)
    try:
        login = parse_login(login_text)
    except InvalidLogin:
        raise NotFound("No customer with this phone number or e-mail address.") from None
    user = await find_user(session, login)
    if user is None or (user.role != "customer" and actor.role != ADMIN):
        raise NotFound("No customer with this phone number or e-mail address.")
    await _audit(session, actor, "admin.customer.viewed", user.id, data={"via": login.kind})
    return customer_view(user)


async def get_customer(session: AsyncSession, actor: User, user_id: uuid.UUID) -> CustomerView:
    require_role(actor, *CUSTOMERS_READ)
    user = await _visible_user(session, actor, user_id)
    await _audit(session, actor, "admin.customer.viewed", user.id, data={"via": "id"})
    return customer_view(user)


async def customer_events(session: AsyncSession, actor: User, user_id: uuid.UUID, *,
                          before_seq: int | None = None,
                          limit: int = 50) -> list[audit.AuditEvent]:
    """What happened to and by a customer (logins, password changes, KYC, locks), newest
    first; page with the last event's ``seq``."""
    require_role(actor, *CUSTOMERS_READ)
    user = await _visible_user(session, actor, user_id)
    limit = max(1, min(limit, EVENTS_PAGE_MAX))
    about = await audit.list_events(session, subject_type="user", subject_id=str(user.id),
                                    before_seq=before_seq, limit=limit)
    by = await audit.list_events(session, actor_id=str(user.id), before_seq=before_seq,
                                 limit=limit)
    merged = {e.seq: e for e in [*about, *by]}
    return [merged[seq] for seq in sorted(merged, reverse=True)[:limit]]


async def lock_user(session: AsyncSession, actor: User, user_id: uuid.UUID, *,
                    reason: str) -> CustomerView:
    """Lock an account and end all its sessions; logging in is refused while locked."""
    require_role(actor, *ACCOUNTS_LOCK)
    reason_text = kyc.clean_reason(reason, required=True)
    user = await _visible_user(session, actor, user_id)
    if user.id == actor.id:
        raise Forbidden("Nobody locks their own account.")
    if user.status == "closed":
        raise Conflict("This account is closed.")
    if user.status != "locked":
        user.status = "locked"
        ended = await _end_sessions(session, user.id)
        await _audit(session, actor, "identity.user.locked", user.id,
                     data={"reason": reason_text, "sessions_ended": ended})
        await outbox.publish(session, "user.locked", {"user_id": str(user.id)},
                             key=str(user.id))
    return customer_view(user)


async def unlock_user(session: AsyncSession, actor: User, user_id: uuid.UUID, *,
                      reason: str | None = None) -> CustomerView:
    require_role(actor, *ACCOUNTS_LOCK)
    reason_text = kyc.clean_reason(reason, required=False)
    user = await _visible_user(session, actor, user_id)
    if user.status == "closed":
        raise Conflict("This account is closed.")
    if user.status == "locked":
        user.status = "active"
        await _audit(session, actor, "identity.user.unlocked", user.id,
                     data={"reason": reason_text})
        await outbox.publish(session, "user.unlocked", {"user_id": str(user.id)},
                             key=str(user.id))
    return customer_view(user)


async def _end_sessions(session: AsyncSession, user_id: uuid.UUID) -> int:
    result = await session.execute(
        update(Session).where(Session.user_id == user_id, Session.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session="fetch"))
    return result.rowcount or 0


# -- KYC review ----------------------------------------------------------------------------


async def kyc_queue(session: AsyncSession, actor: User, *, status: str = "pending",
                    before_id: uuid.UUID | None = None,
                    limit: int = 50) -> list[kyc.ApplicationView]:
    require_role(actor, *KYC_REVIEW)
    if status not in kyc.STATUSES:
        from bankwallet.core.errors import InvalidInput

        raise InvalidInput(f"status is one of {', '.join(kyc.STATUSES)}.")
    return await kyc.list_applications(session, status=status, before_id=before_id, limit=limit)


async def kyc_application(session: AsyncSession, actor: User,
                          application_id: uuid.UUID) -> kyc.ApplicationView:
    require_role(actor, *KYC_REVIEW)
    return kyc.view(await kyc.get_application(session, application_id))


async def decide_kyc(session: AsyncSession, actor: User, application_id: uuid.UUID, *,
                     approve: bool, reason: str | None = None) -> kyc.ApplicationView:
    require_role(actor, *KYC_REVIEW)
    return await kyc.decide_application(session, reviewer=actor,
                                        application_id=application_id, approve=approve,
                                        reason=reason)


# -- the audit log -------------------------------------------------------------------------


async def audit_log(session: AsyncSession, actor: User, *, before_seq: int | None = None,
                    limit: int = 50) -> list[audit.AuditEvent]:
    require_role(actor, *AUDIT_READ)
    return await audit.list_events(session, before_seq=before_seq,
                                   limit=max(1, min(limit, EVENTS_PAGE_MAX)))


async def _audit(session: AsyncSession, actor: User, action: str, user_id: uuid.UUID, *,
                 data: dict | None = None) -> None:
    await audit.record(session, action=action, actor_type="staff", actor_id=str(actor.id),
                       subject_type="user", subject_id=str(user_id), data=data)
