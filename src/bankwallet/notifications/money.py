"""Money notifications: every ``money.moved`` event becomes an in-app message for each user it
involves (payer and payee), in the user's language, plus an SMS and/or e-mail as the user
chose (``MoneyPreferences``; no choice made: the defaults).

Exactly once per event and user: the outbox runs this consumer once per event id, and the
inbox message and the development sink's SMS/e-mail commit together with that delivery. A
real SMTP server is outside the transaction, so an e-mail repeats only if that commit fails.

The event (``docs/money-movement.md``)::

    {"kind": "p2p", "status": "posted|failed|reversed", "ref": "...", "amount_minor": 1234,
     "currency": "CNY", "ledger_transfer_id": "...", "payer_user_id": "..." | null,
     "payee_user_id": "..." | null, "from": "<display>", "to": "<display>", "note": "..."}
"""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.connectors.messaging.base import SMS_MAX_CHARS, SendResult
from bankwallet.core import audit, i18n, outbox
from bankwallet.core.db import utcnow
from bankwallet.core.errors import InvalidInput
from bankwallet.core.i18n import N_
from bankwallet.core.money import MAX_AMOUNT_MINOR, UnknownCurrency, check_currency
from bankwallet.identity import service as identity_service
from bankwallet.notifications import service
from bankwallet.notifications.errors import SendFailed
from bankwallet.notifications.models import MoneyPreference

log = logging.getLogger("bankwallet.notifications")

TOPIC: Final = "money.moved"
STATUSES: Final = ("posted", "failed", "reversed")
# Money out of at least this much gets an SMS by default: 500.00 in a two-decimal currency.
# Compared in the movement's own currency (every currency offered today has two decimals).
DEFAULT_SMS_MONEY_OUT_MIN_MINOR: Final = 50_000
DISPLAY_MAX_CHARS: Final = 140
KIND_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,24}$")

Role = Literal["payer", "payee", "self"]


# -- preferences -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MoneyPreferences:
    sms_withdrawals: bool = True  # every withdrawal, whatever its size
    sms_money_out: bool = True  # money out of at least ``sms_money_out_min_minor``
    sms_money_out_min_minor: int = DEFAULT_SMS_MONEY_OUT_MIN_MINOR
    sms_money_in: bool = False  # money received
    email: bool = False  # an e-mail for every message, when the user has an address


class InvalidPreferences(InvalidInput):
    code = "invalid_notification_preferences"
    title = "Invalid notification preferences"


async def get_preferences(session: AsyncSession, user_id: uuid.UUID | str) -> MoneyPreferences:
    return _preferences_of(await session.get(MoneyPreference, str(user_id)))


async def preferences_of_users(session: AsyncSession, user_ids: list[uuid.UUID]
                               ) -> dict[uuid.UUID, MoneyPreferences]:
    """Each user's choices (the defaults where they made none), in one query."""
    rows = {row.user_id: row for row in (await session.scalars(select(MoneyPreference).where(
        MoneyPreference.user_id.in_([str(u) for u in user_ids])))).all()}
    return {user_id: _preferences_of(rows.get(str(user_id))) for user_id in user_ids}


def _preferences_of(row: MoneyPreference | None) -> MoneyPreferences:
    if row is None:
        return MoneyPreferences()
    return MoneyPreferences(sms_withdrawals=row.sms_withdrawals, sms_money_out=row.sms_money_out,
                            sms_money_out_min_minor=row.sms_money_out_min_minor,
                            sms_money_in=row.sms_money_in, email=row.email)


