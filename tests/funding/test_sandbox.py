"""Top-ups and withdrawals against the real sandbox bank process, its webhooks arriving over
HTTP at a real ``bankwallet serve`` process (``conftest.LiveWallet``), on SQLite and
PostgreSQL: every failure mode ends with the right balance on both sides and exactly one
ledger effect; retries and concurrent duplicates move money once; forged or replayed
webhooks change nothing; ``ledger verify`` and ``reconcile`` agree at the end."""

from __future__ import annotations

import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson

from bankwallet.core import webhooks
from bankwallet.wallets.codes import Code

from .conftest import LiveWallet, db_rows

BANK_START = 1_000_00


def wait_final(live: LiveWallet, kind: str, headers: dict[str, str], movement_id: str,
               expect: str, timeout_s: float = 20.0) -> dict[str, Any]:
    return live.wait_for(kind, headers, movement_id, lambda m: m["status"] == expect,
                         timeout_s=timeout_s)


def check_effects(live: LiveWallet, movement_id: str, expected: set[str]) -> None:
    effects = live.ledger_effects(movement_id)
    assert set(effects) == expected, (movement_id, set(effects))
    assert live.transfers_mentioning(movement_id) == len(expected)
    if "reversal" in effects:
        assert effects["reversal"].code in (Code.TOPUP_REVERSAL, Code.WITHDRAWAL_RETURN)
        assert effects["reversal"].user_data["ref"] == movement_id


TOPUP_MODES: dict[str | None, tuple[str, int, set[str]]] = {
    # mode: (final status, wallet balance after, ledger transfers)
    None: ("succeeded", 100_00, {"hold", "post"}),
    "decline": ("failed", 0, {"hold", "void"}),
    "insufficient_funds": ("failed", 0, {"hold", "void"}),
    "timeout": ("succeeded", 100_00, {"hold", "post"}),
    "duplicate_webhook": ("succeeded", 100_00, {"hold", "post"}),
    "webhook_never_sent": ("succeeded", 100_00, {"hold", "post"}),
    "late_settlement": ("succeeded", 100_00, {"hold", "post"}),
    "reversal_after_success": ("reversed", 0, {"hold", "post", "reversal"}),
}


def test_every_top_up_failure_mode_ends_right(live: LiveWallet) -> None:
    def customer(_: object) -> tuple[dict[str, str], str, str]:
        _, h = live.new_user()
        account, number = live.link(h, balance_minor=BANK_START)
        return h, account, number

    with ThreadPoolExecutor(len(TOPUP_MODES)) as pool:
        runs = dict(zip(TOPUP_MODES, pool.map(customer, TOPUP_MODES), strict=True))

    def start(mode: str | None) -> dict[str, Any]:
        h, account, _ = runs[mode]
        r = live.move("topup", h, account, 100_00, mode=mode)
        assert r.status_code == 201, r.text
        return r.json()

    with ThreadPoolExecutor(len(runs)) as pool:
        started = dict(zip(runs, pool.map(start, runs), strict=True))
    assert started["decline"]["status"] == "failed"
    assert started["decline"]["failure_reason"] == "declined"
    assert started["timeout"]["status"] in ("pending", "succeeded")
    assert live.movement_row(started["timeout"]["id"])["bank_attempts"] == 1

    for mode, (status, wallet_after, effects) in TOPUP_MODES.items():
        h, _, number = runs[mode]
        got = wait_final(live, "topup", h, started[mode]["id"], status)
        moved = wallet_after if status != "reversed" else 0
        assert live.balance(h)["posted_minor"] == wallet_after, mode
        assert live.balance(h)["incoming_minor"] == 0, mode
        assert live.bank_account(number)["balance_minor"] == BANK_START - moved, mode
        check_effects(live, got["id"], effects)

    # A debit over what the bank account holds is refused by the bank itself.
    _, h = live.new_user()
    account, number = live.link(h, balance_minor=50_00)
    r = live.move("topup", h, account, 50_01)
    assert r.json()["status"] == "failed" and r.json()["failure_reason"] == "insufficient_funds"
    check_effects(live, r.json()["id"], {"hold", "void"})

    # What the bank did with its webhooks: twice, never, once.
    def events(mode: str) -> list[dict[str, Any]]:
        row = live.movement_row(started[mode]["id"])
        return live.bank_events(row["instruction_id"])

    (twice,) = events("duplicate_webhook")
    assert twice["state"] == "delivered" and twice["attempts"] == 2
    stored = db_rows(live.db_url, "SELECT outcome FROM funding_webhook_event WHERE id = :id",
                     id=twice["id"])
    assert stored == [{"outcome": "applied"}]
    assert [e["state"] for e in events("webhook_never_sent")] == ["suppressed"]
    assert [e["type"] for e in events("reversal_after_success")] == ["debit.succeeded",
                                                                    "debit.reversed"]


