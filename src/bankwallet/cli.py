"""The ``bankwallet`` command line (Typer)."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import typer

from bankwallet.settings import get_settings

app = typer.Typer(help="bankwallet: a bank's digital wallet.", no_args_is_help=True,
                  add_completion=False)
ledger_app = typer.Typer(help="Ledger operations.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks with same-run baselines.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(bench_app, name="bench")

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
    typer.echo(json.dumps(summary, indent=2))
    if serve_after:
        typer.echo(f"serving on http://{host}:{port}")
        serve(host=host, port=port, workers=1, database_url=None)


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


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":  # pragma: no cover
    app()