async def set_preferences(session: AsyncSession, user_id: uuid.UUID | str,
                          preferences: MoneyPreferences) -> MoneyPreferences:
    """Replace the user's choices (the route has checked who is asking)."""
    if not 0 <= preferences.sms_money_out_min_minor <= MAX_AMOUNT_MINOR:
        raise InvalidPreferences("The SMS threshold must be between 0 and 2^63-1 minor units.")
    row = (await session.scalars(select(MoneyPreference).where(
        MoneyPreference.user_id == str(user_id)).with_for_update())).one_or_none()
    if row is None:
        row = MoneyPreference(user_id=str(user_id))
        session.add(row)
    for name, value in dataclasses.asdict(preferences).items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    await session.flush()
    await audit.record(session, action="notifications.preferences.updated", actor_type="user",
                       actor_id=str(user_id), subject_type="user", subject_id=str(user_id),
                       data=dataclasses.asdict(preferences))
    return preferences


def channels_for(preferences: MoneyPreferences, *, role: Role, kind: str, status: str,
                 amount_minor: int) -> frozenset[str]:
    """Which channels besides the inbox one message goes out on."""
    channels: set[str] = set()
    if preferences.email:
        channels.add("email")
    if role == "payer":
        if kind == "withdrawal" and preferences.sms_withdrawals:
            channels.add("sms")
        if (status == "posted" and preferences.sms_money_out
                and amount_minor >= preferences.sms_money_out_min_minor):
            channels.add("sms")
    elif role == "payee" and status == "posted" and preferences.sms_money_in:
        channels.add("sms")
    return frozenset(channels)


# -- the event -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MoneyMoved:
    kind: str
    status: str
    ref: str
    amount_minor: int
    currency: str
    payer_user_id: uuid.UUID | None
    payee_user_id: uuid.UUID | None
    from_display: str
    to_display: str
    note: str
    buy_amount_minor: int | None = None  # an exchange: what came in, in ``buy_currency``
    buy_currency: str | None = None


def parse_event(payload: dict[str, Any]) -> MoneyMoved | None:
    """The event, or None when it is malformed (a publisher's bug: logged, never retried)."""
    try:
        amount = payload["amount_minor"]
        if not isinstance(amount, int) or isinstance(amount, bool) or not (
                0 <= amount <= MAX_AMOUNT_MINOR):
            return None
        kind, status = str(payload["kind"]), str(payload["status"])
        if not KIND_RE.fullmatch(kind) or status not in STATUSES:
            return None
        buy_amount, buy_currency = payload.get("buy_amount_minor"), payload.get("buy_currency")
        if buy_amount is not None and not (isinstance(buy_amount, int) and buy_currency):
            return None
        return MoneyMoved(
            kind=kind, status=status, ref=str(payload.get("ref") or "")[:64],
            amount_minor=amount, currency=check_currency(str(payload["currency"])),
            payer_user_id=_user_id(payload.get("payer_user_id")),
            payee_user_id=_user_id(payload.get("payee_user_id")),
            from_display=_display(payload.get("from")), to_display=_display(payload.get("to")),
            note=_display(payload.get("note")), buy_amount_minor=buy_amount,
            buy_currency=check_currency(str(buy_currency)) if buy_amount is not None else None)
    except (KeyError, ValueError, TypeError, UnknownCurrency):
        return None


def _user_id(value: Any) -> uuid.UUID | None:
    return None if value in (None, "") else uuid.UUID(str(value))


def _display(value: Any) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text[:DISPLAY_MAX_CHARS]


def recipients(moved: MoneyMoved) -> list[tuple[uuid.UUID, Role]]:
    """Who hears about it. A failure concerns only the one who started the movement (the
    payer; for a top-up, the payee); the other side never saw the money."""
    payer, payee = moved.payer_user_id, moved.payee_user_id
    if payer is not None and payer == payee:
        return [(payer, "self")]
    if moved.status == "failed":
        first = (payer, "payer") if payer is not None else (payee, "payee")
        return [first] if first[0] is not None else []  # type: ignore[list-item]
    found: list[tuple[uuid.UUID, Role]] = []
    if payer is not None:
        found.append((payer, "payer"))
    if payee is not None:
        found.append((payee, "payee"))
    return found


# -- wording ---------------------------------------------------------------------------------

