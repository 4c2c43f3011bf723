"""Indicators: the values a backtest computes at once (``Indicator.batch``) are exactly
the ones ``update`` gives value by value -- live and paper only ever use ``update``,
so any difference would be a backtest-vs-live gap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.backtest.engine import Backtest
from bot4.data.bars import load_bars
from bot4.examples.sma_cross import SmaCross
from bot4.strategy.indicators import EMA, RSI, SMA, BatchIndicator, Indicator
from tests.conftest import SHARED_DATA

BTC = SHARED_DATA / "ohlcv_1m" / "binance_spot_BTC_USDT-1m_2025-05-20_2025-08-18.feather"


def incremental(ind: Indicator, xs: list[float]) -> np.ndarray:
    return np.array([ind.update(x) for x in xs])


@settings(max_examples=200, deadline=None)
@given(
    period=st.integers(1, 40),  # x 1 M x 1e8 stays below 2**52: always batchable
    xs=st.lists(
        st.one_of(
            st.integers(1, 10**8).map(lambda c: c / 100),  # cent prices up to 1 M
            st.floats(1e-6, 1e5, allow_nan=False),  # any float
        ),
        min_size=1,
        max_size=200,
    ),
)
def test_sma_batch_is_bit_identical_to_update(period: int, xs: list[float]) -> None:
    sma = SMA(period)
    assert sma.can_batch(np.array(xs))
    batch = sma.batch(np.array(xs))
    want = incremental(SMA(period), xs)
    assert np.array_equal(batch, want, equal_nan=True)
    assert [v.hex() for v in batch if not math.isnan(v)] == [
        v.hex() for v in want if not math.isnan(v)
    ]


def test_sma_batch_refuses_what_it_cannot_do_exactly() -> None:
    assert not SMA(3).can_batch(np.array([1.0, math.nan, 2.0]))
    assert not SMA(3).can_batch(np.array([1.0, math.inf]))
    assert not SMA(3).can_batch(np.array([1e9, 2e9, 3e9]))  # window sums beyond 2**52
    assert not SMA(3).can_batch(np.array([]))
    used = SMA(2)
    used.update(1.0)
    assert not used.can_batch(np.array([1.0, 2.0]))  # not fresh
    # recursive ones have no batch form: update only
    assert not isinstance(EMA(3), BatchIndicator) and not isinstance(RSI(3), BatchIndicator)


@settings(max_examples=100, deadline=None)
@given(
    period=st.integers(1, 40),
    cuts=st.lists(st.integers(1, 300), min_size=1, max_size=6),
    seed=st.integers(0, 2**32 - 1),
)
def test_sma_batch_chunk_by_chunk_with_lookback_equals_update(
    period: int, cuts: list[int], seed: int
) -> None:
    """The backtest computes values chunk by chunk from the chunk plus ``lookback``
    earlier inputs; stitched together they must be the series' values."""
    xs = np.round(np.random.default_rng(seed).uniform(1, 100_000, sum(cuts)), 2)
    want = incremental(SMA(period), xs.tolist())
    sma = SMA(period)
    got: list[float] = []
    i0 = 0
    for size in cuts:
        start = max(0, i0 - sma.lookback)
        got += sma.batch(xs[start : i0 + size])[i0 - start :].tolist()
        i0 += size
    assert np.array_equal(np.array(got), want, equal_nan=True)


class _StepwiseSMA(SMA):
    """An SMA that refuses batching, so the backtest feeds it bar by bar."""

    def can_batch(self, xs: np.ndarray) -> bool:
        return False


class StepwiseSmaCross(SmaCross):
    def sma(self, period: int, symbol: str | None = None) -> SMA:
        return self._register(_StepwiseSMA(period), symbol)


def test_backtest_with_batched_and_stepwise_indicators_is_identical() -> None:
    series = load_bars(BTC, "BTCUSDT").slice(0, 30_000)
    params = {"fast": 10, "slow": 30, "qty": 1, "stop_pct": "0.5"}
    batched = Backtest(SmaCross, series, params=params).run()
    stepwise = Backtest(StepwiseSmaCross, series, params=params).run()
    assert batched.entries > 50
    assert batched.fills == stepwise.fills
    assert batched.trades == stepwise.trades
    assert batched.final_equity == stepwise.final_equity
    assert np.array_equal(batched.equity, stepwise.equity)


@pytest.mark.parametrize("period", [10, 30])
def test_sma_batch_on_real_btc_closes(period: int) -> None:
    closes = load_bars(BTC, "BTCUSDT").close
    assert SMA(period).can_batch(closes)
    batch = SMA(period).batch(closes)
    assert np.array_equal(batch, incremental(SMA(period), closes.tolist()), equal_nan=True)
