"""JSON structured logs with a redaction filter and the current request id.

Secrets never reach a log line: keys that look sensitive are masked, and long digit runs that
look like card numbers (PAN) are masked inside messages too.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id",
                                                                              default=None)

# A key is sensitive when one of its words is, or two neighbouring words are: words, not
# substrings, so "company", "shipping" and an error's "code" stay readable.
SENSITIVE_WORDS = frozenset({
    "password", "passwd", "passphrase", "secret", "token", "otp", "totp", "pin", "pan", "cvv",
    "cvc", "mnemonic", "seed", "authorization", "cookie", "credential", "credentials", "apikey",
})
SENSITIVE_PAIRS = frozenset({
    ("private", "key"), ("api", "key"), ("access", "key"), ("secret", "key"), ("national", "id"),
    ("id", "number"), ("card", "number"), ("verification", "code"), ("recovery", "code"),
    ("sms", "code"), ("one", "time"),
})
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def is_sensitive_key(key: str) -> bool:
    words = [w.lower() for w in _WORD_RE.findall(key)]
    return any(w in SENSITIVE_WORDS for w in words) or any(
        pair in SENSITIVE_PAIRS for pair in zip(words, words[1:]))
_PAN_RE = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def redact_text(text: str) -> str:
    return _PAN_RE.sub("[REDACTED]", text)


def redact(value: Any, key: str | None = None) -> Any:
    if key is not None and is_sensitive_key(key):
        return "[REDACTED]"
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool):
        return value
    # A card number passed as an int (or inside any object's str) must not slip through.
    try:
        text = str(value)
    except Exception:  # a broken __str__: the handler reports it when it formats
        return value
    return "[REDACTED]" if _PAN_RE.search(text) else value


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            # Redact the final text: a card number can come in an int argument, or be split
            # between the format string and its arguments.
            record.msg, record.args = redact_text(record.getMessage()), None
        except Exception:  # a bad format call: redact the parts; the handler reports it
            record.msg = redact_text(str(record.msg))
            if record.args:
                record.args = tuple(redact(a) for a in record.args) if isinstance(
                    record.args, tuple) else redact(record.args)
        for key in list(vars(record)):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, redact(getattr(record, key), key))
        return True


class JsonFormatter(logging.Formatter):
    converter = time.gmtime  # the timestamp says "Z", so it must be UTC on every host

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = redact_text(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


QUIET_LOGGERS = ("httpx", "httpcore")


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if json:
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_bankwallet", False):
            root.removeHandler(existing)
    handler._bankwallet = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx and httpcore log every request's full URL at INFO, and some providers carry the
    # API key in the URL (an EVM node's /v3/<key>): only their warnings are wanted.
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
