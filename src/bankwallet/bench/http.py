"""``bankwallet bench http``: the P2P transfer endpoint through the whole stack, and the same
server's bare ceiling, measured in one run.

1. A scratch PostgreSQL database beside the one given (dropped afterwards), migrated.
2. ``users`` customers (KYC tier 2, so limits do not stop the load) with funded CNY wallets,
   each logged in through the API for a real bearer session.
3. ``bankwallet serve --workers W`` in its own process, with the bench-only endpoint
   ``POST /bench/transfer-echo`` (parses a transfer body and answers: no auth, no database).
4. wrk (Debian's package) with a Lua script, in another process: first the bare endpoint,
   then ``POST /api/v1/transfers`` with a random sender's token, a random recipient, a random
   amount and a fresh ``Idempotency-Key`` per request.
5. Afterwards: every customer's balance is read back; the total must equal what was funded
   (no money created or lost), every transfer the API accepted must be in the ledger, and the
   ledger's own verification must pass.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bankwallet.bench.ledger import _scratch_database
from bankwallet.core.migrate import upgrade

Progress = Callable[[str], None]
FUNDING_MINOR = 50_000_000  # per customer: 500,000.00 CNY, half the tier-2 balance cap
AMOUNT_MAX_MINOR = 100
SERVER_START_TIMEOUT_S = 60.0
OUTBOX_DRAIN_MAX_S = 120.0
LUA = r"""
local tokens = {%(tokens)s}
local wallets = {%(wallets)s}
local counter = 0
local prefix = ""
local bare = %(bare)s

function setup(thread)
  thread:set("seed", math.random(1, 2^31))
end

function init(args)
  math.randomseed(seed)
  prefix = string.format("%%x-%%x", seed, math.random(1, 2^31))
end

