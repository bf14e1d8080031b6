"""The rate source interface, the static provider, the rate board and ``to_cny``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from bankwallet.connectors.rates.base import (
    RateSnapshot,
    RateSource,
    RatesResult,
    RatesStatus,
)
from bankwallet.connectors.rates.static import REFERENCE_RATES, StaticRateSource
from bankwallet.fx import service
from bankwallet.fx.errors import RatesUnavailable
from bankwallet.wallets.service import SUPPORTED_CURRENCIES

NOW = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)


class DownSource:
    name = "down"

    async def latest(self) -> RatesResult:
        return RatesResult.unavailable("feed timed out")


class FixedSource:
    """A source whose rates were observed at ``as_of``."""

    name = "fixed"

    def __init__(self, as_of: dt.datetime, mid: dict[str, Decimal] | None = None) -> None:
        self.as_of = as_of
        self.mid = mid or {c: Decimal(v) for c, v in REFERENCE_RATES.items()}

    async def latest(self) -> RatesResult:
        return RatesResult.of(RateSnapshot("CNY", self.mid, self.as_of, self.name))


async def test_the_static_source_quotes_every_supported_currency_exactly() -> None:
    source = StaticRateSource(clock=lambda: NOW)
    assert isinstance(source, RateSource)
    result = await source.latest()
    assert result.ok and result.status is RatesStatus.OK
    snapshot = result.snapshot
    assert snapshot.base == "CNY" and snapshot.as_of == NOW and snapshot.source == "static"
    assert set(snapshot.mid) | {"CNY"} == set(SUPPORTED_CURRENCIES)
    assert all(isinstance(v, Decimal) for v in snapshot.mid.values())
    assert snapshot.mid["USD"] == Decimal("7.1000")


@pytest.mark.parametrize("rates", [{"USD": "seven"}, {"USD": "-1"}, {"USD": "0"},
                                   {"USD": "NaN"}, {"USD": "Infinity"}])
async def test_a_misconfigured_static_source_is_unavailable_not_an_exception(rates) -> None:
    result = await StaticRateSource(rates).latest()
    assert result.status is RatesStatus.UNAVAILABLE and result.snapshot is None
    assert "USD" in result.reason


async def test_the_board_adds_the_spread_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "_rates", FixedSource(NOW))
    board = await service.board(now=NOW)
    assert board.base == "CNY" and board.spread_bps == 50 and board.quote_ttl_s == 30
    usd = next(r for r in board.rows if r.currency == "USD")
    assert (usd.mid, usd.customer_buys_at, usd.customer_sells_at) == ("7.1000", "7.1357",
                                                                      "7.0645")
    assert [r.currency for r in board.rows] == [c for c in SUPPORTED_CURRENCIES if c != "CNY"]


async def test_missing_stale_or_incomplete_rates_are_refused(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setattr(service, "_rates", DownSource())
    with pytest.raises(RatesUnavailable):
        await service.board(now=NOW)
    stale = NOW - dt.timedelta(seconds=service.RATES_MAX_AGE_S + 1)
    monkeypatch.setattr(service, "_rates", FixedSource(stale))
    with pytest.raises(RatesUnavailable):
        await service.current_rates(now=NOW)
    monkeypatch.setattr(service, "_rates", FixedSource(NOW, {"USD": Decimal("7.1")}))
    with pytest.raises(RatesUnavailable):
        await service.current_rates(now=NOW)


async def test_to_cny_values_foreign_amounts_at_mid_rounded_up(monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setattr(service, "_rates", FixedSource(dt.datetime.now(dt.UTC)))
    assert await service.to_cny(12_345, "CNY") == 12_345
    assert await service.to_cny(100_00, "USD") == 710_00
    assert await service.to_cny(1, "HKD") == 1  # 0.009126 CNY counts as a whole fen
    assert await service.to_cny(0, "EUR") == 0
    assert await service.to_cny(100_00, "usd") == 710_00


def test_the_rates_are_public(client: TestClient) -> None:
    r = client.get("/api/v1/fx/rates")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["base"] == "CNY" and body["spread_bps"] == 50 and body["source"] == "static"
    assert dt.datetime.fromisoformat(body["as_of"]).tzinfo is not None
    for row in body["rates"]:
        assert Decimal(row["customer_sells_at"]) < Decimal(row["mid"]) < \
            Decimal(row["customer_buys_at"])
    assert {row["currency"] for row in body["rates"]} == {"USD", "EUR", "HKD"}


def test_unavailable_rates_are_a_503_problem(client: TestClient,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "_rates", DownSource())
    r = client.get("/api/v1/fx/rates")
    assert r.status_code == 503 and r.json()["code"] == "rates_unavailable"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"] == "30"
