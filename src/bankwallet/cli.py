"""The ``bankwallet`` command line (Typer)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import typing

import typer

from bankwallet.settings import get_settings

# No local variables in tracebacks: they could hold a mnemonic, a key or a password.
app = typer.Typer(help="bankwallet: a bank's digital wallet.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_show_locals=False)
ledger_app = typer.Typer(help="Ledger operations.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks with same-run baselines.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(bench_app, name="bench")
users_app = typer.Typer(help="Users and staff.", no_args_is_help=True)
app.add_typer(users_app, name="users")
keys_app = typer.Typer(help="Encryption keys: generate and rotate.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
from bankwallet.chains.cli import chains_app  # noqa: E402
app.add_typer(chains_app, name="chains")
from bankwallet.qr.cli import qr_app  # noqa: E402
app.add_typer(qr_app, name="qr")
from bankwallet.payments.cli import merchants_app  # noqa: E402
app.add_typer(merchants_app, name="merchants")

DatabaseUrl = typer.Option(None, "--database-url", help="Overrides BANKWALLET_DATABASE_URL.")


def _database_url(url: str | None) -> str:
    if url:
        os.environ["BANKWALLET_DATABASE_URL"] = url
        get_settings.cache_clear()
    return get_settings().database_url


@app.command()
def migrate(database_url: str | None = DatabaseUrl) -> None:
    """Apply the database migrations (safe to run again)."""
    from bankwallet.core.migrate import upgrade

    url = _database_url(database_url)
    upgrade(url)
    typer.echo(f"database is at the latest schema ({_safe_url(url)})")


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Address to listen on."),
          port: int = typer.Option(8000, help="Port to listen on."),
          workers: int = typer.Option(1, min=1, max=64, help="Worker processes."),
          database_url: str | None = DatabaseUrl) -> None:
    """Run migrations, then serve the API, the web client and the in-process workers."""
    import uvicorn

    from bankwallet.core.migrate import upgrade

    upgrade(_database_url(database_url))
    uvicorn.run("bankwallet.app:create_app", factory=True, host=host, port=port,
                workers=workers, log_config=None, access_log=False, proxy_headers=False)


@app.command()
def demo(database_url: str | None = DatabaseUrl,
         serve_after: bool = typer.Option(False, "--serve", help="Start the server afterwards."),
         host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000)) -> None:
    """Create demo customers, merchants and ledger history (idempotent)."""
    from bankwallet.core.migrate import upgrade
    from bankwallet.demo import load_demo

    url = _database_url(database_url)
    upgrade(url)
    summary = asyncio.run(load_demo(url))
    if serve_after:
        # The bank on the other side, as its own process, with a bank account per customer.
        from bankwallet.demo import start_sandbox_bank

        bank = start_sandbox_bank(webhook_url=f"http://{host}:{port}/webhooks/corebanking")
        summary["bank_accounts"] = bank.accounts
    typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    if serve_after:
        typer.echo(f"serving on http://{host}:{port} (sandbox bank at {bank.url})")
        try:
            serve(host=host, port=port, workers=1, database_url=None)
        finally:
            bank.stop()


@app.command("sandbox-chain")
def sandbox_chain(host: str = typer.Option("127.0.0.1", help="Address to listen on."),
                  port: int = typer.Option(8545, help="Port to listen on."),
                  chain_id: int = typer.Option(1337, "--chain-id", min=1, max=2**63 - 1,
                                                help="EIP-155 chain id."),
                  accounts: int = typer.Option(10, min=1, max=100, help="Funded dev accounts."),
                  balance_eth: int = typer.Option(10_000, "--balance-eth", min=0,
                                                  max=1_000_000_000,
                                                  help="Each dev account's ether.")) -> None:
    """Serve a local EVM over JSON-RPC (TEST ONLY: the dev accounts' keys are public)."""
    try:
        from bankwallet.connectors.chains.sandbox_chain import serve as serve_chain
    except ImportError as exc:
        _fail(f"{exc.name} is missing: pip install -e '.[chain-sandbox]'")
    serve_chain(host=host, port=port, chain_id=chain_id, accounts=accounts,
                balance_eth=balance_eth, echo=typer.echo)


@app.command()
def worker(database_url: str | None = DatabaseUrl) -> None:
    """Background jobs only (outbox dispatch, hold expiry), for a process without HTTP."""
    from bankwallet.app import create_app

    _database_url(database_url)
    app_ = create_app(get_settings(), run_workers=True)

    async def run() -> None:
        async with app_.router.lifespan_context(app_):
            await asyncio.Event().wait()  # until interrupted

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


@app.command("sandbox-bank")
def sandbox_bank(host: str = typer.Option("127.0.0.1", help="Address to listen on."),
                 port: int = typer.Option(8100, help="Port to listen on."),
                 webhook_url: str | None = typer.Option(
                     None, "--webhook-url", help="Where settlement webhooks are POSTed."),
                 secret: str | None = typer.Option(
                     None, "--secret", envvar="BANKWALLET_SANDBOX_BANK_SECRET",
                     help="Webhook signing secret (prefer the environment variable)."),
                 state: str | None = typer.Option(
                     None, "--state", help="SQLite file that keeps the bank across restarts "
                                           "(in memory when omitted).")) -> None:
    """Run the sandbox core bank: bank accounts, debits, credits, signed webhooks."""
    from pathlib import Path

    import uvicorn

    from bankwallet.connectors.corebanking.sandbox_server import (
        SECRET_MIN_CHARS,
        SandboxConfig,
        create_sandbox_app,
    )
    from bankwallet.core.logging import configure_logging

    if not secret or len(secret) < SECRET_MIN_CHARS:
        _fail(f"give a webhook secret of at least {SECRET_MIN_CHARS} characters "
              "(BANKWALLET_SANDBOX_BANK_SECRET or --secret)")
    if webhook_url and not webhook_url.startswith(("http://", "https://")):
        _fail("--webhook-url must be an http(s) URL")
    configure_logging("INFO", json=False)
    config = SandboxConfig(secret=secret, webhook_url=webhook_url,
                           state_path=Path(state) if state else None)
    # A request held open by the "timeout" failure mode must not hold up a shutdown for long.
    uvicorn.run(create_sandbox_app(config), host=host, port=port, log_config=None,
                access_log=False, proxy_headers=False, timeout_graceful_shutdown=2)


@app.command("sandbox-gateway")
def sandbox_gateway(host: str = typer.Option("127.0.0.1", help="Address to listen on."),
                    port: int = typer.Option(8200, help="Port to listen on."),
                    webhook_url: str | None = typer.Option(
                        None, "--webhook-url", help="Where payment webhooks are POSTed."),
                    secret: str | None = typer.Option(
                        None, "--secret", envvar="BANKWALLET_SANDBOX_GATEWAY_SECRET",
                        help="Webhook signing secret (prefer the environment variable)."),
                    state: str | None = typer.Option(
                        None, "--state", help="SQLite file that keeps tokens and payments "
                                              "across restarts (in memory when omitted).")
                    ) -> None:
    """Run the sandbox card gateway: Stripe's test cards, 3-D Secure, signed webhooks."""
    from pathlib import Path

    import uvicorn

    from bankwallet.connectors.corebanking.sandbox_server import SECRET_MIN_CHARS, SandboxConfig
    from bankwallet.connectors.gateway.sandbox_server import create_gateway_app
    from bankwallet.core.logging import configure_logging

    if not secret or len(secret) < SECRET_MIN_CHARS:
        _fail(f"give a webhook secret of at least {SECRET_MIN_CHARS} characters "
              "(BANKWALLET_SANDBOX_GATEWAY_SECRET or --secret)")
    if webhook_url and not webhook_url.startswith(("http://", "https://")):
        _fail("--webhook-url must be an http(s) URL")
    configure_logging("INFO", json=False)
    config = SandboxConfig(secret=secret, webhook_url=webhook_url,
                           state_path=Path(state) if state else None)
    uvicorn.run(create_gateway_app(config), host=host, port=port, log_config=None,
                access_log=False, proxy_headers=False, timeout_graceful_shutdown=2)


@app.command()
def reconcile(database_url: str | None = DatabaseUrl,
              since_hours: float = typer.Option(
                  168.0, "--since-hours", min=0.01, max=24 * 366,
                  help="How far back to read the bank's statement.")) -> None:
    """Top-ups and withdrawals against the core bank's statement: apply what the bank did
    that the wallet missed, report the rest; exit 1 when something needs a person."""
    import datetime as dt

    from bankwallet.core.db import utcnow
    from bankwallet.funding.errors import BankNotConnected
    from bankwallet.funding.reconcile import run_reconcile
    from bankwallet.funding.tasks import CoreBankingConfigurationError

    url = _database_url(database_url)
    since = utcnow() - dt.timedelta(hours=since_hours)
    try:
        report = asyncio.run(run_reconcile(get_settings(), url, since=since))
    except (BankNotConnected, CoreBankingConfigurationError) as exc:
        _fail(f"the core bank is not configured: {exc}")
    for line in report.render():
        typer.echo(line)
    raise typer.Exit(0 if report.clean else 1)


@audit_app.command("verify")
def audit_verify(database_url: str | None = DatabaseUrl) -> None:
    """Check the audit log's hash chain; exit 1 naming the first bad event."""
    from bankwallet.core import audit
    from bankwallet.core.db import make_engine

    async def run() -> list[str]:
        engine = make_engine(_database_url(database_url))
        try:
            return await audit.verify_chain(engine)
        finally:
            await engine.dispose()

    problems = asyncio.run(run())
    for problem in problems:
        typer.echo(f"BAD {problem}", err=True)
    typer.echo("audit log clean" if not problems else "audit log TAMPERED OR INCONSISTENT")
    raise typer.Exit(0 if not problems else 1)


@ledger_app.command("verify")
def ledger_verify(database_url: str | None = DatabaseUrl) -> None:
    """Recompute balances from transfers and check the hash chain; exit 1 on any problem."""
    from bankwallet.core.db import make_engine
    from bankwallet.ledger.verify import verify

    async def run() -> object:
        engine = make_engine(_database_url(database_url))
        try:
            return await verify(engine)
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    for problem in report.problems:  # type: ignore[attr-defined]
        typer.echo(f"BAD {problem}", err=True)
    status = "clean" if report.ok else "TAMPERED OR INCONSISTENT"  # type: ignore[attr-defined]
    typer.echo(f"ledger {status}: {report.transfers} transfers, "  # type: ignore[attr-defined]
               f"{report.accounts} accounts checked")  # type: ignore[attr-defined]
    raise typer.Exit(0 if report.ok else 1)  # type: ignore[attr-defined]


@bench_app.command("ledger")
def bench_ledger(scenario: str = typer.Option("uniform", help="uniform | hot"),
                 seconds: float = typer.Option(10.0, min=1.0, help="Seconds per measurement."),
                 database_url: str | None = DatabaseUrl,
                 accounts: int = typer.Option(100_000, min=100),
                 submitters: int = typer.Option(1024, min=1, max=8192),
                 per_call: int = typer.Option(8, min=1, max=8190,
                                              help="Transfers each submitter sends per call."),
                 baselines: bool = typer.Option(True, help="Also measure the SQL baselines."),
                 ) -> None:
    """Ledger throughput against naive and batched SQL, measured in the same run."""
    from bankwallet.bench.ledger import run_bench

    if scenario not in ("uniform", "hot"):
        raise typer.BadParameter("scenario must be uniform or hot")
    url = database_url or get_settings().database_url
    result = asyncio.run(run_bench(url, scenario=scenario, seconds=seconds, accounts=accounts,
                                   submitters=submitters, per_call=per_call,
                                   baselines=baselines, progress=lambda m: typer.echo(m, err=True)))
    sys.stdout.write(json.dumps(result) + "\n")


@bench_app.command("http")
def bench_http(seconds: float = typer.Option(10.0, min=1.0, help="Seconds per measurement."),
               database_url: str | None = DatabaseUrl,
               users: int = typer.Option(64, min=2, max=2000, help="Customers sending money."),
               workers: int = typer.Option(2, min=1, max=16, help="Server processes."),
               connections: int = typer.Option(64, min=1, max=4096, help="wrk connections."),
               threads: int = typer.Option(1, min=1, max=16, help="wrk threads.")) -> None:
    """P2P transfers through the whole HTTP stack against the same server's bare ceiling."""
    from bankwallet.bench.http import run_http_bench

    url = database_url or get_settings().database_url
    result = asyncio.run(run_http_bench(url, seconds=seconds, users=users, workers=workers,
                                        connections=connections, threads=threads,
                                        progress=lambda m: typer.echo(m, err=True)))
    sys.stdout.write(json.dumps(result) + "\n")


@bench_app.command("outbox")
def bench_outbox(events: int = typer.Option(5000, min=100, max=1_000_000,
                                            help="money.moved events per measurement."),
                 users: int = typer.Option(64, min=2, max=10_000, help="Customers."),
                 limit: int = typer.Option(100, min=1, max=1000, help="Events per round."),
                 database_url: str | None = DatabaseUrl) -> None:
    """The outbox dispatcher on money.moved: batched against one event at a time."""
    from bankwallet.bench.outbox import run_outbox_bench

    url = database_url or get_settings().database_url
    result = asyncio.run(run_outbox_bench(url, events=events, users=users, limit=limit,
                                          progress=lambda m: typer.echo(m, err=True)))
    sys.stdout.write(json.dumps(result) + "\n")


@users_app.command("create")
def users_create(email: str = typer.Option(None, "--email", help="The user's e-mail login."),
                 phone: str = typer.Option(None, "--phone", help="Or a mobile number."),
                 password_stdin: bool = typer.Option(
                     False, "--password-stdin", help="Read the password from standard input."),
                 role: str = typer.Option("customer", "--role",
                                          help="customer, support, risk, operations or admin"),
                 database_url: str | None = DatabaseUrl) -> None:
    """Create a verified user (for operators); the password comes from standard input."""
    from bankwallet.core.db import Database
    from bankwallet.core.errors import BankwalletError
    from bankwallet.core.migrate import upgrade
    from bankwallet.identity import service as identity_service

    if not password_stdin:
        raise typer.BadParameter("pass --password-stdin and the password on standard input "
                                 "(never as an argument: it would be in the process list)")
    if bool(email) == bool(phone):
        raise typer.BadParameter("give exactly one of --email and --phone")
    password = sys.stdin.readline().rstrip("\r\n")
    url = _database_url(database_url)
    upgrade(url)

    async def run() -> str:
        db = Database(url)
        try:
            async with db.unit_of_work() as session:
                user = await identity_service.create_user(
                    session, login_text=email or phone, password=password, role=role)
                return str(user.id)
        finally:
            await db.dispose()

    try:
        user_id = asyncio.run(run())
    except BankwalletError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps({"id": user_id, "role": role}))