WITHDRAWAL_MODES: dict[str | None, tuple[str, int, set[str]]] = {
    None: ("succeeded", 70_00, {"hold", "post"}),
    "decline": ("failed", 100_00, {"hold", "void"}),
    "timeout": ("succeeded", 70_00, {"hold", "post"}),
    "duplicate_webhook": ("succeeded", 70_00, {"hold", "post"}),
    "webhook_never_sent": ("succeeded", 70_00, {"hold", "post"}),
    "late_settlement": ("succeeded", 70_00, {"hold", "post"}),
    "reversal_after_success": ("reversed", 100_00, {"hold", "post", "reversal"}),
}


def funded_user(live: LiveWallet, amount_minor: int = 100_00
                ) -> tuple[dict[str, str], str, str]:
    _, h = live.new_user()
    account, number = live.link(h, balance_minor=BANK_START)
    r = live.move("topup", h, account, amount_minor)
    wait_final(live, "topup", h, r.json()["id"], "succeeded")
    return h, account, number


def test_every_withdrawal_failure_mode_ends_right(live: LiveWallet) -> None:
    with ThreadPoolExecutor(len(WITHDRAWAL_MODES)) as pool:
        runs = dict(zip(WITHDRAWAL_MODES, pool.map(lambda _: funded_user(live),
                                                   WITHDRAWAL_MODES), strict=True))

    def start(mode: str | None) -> dict[str, Any]:
        h, account, _ = runs[mode]
        r = live.move("withdrawal", h, account, 30_00, mode=mode)
        assert r.status_code == 201, r.text
        return r.json()

    with ThreadPoolExecutor(len(runs)) as pool:
        started = dict(zip(runs, pool.map(start, runs), strict=True))

    for mode, (status, wallet_after, effects) in WITHDRAWAL_MODES.items():
        h, _, number = runs[mode]
        got = wait_final(live, "withdrawal", h, started[mode]["id"], status)
        balance = live.balance(h)
        assert (balance["posted_minor"], balance["outgoing_minor"]) == (wallet_after, 0), mode
        bank_moved = 30_00 if status == "succeeded" else 0
        assert live.bank_account(number)["balance_minor"] == BANK_START - 100_00 + bank_moved
        check_effects(live, got["id"], effects)


def test_a_reversal_the_wallet_cannot_cover_is_a_shortfall(live: LiveWallet) -> None:
    _, h = live.new_user()
    account, number = live.link(h, balance_minor=BANK_START)
    topup = live.move("topup", h, account, 100_00, mode="reversal_after_success").json()
    wait_final(live, "topup", h, topup["id"], "succeeded")
    # Spent (held for a withdrawal) before the bank reverses the top-up, two seconds later.
    withdrawal = live.move("withdrawal", h, account, 60_00).json()
    wait_final(live, "withdrawal", h, withdrawal["id"], "succeeded")
    got = wait_final(live, "topup", h, topup["id"], "reversed")
    assert got["shortfall_minor"] == 60_00
    assert live.balance(h)["posted_minor"] == 0
    assert live.ledger_effects(topup["id"])["reversal"].amount == 40_00
    # The bank gave all 100.00 back to the customer and paid out 60.00: the wallet is 60 short.
    assert live.bank_account(number)["balance_minor"] == BANK_START + 60_00


