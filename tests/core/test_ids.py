"""Identifiers: UUIDv7 for new rows (time-ordered), UUIDv5 for deterministic ids."""

from __future__ import annotations

import time
import types
import uuid

import pytest

from bankwallet.core import ids
from bankwallet.core.ids import BANKWALLET_NAMESPACE, derived_id, uuid7


def _ms(value: uuid.UUID) -> int:
    return value.int >> 80


def test_uuid7_is_version_7_rfc_variant() -> None:
    for _ in range(1000):
        value = uuid7()
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
        assert str(value)[14] == "7" and str(value)[19] in "89ab"


def test_uuid7_carries_the_unix_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= _ms(value) <= after


def test_uuid7_is_unique_and_ordered_within_a_millisecond(
        monkeypatch: pytest.MonkeyPatch) -> None:
    frozen = types.SimpleNamespace(time_ns=lambda: 1_700_000_000_000_000_000)
    monkeypatch.setattr(ids, "time", frozen)
    monkeypatch.setattr(ids, "_last", (0, 0))  # this process made ids "later" already
    made = [uuid7() for _ in range(1000)]
    assert len(set(made)) == 1000 and sorted(made) == made
    assert {_ms(v) for v in made} == {1_700_000_000_000}


def test_uuid7_stays_ordered_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    before = uuid7()
    monkeypatch.setattr(ids, "time", types.SimpleNamespace(time_ns=lambda: 0))
    after = [uuid7() for _ in range(10)]
    assert before < after[0] and sorted(after) == after


def test_uuid7_sorts_by_creation_time_across_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(1_700_000_000_000, 1_700_000_000_500))
    monkeypatch.setattr(ids, "_last", (0, 0))
    monkeypatch.setattr(ids, "time",
                        types.SimpleNamespace(time_ns=lambda: next(clock) * 1_000_000 + 999_999))
    made = [uuid7() for _ in range(500)]
    assert sorted(made) == made
    assert sorted(str(v) for v in made) == [str(v) for v in made]  # text sorts the same
    assert sorted(v.bytes for v in made) == [v.bytes for v in made]  # and so do the bytes


def test_uuid7_sorts_on_the_real_clock() -> None:
    made = []
    for _ in range(20):
        made.append(uuid7())
        time.sleep(0.0015)  # past the next millisecond
    assert sorted(made) == made


def test_derived_id_is_deterministic_uuid5() -> None:
    transfer = uuid.UUID("0190d2a0-0000-7000-8000-000000000001")
    first = derived_id("ledger.expire", transfer)
    assert derived_id("ledger.expire", transfer) == first
    assert derived_id("ledger.expire", str(transfer)) == first
    assert first.version == 5
    assert first == uuid.uuid5(BANKWALLET_NAMESPACE, f"ledger.expire\x1f{transfer}")


def test_derived_id_differs_for_different_parts() -> None:
    variants = [
        ("demo.transfer", 1), ("demo.transfer", 2), ("demo.transfer", 1, "fee"),
        ("demo.transfer", "topup", 1), ("demo.account", 1), ("demo.transfer1",),
        ("demo.transfer",), ("demo", "transfer", 1), ("1", "demo.transfer"),
    ]
    made = [derived_id(*parts) for parts in variants]
    assert len(set(made)) == len(made)
    assert derived_id("a", "b") != derived_id("b", "a")
    assert derived_id("ab") != derived_id("a", "b")


def test_uuid7_is_monotonic_within_the_process() -> None:
    made = [uuid7() for _ in range(20_000)]  # many share a millisecond
    assert all(a < b for a, b in zip(made, made[1:], strict=False))
    assert len({_ms(v) for v in made}) < len(made)  # the same millisecond did occur
    for value in made[:100]:
        assert value.version == 7 and value.variant == uuid.RFC_4122
