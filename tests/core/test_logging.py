"""Structured logs: one JSON object per line, the request id, and no secret ever written."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bankwallet.core.logging import (
    JsonFormatter,
    RedactingFilter,
    configure_logging,
    request_id_var,
)

PAN = "4242424242424242"
MASK = "[REDACTED]"
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

Emit = Callable[[Callable[[logging.Logger], None]], list[dict[str, Any]]]


@pytest.fixture
def emit() -> Iterator[Emit]:
    """Log through the same filter and formatter as ``configure_logging``, on a private logger
    that does not propagate; returns the parsed lines (each line must be one JSON object)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"bankwallet.test.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)

    def run(log: Callable[[logging.Logger], None]) -> list[dict[str, Any]]:
        stream.seek(0)
        stream.truncate()
        log(logger)
        text = stream.getvalue()
        assert text.endswith("\n")
        return [json.loads(line) for line in text.splitlines()]

    yield run
    logger.removeHandler(handler)


def one(emit: Emit, log: Callable[[logging.Logger], None]) -> dict[str, Any]:
    [entry] = emit(log)
    return entry


def raw(entry: dict[str, Any]) -> str:
    return json.dumps(entry)


# --- the JSON lines -------------------------------------------------------------------------


def test_each_record_is_one_json_object_on_one_line(emit: Emit) -> None:
    def log(logger: logging.Logger) -> None:
        logger.info("first")
        logger.warning("second\nwith a newline and \"quotes\"")
        logger.error("third %s", "arg")

    entries = emit(log)
    assert [e["msg"] for e in entries] == ["first", "second\nwith a newline and \"quotes\"",
                                          "third arg"]
    assert [e["level"] for e in entries] == ["info", "warning", "error"]
    for entry in entries:
        assert TS_RE.match(entry["ts"]), entry["ts"]
        assert entry["logger"].startswith("bankwallet.test.")
        assert "request_id" not in entry


def test_request_id_is_included_when_set(emit: Emit) -> None:
    token = request_id_var.set("req-123")
    try:
        entry = one(emit, lambda log: log.info("inside a request"))
    finally:
        request_id_var.reset(token)
    assert entry["request_id"] == "req-123"
    assert "request_id" not in one(emit, lambda log: log.info("outside"))


def test_extra_fields_become_keys(emit: Emit) -> None:
    entry = one(emit, lambda log: log.info("moved", extra={"amount_minor": 12345, "user": "alice",
                                                           "ok": True}))
    assert (entry["amount_minor"], entry["user"], entry["ok"]) == (12345, "alice", True)


@pytest.fixture
def utc_plus_8() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "CST-8"  # POSIX spelling: needs no tz database
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_timestamp_is_utc_whatever_the_host_zone(utc_plus_8: None) -> None:
    assert time.localtime(0).tm_hour == 8  # the zone took effect
    record = logging.makeLogRecord({"name": "x", "levelname": "INFO", "msg": "m",
                                    "created": 86400.25, "msecs": 250.0})
    assert json.loads(JsonFormatter().format(record))["ts"] == "1970-01-02T00:00:00.250Z"


# --- redaction: sensitive keys ---------------------------------------------------------------


@pytest.mark.parametrize("key", [
    "password", "new_password", "passwd", "otp", "otp_code", "token", "access_token",
    "refresh_token", "mnemonic", "seed_phrase", "pan", "cvv", "cvc", "pin", "national_id",
    "id_number", "secret", "client_secret", "private_key", "api_key", "authorization",
    "cookie", "PASSWORD", "Authorization",
])
def test_sensitive_keys_are_masked(emit: Emit, key: str) -> None:
    entry = one(emit, lambda log: log.info("login", extra={key: "hunter2-s3cret"}))
    assert entry[key] == MASK
    assert "hunter2" not in raw(entry)


def test_sensitive_keys_are_masked_in_nested_dicts_and_lists(emit: Emit) -> None:
    payload = {
        "user": "alice",
        "password": "hunter2",
        "card": {"pan": PAN, "cvv": "123", "expiry": "12/30", "holder": "Alice"},
        "factors": [{"otp": "654321", "kind": "sms"}],
        "kyc": {"person": {"national_id": "110101199003078888", "city": "Beijing"}},
        "wallet": {"mnemonic": "abandon " * 11 + "about"},
    }
    entry = one(emit, lambda log: log.info("signup", extra={"payload": payload}))
    got = entry["payload"]
    assert got["user"] == "alice" and got["password"] == MASK
    assert got["card"] == {"pan": MASK, "cvv": MASK, "expiry": "12/30", "holder": "Alice"}
    assert got["factors"] == [{"otp": MASK, "kind": "sms"}]
    assert got["kyc"] == {"person": {"national_id": MASK, "city": "Beijing"}}
    assert got["wallet"] == {"mnemonic": MASK}
    for secret in ("hunter2", PAN, "654321", "110101199003078888", "abandon"):
        assert secret not in raw(entry)
    assert payload["password"] == "hunter2"  # the caller's object is left alone


# --- redaction: card numbers wherever they appear -----------------------------------------------


