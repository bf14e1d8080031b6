"""Jepsen's bank test, for the ledger: many clients (tasks and processes) send random,
conflicting and duplicated transfers at once; at the end no money was created or lost,
every id was applied at most once and exactly as asked, and `ledger verify` is clean."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from bankwallet.core.db import make_engine
from bankwallet.ledger.models import LedgerTransfer
from bankwallet.ledger.store import SqlLedgerStore
from bankwallet.ledger.types import AccountFlags, AccountIn, TransferFlags, TransferIn
from bankwallet.ledger.verify import verify

CLIENT = Path(__file__).with_name("concurrency_client.py")
CURRENCY = "CNY"


def make_plan(rng: random.Random, customers: list[uuid.UUID], hot: uuid.UUID, *,
              transfers: int, clients: int) -> dict:
    """Transfers (regular, holds, posts, voids, linked pairs) and, per client, a shuffled list
    of calls that includes calls other clients send too (duplicated ids)."""
    plan: list[dict] = []
    calls: list[list[int]] = []
    holds: list[int] = []
    while len(plan) < transfers:
        kind = rng.random()
        debit = rng.choice(customers)
        credit = hot if rng.random() < 0.3 else rng.choice([c for c in customers if c != debit])
        base = {"id": str(uuid.uuid4()), "debit": str(debit), "credit": str(credit),
                "amount": rng.randint(1, 3_000), "ledger": CURRENCY, "code": 1}
        if kind < 0.55:
            calls.append([len(plan)])
            plan.append(base)
        elif kind < 0.7:
            holds.append(len(plan))
            calls.append([len(plan)])
            plan.append({**base, "flags": int(TransferFlags.PENDING),
                         "timeout_s": rng.choice([0, 3600])})
        elif kind < 0.85 and holds:
            hold = plan[rng.choice(holds)]
            flags = rng.choice([TransferFlags.POST_PENDING, TransferFlags.VOID_PENDING])
            amount = None
            if flags == TransferFlags.POST_PENDING and rng.random() < 0.5:
                amount = rng.randint(1, hold["amount"])
            calls.append([len(plan)])
            plan.append({"id": str(uuid.uuid4()), "pending_id": hold["id"], "flags": int(flags),
                         "amount": amount})
        else:  # a payment and its fee, all or nothing
            fee = {"id": str(uuid.uuid4()), "debit": str(credit), "credit": str(debit),
                   "amount": rng.randint(1, 50), "ledger": CURRENCY, "code": 2}
            calls.append([len(plan), len(plan) + 1])
            plan.append({**base, "flags": int(TransferFlags.LINKED)})
            plan.append(fee)
    per_client: list[list[list[int]]] = [[] for _ in range(clients)]
    for call in calls:
        owners = rng.sample(range(clients), k=min(clients, rng.choice([1, 1, 2, 3])))
        for owner in owners:
            per_client[owner].append(call)
    for share in per_client:
        rng.shuffle(share)
    return {"transfers": plan, "clients": per_client}


async def open_accounts(url: str, rng: random.Random, n: int) -> tuple[list[uuid.UUID], uuid.UUID]:
    engine = make_engine(url)
    store = SqlLedgerStore(engine)
    try:
        flags = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
        bank = AccountIn(uuid.uuid4(), CURRENCY, "bank_settlement")
        hot = AccountIn(uuid.uuid4(), CURRENCY, "merchant", flags)
        customers = [AccountIn(uuid.uuid4(), CURRENCY, "customer_wallet", flags)
                     for _ in range(n)]
        await store.create_accounts([bank, hot, *customers])
        # Little money each, so transfers conflict and many are refused for funds.
        funding = [TransferIn(uuid.uuid4(), bank.id, c.id, rng.randint(1_000, 20_000),
                              CURRENCY, 9) for c in customers]
        assert all(o.ok for o in await store.create_transfers(funding))
        return [c.id for c in customers], hot.id
    finally:
        await store.close()
        await engine.dispose()


def start_clients(url: str, plan_path: Path, out_dir: Path, clients: int) -> list:
    return [subprocess.Popen([sys.executable, str(CLIENT), url, str(plan_path), str(i),
                              str(out_dir / f"out-{i}.json"), "16"])
            for i in range(clients)]


async def stored_transfers(url: str) -> dict[str, object]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(LedgerTransfer.__table__))).all()
        return {str(r.id): r for r in rows}
    finally:
        await engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("fresh_db_url", ["postgres"], indirect=True)
async def test_many_processes_and_tasks_apply_every_id_once(fresh_db_url: str,
                                                            tmp_path: Path) -> None:
    rng = random.Random(41)
    customers, hot = await open_accounts(fresh_db_url, rng, 40)
    plan = make_plan(rng, customers, hot, transfers=3000, clients=4)
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))

    processes = start_clients(fresh_db_url, plan_path, tmp_path, clients=3)
    # The fourth client runs here, in this process's event loop, at the same time.
    from concurrency_client import run  # type: ignore[import-not-found]

    await run(fresh_db_url, str(plan_path), 3, str(tmp_path / "out-3.json"), 16)
    for p in processes:
        assert p.wait(timeout=300) == 0

    results: dict[str, Counter[str]] = defaultdict(Counter)
    for i in range(4):
        for transfer_id, result in json.loads((tmp_path / f"out-{i}.json").read_text()):
            results[transfer_id][result] += 1
    stored = await stored_transfers(fresh_db_url)
    by_id = {t["id"]: t for t in plan["transfers"]}

    for transfer_id, seen in results.items():
        created = seen["created"]
        assert created <= 1, f"{transfer_id} applied {created} times"
        if transfer_id in stored:
            assert created == 1, f"{transfer_id} stored but never reported created: {seen}"
        else:
            assert created == 0 and seen["exists"] == 0, f"{transfer_id}: {seen}"
    for transfer_id, row in stored.items():
        if transfer_id not in by_id:
            continue  # funding
        asked = by_id[transfer_id]
        assert row.flags == asked.get("flags", 0)
        if asked.get("debit"):
            assert str(row.debit_account_id) == asked["debit"]
            assert str(row.credit_account_id) == asked["credit"]
            assert row.amount == asked["amount"]
    outcome_kinds = Counter(r for seen in results.values() for r in seen.elements())
    # The run really was contended: refusals for funds and duplicates both happened.
    assert outcome_kinds["exists"] > 0 and outcome_kinds["exceeds_credits"] > 0, outcome_kinds

    engine = make_engine(fresh_db_url)
    try:
        report = await verify(engine)
    finally:
        await engine.dispose()
    assert report.ok, report.problems


@pytest.mark.postgres
@pytest.mark.parametrize("fresh_db_url", ["postgres"], indirect=True)
async def test_a_killed_client_leaves_the_ledger_whole(fresh_db_url: str, tmp_path: Path) -> None:
    rng = random.Random(7)
    customers, hot = await open_accounts(fresh_db_url, rng, 20)
    plan = make_plan(rng, customers, hot, transfers=20_000, clients=2)
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))

    victim, survivor = start_clients(fresh_db_url, plan_path, tmp_path, clients=2)
    time.sleep(1.5)
    assert victim.poll() is None, "the victim finished before it could be killed"
    victim.send_signal(signal.SIGKILL)  # mid-batch, most likely
    victim.wait()
    assert survivor.wait(timeout=300) == 0

    engine = make_engine(fresh_db_url)
    try:
        assert (report := await verify(engine)).ok, report.problems
    finally:
        await engine.dispose()
    # The killed client's work is healed by sending the same ids again: each applied once.
    before = await stored_transfers(fresh_db_url)
    rerun = subprocess.run([sys.executable, str(CLIENT), fresh_db_url, str(plan_path), "0",
                            str(tmp_path / "rerun.json"), "16"], timeout=300)
    assert rerun.returncode == 0
    after = await stored_transfers(fresh_db_url)
    for transfer_id, row in before.items():
        assert after[transfer_id].seq == row.seq  # nothing rewritten
    for transfer_id, result in json.loads((tmp_path / "rerun.json").read_text()):
        if transfer_id in before:
            assert result == "exists", (transfer_id, result)
    engine = make_engine(fresh_db_url)
    try:
        assert (report := await verify(engine)).ok, report.problems
    finally:
        await engine.dispose()
