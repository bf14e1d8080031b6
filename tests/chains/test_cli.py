"""The ``bankwallet chains`` commands, secrets on standard input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bankwallet.cli import app
from tests.chains.vectors import (
    ABANDON_ABOUT,
    EIP155_SIGNED,
    EIP155_TX,
    EIP712_MAIL,
    EIP712_MAIL_DIGEST,
    EIP712_MAIL_SIGNATURE,
    KEY_46,
    RIPPLE,
    TREZOR_ENGLISH,
)

runner = CliRunner()
COW_KEY = "c85ef7d79691fe79573b1a7064c19c1a9819ebdbd1faaab1a8ec92344438aaf4"  # keccak("cow")


def run(args: list[str], stdin: str = ""):
    return runner.invoke(app, ["chains", *args], input=stdin)


@pytest.mark.parametrize(("entropy", "phrase", "seed"), TREZOR_ENGLISH[:2])
def test_seed(entropy: str, phrase: str, seed: str) -> None:
    result = run(["seed", "--passphrase", "TREZOR"], phrase + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == seed


def test_seed_with_passphrase_on_stdin() -> None:
    _, phrase, seed = TREZOR_ENGLISH[0]
    result = run(["seed", "--passphrase-stdin"], f"{phrase}\nTREZOR\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == seed


@pytest.mark.parametrize(("args", "address"), [
    (["--chain", "ETH"], "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"),
    (["--chain", "BTC"], "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"),
    (["--chain", "btc", "--path", "m/44'/0'/0'/0/2"], "1MNF5RSaabFwcbtJirJwKnDytsXXEsVsNb"),
    (["--chain", "BTC", "--path", "m/49'/0'/0'/0/3"], "38CahkVftQneLonbWtfWxiiaT2fdnzsEAN"),
    (["--chain", "BTC", "--index", "4"], "bc1qm97vqzgj934vnaq9s53ynkyf9dgr05rargr04n"),
])
def test_derive(args: list[str], address: str) -> None:
    result = run(["derive", *args], ABANDON_ABOUT + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == address
    assert "abandon" not in result.output


def test_derive_every_chain_and_scheme() -> None:
    for chain in ("BSC", "POLYGON", "OKX", "TRON", "SOL", "APT", "DOT", "KSM", "EOS"):
        result = run(["derive", "--chain", chain], ABANDON_ABOUT)
        assert result.exit_code == 0, (chain, result.output)
    for scheme in ("sr25519", "ed25519", "ledger"):
        result = run(["derive", "--chain", "DOT", "--scheme", scheme], ABANDON_ABOUT)
        assert result.exit_code == 0, (scheme, result.output)


def test_derive_with_passphrase() -> None:
    result = run(["derive", "--chain", "TRON", "--passphrase", "TREZOR"], RIPPLE)
    assert result.stdout.strip() == "THJrqfbBhoB1vX97da6S6nXWkafCxpyCNB"


def test_wrong_word_exits_non_zero_without_echoing_the_phrase() -> None:
    phrase = RIPPLE.replace("kick", "kik")
    result = run(["derive", "--chain", "ETH"], phrase)
    assert result.exit_code == 2
    assert "word 3 ('kik') is not in the word list" in result.stderr
    assert "kick" in result.stderr  # the suggestion
    assert "ripple" not in result.output and "scissors" not in result.output
    assert result.stdout == ""


def test_bad_checksum_exits_non_zero() -> None:
    result = run(["seed"], "abandon " * 12)
    assert result.exit_code == 2
    assert "checksum does not match" in result.stderr


def test_bad_path_and_chain() -> None:
    assert run(["derive", "--chain", "XRP"], ABANDON_ABOUT).exit_code == 2
    result = run(["derive", "--chain", "SOL", "--path", "m/44'/501'/0/0"], ABANDON_ABOUT)
    assert result.exit_code == 2
    assert "hardened" in result.stderr


def test_the_phrase_is_never_an_argument() -> None:
    result = runner.invoke(app, ["chains", "derive", "--chain", "ETH", ABANDON_ABOUT])
    assert result.exit_code != 0


def test_sign_tx_legacy(tmp_path: Path) -> None:
    tx_file = tmp_path / "tx.json"
    tx_file.write_text(json.dumps(EIP155_TX))
    result = run(["sign-tx", "--chain", "ETH", "--tx", str(tx_file)], KEY_46 + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == EIP155_SIGNED
    assert KEY_46 not in result.output


def test_sign_tx_eip1559(tmp_path: Path) -> None:
    from eth_account import Account

    tx = {"nonce": 1, "maxFeePerGas": "0x77359400", "maxPriorityFeePerGas": "0x3b9aca00",
          "gas": 21000, "to": EIP155_TX["to"], "value": 5, "chainId": 137}
    tx_file = tmp_path / "tx.json"
    tx_file.write_text(json.dumps(tx))
    result = run(["sign-tx", "--chain", "POLYGON", "--tx", str(tx_file)], "0x" + KEY_46)
    assert result.exit_code == 0, result.output
    raw = result.stdout.strip()
    assert raw.startswith("0x02")
    assert Account.recover_transaction(raw) == "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F"


def test_sign_tx_errors(tmp_path: Path) -> None:
    tx_file = tmp_path / "tx.json"
    tx_file.write_text("{not json")
    result = run(["sign-tx", "--tx", str(tx_file)], KEY_46)
    assert result.exit_code == 2 and "not valid JSON" in result.stderr
    result = run(["sign-tx", "--tx", str(tmp_path / "missing.json")], KEY_46)
    assert result.exit_code == 2 and "cannot read" in result.stderr
    tx_file.write_text(json.dumps(EIP155_TX))
    result = run(["sign-tx", "--tx", str(tx_file)], "not a key")
    assert result.exit_code == 2 and "64 hex digits" in result.stderr
    result = run(["sign-tx", "--chain", "BSC", "--tx", str(tx_file)], KEY_46)
    assert result.exit_code == 2 and "chainId 1" in result.stderr


def test_sign_typed_data(tmp_path: Path) -> None:
    data_file = tmp_path / "mail.json"
    data_file.write_text(json.dumps(EIP712_MAIL))
    result = run(["sign-typed-data", "--file", str(data_file)], COW_KEY + "\n")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["digest"] == EIP712_MAIL_DIGEST
    assert printed["signature"] == EIP712_MAIL_SIGNATURE
    assert COW_KEY not in result.output


def test_new_mnemonic_and_round_trip() -> None:
    result = run(["new-mnemonic", "--words", "24", "--language", "zh-CN"])
    assert result.exit_code == 0, result.output
    phrase = result.stdout.strip()
    assert len(phrase.split()) == 24
    assert run(["seed"], phrase).exit_code == 0
    assert run(["new-mnemonic", "--words", "13"]).exit_code == 2


def test_validate_address_and_receive_uri(tmp_path: Path) -> None:
    result = run(["validate-address", "--chain", "ETH",
                  "0x9858effd232b4033e47d90003d41ec34ecaeda94"])
    assert result.stdout.strip() == "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
    result = run(["validate-address", "--chain", "DOT",
                  "Hy8mqcexg5FMwMYnQvzrUvD723qMxDjMRU9HdNCnTsMAypY"])
    assert result.exit_code == 2 and "Kusama" in result.stderr
    svg = tmp_path / "qr.svg"
    result = run(["receive-uri", "--chain", "BTC", "--amount-minor", "2500",
                  "--qr-svg", str(svg), "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"])
    assert result.stdout.strip() == (
        "bitcoin:bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu?amount=0.000025")
    assert svg.read_text().startswith("<svg")


def test_unexpected_errors_print_no_details(monkeypatch: pytest.MonkeyPatch) -> None:
    import bankwallet.chains.derive as derive

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"boom {args}")

    monkeypatch.setattr(derive, "derive_account", explode)
    result = run(["derive", "--chain", "ETH"], ABANDON_ABOUT)
    assert result.exit_code == 1
    assert "RuntimeError" in result.stderr
    assert "abandon" not in result.output and "boom" not in result.output


def test_installed_command_reads_the_phrase_from_stdin() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "bankwallet", "chains", "derive", "--chain",
                           "SOL"], input="team engine square letter hero song dizzy scrub "
                          "tornado fabric divert saddle\n", capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "CgWJeEWkiYqosy1ba7a3wn9HAQuHyK48xs3LM4SSDc1C"
    assert "team" not in done.stderr
