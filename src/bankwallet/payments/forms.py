"""Money-moving HTML forms of the payments pages, run once per the key the page carried.

A double submit or a reload answers as the first did: the result, or the same error again
(``Replayed``). As in ``core.idempotency.run``, errors that decide nothing (``decides = False``:
a step-up is needed first) release the key, so the same form runs once the customer has
confirmed; every other ``BankwalletError`` is stored and replayed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core import idempotency
from bankwallet.core.errors import BankwalletError


class Replayed(BankwalletError):
    """The stored answer of a form sent before: the same error again."""

    def __init__(self, code: str, status: int) -> None:
        super().__init__(code)
        self.code = code  # type: ignore[misc] - per instance: whatever was stored
        self.status = status  # type: ignore[misc]


async def run_once(session: AsyncSession, request: Request, *, scope: str, key: str,
                   work: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    # Only reads so far: give the connection back before the claim takes one (as
    # ``idempotency.run`` does), so a request never holds two pooled connections.
    await session.commit()
    claimed = await idempotency.claim(
        session, scope=scope, key=idempotency.check_key(key),
        fingerprint=idempotency.fingerprint("FORM", request.url.path, {}))
    if claimed.replay is not None:
        status, body = claimed.replay
        if status >= 400:
            raise Replayed(body.get("code", "error"), status)
        return body
    try:
        result = await work()
    except BankwalletError as exc:
        if not exc.decides:
            await idempotency.release(session, claimed)
            raise
        await session.rollback()
        async with AsyncSession(session.bind) as own:
            await idempotency.complete(own, claimed, status=exc.status,
                                       body=exc.to_problem(request.url.path))
            await own.commit()
        raise
    except BaseException:
        await idempotency.release(session, claimed)
        raise
    await idempotency.complete(session, claimed, status=200, body=result)
    return result
