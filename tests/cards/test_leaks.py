"""PCI DSS in practice: after every test card has been added (approved, declined, failed,
3-D Secure, through the API, the web form and a webhook), the whole database, every
encrypted value decrypted, the outbox, the captured logs (ours and the sandbox gateway's) and
every response are searched for each card's number and security code. The code is found
nowhere; the number only inside the card's own encrypted column."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from identity.test_api import STRONG
from sqlalchemy import inspect, select, text

from bankwallet.cards.models import Card
from bankwallet.cards.service import PAN_CONTEXT
from bankwallet.core.crypto import get_keyring, registered_columns
from bankwallet.core.logging import JsonFormatter

from .conftest import (
    CARDS,
    WEBHOOKS,
    SandboxGateway,
    answer_challenge,
    bearer,
    card_body,
    eventually,
    make_fresh,
    new_user,
    verification_of,
)
from .test_web import csrf_of, form

TEST_CARDS = ["4242424242424242", "5555555555554444", "378282246310005", "4000056655665556",
              "6200000000000005", "4000000000000002", "4000000000009995", "4000000000000069",
              "4000000000000127", "4000000000000119", "4000002500003155"]
WEB_CARDS = ["3566002020360505", "4000000000000002"]  # JCB approved, then a decline
SCALARS = (int, float, bool)


# Numbers the logs print as noise around a code's digits: times of day and fractional parts
# ("0.072"). A code is drawn with a leading zero, which no printed integer (a length, a count,
# a sequence number, a port) has, so only these could contain it by chance.
CLOCK = re.compile(r"\d\d:\d\d:\d\d[,.]\d+|\d+\.\d+")


def isolated(needle: str) -> re.Pattern[str]:
    """``needle`` as a token of its own: not part of a longer run of letters or digits."""
    return re.compile(rf"(?<![0-9A-Za-z]){re.escape(needle)}(?![0-9A-Za-z])")


def database_contents(client: TestClient) -> tuple[str, str, dict[tuple[str, str], list[Any]]]:
    """(every value of every table, the textual values only, the encrypted columns' blobs)."""
    encrypted = {(c.table, c.column) for c in registered_columns()}

    async def run() -> tuple[str, str, dict[tuple[str, str], list[Any]]]:
        everything, textual, blobs = [], [], {}
        async with client.app.state.db.engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            for table in sorted(tables):
                result = await conn.execute(text(f'SELECT * FROM "{table}"'))
                columns = list(result.keys())
                for row in result:
                    everything.append(repr(tuple(row)))
                    for column, value in zip(columns, row, strict=True):
                        if (table, column) in encrypted and value is not None:
                            blobs.setdefault((table, column), []).append(bytes(value))
                        elif isinstance(value, (bytes, memoryview)):
                            textual.append(bytes(value).decode("latin-1"))
                        elif value is not None and not isinstance(value, SCALARS):
                            textual.append(str(value))
        return "\n".join(everything), "\n".join(textual), blobs

    return client.portal.call(run)


def decrypted(blobs: dict[tuple[str, str], list[Any]]) -> dict[tuple[str, str], list[str]]:
    contexts = {(c.table, c.column): c.context for c in registered_columns()}
    keyring = get_keyring()
    return {where: [keyring.decrypt(b, context=contexts[where]).decode("utf-8", "replace")
                    for b in values] for where, values in blobs.items()}


def unused_code(digits: int, taken: str) -> str:
    """A security code that occurs nowhere yet and starts with 0 (see ``CLOCK``), so finding it
    later means it leaked."""
    while True:
        code = "0" + str(secrets.randbelow(10 ** (digits - 1))).zfill(digits - 1)
        if not isolated(code).search(CLOCK.sub("<time>", taken)):
            return code


def test_no_card_number_or_code_anywhere(client: TestClient, sandbox_gateway: SandboxGateway,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # The HTTP client's own loggers are quiet in production (core.logging.QUIET_LOGGERS); an
    # operator may turn them up, so what they would write is searched too.
    from bankwallet.core.logging import QUIET_LOGGERS

    for name in QUIET_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    _, before, before_blobs = database_contents(client)
    before += "\n".join(v for values in decrypted(before_blobs).values() for v in values)
    codes = {n: unused_code(4 if n.startswith("37") else 3, before) for n in TEST_CARDS}
    responses: list[str] = []

    user = new_user(client)
    for number in TEST_CARDS:
        r = client.post(CARDS, json=card_body(number, cvc=codes[number]),
                        headers=bearer(user["token"]))
        responses.append(r.text)
        if r.status_code == 202:  # 3-D Secure: completed, then settled by the webhook
            card = r.json()
            answer_challenge(card["next_action"]["url"], "complete")
            payment_id = verification_of(sandbox_gateway, card["id"])["id"]
            (delivery,) = asyncio.run(eventually(
                lambda paid=payment_id: sandbox_gateway.receiver.about(paid), "the webhook"))
            hook = client.post(WEBHOOKS, content=delivery.body, headers={
                k: v for k, v in delivery.headers.items() if k.startswith("bankwallet-")})
            assert hook.status_code == 200
    statuses = {c["last4"]: c["status"] for c in client.get(
        CARDS, headers=bearer(user["token"])).json()["items"]}
    assert statuses == {"4242": "active", "4444": "active", "0005": "active", "5556": "active",
                        "3155": "active"}  # 6200000000000005 ends in 0005 too
    assert len(client.get(CARDS, headers=bearer(user["token"])).json()["items"]) == 6

    # The web form, with a cookie session: one approved, one declined, one refused.
    client.post("/login", data={"login": user["user"]["phone"], "password": STRONG})
    make_fresh(client, user["user"]["id"])
    csrf = csrf_of(client.get("/me/cards").text)
    for number in WEB_CARDS:
        codes[number] = unused_code(3, before)
        r = client.post("/me/cards", data=form(csrf, number, cvc=codes[number]))
        responses.append(r.text)
    typo = "4242424242424241"
    codes[typo] = unused_code(3, before)
    responses.append(client.post("/me/cards", data=form(csrf, typo, cvc=codes[typo])).text)
    responses.append(client.get("/me/cards").text)

    everything, textual, blobs = database_contents(client)
    plain = decrypted(blobs)
    pans = plain.pop(("cards_card", "pan_enc"), [])
    secrets_text = "\n".join(v for values in plain.values() for v in values)
    outbox = "\n".join(v for v in plain.get(("core_outbox_event", "sealed"), []))
    # Each record as it is written (with its extra fields), and its raw message.
    logs = "\n".join(f"{JsonFormatter().format(r)}\n{r.getMessage()}" for r in caplog.records)
    gateway_log = sandbox_gateway.log_path.read_text()
    haystacks = {"database": everything + "\n" + textual, "decrypted values": secrets_text,
                 "outbox": outbox, "logs": logs, "gateway log": gateway_log,
                 "responses": "\n".join(responses)}
    # The search saw what it should: the logs, the user's rows, the card events.
    assert len(logs) > 1000 and user["user"]["id"].replace("-", "") in everything.replace("-", "")
    assert '"card.added"' in everything or "card.added" in everything

    for number, code in codes.items():
        spaced = " ".join(number[i:i + 4] for i in range(0, len(number), 4))
        for where, haystack in haystacks.items():
            leaked = number in haystack or spaced in haystack
            assert not leaked, f"the card number {number} is in the {where}"
        for where, haystack in {**haystacks, "database": textual,
                                "card numbers": "\n".join(pans)}.items():
            haystack = CLOCK.sub("<time>", haystack)
            found = isolated(code).search(haystack)
            assert found is None, (f"the security code of {number} is in the {where}: "
                                   f"…{haystack[max(0, found.start() - 80):found.end() + 80]}…")

    # The number is there only as ciphertext: each of the user's live cards opens to it.
    added = {*TEST_CARDS[:5], TEST_CARDS[-1], WEB_CARDS[0]}
    mine = client.portal.call(_card_blobs, client, user["user"]["id"])
    assert len(mine) == len(added) and not any(n.encode() in b for b in mine for n in added)
    keyring = get_keyring()
    assert sorted(keyring.decrypt(b, context=PAN_CONTEXT).decode() for b in mine) == sorted(added)


async def _card_blobs(client: TestClient, user_id: str) -> list[bytes]:
    async with client.app.state.db.sessionmaker() as session:
        rows = await session.scalars(select(Card.pan_enc).where(
            Card.user_id == uuid.UUID(user_id), Card.pan_enc.is_not(None)))
        return [bytes(b) for b in rows]