@keys_app.command("generate")
def keys_generate(key_file: str | None = typer.Option(
        None, "--key-file", help="Overrides BANKWALLET_KEY_FILE (created when missing).")) -> None:
    """Add a new random key-encryption key to the key file and make it active.

    Prints only the new key id. Restart the app processes so they encrypt with it, then run
    `bankwallet keys rotate`; old keys stay in the file to decrypt until nothing uses them.
    """
    from pathlib import Path

    from bankwallet.core import crypto

    settings = get_settings()
    if key_file is None and settings.keys_json is not None:
        _fail("keys come from BANKWALLET_KEYS_JSON, which this command cannot change: "
              "generate into a file (--key-file) and update that secret from it")
    path = Path(key_file) if key_file else settings.key_file
    if path is None:
        if settings.env == "prod":
            _fail("set BANKWALLET_KEY_FILE (or pass --key-file)")
        path = crypto.DEV_KEY_FILE
    try:
        kid = crypto.generate_key(Path(path))
    except crypto.KeyConfigurationError as exc:
        _fail(exc.detail)
    crypto.reset_keyring()
    typer.echo(kid)


@keys_app.command("rotate")
def keys_rotate(database_url: str | None = DatabaseUrl,
                batch_size: int = typer.Option(500, "--batch-size", min=1, max=5000,
                                               help="Rows per transaction.")) -> None:
    """Re-wrap every encrypted column's data keys under the active key (data untouched).

    Prints JSON: counts per column and how many rows still use each old key id. Exits 1 when
    some value could not be read (malformed, or of a key id missing from the key set).
    """
    import bankwallet.app  # noqa: F401  - every domain registers its encrypted columns on import
    from bankwallet.core import crypto
    from bankwallet.core.db import make_engine

    url = _database_url(database_url)
    try:
        keyring = crypto.load_keyring(get_settings())
    except crypto.KeyConfigurationError as exc:
        _fail(exc.detail)
    columns = crypto.registered_columns()

    async def run() -> dict[str, dict[str, object]]:
        engine = make_engine(url)
        try:
            missing = await crypto.missing_columns(engine, columns)
            if missing:
                _fail(f"not in the database: {', '.join(missing)} (run `bankwallet migrate`)")
            return {c.name: (await crypto.rotate_column(engine, c, keyring,
                                                        batch_size=batch_size)).as_dict()
                    for c in columns}
        finally:
            await engine.dispose()

    per_column = asyncio.run(run())
    old_kids = {kid: 0 for kid in keyring.kids if kid != keyring.active_kid}
    unreadable = 0
    for report in per_column.values():
        unreadable += report["unreadable"]  # type: ignore[operator]
        for kid, count in report["by_kid"].items():  # type: ignore[attr-defined]
            if kid != keyring.active_kid:
                old_kids[kid] = old_kids.get(kid, 0) + count
    typer.echo(json.dumps({"active_kid": keyring.active_kid, "columns": per_column,
                           "old_kids_in_use": dict(sorted(old_kids.items()))}, indent=2))
    raise typer.Exit(1 if unreadable else 0)


def _fail(message: str) -> typing.NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":  # pragma: no cover
    app()
