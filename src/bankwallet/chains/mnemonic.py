"""BIP39 recovery phrases: create, parse with helpful errors, and turn into seeds.

English and simplified Chinese word lists. Parsing tells the customer which word is wrong
(its position and what was typed, with close words from the list when cheap to find) or that
the checksum does not match, which means a wrong word that happens to be in the list, or
words out of order.
"""

from __future__ import annotations

import difflib
import secrets
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache

from bip_utils import (
    Bip39Languages,
    Bip39MnemonicDecoder,
    Bip39MnemonicEncoder,
    Bip39SeedGenerator,
    MnemonicChecksumError,
)
from bip_utils.bip.bip39.bip39_mnemonic_utils import Bip39WordsListGetter

from bankwallet.chains.errors import (
    MnemonicBadChecksum,
    MnemonicBadLength,
    MnemonicInvalidWord,
    MnemonicLanguageUnsupported,
)

WORD_COUNTS = (12, 15, 18, 21, 24)  # what BIP39 allows, so phrases from other wallets import
CREATE_WORD_COUNTS = (12, 24)  # what this wallet creates
MAX_PHRASE_CHARS = 1_000  # 24 of the longest English words and spaces fit many times over
MAX_REPORTED_WORDS = 5
MAX_SUGGESTIONS = 3


class Language(StrEnum):
    ENGLISH = "en"
    CHINESE_SIMPLIFIED = "zh-CN"


_BIP39_LANGUAGE = {
    Language.ENGLISH: Bip39Languages.ENGLISH,
    Language.CHINESE_SIMPLIFIED: Bip39Languages.CHINESE_SIMPLIFIED,
}


@dataclass(frozen=True, slots=True, repr=False)
class Mnemonic:
    """A checked recovery phrase. Its repr never shows the words."""

    words: tuple[str, ...]
    language: Language

    @property
    def phrase(self) -> str:
        return " ".join(self.words)

    def entropy(self) -> bytes:
        return Bip39MnemonicDecoder(_BIP39_LANGUAGE[self.language]).Decode(self.phrase)

    def seed(self, passphrase: str = "") -> bytes:
        """The 64-byte BIP39 seed (PBKDF2 of the phrase, salted with the passphrase)."""
        generator = Bip39SeedGenerator(self.phrase, _BIP39_LANGUAGE[self.language])
        return generator.Generate(passphrase)

    def __repr__(self) -> str:
        return f"Mnemonic(<{len(self.words)} words, {self.language.value}>)"

    __str__ = __repr__


def generate_mnemonic(word_count: int = 12,
                      language: Language | str = Language.ENGLISH) -> Mnemonic:
    """A new phrase from the operating system's random generator."""
    if word_count not in CREATE_WORD_COUNTS:
        raise MnemonicBadLength(f"a new recovery phrase has 12 or 24 words, not {word_count}")
    entropy_bytes = word_count * 4 // 3  # 11 bits a word, one checksum bit per 32 bits
    return mnemonic_from_entropy(secrets.token_bytes(entropy_bytes), language)


def mnemonic_from_entropy(entropy: bytes, language: Language | str = Language.ENGLISH) -> Mnemonic:
    assert len(entropy) in (16, 20, 24, 28, 32), "BIP39 entropy is 128 to 256 bits"
    lang = _language(language)
    phrase = Bip39MnemonicEncoder(_BIP39_LANGUAGE[lang]).Encode(entropy).ToStr()
    return Mnemonic(tuple(phrase.split(" ")), lang)


