"""Envelope encryption (AES-256-GCM with key ids) and HMAC blind indexes.

    from bankwallet.core.crypto import get_keyring, register_encrypted_column

    register_encrypted_column("identity_user", "phone_enc", context="identity_user.phone")
    blob = get_keyring().encrypt("+8613800138000", context="identity_user.phone")
    get_keyring().decrypt(blob, context="identity_user.phone")  # b"+8613800138000"
    get_keyring().blind_index("+8613800138000", context="identity.phone")  # 32 bytes

Every ``encrypt`` draws a fresh 256-bit data key (DEK), encrypts the plaintext with it
(AAD = context) and wraps the DEK with the active key-encryption key (KEK; AAD = kid and
context). Rotating KEKs therefore only re-wraps 60-odd bytes per value: ``bankwallet keys
generate`` adds a KEK and makes it active, ``bankwallet keys rotate`` re-wraps every registered
column, and old KEKs stay in the key file for decryption until nothing uses them.

Blob layout (version 1), parsed strictly::

    0x01 | kid length (1 byte) | kid (ASCII) | wrap nonce (12) | wrapped DEK (32 + 16 tag)
         | data nonce (12) | ciphertext + tag (16)

The blind-index key never rotates (every stored index would stop matching); it is separate
from the KEKs and only ever used through HKDF-derived, per-context keys.

Keys come from ``BANKWALLET_KEY_FILE`` or ``BANKWALLET_KEYS_JSON`` (the same JSON inline)::

    {"active": "k2", "keys": {"k1": "<base64 32 bytes>", "k2": "..."}, "index_key": "<base64>"}

In ``dev``/``test`` a missing key file is created (mode 0600); ``prod`` refuses to run without
keys. Key material never appears in a message, a log line or an exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bankwallet.core.errors import BankwalletError

log = logging.getLogger("bankwallet.crypto")

VERSION: Final = 1
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
WRAPPED_DEK_BYTES: Final = KEY_BYTES + TAG_BYTES
KID_MAX_CHARS: Final = 64
KID_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CONTEXT_MAX_BYTES: Final = 200
PLAINTEXT_MAX_BYTES: Final = 16 * 1024 * 1024
# The longest prefix that holds the version and the kid: enough to count blobs by kid.
HEADER_MAX_BYTES: Final = 2 + KID_MAX_CHARS
MAX_KEYS: Final = 100
DEV_KEY_FILE: Final = Path("var/keys.json")
_INDEX_INFO: Final = b"bankwallet.blind-index.v1\x00"


class CryptoError(BankwalletError):
    code = "crypto_error"
    status = 500
    title = "Encryption error"


class DecryptionError(CryptoError):
    """A blob that is malformed, tampered with, bound to another context, or of an unknown kid."""

    code = "decryption_failed"
    title = "Stored data could not be decrypted"


class KeyConfigurationError(CryptoError):
    """Missing or malformed keys; the message names the problem, never a key."""

    code = "key_configuration"
    title = "Encryption keys are not configured"


# -- the blob format -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Envelope:
    kid: str
    wrap_nonce: bytes
    wrapped_dek: bytes
    data_nonce: bytes
    ciphertext: bytes  # with its tag

    def to_bytes(self) -> bytes:
        kid = self.kid.encode("ascii")
        return b"".join((bytes((VERSION, len(kid))), kid, self.wrap_nonce, self.wrapped_dek,
                         self.data_nonce, self.ciphertext))

    @classmethod
    def parse(cls, blob: bytes | bytearray | memoryview) -> Envelope:
        blob = bytes(blob)
        kid, at = _parse_header(blob)
        fixed = NONCE_BYTES + WRAPPED_DEK_BYTES + NONCE_BYTES
        if len(blob) < at + fixed + TAG_BYTES:
            raise DecryptionError("The encrypted value is truncated.")
        wrap_nonce = blob[at:at + NONCE_BYTES]
        at += NONCE_BYTES
        wrapped_dek = blob[at:at + WRAPPED_DEK_BYTES]
        at += WRAPPED_DEK_BYTES
        data_nonce = blob[at:at + NONCE_BYTES]
        at += NONCE_BYTES
        return cls(kid, wrap_nonce, wrapped_dek, data_nonce, blob[at:])


def _parse_header(blob: bytes) -> tuple[str, int]:
    """The kid and the offset just past it; needs only the first ``HEADER_MAX_BYTES``."""
    if len(blob) < 2:
        raise DecryptionError("The encrypted value is truncated.")
    if blob[0] != VERSION:
        raise DecryptionError("The encrypted value has an unknown format version.")
    end = 2 + blob[1]
    if len(blob) < end:
        raise DecryptionError("The encrypted value is truncated.")
    try:
        kid = blob[2:end].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("The encrypted value has a malformed key id.") from None
    if not KID_RE.match(kid):
        raise DecryptionError("The encrypted value has a malformed key id.")
    return kid, end


def blob_kid(blob: bytes | bytearray | memoryview) -> str:
    """The id of the KEK that wraps this blob's data key; a prefix of ``HEADER_MAX_BYTES``
    is enough. Raises ``DecryptionError`` when the header is malformed."""
    return _parse_header(bytes(blob))[0]


# -- the keyring -----------------------------------------------------------------------------


class Keyring:
    """Every KEK by kid (the active one encrypts), and the blind-index key."""

    def __init__(self, keys: Mapping[str, bytes], *, active_kid: str, index_key: bytes) -> None:
        if not keys:
            raise KeyConfigurationError("The key set has no keys.")
        if len(keys) > MAX_KEYS:
            raise KeyConfigurationError(f"The key set has more than {MAX_KEYS} keys.")
        for kid, key in keys.items():
            if not KID_RE.match(kid):
                raise KeyConfigurationError(
                    f"Key id {kid[:KID_MAX_CHARS]!r} must be 1-64 of A-Z a-z 0-9 . _ -.")
            if len(key) != KEY_BYTES:
                raise KeyConfigurationError(f"Key {kid!r} is not {KEY_BYTES} bytes.")
        if active_kid not in keys:
            raise KeyConfigurationError(f"The active key id {active_kid[:KID_MAX_CHARS]!r} "
                                        "is not in the key set.")
        if len(index_key) != KEY_BYTES:
            raise KeyConfigurationError(f"The index key is not {KEY_BYTES} bytes.")
        self.active_kid = active_kid
        self._keks = {kid: AESGCM(bytes(key)) for kid, key in keys.items()}
        self._index_key = bytes(index_key)
        self._index_keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the keys
        return f"Keyring(active_kid={self.active_kid!r}, kids={sorted(self._keks)!r})"

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keks)

    def encrypt(self, plaintext: bytes | str, *, context: str) -> bytes:
        data = plaintext.encode() if isinstance(plaintext, str) else bytes(plaintext)
        if len(data) > PLAINTEXT_MAX_BYTES:
            raise ValueError(f"plaintext longer than {PLAINTEXT_MAX_BYTES} bytes")
        aad = _context_bytes(context)
        dek = AESGCM.generate_key(bit_length=256)
        data_nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(dek).encrypt(data_nonce, data, aad)
        wrap_nonce, wrapped = self._wrap(dek, self.active_kid, aad)
        return Envelope(self.active_kid, wrap_nonce, wrapped, data_nonce, ciphertext).to_bytes()

    def decrypt(self, blob: bytes, *, context: str) -> bytes:
        aad = _context_bytes(context)
        envelope = Envelope.parse(blob)
        dek = self._unwrap(envelope, aad)
        try:
            return AESGCM(dek).decrypt(envelope.data_nonce, envelope.ciphertext, aad)
        except InvalidTag:
            raise DecryptionError("The encrypted value does not authenticate "
                                  "(tampered, or another context).") from None

    def rewrap(self, blob: bytes, *, context: str) -> bytes:
        """The same ciphertext with its data key wrapped by the active KEK.

        Only the data key is unwrapped (which also checks the wrap and the context); the value
        itself is never decrypted. A blob already under the active KEK comes back unchanged.
        """
        aad = _context_bytes(context)
        envelope = Envelope.parse(blob)
        dek = self._unwrap(envelope, aad)
        if envelope.kid == self.active_kid:
            return bytes(blob)
        wrap_nonce, wrapped = self._wrap(dek, self.active_kid, aad)
        return Envelope(self.active_kid, wrap_nonce, wrapped, envelope.data_nonce,
                        envelope.ciphertext).to_bytes()

    def blind_index(self, value: str, *, context: str) -> bytes:
        """HMAC-SHA256 of ``value`` as given (callers normalise), under a per-context key."""
        key = self._index_key_for(context)
        return hmac.new(key, value.encode(), hashlib.sha256).digest()

    def _wrap(self, dek: bytes, kid: str, aad: bytes) -> tuple[bytes, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        return nonce, self._keks[kid].encrypt(nonce, dek, _wrap_aad(kid, aad))

    def _unwrap(self, envelope: Envelope, aad: bytes) -> bytes:
        kek = self._keks.get(envelope.kid)
        if kek is None:
            raise DecryptionError(f"The encrypted value uses key id {envelope.kid!r}, "
                                  "which is not in the key set.")
        try:
            return kek.decrypt(envelope.wrap_nonce, envelope.wrapped_dek,
                               _wrap_aad(envelope.kid, aad))
        except InvalidTag:
            raise DecryptionError("The encrypted value does not authenticate "
                                  "(tampered, or another context).") from None

    def _index_key_for(self, context: str) -> bytes:
        key = self._index_keys.get(context)
        if key is None:
            info = _INDEX_INFO + _context_bytes(context)
            key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                       info=info).derive(self._index_key)
            with self._lock:
                self._index_keys[context] = key
        return key


def _context_bytes(context: str) -> bytes:
    assert context, "an encryption context is required"
    data = context.encode()
    assert len(data) <= CONTEXT_MAX_BYTES, "encryption context too long"
    return data


def _wrap_aad(kid: str, context: bytes) -> bytes:
    # Kids never contain NUL, so kid ‖ NUL ‖ context is unambiguous.
    return kid.encode("ascii") + b"\x00" + context


# -- key configuration -----------------------------------------------------------------------


def parse_key_set(text: str | bytes, *, source: str) -> Keyring:
    """A keyring from the key-set JSON; errors name ``source`` and the field, never a key."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise KeyConfigurationError(f"{source} is not valid JSON.") from None
    if not isinstance(document, dict):
        raise KeyConfigurationError(f"{source} must be a JSON object.")
    active, keys, index_key = (document.get("active"), document.get("keys"),
                               document.get("index_key"))
    if not isinstance(active, str):
        raise KeyConfigurationError(f"{source}: \"active\" must name a key id.")
    if not isinstance(keys, dict) or not keys:
        raise KeyConfigurationError(f"{source}: \"keys\" must map key ids to keys.")
    if not isinstance(index_key, str):
        raise KeyConfigurationError(f"{source}: \"index_key\" is missing.")
    decoded = {str(kid): _b64_key(value, f"{source}: key {str(kid)[:KID_MAX_CHARS]!r}")
               for kid, value in keys.items()}
    return Keyring(decoded, active_kid=active,
                   index_key=_b64_key(index_key, f"{source}: the index key"))


