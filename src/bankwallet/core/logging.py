"""JSON structured logs with a redaction filter and the current request id.

Secrets never reach a log line: keys that look sensitive are masked, and long digit runs that
look like card numbers (PAN) are masked inside messages too.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id",
                                                                              default=None)

SENSITIVE_KEYS = re.compile(
    r"pass(word)?|secret|token|otp|code|pin|pan|cvv|cvc|mnemonic|seed|private|authorization|"
    r"cookie|national_id|id_number|api_key", re.IGNORECASE)
_PAN_RE = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def redact_text(text: str) -> str:
    return _PAN_RE.sub("[REDACTED]", text)


def redact(value: Any, key: str | None = None) -> Any:
    if key is not None and SENSITIVE_KEYS.search(key):
        return "[REDACTED]"
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(str(record.msg))
        if record.args:
            record.args = tuple(redact(a) for a in record.args) if isinstance(
                record.args, tuple) else redact(record.args)
        for key in list(vars(record)):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, redact(getattr(record, key), key))
        return True


class JsonFormatter(logging.Formatter):
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


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if json:
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = __import__("time").gmtime
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