def parse_mnemonic(text: str) -> Mnemonic:
    """Check a phrase as typed or pasted: spacing, case and width do not matter.

    Raises MnemonicBadLength, MnemonicInvalidWord (with the position, the word and close
    words) or MnemonicBadChecksum.
    """
    words = split_words(text)
    if len(words) not in WORD_COUNTS:
        raise MnemonicBadLength(f"got {len(words)} words; a recovery phrase has "
                                f"12, 15, 18, 21 or 24")
    language = _detect_language(words)
    unknown = [(i, w) for i, w in enumerate(words, start=1) if w not in _index(language)]
    if unknown:
        raise _invalid_words(unknown, language)
    mnemonic = Mnemonic(words, language)
    try:
        mnemonic.entropy()
    except MnemonicChecksumError:
        raise MnemonicBadChecksum(
            "every word is in the list but the checksum does not match: a word is wrong "
            "or two words are swapped") from None
    return mnemonic


def split_words(text: str) -> tuple[str, ...]:
    if len(text) > MAX_PHRASE_CHARS:
        raise MnemonicBadLength("that is far too long for a recovery phrase")
    normalized = unicodedata.normalize("NFKD", text).lower()
    compact = "".join(normalized.split())
    if compact and all(_is_cjk(ch) for ch in compact):
        # Every Chinese word is one character, and people often type them without spaces.
        return tuple(compact)
    return tuple(normalized.split())


def word_list(language: Language | str) -> tuple[str, ...]:
    return _words(_language(language))


def suggest_words(word: str, language: Language | str) -> list[str]:
    """Up to three list words the customer may have meant."""
    lang = _language(language)
    if lang is Language.CHINESE_SIMPLIFIED:
        simplified = _traditional_to_simplified().get(word)
        return [simplified] if simplified else []
    # The first four letters identify an English BIP39 word uniquely.
    by_prefix = [w for w in _words(lang) if len(word) >= 4 and w.startswith(word[:4])]
    close = difflib.get_close_matches(word, _words(lang), n=MAX_SUGGESTIONS, cutoff=0.75)
    return list(dict.fromkeys(by_prefix + close))[:MAX_SUGGESTIONS]


def _invalid_words(unknown: list[tuple[int, str]], language: Language) -> MnemonicInvalidWord:
    reported = [{"position": i, "word": w, "suggestions": suggest_words(w, language)}
                for i, w in unknown[:MAX_REPORTED_WORDS]]
    first = reported[0]
    hint = (f"; did you mean {' or '.join(repr(s) for s in first['suggestions'])}?"
            if first["suggestions"] else "")
    more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
    detail = f"word {first['position']} ({first['word']!r}) is not in the word list{hint}{more}"
    return MnemonicInvalidWord(detail, words=reported, language=language.value)


def _detect_language(words: tuple[str, ...]) -> Language:
    hits = {lang: sum(w in _index(lang) for w in words) for lang in Language}
    best = max(hits, key=lambda lang: hits[lang])
    if hits[best]:
        return best
    if any(_is_cjk(ch) for w in words for ch in w):
        return Language.CHINESE_SIMPLIFIED
    if all(w.isascii() for w in words):
        return Language.ENGLISH
    raise MnemonicLanguageUnsupported()


def _language(language: Language | str) -> Language:
    try:
        return Language(language)
    except ValueError:
        raise MnemonicLanguageUnsupported(f"{language!r} is not en or zh-CN") from None


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


@cache
def _words(language: Language) -> tuple[str, ...]:
    return _bip39_words(_BIP39_LANGUAGE[language])


@cache
def _index(language: Language) -> frozenset[str]:
    return frozenset(_words(language))


@lru_cache(maxsize=1)
def _traditional_to_simplified() -> dict[str, str]:
    # The two Chinese lists are the same words, index for index, in the two scripts.
    traditional = _bip39_words(Bip39Languages.CHINESE_TRADITIONAL)
    simplified = _words(Language.CHINESE_SIMPLIFIED)
    return {t: s for t, s in zip(traditional, simplified, strict=True) if t != s}


def _bip39_words(language: Bip39Languages) -> tuple[str, ...]:
    words_list = Bip39WordsListGetter.Instance().GetByLanguage(language)
    return tuple(words_list.GetWordAtIdx(i) for i in range(words_list.Length()))
