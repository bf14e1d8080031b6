from __future__ import annotations

import pytest

from bankwallet.chains.errors import (
    MnemonicBadChecksum,
    MnemonicBadLength,
    MnemonicInvalidWord,
    MnemonicLanguageUnsupported,
)
from bankwallet.chains.mnemonic import (
    Language,
    generate_mnemonic,
    mnemonic_from_entropy,
    parse_mnemonic,
    word_list,
)
from tests.chains.vectors import ABANDON_ABOUT, RIPPLE, TREZOR_CHINESE, TREZOR_ENGLISH


@pytest.mark.parametrize(("entropy", "phrase", "seed"), TREZOR_ENGLISH + TREZOR_CHINESE)
def test_trezor_vectors(entropy: str, phrase: str, seed: str) -> None:
    mnemonic = parse_mnemonic(phrase)
    assert mnemonic.entropy().hex() == entropy
    assert mnemonic.seed("TREZOR").hex() == seed
    assert mnemonic_from_entropy(bytes.fromhex(entropy), mnemonic.language).phrase == phrase


def test_languages_are_detected() -> None:
    assert parse_mnemonic(ABANDON_ABOUT).language is Language.ENGLISH
    assert parse_mnemonic(TREZOR_CHINESE[0][1]).language is Language.CHINESE_SIMPLIFIED


def test_wallet_core_seeds_without_and_with_passphrase() -> None:
    mnemonic = parse_mnemonic(RIPPLE)
    assert mnemonic.entropy().hex() == "ba5821e8c356c05ba5f025d9532fe0f21f65d594"
    assert mnemonic.seed("").hex() == (
        "354c22aedb9a37407adc61f657a6f00d10ed125efa360215f36c6919abd94d6dbc193a5f9c495e21ee7411"
        "8661e327e84a5f5f11fa373ec33b80897d4697557d")
    assert mnemonic.seed("TREZOR").hex() == (
        "7ae6f661157bda6492f6162701e570097fc726b6235011ea5ad09bf04986731ed4d92bc43cbdee047b60ea"
        "0dd1b1fa4274377c9bf5bd14ab1982c272d8076f29")


@pytest.mark.parametrize("words", [12, 24])
@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_created_phrases_round_trip(words: int, language: str) -> None:
    created = generate_mnemonic(words, language)
    assert len(created.words) == words
    assert all(w in word_list(language) for w in created.words)
    parsed = parse_mnemonic(created.phrase)
    assert parsed == created
    assert parsed.entropy() == created.entropy()
    assert len(created.entropy()) == words * 4 // 3


def test_created_phrases_differ() -> None:
    assert generate_mnemonic().phrase != generate_mnemonic().phrase


@pytest.mark.parametrize("words", [15, 18, 13, 0])
def test_only_12_or_24_words_are_created(words: int) -> None:
    with pytest.raises(MnemonicBadLength):
        generate_mnemonic(words)


def test_chinese_typed_without_spaces_is_accepted() -> None:
    _, phrase, seed = TREZOR_CHINESE[1]
    mnemonic = parse_mnemonic(phrase.replace(" ", ""))
    assert mnemonic.phrase == phrase
    assert mnemonic.seed("TREZOR").hex() == seed


def test_spacing_case_and_full_width_do_not_matter() -> None:
    messy = "  ABANDON\tabandon abandon\u3000abandon abandon abandon\nabandon abandon abandon " \
            "abandon abandon ａｂｏｕｔ  "
    assert parse_mnemonic(messy).phrase == ABANDON_ABOUT


def test_wrong_word_names_position_word_and_suggestions() -> None:
    words = RIPPLE.split()
    words[2] = "kik"
    with pytest.raises(MnemonicInvalidWord) as caught:
        parse_mnemonic(" ".join(words))
    error = caught.value
    assert error.code == "mnemonic_invalid_word"
    assert error.extra["words"][0]["position"] == 3
    assert error.extra["words"][0]["word"] == "kik"
    assert "kick" in error.extra["words"][0]["suggestions"]
    assert "word 3 ('kik')" in error.detail and "kick" in error.detail


def test_four_letter_prefix_suggests_the_word() -> None:
    words = ABANDON_ABOUT.split()
    words[11] = "aboutt"
    with pytest.raises(MnemonicInvalidWord) as caught:
        parse_mnemonic(" ".join(words))
    assert caught.value.extra["words"][0]["suggestions"][0] == "about"


def test_every_wrong_word_is_reported() -> None:
    words = ABANDON_ABOUT.split()
    words[0], words[5] = "xyzzy", "plugh"
    with pytest.raises(MnemonicInvalidWord) as caught:
        parse_mnemonic(" ".join(words))
    assert [w["position"] for w in caught.value.extra["words"]] == [1, 6]
    assert "(and 1 more)" in caught.value.detail


def test_traditional_character_suggests_the_simplified_one() -> None:
    phrase = TREZOR_CHINESE[2][1].replace("尝", "嘗", 1)  # the traditional form
    with pytest.raises(MnemonicInvalidWord) as caught:
        parse_mnemonic(phrase)
    reported = caught.value.extra["words"][0]
    assert reported["position"] == 4
    assert reported["word"] == "嘗"
    assert reported["suggestions"] == ["尝"]


def test_bad_checksum_says_so() -> None:
    with pytest.raises(MnemonicBadChecksum) as caught:
        parse_mnemonic("abandon " * 11 + "abandon")
    assert "checksum does not match" in caught.value.detail
    assert caught.value.code == "mnemonic_bad_checksum"


def test_swapped_words_fail_the_checksum() -> None:
    words = RIPPLE.split()
    words[0], words[1] = words[1], words[0]
    with pytest.raises(MnemonicBadChecksum):
        parse_mnemonic(" ".join(words))


@pytest.mark.parametrize("count", [0, 1, 11, 13, 23, 25])
def test_wrong_word_count(count: int) -> None:
    with pytest.raises(MnemonicBadLength):
        parse_mnemonic(" ".join(["abandon"] * count))


def test_far_too_long_input_is_refused_before_work() -> None:
    with pytest.raises(MnemonicBadLength):
        parse_mnemonic("abandon " * 1000)


def test_unsupported_script() -> None:
    with pytest.raises(MnemonicLanguageUnsupported):
        parse_mnemonic(" ".join(["абвгд"] * 12))


def test_repr_never_shows_the_words() -> None:
    mnemonic = parse_mnemonic(ABANDON_ABOUT)
    assert "abandon" not in repr(mnemonic)
    assert "abandon" not in str(mnemonic)
    assert "abandon" not in f"{mnemonic}"
