"""The risk engine's market state: the rolling variance folded in lazily (only when a
check asks) must equal a direct computation over the same window, however the
samples and the questions interleave."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.risk.market import MarketState

MINUTE = 60 * 10**9


def direct_variance(prices: list[int], window: int) -> float | None:
    last = prices[-(window + 1) :]
    returns = np.diff(np.log(np.array(last, dtype=np.float64)))
    return float(np.var(returns, ddof=1)) if len(returns) >= 2 else None


@settings(max_examples=60, deadline=None)
@given(
    window=st.integers(2, 12),
    steps=st.lists(
        st.tuples(st.integers(1, 10**6), st.integers(0, 3), st.booleans()), min_size=1, max_size=80
    ),
)
def test_lazy_rolling_variance_equals_direct(
    window: int, steps: list[tuple[int, int, bool]]
) -> None:
    market = MarketState(MINUTE, window)
    ts = 0
    sampled: list[int] = []  # the price at each grid boundary, as the state samples it
    last: int | None = None
    for price_units, minutes, ask in steps:
        price = price_units * 10**6
        ts += minutes * MINUTE
        if market.update("BTCUSDT", price, ts) and last is not None:
            sampled.append(last)
        last = price
        if ask:
            got = market.variance("BTCUSDT")
            want = direct_variance(sampled, window) if len(sampled) >= 3 else None
            if want is None:
                assert got is None
            else:
                assert got is not None
                assert math.isclose(got, want, rel_tol=1e-7, abs_tol=1e-15)
    assert market.samples("BTCUSDT") == max(min(len(sampled), window + 1) - 1, 0)


def test_variance_unknown_symbol_and_too_few_samples() -> None:
    market = MarketState(MINUTE, 5)
    assert market.variance("ETHUSDT") is None
    market.update("BTCUSDT", 100 * 10**9, 0)
    market.update("BTCUSDT", 101 * 10**9, MINUTE)  # first sample: no return yet
    assert market.variance("BTCUSDT") is None
    market.update("BTCUSDT", 99 * 10**9, 2 * MINUTE)
    market.update("BTCUSDT", 100 * 10**9, 3 * MINUTE)
    # samples at 100 (t=1'), 101 (t=2'), 99 (t=3'): two returns
    want = float(np.var(np.diff(np.log([100.0, 101.0, 99.0])), ddof=1))
    got = market.variance("BTCUSDT")
    assert got is not None and math.isclose(got, want, rel_tol=1e-9)
