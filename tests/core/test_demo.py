"""The demo data: customers who can log in, funded wallets, a second run changes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bankwallet import demo
from bankwallet.core.db import Database
from bankwallet.identity import passwords
from bankwallet.identity import service as identity_service
from conftest import create_sqlite_database
from identity.test_api import key_file  # noqa: F401


def test_the_demo_is_idempotent_and_its_customers_can_log_in(tmp_path: Path, key_file) -> None:
    url = create_sqlite_database(tmp_path)
    first = asyncio.run(demo.load_demo(url))
    assert first["transfers"] == {"created": len(demo.CUSTOMERS) + demo.P2P_TRANSFERS}
    again = asyncio.run(demo.load_demo(url))
    assert again["transfers"] == {"exists": len(demo.CUSTOMERS) + demo.P2P_TRANSFERS}
    assert again["customers"] == first["customers"]
    # Money only moved between the customers after the top-ups: the total is what came in.
    total = sum(int(c["balance"].replace("CN¥", "").replace(",", "").replace(".", ""))
                for c in first["customers"].values())
    assert total == demo.TOPUP_MINOR * len(demo.CUSTOMERS)

    async def check_login() -> None:
        db = Database(url)
        try:
            async with db.sessionmaker() as session:
                for login in demo.CUSTOMERS.values():
                    user = await identity_service.find_user(
                        session, identity_service.parse_login(login))
                    assert user is not None and user.kyc_tier == 1
                    assert passwords.verify_password(user.password_hash, demo.PASSWORD)
        finally:
            await db.dispose()

    asyncio.run(check_login())
