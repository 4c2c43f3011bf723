"""What the risk engine knows of the market: reference prices, their age, and a
rolling history of returns sampled on a fixed time grid.

The grid matters: correlation between two symbols is only meaningful on returns over
the same intervals, so every symbol's last price is sampled at each grid boundary.
Statistics (correlations, covariance) are floats -- analytics, not money -- computed
once per new sample and cached, so a pre-trade check reads them in O(1).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from numpy.typing import NDArray

from bot4.core.numbers import SCALE


class MarketState:
    __slots__ = (
        "_cov",
        "_cov_symbols",
        "_history",
        "_moments",
        "_slot",
        "interval_ns",
        "last_prices",
        "last_update_ns",
        "window",
    )

    def __init__(self, interval_ns: int, window: int) -> None:
        if interval_ns <= 0 or window < 2:
            raise ValueError("interval_ns must be > 0 and window >= 2")
        self.interval_ns = interval_ns
        self.window = window
        self.last_prices: dict[str, int] = {}
        self.last_update_ns: dict[str, int] = {}
        self._history: dict[str, deque[int]] = {}
        self._slot: int | None = None
        self._cov: NDArray[np.float64] | None = None
        self._cov_symbols: list[str] = []
        # symbol -> [deque of returns, sum, sum of squares]: a rolling variance in O(1)
        # per sample, for the common case of a book of one symbol.
        self._moments: dict[str, list[object]] = {}

    def update(self, symbol: str, price_raw: int, ts_ns: int) -> bool:
        """A new reference price.  Crossing a grid boundary first samples every
        symbol's previous price, so a sample means 'the price at the boundary'.
        Returns whether a sample was taken."""
        slot = ts_ns // self.interval_ns
        sampled = False
        if self._slot is None:
            self._slot = slot
        elif slot > self._slot:
            self._sample()
            self._slot = slot
            sampled = True
        self.last_prices[symbol] = price_raw
        self.last_update_ns[symbol] = ts_ns
        return sampled

    def _sample(self) -> None:
        # Raw prices only: logs and returns are computed when statistics are asked for.
        history = self._history
        for symbol, price in self.last_prices.items():
            hist = history.get(symbol)
            if hist is None:
                hist = history[symbol] = deque(maxlen=self.window + 1)
            if hist:
                self._push_return(symbol, math.log(price / hist[-1]))
            hist.append(price)
        self._cov = None

    def _push_return(self, symbol: str, r: float) -> None:
        m = self._moments.get(symbol)
        if m is None:
            m = self._moments[symbol] = [deque(), 0.0, 0.0]
        rets: deque[float] = m[0]  # type: ignore[assignment]
        rets.append(r)
        total = m[1] + r  # type: ignore[operator]
        squares = m[2] + r * r  # type: ignore[operator]
        if len(rets) > self.window:
            old = rets.popleft()
            total -= old
            squares -= old * old
        m[1] = total
        m[2] = squares

    def variance(self, symbol: str) -> float | None:
        """Sample variance of the symbol's last ``window`` returns (None below 2)."""
        m = self._moments.get(symbol)
        if m is None:
            return None
        rets: deque[float] = m[0]  # type: ignore[assignment]
        n = len(rets)
        if n < 2:
            return None
        total: float = m[1]  # type: ignore[assignment]
        squares: float = m[2]  # type: ignore[assignment]
        return max((squares - total * total / n) / (n - 1), 0.0)

    def samples(self, symbol: str) -> int:
        """Number of returns available for ``symbol``."""
        hist = self._history.get(symbol)
        return max(len(hist) - 1, 0) if hist else 0

    def returns(self, symbols: list[str], n: int) -> NDArray[np.float64]:
        """The last ``n`` aligned log returns of each symbol, one row per symbol."""
        rows = []
        for symbol in symbols:
            hist = np.log(np.fromiter(self._history[symbol], dtype=np.float64) / SCALE)
            rows.append(np.diff(hist)[-n:])
        return np.vstack(rows) if rows else np.empty((0, n))

    def covariance(self) -> tuple[list[str], NDArray[np.float64]]:
        """Covariance of returns over the common window, cached until the next sample."""
        if self._cov is None:
            symbols = sorted(s for s in self._history if self.samples(s) >= 2)
            n = min((self.samples(s) for s in symbols), default=0)
            if n >= 2:
                self._cov = np.atleast_2d(np.cov(self.returns(symbols, n)))
            else:
                symbols = []
                self._cov = np.empty((0, 0))
            self._cov_symbols = symbols
        return self._cov_symbols, self._cov