_OTHER_PARTY = N_("the other party")
_EXCHANGED = N_("You exchanged {amount} for {buy_amount}.")
_NOTE = N_("Note: {note}")
_EMAIL_FOOTER = N_("Choose how we tell you about money moving under Me › Notifications. "
                   "We never ask for your password or a code by SMS or e-mail.")

# (kind, role, status) -> (title, body); "*" matches any kind or role.
_WORDING: Final[dict[tuple[str, str, str], tuple[str, str]]] = {
    ("topup", "payee", "posted"): (N_("Top-up received"),
                                   N_("{amount} from {from} is now in your wallet.")),
    ("withdrawal", "payer", "posted"): (N_("Withdrawal sent"),
                                        N_("{amount} is on its way to {to}.")),
    ("p2p", "payer", "posted"): (N_("Money sent"), N_("You sent {amount} to {to}.")),
    ("p2p", "payee", "posted"): (N_("Money received"), N_("{from} sent you {amount}.")),
    ("payment", "payer", "posted"): (N_("Payment made"), N_("You paid {amount} to {to}.")),
    ("payment", "payee", "posted"): (N_("Payment received"), N_("{from} paid you {amount}.")),
    ("refund", "payer", "posted"): (N_("Refund sent"), N_("You refunded {amount} to {to}.")),
    ("refund", "payee", "posted"): (N_("Refund received"),
                                    N_("{from} refunded {amount} to you.")),
    ("exchange", "*", "posted"): (N_("Exchange completed"),
                                  N_("Your exchange of {amount} is complete.")),
    ("*", "payer", "posted"): (N_("Money out"), N_("{amount} left your wallet to {to}.")),
    ("*", "payee", "posted"): (N_("Money in"), N_("{amount} arrived from {from}.")),
    ("*", "self", "posted"): (N_("Money moved"),
                              N_("{amount} moved between your balances.")),
    ("topup", "*", "failed"): (N_("Top-up failed"),
                               N_("Your top-up of {amount} did not go through. Nothing was "
                                  "added to your wallet.")),
    ("withdrawal", "*", "failed"): (N_("Withdrawal failed"),
                                    N_("Your withdrawal of {amount} did not go through. The "
                                       "money is back in your wallet.")),
    ("exchange", "*", "failed"): (N_("Exchange failed"),
                                  N_("Your exchange of {amount} did not go through. Nothing "
                                     "was changed.")),
    ("*", "*", "failed"): (N_("Transaction failed"),
                           N_("{amount} to {to} did not go through. Nothing was taken from "
                              "your wallet.")),
    ("*", "payee", "reversed"): (N_("Transaction reversed"),
                                 N_("{amount} from {from} was reversed and taken back from "
                                    "your wallet.")),
    ("*", "*", "reversed"): (N_("Transaction reversed"),
                             N_("{amount} to {to} was reversed and is back in your wallet.")),
}


def wording(moved: MoneyMoved, role: Role, locale: str) -> tuple[str, str]:
    """The title and body of the message to one user, in their language."""
    found = next((w for kind in (moved.kind, "*") for who in (role, "*")
                  if (w := _WORDING.get((kind, who, moved.status)))), None)
    assert found, (moved.kind, role, moved.status)
    title, body = found
    if moved.kind == "exchange" and moved.status == "posted" and moved.buy_currency:
        body = _EXCHANGED
    other = i18n.gettext(_OTHER_PARTY, locale)
    text = i18n.gettext(body, locale).format_map({
        "amount": i18n.format_money(moved.amount_minor, moved.currency, locale),
        "buy_amount": (i18n.format_money(moved.buy_amount_minor, moved.buy_currency, locale)
                       if moved.buy_currency and moved.buy_amount_minor is not None else ""),
        "from": moved.from_display or other, "to": moved.to_display or other})
    if moved.note:
        text += " " + i18n.gettext(_NOTE, locale).format(note=moved.note)
    return i18n.gettext(title, locale), text


def sms_text(title: str, body: str) -> str:
    text = f"[bankwallet] {title}: {body}"
    return text if len(text) <= SMS_MAX_CHARS else text[:SMS_MAX_CHARS - 1] + "…"


