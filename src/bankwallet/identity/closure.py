"""Closing one's own account: only with every balance at zero, with the password and a fresh
second factor. The record stays (a bank keeps it for the retention period), encrypted as
before; the login is freed, every second factor removed and every session ended."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core import audit, outbox
from bankwallet.core.money import format_money
from bankwallet.identity import mfa, passwords, service
from bankwallet.identity.errors import AccountNotEmpty, WrongPassword
from bankwallet.identity.models import Passkey, RecoveryCode, Totp
from bankwallet.ledger import service as ledger_service
from bankwallet.ledger.store import LedgerStore


async def close_account(session: AsyncSession, auth: service.Authenticated, *,
                        ledger: LedgerStore, password: str, info: service.RequestInfo) -> None:
    await mfa.ensure_recent_second_factor(session, auth)
    user = auth.user
    if not passwords.verify_password(user.password_hash, password):
        raise WrongPassword()
    left = [a for a in await ledger_service.accounts_of_owner(ledger, str(user.id))
            if a.debits_posted != a.credits_posted or a.debits_pending or a.credits_pending]
    if left:
        amounts = ", ".join(format_money(a.credits_posted - a.debits_posted, a.ledger, "en")
                            for a in left)
        raise AccountNotEmpty(f"Balances left: {amounts}.",
                              balances=[{"currency": a.ledger,
                                         "amount_minor": a.credits_posted - a.debits_posted,
                                         "pending": bool(a.debits_pending or a.credits_pending)}
                                        for a in left])
    user.status = "closed"
    user.email_index = user.phone_index = None  # the login may sign up again one day
    for table in (Totp, RecoveryCode, Passkey):
        await session.execute(delete(table).where(table.user_id == user.id))
    ended = await service._revoke_sessions(session, user.id, except_id=None)
    await session.flush()
    await outbox.publish(session, "user.closed", {"user_id": str(user.id)})
    await audit.record(session, action="identity.account.closed", actor_type="user",
                       actor_id=str(user.id), subject_type="user", subject_id=str(user.id),
                       ip=info.ip, user_agent=info.user_agent, data={"sessions_ended": ended})
