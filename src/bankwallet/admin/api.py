"""JSON API of the back office (``/api/v1/admin``).

Routes are thin: the role checks are in ``identity.staff`` (service layer).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from bankwallet.admin.schemas import (
    AuditEventList,
    AuditEventRead,
    CustomerRead,
    KycApplicationList,
    KycDecision,
    LockIn,
    UnlockIn,
)
from bankwallet.core.deps import DbSession
from bankwallet.identity.schemas import KycApplicationRead
from bankwallet.identity import staff
from bankwallet.identity.deps import Auth

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

Limit = Annotated[int, Query(ge=1, le=staff.EVENTS_PAGE_MAX)]
LoginQuery = Annotated[str, Query(min_length=3, max_length=254)]


# -- back office ---------------------------------------------------------------------------


@router.get("/customers")
async def find_customer(login: LoginQuery, auth: Auth, session: DbSession) -> CustomerRead:
    return CustomerRead.of(await staff.find_customer(session, auth.user, login_text=login))


@router.get("/customers/{user_id}")
async def get_customer(user_id: uuid.UUID, auth: Auth, session: DbSession) -> CustomerRead:
    return CustomerRead.of(await staff.get_customer(session, auth.user, user_id))


@router.get("/customers/{user_id}/events")
async def customer_events(user_id: uuid.UUID, auth: Auth, session: DbSession,
                          before: int | None = None, limit: Limit = 50) -> AuditEventList:
    events = await staff.customer_events(session, auth.user, user_id, before_seq=before,
                                         limit=limit)
    return AuditEventList(items=[AuditEventRead.of(e) for e in events],
                          next_before=events[-1].seq if len(events) == limit else None)


@router.post("/customers/{user_id}/lock")
async def lock(user_id: uuid.UUID, body: LockIn, auth: Auth, session: DbSession) -> CustomerRead:
    return CustomerRead.of(await staff.lock_user(session, auth.user, user_id,
                                                 reason=body.reason))


@router.post("/customers/{user_id}/unlock")
async def unlock(user_id: uuid.UUID, body: UnlockIn, auth: Auth,
                 session: DbSession) -> CustomerRead:
    return CustomerRead.of(await staff.unlock_user(session, auth.user, user_id,
                                                   reason=body.reason))


@router.get("/kyc/applications")
async def kyc_queue(auth: Auth, session: DbSession, status: str = "pending",
                    before: uuid.UUID | None = None, limit: Limit = 50) -> KycApplicationList:
    items = await staff.kyc_queue(session, auth.user, status=status, before_id=before,
                                  limit=limit)
    return KycApplicationList(items=[KycApplicationRead.of(a) for a in items],
                              next_before=items[-1].id if len(items) == limit else None)


@router.get("/kyc/applications/{application_id}")
async def kyc_get(application_id: uuid.UUID, auth: Auth,
                  session: DbSession) -> KycApplicationRead:
    return KycApplicationRead.of(await staff.kyc_application(session, auth.user, application_id))


@router.post("/kyc/applications/{application_id}/approve")
async def kyc_approve(application_id: uuid.UUID, auth: Auth, session: DbSession,
                      body: KycDecision | None = None) -> KycApplicationRead:
    return KycApplicationRead.of(await staff.decide_kyc(
        session, auth.user, application_id, approve=True, reason=body.reason if body else None))


@router.post("/kyc/applications/{application_id}/reject")
async def kyc_reject(application_id: uuid.UUID, body: KycDecision, auth: Auth,
                     session: DbSession) -> KycApplicationRead:
    return KycApplicationRead.of(await staff.decide_kyc(
        session, auth.user, application_id, approve=False, reason=body.reason))


@router.get("/audit")
async def audit_log(auth: Auth, session: DbSession, before: int | None = None,
                    limit: Limit = 50) -> AuditEventList:
    events = await staff.audit_log(session, auth.user, before_seq=before, limit=limit)
    return AuditEventList(items=[AuditEventRead.of(e) for e in events],
                          next_before=events[-1].seq if len(events) == limit else None)