def test_retries_and_concurrent_duplicates_are_one_top_up(live: LiveWallet) -> None:
    _, h = live.new_user()
    account, number = live.link(h, balance_minor=BANK_START)
    key = secrets.token_hex(8)
    first = live.move("topup", h, account, 10_00, key=key)
    again = live.move("topup", h, account, 10_00, key=key)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"

    key = secrets.token_hex(8)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: live.move("topup", h, account, 20_00, key=key),
                                range(8)))
    assert {r.status_code for r in answers} <= {201, 409}
    ids = {r.json()["id"] for r in answers if r.status_code == 201}
    assert len(ids) == 1
    for movement_id in {first.json()["id"], *ids}:
        wait_final(live, "topup", h, movement_id, "succeeded")
        reference = f"bankwallet-topup-{movement_id}"
        found = httpx.get(f"{live.bank_url}/v1/instructions", params={"reference": reference})
        assert len(found.json()["instructions"]) == 1
    assert live.balance(h)["posted_minor"] == 30_00
    assert live.bank_account(number)["balance_minor"] == BANK_START - 30_00


def test_concurrent_withdrawals_never_overdraw(live: LiveWallet) -> None:
    h, account, number = funded_user(live, 100_00)
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: live.move("withdrawal", h, account, 30_00),
                                range(5)))
    ok = [r.json() for r in answers if r.status_code == 201]
    refused = [r.json() for r in answers if r.status_code == 422]
    assert len(ok) == 3 and len(refused) == 2, [r.text for r in answers]
    assert {p["code"] for p in refused} == {"insufficient_funds"}
    for m in ok:
        wait_final(live, "withdrawal", h, m["id"], "succeeded")
    assert live.balance(h)["posted_minor"] == 10_00
    assert live.bank_account(number)["balance_minor"] == BANK_START - 100_00 + 90_00


def test_forged_and_replayed_webhooks_change_nothing(live: LiveWallet) -> None:
    _, h = live.new_user()
    account, _ = live.link(h, balance_minor=BANK_START)
    topup = live.move("topup", h, account, 40_00, mode="late_settlement").json()
    row = live.movement_row(topup["id"])
    payload = {"id": f"evt_{uuid.uuid4().hex}", "type": "debit.succeeded",
               "instruction_id": row["instruction_id"], "reference": row["reference"],
               "amount_minor": 40_00, "currency": "CNY",
               "created_at": "2026-01-01T00:00:00+00:00"}
    body = orjson.dumps(payload)
    hook = f"{live.wallet_url}/webhooks/corebanking"
    for signature in (webhooks.sign("whsec_forged_0123456789abcdef", body), None,
                      webhooks.sign(live.secret, body, timestamp=int(time.time()) - 3600)):
        headers = {webhooks.SIGNATURE_HEADER: signature} if signature else {}
        r = httpx.post(hook, content=body, headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["code"].startswith("webhook_")
    assert live.get(f"/api/v1/topups/{topup['id']}", h).json()["status"] == "pending"
    assert live.balance(h)["incoming_minor"] == 40_00

    wait_final(live, "topup", h, topup["id"], "succeeded")
    (real,) = live.bank_events(row["instruction_id"])
    replay = orjson.dumps({**payload, "id": real["id"]})
    r = httpx.post(hook, content=replay,
                   headers={webhooks.SIGNATURE_HEADER: webhooks.sign(live.secret, replay)})
    assert r.status_code == 200 and r.json() == {"status": "duplicate"}
    assert live.balance(h)["posted_minor"] == 40_00
    check_effects(live, topup["id"], {"hold", "post"})


def test_the_ledger_and_the_bank_agree_at_the_end(live: LiveWallet) -> None:
    """After everything above: ``bankwallet ledger verify`` is clean, and reconciliation with
    the bank's statement finds nothing but the shortfall a test above made on purpose."""
    import asyncio
    import datetime as dt

    from bankwallet.core.db import utcnow
    from bankwallet.funding.reconcile import run_reconcile
    from bankwallet.settings import Settings

    verify = live.cli("ledger", "verify", "--database-url", live.db_url)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    settings = Settings(database_url=live.db_url, env="test", corebanking_url=live.bank_url,
                        corebanking_secret=live.secret)
    report = asyncio.run(run_reconcile(settings, live.db_url,
                                       since=utcnow() - dt.timedelta(hours=1)))
    assert not [line for line in report.lines if line.level == "resolved"], report.render()
    assert report.findings, report.render()
    assert all("shortfall of" in line.text for line in report.findings), report.render()
    assert report.entries_read > 0 and report.statement_complete
