"""Envelope encryption, blind indexes, key configuration and `bankwallet keys` rotation."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings as hyp_settings, strategies as st
from sqlalchemy import Column, LargeBinary, MetaData, Table, Uuid, select

from bankwallet.core import crypto
from bankwallet.core.crypto import (
    DecryptionError,
    KeyConfigurationError,
    Keyring,
    blob_kid,
    load_keyring,
)
from bankwallet.core.db import make_engine
from bankwallet.settings import Settings

CONTEXT = "test_table.secret"


def random_keyring(*kids: str, active: str | None = None, index_key: bytes | None = None,
                   keys: dict[str, bytes] | None = None) -> Keyring:
    keys = dict(keys or {})
    for kid in kids:
        keys.setdefault(kid, os.urandom(32))
    return Keyring(keys, active_kid=active or kids[-1], index_key=index_key or os.urandom(32))


KEYRING = random_keyring("k1")


def settings_for(tmp_path: Path, **values: object) -> Settings:
    # Explicit values only: neither the environment nor a .env file may leak in.
    base = {"env": "test", "key_file": None, "keys_json": None}
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[call-arg]


# -- round trips and binding -----------------------------------------------------------------


@given(st.binary(max_size=2048))
@hyp_settings(max_examples=60, deadline=None)
def test_bytes_round_trip(plaintext: bytes) -> None:
    blob = KEYRING.encrypt(plaintext, context=CONTEXT)
    assert KEYRING.decrypt(blob, context=CONTEXT) == plaintext
    assert len(plaintext) < 16 or plaintext not in blob  # short strings occur by chance


@given(st.text(max_size=500))
@hyp_settings(max_examples=60, deadline=None)
def test_str_round_trip(plaintext: str) -> None:
    blob = KEYRING.encrypt(plaintext, context=CONTEXT)
    assert KEYRING.decrypt(blob, context=CONTEXT) == plaintext.encode()


def test_every_encryption_is_fresh() -> None:
    one, two = (KEYRING.encrypt("same", context=CONTEXT) for _ in range(2))
    assert one != two
    assert blob_kid(one) == "k1"


def test_the_context_is_bound() -> None:
    blob = KEYRING.encrypt("13800138000", context="identity_user.phone")
    with pytest.raises(DecryptionError):
        KEYRING.decrypt(blob, context="identity_user.email")
    with pytest.raises(DecryptionError):
        KEYRING.rewrap(blob, context="identity_user.email")


def regions(blob: bytes) -> dict[str, int]:
    """An offset inside each region of a version-1 blob."""
    kid_len = blob[1]
    wrap_nonce = 2 + kid_len
    wrapped = wrap_nonce + crypto.NONCE_BYTES
    data_nonce = wrapped + crypto.WRAPPED_DEK_BYTES
    ciphertext = data_nonce + crypto.NONCE_BYTES
    return {"version": 0, "kid length": 1, "kid": 2, "wrap nonce": wrap_nonce,
            "wrapped key": wrapped + 5, "wrapped key tag": data_nonce - 1,
            "data nonce": data_nonce, "ciphertext": ciphertext, "data tag": len(blob) - 1}


@pytest.mark.parametrize("region", ["version", "kid length", "kid", "wrap nonce", "wrapped key",
                                    "wrapped key tag", "data nonce", "ciphertext", "data tag"])
def test_a_flipped_byte_in_any_region_is_refused(region: str) -> None:
    plaintext = "4111111111111111"
    blob = bytearray(KEYRING.encrypt(plaintext, context=CONTEXT))
    blob[regions(bytes(blob))[region]] ^= 0x01
    with pytest.raises(DecryptionError) as info:
        KEYRING.decrypt(bytes(blob), context=CONTEXT)
    assert plaintext not in str(info.value)


@pytest.mark.parametrize("cut", [0, 1, 2, 20, 70, -1])
def test_truncated_or_extended_blobs_are_refused(cut: int) -> None:
    blob = KEYRING.encrypt("x", context=CONTEXT)
    with pytest.raises(DecryptionError):
        KEYRING.decrypt(blob[:cut], context=CONTEXT)
    with pytest.raises(DecryptionError):
        KEYRING.decrypt(blob + b"\x00", context=CONTEXT)


def test_an_unknown_kid_is_refused() -> None:
    blob = random_keyring("k9").encrypt("secret", context=CONTEXT)
    with pytest.raises(DecryptionError, match="k9"):
        KEYRING.decrypt(blob, context=CONTEXT)
    # Same kid, another key: it does not authenticate.
    with pytest.raises(DecryptionError):
        random_keyring("k1").decrypt(KEYRING.encrypt("secret", context=CONTEXT),
                                     context=CONTEXT)


def test_no_key_material_in_reprs_or_errors() -> None:
    key = os.urandom(32)
    keyring = Keyring({"k1": key}, active_kid="k1", index_key=os.urandom(32))
    assert base64.b64encode(key).decode() not in repr(keyring)
    assert key.hex() not in repr(keyring)


# -- rotation --------------------------------------------------------------------------------


def test_old_blobs_decrypt_after_a_new_key_and_rewrap_changes_only_the_wrap() -> None:
    k1, k2, index_key = os.urandom(32), os.urandom(32), os.urandom(32)
    old = Keyring({"k1": k1}, active_kid="k1", index_key=index_key)
    new = Keyring({"k1": k1, "k2": k2}, active_kid="k2", index_key=index_key)
    blob = old.encrypt("mnemonic words here", context=CONTEXT)

    assert new.decrypt(blob, context=CONTEXT) == b"mnemonic words here"
    rewrapped = new.rewrap(blob, context=CONTEXT)
    assert blob_kid(rewrapped) == "k2"
    assert new.decrypt(rewrapped, context=CONTEXT) == b"mnemonic words here"
    # The data nonce and ciphertext are untouched: only the data key's wrap changed.
    tail = crypto.NONCE_BYTES + len("mnemonic words here") + crypto.TAG_BYTES
    assert rewrapped[-tail:] == blob[-tail:]
    assert new.rewrap(rewrapped, context=CONTEXT) == rewrapped  # already active: unchanged
    with pytest.raises(DecryptionError):
        old.decrypt(rewrapped, context=CONTEXT)  # k1 alone no longer opens it
    only_k2 = Keyring({"k2": k2}, active_kid="k2", index_key=index_key)
    assert only_k2.decrypt(rewrapped, context=CONTEXT) == b"mnemonic words here"
    assert new.blind_index("a@b.c", context="x") == old.blind_index("a@b.c", context="x")


# -- blind indexes ---------------------------------------------------------------------------


def test_blind_index_is_deterministic_and_separated() -> None:
    index_key = os.urandom(32)
    one = random_keyring("k1", index_key=index_key)
    same_index_key = random_keyring("k7", index_key=index_key)
    other = random_keyring("k1")
    value = "alice@example.com"
    digest = one.blind_index(value, context="identity.email")
    assert len(digest) == 32
    assert digest == one.blind_index(value, context="identity.email")
    assert digest == same_index_key.blind_index(value, context="identity.email")  # KEKs rotate
    assert digest != one.blind_index(value, context="identity.phone")
    assert digest != one.blind_index("Alice@example.com", context="identity.email")
    assert digest != other.blind_index(value, context="identity.email")
    assert value.encode() not in digest


# -- key configuration -----------------------------------------------------------------------


def key_set(active: str = "k1", **keys: bytes) -> dict[str, object]:
    keys = keys or {"k1": os.urandom(32)}
    return {"active": active, "keys": {k: base64.b64encode(v).decode() for k, v in keys.items()},
            "index_key": base64.b64encode(os.urandom(32)).decode()}


def test_dev_creates_a_private_key_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(crypto, "_warned_dev_keys", False)
    with caplog.at_level(logging.WARNING, logger="bankwallet.crypto"):
        first = load_keyring(settings_for(tmp_path, env="dev"))
        second = load_keyring(settings_for(tmp_path, env="dev"))
    path = tmp_path / "var" / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    blob = first.encrypt("x", context=CONTEXT)
    assert second.decrypt(blob, context=CONTEXT) == b"x"  # the same keys, read back
    warnings = [r for r in caplog.records if "development encryption keys" in r.getMessage()]
    assert len(warnings) == 1
    document = json.loads(path.read_text())
    for record in caplog.records:
        assert document["keys"]["k1"] not in record.getMessage()
        assert document["index_key"] not in str(vars(record))


def test_test_env_creates_the_named_key_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "keys.json"
    load_keyring(settings_for(tmp_path, key_file=path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_prod_refuses_to_run_without_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeyConfigurationError, match="BANKWALLET_KEY_FILE"):
        load_keyring(settings_for(tmp_path, env="prod"))
    with pytest.raises(KeyConfigurationError, match="does not exist"):
        load_keyring(settings_for(tmp_path, env="prod", key_file=tmp_path / "missing.json"))
    assert not (tmp_path / "var").exists()  # nothing was made up


def test_inline_keys_and_the_key_file_agree(tmp_path: Path) -> None:
    document = key_set("k2", k1=os.urandom(32), k2=os.urandom(32))
    path = tmp_path / "keys.json"
    path.write_bytes(orjson.dumps(document))
    path.chmod(0o600)
    from_file = load_keyring(settings_for(tmp_path, env="prod", key_file=path))
    inline = load_keyring(settings_for(tmp_path, env="prod", keys_json=json.dumps(document)))
    assert from_file.active_kid == inline.active_kid == "k2"
    assert inline.decrypt(from_file.encrypt("x", context=CONTEXT), context=CONTEXT) == b"x"
    with pytest.raises(KeyConfigurationError, match="only one"):
        load_keyring(settings_for(tmp_path, key_file=path, keys_json=json.dumps(document)))


@pytest.mark.parametrize("change", ["short key", "bad base64", "unknown active", "no index",
                                    "bad kid", "not json"])
def test_malformed_key_sets_are_refused_without_echoing_keys(change: str) -> None:
    document = key_set()
    secret_text = document["keys"]["k1"]  # type: ignore[index]
    if change == "short key":
        secret_text = base64.b64encode(os.urandom(31)).decode()
        document["keys"] = {"k1": secret_text}
    elif change == "bad base64":
        secret_text = secret_text[:-4] + "!!!!"
        document["keys"] = {"k1": secret_text}
    elif change == "unknown active":
        document["active"] = "k5"
    elif change == "no index":
        del document["index_key"]
    elif change == "bad kid":
        document["keys"] = {"k 1/": secret_text}
        document["active"] = "k 1/"
    text = "{" + json.dumps(document)[:-5] if change == "not json" else json.dumps(document)
    with pytest.raises(KeyConfigurationError) as info:
        crypto.parse_key_set(text, source="test")
    assert secret_text not in str(info.value)


def test_get_keyring_is_cached_until_reset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    from bankwallet.settings import get_settings

    monkeypatch.setenv("BANKWALLET_ENV", "test")
    monkeypatch.setenv("BANKWALLET_KEY_FILE", str(tmp_path / "keys.json"))
    monkeypatch.delenv("BANKWALLET_KEYS_JSON", raising=False)
    get_settings.cache_clear()
    crypto.reset_keyring()
    try:
        first = crypto.get_keyring()
        assert crypto.get_keyring() is first
        crypto.generate_key(tmp_path / "keys.json")
        assert crypto.get_keyring().active_kid == "k1"  # cached
        crypto.reset_keyring()
        assert crypto.get_keyring().active_kid == "k2"
    finally:
        crypto.reset_keyring()
        get_settings.cache_clear()


def test_generate_adds_an_active_key_and_keeps_the_old_ones(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    assert crypto.generate_key(path) == "k2"  # a missing file starts with k1
    before = json.loads(path.read_text())
    assert crypto.generate_key(path) == "k3"
    after = json.loads(path.read_text())
    assert after["active"] == "k3"
    assert after["index_key"] == before["index_key"]
    assert {k: v for k, v in after["keys"].items() if k != "k3"} == before["keys"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_columns_register_once() -> None:
    crypto.register_encrypted_column("test_reg", "secret_enc", context="test_reg.secret")
    try:
        crypto.register_encrypted_column("test_reg", "secret_enc", context="test_reg.secret")
        with pytest.raises(ValueError):
            crypto.register_encrypted_column("test_reg", "secret_enc", context="other")
        with pytest.raises(ValueError):
            crypto.register_encrypted_column("test_reg; drop", "x", context="c")
        names = [c.name for c in crypto.registered_columns()]
        assert names.count("test_reg.secret_enc") == 1
    finally:
        crypto.unregister_encrypted_column("test_reg", "secret_enc")


# -- `bankwallet keys generate` and `keys rotate` against a real table -----------------------


ROTATE_TABLE = "test_rotation_secret"
ROTATE_CONTEXT = "test_rotation_secret.value"


def rotation_table() -> Table:
    return Table(ROTATE_TABLE, MetaData(), Column("id", Uuid, primary_key=True),
                 Column("value_enc", LargeBinary, nullable=True))


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The child registers the throwaway table the way a domain would, at import time.
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(textwrap.dedent(f"""
        from bankwallet.core.crypto import register_encrypted_column
        register_encrypted_column({ROTATE_TABLE!r}, "value_enc", context={ROTATE_CONTEXT!r})
    """))
    env = {"PATH": "/usr/bin:/bin", "BANKWALLET_ENV": "test", "PYTHONPATH": str(site),
           "BANKWALLET_KEY_FILE": str(tmp_path / "keys.json")}
    return subprocess.run([sys.executable, "-m", "bankwallet", *args], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)


@pytest.mark.parametrize("fresh_db_url", ["sqlite", "postgres"], indirect=True)
async def test_keys_rotate_rewraps_every_blob_under_the_new_key(fresh_db_url: str,
                                                                tmp_path: Path) -> None:
    table = rotation_table()
    keyring = load_keyring(settings_for(tmp_path, key_file=tmp_path / "keys.json"))
    values = {uuid.uuid4(): f"secret number {i}" for i in range(7)}
    blobs = {k: keyring.encrypt(v, context=ROTATE_CONTEXT) for k, v in values.items()}
    engine = make_engine(fresh_db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.create)
            await conn.execute(table.insert(), [{"id": k, "value_enc": b} for k, b in blobs.items()]
                               + [{"id": uuid.uuid4(), "value_enc": None}])

        generated = run_cli(tmp_path, "keys", "generate")
        assert generated.returncode == 0, generated.stderr
        assert generated.stdout == "k2\n"  # the kid and nothing else

        rotated = run_cli(tmp_path, "keys", "rotate", "--database-url", fresh_db_url,
                          "--batch-size", "3")
        assert rotated.returncode == 0, rotated.stderr
        report = json.loads(rotated.stdout)
        assert report["active_kid"] == "k2"
        column = report["columns"][f"{ROTATE_TABLE}.value_enc"]
        assert column == {"scanned": 7, "rewrapped": 7, "changed_meanwhile": 0,
                          "unreadable": 0, "by_kid": {"k2": 7}}
        assert report["old_kids_in_use"] == {"k1": 0}

        after = load_keyring(settings_for(tmp_path, key_file=tmp_path / "keys.json"))
        async with engine.connect() as conn:
            rows = (await conn.execute(select(table))).all()
        assert sum(r.value_enc is None for r in rows) == 1
        for row in rows:
            if row.value_enc is None:
                continue
            assert blob_kid(row.value_enc) == "k2"
            assert after.decrypt(row.value_enc, context=ROTATE_CONTEXT).decode() == values[row.id]
            tail = crypto.NONCE_BYTES + len(values[row.id]) + crypto.TAG_BYTES
            assert bytes(row.value_enc)[-tail:] == blobs[row.id][-tail:]  # never re-encrypted

        again = run_cli(tmp_path, "keys", "rotate", "--database-url", fresh_db_url)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["columns"][f"{ROTATE_TABLE}.value_enc"]["rewrapped"] == 0
    finally:
        await engine.dispose()


async def test_rotate_counts_unreadable_blobs_and_leaves_them(tmp_path: Path,
                                                               sqlite_url: str) -> None:
    table = Table("test_rotation_bad", MetaData(), Column("id", Uuid, primary_key=True),
                  Column("value_enc", LargeBinary, nullable=True))
    column = crypto.EncryptedColumn("test_rotation_bad", "value_enc", ROTATE_CONTEXT)
    k1 = os.urandom(32)
    old = Keyring({"k1": k1}, active_kid="k1", index_key=os.urandom(32))
    new = Keyring({"k1": k1, "k2": os.urandom(32)}, active_kid="k2", index_key=os.urandom(32))
    stranger = random_keyring("k8").encrypt("x", context=ROTATE_CONTEXT)
    engine = make_engine(sqlite_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.create)
            await conn.execute(table.insert(), [
                {"id": uuid.uuid4(), "value_enc": old.encrypt("fine", context=ROTATE_CONTEXT)},
                {"id": uuid.uuid4(), "value_enc": b"\x07garbage"},
                {"id": uuid.uuid4(), "value_enc": stranger}])
        report = await crypto.rotate_column(engine, column, new, batch_size=2)
        assert (report.scanned, report.rewrapped, report.unreadable) == (3, 1, 2)
        assert report.by_kid == {"k2": 1, "k8": 1, "(unreadable)": 1}
        async with engine.connect() as conn:
            stored = {bytes(r.value_enc) for r in await conn.execute(select(table))}
        assert b"\x07garbage" in stored and stranger in stored
        assert await crypto.missing_columns(engine, [column]) == []
        assert await crypto.missing_columns(
            engine, [crypto.EncryptedColumn("nope", "value_enc", "c")]) == ["nope.value_enc"]
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(table.drop)
        await engine.dispose()