@pytest.mark.parametrize("card", [
    PAN, "4242 4242 4242 4242", "4242-4242-4242-4242", "378282246310005",  # Amex, 15
    "6212345678901234567",  # UnionPay, 19
    "4000 0566 5566 5556",
])
def test_card_numbers_are_masked_in_messages(emit: Emit, card: str) -> None:
    entry = one(emit, lambda log: log.info(f"paid with {card}, thanks"))
    assert entry["msg"] == f"paid with {MASK}, thanks"


@pytest.mark.parametrize("log", [
    lambda log: log.info("card %s declined", PAN),
    lambda log: log.info("card %s declined", "4242 4242 4242 4242"),
    lambda log: log.info("card %s declined", int(PAN)),
    lambda log: log.info("card %d declined", int(PAN)),
    lambda log: log.info("card %s%s declined", "42424242", "42424242"),
    lambda log: log.info("card 4242 4242 %s declined", "4242 4242"),
    lambda log: log.info("card %(card)s declined", {"card": PAN}),
    lambda log: log.info("cards %s declined", [PAN]),
], ids=["str", "spaced", "int", "int-d", "split-args", "split-msg-arg", "mapping", "list"])
def test_card_numbers_are_masked_in_args(emit: Emit, log: Callable[[logging.Logger], None]) -> None:
    entry = one(emit, log)
    assert "4242" not in raw(entry)
    assert MASK in entry["msg"]
    assert entry["msg"].startswith("card")


def test_card_numbers_are_masked_in_extra_values(emit: Emit) -> None:
    entry = one(emit, lambda log: log.info("charge", extra={
        "note": f"customer typed {PAN} into the memo", "card_number": int(PAN),
        "history": [f"old card {PAN}"]}))
    assert "4242" not in raw(entry)
    assert entry["note"] == f"customer typed {MASK} into the memo"
    assert entry["card_number"] == MASK
    assert entry["history"] == [f"old card {MASK}"]


def test_card_numbers_are_masked_in_exception_text(emit: Emit) -> None:
    def log(logger: logging.Logger) -> None:
        try:
            raise ValueError(f"card {PAN} rejected by issuer")
        except ValueError:
            logger.exception("charge failed for %s", "4242-4242-4242-4242")

    entry = one(emit, log)
    assert "4242" not in raw(entry)
    assert entry["msg"] == f"charge failed for {MASK}"
    assert "ValueError: card [REDACTED] rejected by issuer" in entry["exc"]
    assert "Traceback" in entry["exc"]


@pytest.mark.parametrize("text", [
    "order 12345 paid 100.00 CNY",
    "transfer 0190d2a0-1c2b-7def-8abc-0123456789ab posted at 2024-05-01T12:00:00Z",
    "call 010-6512-3456 or 138 0013 8000",  # 11 and 12 digits: phone numbers, not cards
    "batch of 4096 in 12 ms, head seq 123456789012",
    "amount_minor=9999 currency=CNY",
])
def test_ordinary_text_and_short_numbers_are_left_alone(emit: Emit, text: str) -> None:
    assert one(emit, lambda log: log.info(text))["msg"] == text
    assert one(emit, lambda log: log.info("%s", text))["msg"] == text
    assert one(emit, lambda log: log.info("x", extra={"note": text}))["note"] == text


def test_a_broken_logging_call_does_not_raise_and_leaks_nothing(
        capsys: pytest.CaptureFixture[str]) -> None:
    # logging reports a bad format call on stderr (message and arguments) instead of raising.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"bankwallet.test.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.error("card %d %d", PAN)  # wrong types and too few args
    assert stream.getvalue() == ""
    report = capsys.readouterr().err
    assert "Logging error" in report
    assert PAN not in report


# --- configure_logging -----------------------------------------------------------------------


def test_configure_logging_writes_redacted_json_to_stderr(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG")
    configure_logging("DEBUG")  # reconfiguring replaces its handler rather than adding one
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_bankwallet", False)]
    assert len(ours) == 1
    token = request_id_var.set("abc123")
    try:
        logging.getLogger("bankwallet.test.configured").debug(
            "paid with %s", PAN, extra={"otp": "123456", "amount_minor": 500})
    finally:
        request_id_var.reset(token)
    lines = [line for line in capsys.readouterr().err.splitlines()
             if "bankwallet.test.configured" in line]
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["msg"] == f"paid with {MASK}"
    assert (entry["level"], entry["logger"], entry["request_id"]) == (
        "debug", "bankwallet.test.configured", "abc123")
    assert (entry["otp"], entry["amount_minor"]) == (MASK, 500)
    assert TS_RE.match(entry["ts"])


def test_configure_logging_plain_text_is_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=False)
    logger = logging.getLogger("bankwallet.test.plain")
    logger.debug("below the level %s", "invisible")
    logger.info("paid with %s", PAN)
    err = capsys.readouterr().err
    assert "invisible" not in err
    [line] = [line for line in err.splitlines() if "bankwallet.test.plain" in line]
    assert line.endswith(f"INFO bankwallet.test.plain paid with {MASK}")


def test_http_client_request_lines_stay_out_of_the_log(capsys) -> None:
    """httpx logs each request's URL at INFO; a node URL may carry an API key in its path."""
    import httpx

    configure_logging("INFO", json=True)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True})

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        assert client.get("https://node.example/v3/secret-project-key").status_code == 200
    logging.getLogger("bankwallet.test").info("after the request")
    err = capsys.readouterr().err
    assert "after the request" in err
    assert "secret-project-key" not in err