# -- the consumer ----------------------------------------------------------------------------


async def notify_money_moved(session: AsyncSession, events: list[tuple[uuid.UUID, dict[str, Any]]],
                             *, senders: service.Senders, default_locale: str
                             ) -> outbox.Failures:
    """Write the inbox messages of many events and send their SMS and e-mail: the users and
    their choices in one query each, the messages in one insert. Returns the events whose
    sending failed (retryable), their messages taken back so a retry writes them once."""
    parsed: list[tuple[uuid.UUID, MoneyMoved]] = []
    for event_id, payload in events:
        moved = parse_event(payload)
        if moved is None:
            log.error("malformed money.moved event dropped",
                      extra={"kind": str(payload.get("kind"))[:32]})
            continue
        parsed.append((event_id, moved))
    wanted = list(dict.fromkeys(user_id for _, moved in parsed for user_id, _ in recipients(moved)))
    users = await identity_service.get_users(session, wanted)
    choices = await preferences_of_users(session, list(users))
    rows: list[dict[str, Any]] = []
    written: dict[uuid.UUID, list[uuid.UUID]] = {}
    sends: list[tuple[uuid.UUID, dict[str, str | None], frozenset[str], str, str, str, str]] = []
    for event_id, moved in parsed:
        for user_id, role in recipients(moved):
            user = users.get(user_id)
            if user is None or user.status == "closed":
                continue
            locale = i18n.supported(user.locale) or default_locale
            title, body = wording(moved, role, locale)
            rows.append(service.message_row(user_id=user_id, kind=f"money.{moved.kind}",
                                            title=title, body=body))
            written.setdefault(event_id, []).append(rows[-1]["id"])
            channels = channels_for(choices[user_id], role=role, kind=moved.kind,
                                    status=moved.status, amount_minor=moved.amount_minor)
            if channels:
                sends.append((event_id, identity_service.contact_of(user), channels, title,
                              body, locale, moved.kind))
    await service.add_messages(session, rows)  # before anything leaves the bank
    failures: outbox.Failures = {}
    for event_id, contact, channels, title, body, locale, kind in sends:
        if event_id in failures:
            continue
        try:
            await _send(senders, contact, channels, title=title, body=body, locale=locale,
                        kind=kind)
        except SendFailed as exc:
            failures[event_id] = exc
    await service.take_back_messages(
        session, [message for event_id in failures for message in written.get(event_id, [])])
    return failures


async def _send(senders: service.Senders, contact: dict[str, str | None],
                channels: frozenset[str], *, title: str, body: str, locale: str,
                kind: str) -> None:
    results: list[tuple[str, SendResult]] = []
    if "sms" in channels and contact["phone"]:
        results.append(("sms", await senders.sms.send(contact["phone"], sms_text(title, body))))
    if "email" in channels and contact["email"]:
        text = f"{body}\n\n{i18n.gettext(_EMAIL_FOOTER, locale)}\n"
        results.append(("email", await senders.email.send(contact["email"], title, text)))
    for channel, result in results:  # logs name the channel and kind, never the recipient
        if result.ok:
            log.info("money notification sent", extra={"channel": channel, "kind": kind})
        elif result.retryable:
            raise SendFailed(f"{channel} not sent: {result.error}")
        else:
            log.warning("money notification not sent",
                        extra={"channel": channel, "kind": kind, "error": result.error})


@outbox.batch_consumer(TOPIC, name="notifications.money_moved")
async def money_moved(session: AsyncSession, events: list[outbox.Event]) -> outbox.Failures:
    # Imported here: tasks imports this module to register the consumer.
    from bankwallet.notifications import tasks
    from bankwallet.settings import get_settings

    settings = tasks._settings or get_settings()  # the app's settings, as the OTP sender uses
    return await notify_money_moved(session, [(event.id, event.payload) for event in events],
                                    senders=tasks.senders_for(session, settings),
                                    default_locale=settings.default_locale)