function request()
  counter = counter + 1
  local n = #tokens
  local from = math.random(1, n)
  local to = math.random(1, n - 1)
  if to >= from then to = to + 1 end
  local body = string.format('{"to":"%%s","amount_minor":%%d,"currency":"CNY"}',
                             wallets[to], math.random(1, %(amount_max)d))
  local headers = {["Content-Type"] = "application/json"}
  if not bare then
    headers["Authorization"] = "Bearer " .. tokens[from]
    headers["Idempotency-Key"] = prefix .. "-" .. counter
  end
  return wrk.format("POST", nil, headers, body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


async def run_http_bench(url: str, *, seconds: float, users: int, workers: int,
                         connections: int, threads: int, progress: Progress) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is missing: apt-get install wrk")
    if not url.startswith("postgresql"):
        raise RuntimeError("bench http runs on PostgreSQL (--database-url postgresql+asyncpg://…)")
    scratch, cleanup = await _scratch_database(url)
    workdir = Path(tempfile.mkdtemp(prefix="bankwallet-bench-"))
    try:
        await asyncio.to_thread(upgrade, scratch)
        env = _server_env(scratch, workdir)
        funded = await _seed(scratch, workdir, env, users=users, progress=progress)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = _start_server(env, workdir, port, workers)
        try:
            await _wait_healthy(base, server, workdir)
            tokens = await _log_in(base, funded)
            progress(f"{len(tokens)} customers logged in; bare endpoint for {seconds:g} s")
            bare = await _wrk(wrk, f"{base}/bench/transfer-echo", tokens, funded, workdir,
                              seconds=seconds, connections=connections, threads=threads,
                              bare=True)
            progress(f"bare: {bare['requests_per_second']:.0f} req/s; "
                     f"P2P transfers for {seconds:g} s")
            p2p = await _wrk(wrk, f"{base}/api/v1/transfers", tokens, funded, workdir,
                             seconds=seconds, connections=connections, threads=threads,
                             bare=False)
            progress(f"p2p: {p2p['requests_per_second']:.0f} transfers/s; "
                     "waiting for the outbox to drain")
            outbox = await _drain_outbox(scratch)
            progress(f"outbox: {outbox['outbox_backlog_at_end']} events behind at the end, "
                     f"drained in {outbox['outbox_drained_s']} s; checking the money")
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        check = await _check_money(scratch, funded, accepted=p2p["ok"])
        return {"requests_per_second": round(p2p["requests_per_second"], 1),
                "p50_ms": p2p["p50_ms"], "p99_ms": p2p["p99_ms"], "errors": p2p["errors"],
                "bare_requests_per_second": round(bare["requests_per_second"], 1),
                "ratio_to_bare": round(p2p["requests_per_second"]
                                       / max(bare["requests_per_second"], 1e-9), 3),
                "bare_p99_ms": bare["p99_ms"], "transfers": p2p["ok"], "seconds": seconds,
                "workers": workers, "connections": connections, "users": users, **outbox,
                **check}
    finally:
        await cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def _server_env(database_url: str, workdir: Path) -> dict[str, str]:
    return {**os.environ, "BANKWALLET_DATABASE_URL": database_url, "BANKWALLET_ENV": "dev",
            "BANKWALLET_KEY_FILE": str(workdir / "keys.json"),
            "BANKWALLET_LOG_LEVEL": "WARNING", "BANKWALLET_BENCH_ENDPOINTS": "true",
            "BANKWALLET_DATABASE_POOL_SIZE": "20"}


async def _seed(database_url: str, workdir: Path, env: dict[str, str], *, users: int,
                progress: Progress) -> list[dict[str, Any]]:
    """Customers with passwords, tier 2, a funded CNY wallet each; returns their logins."""
    from sqlalchemy import update

    from bankwallet.core.crypto import get_keyring, reset_keyring
    from bankwallet.core.db import Database
    from bankwallet.identity import service as identity_service
    from bankwallet.identity.models import User
    from bankwallet.ledger import service as ledger_service
    from bankwallet.ledger.store import SqlLedgerStore
    from bankwallet.ledger.types import TransferIn
    from bankwallet.settings import get_settings
    from bankwallet.wallets import service as wallets
    from bankwallet.wallets.codes import Code

    for name in ("BANKWALLET_KEY_FILE", "BANKWALLET_ENV", "BANKWALLET_DATABASE_URL"):
        os.environ[name] = env[name]
    get_settings.cache_clear()
    reset_keyring()
    get_keyring()  # writes the key file the server will read
    db = Database(database_url)
    ledger = SqlLedgerStore(db.engine)
    password = "Bench-Harbour-" + uuid.uuid4().hex[:12]
    created: list[dict[str, Any]] = []
    try:
        progress(f"creating {users} customers")
        async with db.unit_of_work() as session:
            for n in range(users):
                login = f"bench-{n}-{uuid.uuid4().hex[:6]}@example.com"
                user = await identity_service.create_user(session, login_text=login,
                                                          password=password)
                created.append({"login": login, "password": password, "id": user.id})
            await session.execute(update(User).where(User.id.in_([c["id"] for c in created]))
                                  .values(kyc_tier=2))
        for c in created:
            await wallets.open_wallet(ledger, c["id"])
        outcomes = await ledger_service.submit(ledger, [TransferIn(
            id=uuid.uuid4(), amount=FUNDING_MINOR, ledger="CNY", code=Code.TOPUP,
            debit_account_id=wallets.system_account_id(wallets.SystemAccount.BANK_SETTLEMENT,
                                                        "CNY"),
            credit_account_id=wallets.wallet_account_id(c["id"], "CNY")) for c in created])
        assert all(o.ok for o in outcomes), [o.result for o in outcomes if not o.ok]
    finally:
        await ledger.close()
        await db.dispose()
    return created


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(env: dict[str, str], workdir: Path, port: int,
                  workers: int) -> subprocess.Popen[bytes]:
    log = (workdir / "server.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "bankwallet", "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", str(workers)],
                            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)


async def _wait_healthy(base: str, server: subprocess.Popen[bytes], workdir: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError("the server exited:\n"
                                   + (workdir / "server.log").read_text()[-4000:])
            try:
                if (await client.get(f"{base}/readyz", timeout=1)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the server did not become ready:\n"
                       + (workdir / "server.log").read_text()[-4000:])


async def _log_in(base: str, created: list[dict[str, Any]]) -> list[str]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        async def one(c: dict[str, Any]) -> str:
            r = await client.post("/api/v1/auth/login",
                                  json={"login": c["login"], "password": c["password"]})
            r.raise_for_status()
            return r.json()["token"]

        tokens: list[str] = []
        for start in range(0, len(created), 8):  # argon2 is slow by design: a few at a time
            tokens += await asyncio.gather(*[one(c) for c in created[start:start + 8]])
        return tokens


async def _wrk(wrk: str, url: str, tokens: list[str], created: list[dict[str, Any]],
               workdir: Path, *, seconds: float, connections: int, threads: int,
               bare: bool) -> dict[str, Any]:
    script = workdir / ("bare.lua" if bare else "p2p.lua")
    script.write_text(LUA % {
        "tokens": ",".join(json.dumps(t) for t in tokens),
        "wallets": ",".join(json.dumps(str(c["id"])) for c in created),
        "bare": "true" if bare else "false", "amount_max": AMOUNT_MAX_MINOR})
    process = await asyncio.create_subprocess_exec(
        wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
        "-s", str(script), url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    text = out.decode()
    line = next((line for line in text.splitlines() if line.startswith("WRK_RESULT ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({process.returncode}): {text}\n{err.decode()}")
    raw = json.loads(line.removeprefix("WRK_RESULT "))
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
    return {"requests_per_second": raw["requests"] / (raw["duration_us"] / 1e6),
            "p50_ms": round(raw["p50_us"] / 1000, 2), "p99_ms": round(raw["p99_us"] / 1000, 2),
            "errors": errors, "ok": raw["requests"] - raw["status"]}


async def _drain_outbox(database_url: str) -> dict[str, Any]:
    """How far the outbox dispatcher (every transfer's notifications) was behind when the
    load stopped, and how long the server then took to catch up (None: not within
    OUTBOX_DRAIN_MAX_S). A dispatcher that falls behind or stops shows here, not in the
    transfers per second."""
    from sqlalchemy import func, select

    from bankwallet.core.db import make_engine
    from bankwallet.core.outbox import OutboxEvent

    engine = make_engine(database_url)
    query = select(func.count()).select_from(OutboxEvent).where(
        OutboxEvent.dispatched_at.is_(None))
    try:
        started = time.monotonic()
        async with engine.connect() as conn:
            backlog = (await conn.execute(query)).scalar_one()
        left = backlog
        while left and time.monotonic() - started < OUTBOX_DRAIN_MAX_S:
            await asyncio.sleep(0.1)
            async with engine.connect() as conn:
                left = (await conn.execute(query)).scalar_one()
        drained = round(time.monotonic() - started, 1) if not left else None
    finally:
        await engine.dispose()
    return {"outbox_backlog_at_end": backlog, "outbox_drained_s": drained}


async def _check_money(database_url: str, created: list[dict[str, Any]], *,
                       accepted: int) -> dict[str, Any]:
    """No money created or lost; every accepted transfer is in the ledger; the ledger verifies."""
    from sqlalchemy import func, select

    from bankwallet.core.db import make_engine
    from bankwallet.ledger.models import LedgerTransfer
    from bankwallet.ledger.store import SqlLedgerStore
    from bankwallet.ledger.verify import verify
    from bankwallet.wallets import service as wallets
    from bankwallet.wallets.codes import Code

    engine = make_engine(database_url)
    ledger = SqlLedgerStore(engine)
    try:
        accounts = await ledger.lookup_accounts(
            [wallets.wallet_account_id(c["id"], "CNY") for c in created])
        total = sum(a.balance for a in accounts.values())
        pending = sum(a.debits_pending + a.credits_pending for a in accounts.values())
        async with engine.connect() as conn:
            in_ledger = (await conn.execute(select(func.count()).select_from(LedgerTransfer)
                                            .where(LedgerTransfer.code == Code.P2P))).scalar_one()
        report = await verify(engine)
    finally:
        await ledger.close()
        await engine.dispose()
    funded = FUNDING_MINOR * len(created)
    return {"money_conserved": total == funded and pending == 0,
            "ledger_p2p_transfers": in_ledger, "accepted_transfers": accepted,
            "every_accepted_transfer_in_ledger": in_ledger >= accepted,
            "verify_clean": report.ok}