def _b64_key(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise KeyConfigurationError(f"{what} must be a base64 string.")
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyConfigurationError(f"{what} is not valid base64.") from None
    if len(key) != KEY_BYTES:
        raise KeyConfigurationError(f"{what} is not {KEY_BYTES} bytes.")
    return key


def new_key_set() -> dict[str, Any]:
    return {"active": "k1", "keys": {"k1": _new_key()}, "index_key": _new_key()}


def _new_key() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def read_key_file(path: Path) -> dict[str, Any]:
    """The key file's JSON document, validated."""
    text = _read_key_file_bytes(path)
    parse_key_set(text, source=f"key file {path}")
    return orjson.loads(text)


def _read_key_file_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyConfigurationError(f"The key file {path} does not exist.") from None
    except OSError as exc:
        raise KeyConfigurationError(f"The key file {path} cannot be read "
                                    f"({exc.strerror}).") from None


def write_key_file(path: Path, document: Mapping[str, Any], *, replace: bool) -> bool:
    """Write the key set with mode 0600, atomically. Without ``replace``, an existing file is
    kept (another process got there first) and ``False`` comes back."""
    parse_key_set(orjson.dumps(document), source="the new key set")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # fails, rather than overwrites, when the file exists
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def generate_key(path: Path) -> str:
    """Add a random KEK to the key file and make it active; returns only its kid.

    A missing file is created first (with ``k1`` and an index key), so this also bootstraps a
    production key file.
    """
    if not path.exists():
        write_key_file(path, new_key_set(), replace=False)
    document = read_key_file(path)
    keys: dict[str, str] = document["keys"]
    if len(keys) >= MAX_KEYS:
        raise KeyConfigurationError(f"The key file already holds {MAX_KEYS} keys; retire "
                                    "unused ones first.")
    numbers = [int(kid[1:]) for kid in keys if re.fullmatch(r"k\d{1,9}", kid)]
    kid = f"k{max(numbers, default=0) + 1}"
    while kid in keys:  # pragma: no cover - only with hand-made kids
        kid = f"k{secrets.token_hex(4)}"
    keys[kid] = _new_key()
    document["active"] = kid
    write_key_file(path, document, replace=True)
    return kid


def load_keyring(settings: Any) -> Keyring:
    """The keyring the settings describe (uncached); creates dev/test keys when none exist."""
    key_file: Path | None = settings.key_file
    inline = settings.keys_json.get_secret_value() if settings.keys_json else None
    if key_file and inline:
        raise KeyConfigurationError("Set only one of BANKWALLET_KEY_FILE and "
                                    "BANKWALLET_KEYS_JSON.")
    if inline:
        return parse_key_set(inline, source="BANKWALLET_KEYS_JSON")
    if settings.env == "prod":
        if key_file is None:
            raise KeyConfigurationError(
                "No encryption keys: set BANKWALLET_KEY_FILE or BANKWALLET_KEYS_JSON "
                "(create a key file with `bankwallet keys generate`).")
        return _keyring_from_file(Path(key_file))
    path = Path(key_file) if key_file else DEV_KEY_FILE
    if not path.exists() and write_key_file(path, new_key_set(), replace=False):
        _warn_dev_keys(path)
    return _keyring_from_file(path)


def _keyring_from_file(path: Path) -> Keyring:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyConfigurationError(f"The key file {path} does not exist.") from None
    if mode & 0o077:
        log.warning("key file is readable by other users; chmod 600 it",
                    extra={"key_file": str(path)})
    return parse_key_set(_read_key_file_bytes(path), source=f"key file {path}")


_warned_dev_keys = False


def _warn_dev_keys(path: Path) -> None:
    global _warned_dev_keys
    if not _warned_dev_keys:
        _warned_dev_keys = True
        log.warning("created development encryption keys; never use them in production",
                    extra={"key_file": str(path)})


_keyring: Keyring | None = None
_keyring_lock = threading.Lock()


def get_keyring() -> Keyring:
    """The process's keyring, built from the settings on first use."""
    global _keyring
    keyring = _keyring
    if keyring is None:
        from bankwallet.settings import get_settings

        with _keyring_lock:
            if _keyring is None:
                _keyring = load_keyring(get_settings())
            keyring = _keyring
    return keyring


def reset_keyring() -> None:
    """Forget the cached keyring (tests; after ``keys generate`` in the same process)."""
    global _keyring
    with _keyring_lock:
        _keyring = None


# -- the registry of encrypted columns -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EncryptedColumn:
    table: str
    column: str
    context: str
    key_column: str = "id"

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


_columns: dict[tuple[str, str], EncryptedColumn] = {}
_IDENT_RE: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def register_encrypted_column(table: str, column: str, *, context: str,
                              key_column: str = "id") -> None:
    """Declare a column of envelope blobs, so ``bankwallet keys rotate`` re-wraps it.

    Call at import time, next to the model. Registering the same column again is a no-op;
    with another context it is a programming error.
    """
    for name in (table, column, key_column):
        if not _IDENT_RE.match(name):
            raise ValueError(f"not a plain SQL identifier: {name!r}")
    _context_bytes(context)
    entry = EncryptedColumn(table, column, context, key_column)
    existing = _columns.setdefault((table, column), entry)
    if existing != entry:
        raise ValueError(f"{entry.name} is already registered with another context or key")


def registered_columns() -> list[EncryptedColumn]:
    return sorted(_columns.values(), key=lambda c: (c.table, c.column))


def unregister_encrypted_column(table: str, column: str) -> None:
    """For tests that register throwaway tables."""
    _columns.pop((table, column), None)


# -- rotation --------------------------------------------------------------------------------

ROTATE_BATCH_MAX: Final = 5000
_COUNT_PAGE: Final = 5000


@dataclass(slots=True)
class ColumnRotation:
    scanned: int = 0
    rewrapped: int = 0
    # Rows the application rewrote between our read and our write: left as the app wrote them.
    changed_meanwhile: int = 0
    unreadable: int = 0  # malformed, tampered or of an unknown kid: never rewritten
    by_kid: dict[str, int] | None = None  # after the pass

    def as_dict(self) -> dict[str, Any]:
        return {"scanned": self.scanned, "rewrapped": self.rewrapped,
                "changed_meanwhile": self.changed_meanwhile, "unreadable": self.unreadable,
                "by_kid": dict(sorted((self.by_kid or {}).items()))}


async def missing_columns(engine: Any, columns: list[EncryptedColumn]) -> list[str]:
    """Registered columns the database does not have (e.g. not migrated)."""
    from sqlalchemy import inspect

    def check(sync_conn: Any) -> list[str]:
        inspector = inspect(sync_conn)
        tables = set(inspector.get_table_names())
        missing = []
        for c in columns:
            names = ({col["name"] for col in inspector.get_columns(c.table)}
                     if c.table in tables else set())
            if not {c.column, c.key_column} <= names:
                missing.append(c.name)
        return missing

    async with engine.connect() as conn:
        return await conn.run_sync(check)


async def rotate_column(engine: Any, column: EncryptedColumn, keyring: Keyring, *,
                        batch_size: int = 500) -> ColumnRotation:
    """Re-wrap every blob of ``column`` that is not under the active KEK.

    Keyset pages by the key column: each page is read in one short transaction and written in
    another, and each update applies only if the row still holds the blob that was read, so
    the application keeps reading and writing throughout. Only data keys are unwrapped.
    """
    from sqlalchemy import column as sa_column, select, table as sa_table, update

    assert 1 <= batch_size <= ROTATE_BATCH_MAX
    t = sa_table(column.table, sa_column(column.key_column), sa_column(column.column))
    key, blob = t.c[column.key_column], t.c[column.column]
    report = ColumnRotation()
    after: Any = None
    while True:
        query = select(key, blob).where(blob.is_not(None)).order_by(key).limit(batch_size)
        if after is not None:
            query = query.where(key > after)
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        if not rows:
            break
        after = rows[-1][0]
        changes = []
        for row_key, value in rows:
            report.scanned += 1
            value = bytes(value)
            try:
                if blob_kid(value) == keyring.active_kid:
                    continue
                changes.append((row_key, value, keyring.rewrap(value, context=column.context)))
            except DecryptionError:
                report.unreadable += 1
        if changes:
            async with engine.begin() as conn:
                for row_key, old, new in changes:
                    result = await conn.execute(
                        update(t).where(key == row_key, blob == old).values({column.column: new}))
                    if result.rowcount == 1:
                        report.rewrapped += 1
                    else:
                        report.changed_meanwhile += 1
    report.by_kid = await count_kids(engine, column)
    return report


async def count_kids(engine: Any, column: EncryptedColumn) -> dict[str, int]:
    """How many blobs of ``column`` each kid wraps (``"(unreadable)"`` for bad headers).

    Reads only each blob's header."""
    from sqlalchemy import column as sa_column, func, select, table as sa_table

    t = sa_table(column.table, sa_column(column.key_column), sa_column(column.column))
    key, blob = t.c[column.key_column], t.c[column.column]
    counts: dict[str, int] = {}
    after: Any = None
    async with engine.connect() as conn:
        while True:
            query = (select(key, func.substr(blob, 1, HEADER_MAX_BYTES))
                     .where(blob.is_not(None)).order_by(key).limit(_COUNT_PAGE))
            if after is not None:
                query = query.where(key > after)
            rows = (await conn.execute(query)).all()
            if not rows:
                break
            after = rows[-1][0]
            for _, header in rows:
                try:
                    kid = blob_kid(bytes(header))
                except DecryptionError:
                    kid = "(unreadable)"
                counts[kid] = counts.get(kid, 0) + 1
    return counts
