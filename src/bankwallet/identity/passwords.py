"""Password policy (length, zxcvbn strength) and argon2id hashing."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from bankwallet.identity.errors import WeakPassword

MIN_LENGTH = 12
MAX_LENGTH = 128
MIN_SCORE = 3  # zxcvbn: 3 = "safely unguessable: moderate protection from offline attacks"
# zxcvbn is slow on long inputs; past this many characters it judges a prefix.
ZXCVBN_MAX_CHARS = 72

_hasher = PasswordHasher()  # argon2id, the library's current recommended parameters
# A hash to check against when the account does not exist, so both paths cost the same.
_DUMMY_HASH = _hasher.hash("not a real password, only for timing")


def check_policy(password: str, *, user_inputs: list[str]) -> None:
    length = len(password)
    if length < MIN_LENGTH:
        raise WeakPassword(f"Use at least {MIN_LENGTH} characters.", reason="too_short")
    if length > MAX_LENGTH:
        raise WeakPassword(f"Use at most {MAX_LENGTH} characters.", reason="too_long")
    result = zxcvbn(password[:ZXCVBN_MAX_CHARS], user_inputs=user_inputs)
    if result["score"] < MIN_SCORE:
        feedback = result.get("feedback") or {}
        hint = feedback.get("warning") or " ".join(feedback.get("suggestions") or [])
        raise WeakPassword(hint or "This password is too easy to guess.", reason="guessable",
                           score=result["score"])


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
