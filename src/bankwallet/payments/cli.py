"""``bankwallet merchants create``: onboard a merchant from the command line (for operators).

The command calls the same services as the dashboard: ``create_merchant`` for an existing
user, who becomes its owner, then ``create_api_key`` for a secret key printed once. An operator
with the database at hand needs no second factor, so the command acts through an unsaved login
session whose second factor is "now" (the audit log records the owner as the actor, as the
dashboard would).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import uuid

import typer

from bankwallet.settings import get_settings

merchants_app = typer.Typer(help="Merchants: onboarding.", no_args_is_help=True)

# A 19-digit card number with a valid Luhn digit, so the sandbox can settle to "a bank
# account" without one being typed; production refuses to default (see --settlement-account).
SANDBOX_SETTLEMENT_ACCOUNT = "6222 0212 3456 7890 128"
EXIT_INVALID = 2


@merchants_app.command("create")
def merchants_create(
        name: str = typer.Option(..., "--name", help="The merchant's name."),
        mcc: str = typer.Option("5999", "--mcc", help="ISO 18245 merchant category code "
                                "(default 5999, miscellaneous retail)."),
        city: str = typer.Option("Shanghai", "--city", help="The merchant's city."),
        country: str = typer.Option("CN", "--country", help="ISO 3166-1 alpha-2 country."),
        owner_email: str | None = typer.Option(None, "--owner-email",
                                               help="The existing user who owns it."),
        owner_phone: str | None = typer.Option(None, "--owner-phone",
                                               help="Or that user's mobile number."),
        settlement_account: str | None = typer.Option(
            None, "--settlement-account",
            help="The bank account (IBAN or card number) settlements are paid to. Outside "
                 "production it defaults to the sandbox card 6222 0212 3456 7890 128; "
                 "production requires it."),
        database_url: str | None = typer.Option(None, "--database-url",
                                                help="Overrides BANKWALLET_DATABASE_URL.")
) -> None:
    """Create a merchant owned by an existing user (exactly one of --owner-email and
    --owner-phone) and a secret API key for it; prints JSON {id, name, owner_id, secret_key}.
    The key is shown this once: only its hash is kept."""
    from bankwallet.core.errors import BankwalletError
    from bankwallet.core.migrate import upgrade

    if bool(owner_email) == bool(owner_phone):
        _fail("give exactly one of --owner-email and --owner-phone (an existing user)")
    if database_url:
        os.environ["BANKWALLET_DATABASE_URL"] = database_url
        get_settings.cache_clear()
    settings = get_settings()
    if settlement_account is None:
        if settings.env == "prod":
            _fail("--settlement-account is required in production")
        settlement_account = SANDBOX_SETTLEMENT_ACCOUNT
    upgrade(settings.database_url)
    try:
        created = asyncio.run(_create(
            settings.database_url, login_text=owner_email or owner_phone or "", name=name,
            mcc=mcc, city=city, country=country, bank_account=settlement_account))
    except BankwalletError as exc:
        _fail(f"{exc.code}: {exc.detail}")
    typer.echo(json.dumps(created, ensure_ascii=False))


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_INVALID)


async def _create(url: str, *, login_text: str, **merchant_in: str) -> dict[str, str]:
    from bankwallet.core.db import Database, utcnow
    from bankwallet.identity import service as identity_service
    from bankwallet.identity.errors import InvalidLogin
    from bankwallet.identity.models import Session
    from bankwallet.ledger.store import SqlLedgerStore
    from bankwallet.payments import service

    db = Database(url)
    ledger = SqlLedgerStore(db.engine)
    try:
        async with db.unit_of_work() as session:
            user = await identity_service.find_user(
                session, identity_service.parse_login(login_text))
            if user is None:
                raise InvalidLogin("No user has that login; create it first "
                                   "(bankwallet users create).")
            now = utcnow()
            # Never added to the database: it only carries "a second factor just now".
            login = Session(id=uuid.uuid4(), token_hash=b"", user_id=user.id, kind="cli",
                            created_at=now, last_seen_at=now,
                            expires_at=now + dt.timedelta(minutes=1), revoked_at=None,
                            second_factor_at=now, ip=None, user_agent="bankwallet-cli")
            auth = identity_service.Authenticated(user=user, session=login)
            merchant = await service.create_merchant(session, ledger, auth, **merchant_in)
            _, key = await service.create_api_key(session, auth, merchant, name="cli")
            return {"id": str(merchant.id), "name": merchant.name, "owner_id": str(user.id),
                    "secret_key": key}
    finally:
        await ledger.close()
        await db.dispose()

