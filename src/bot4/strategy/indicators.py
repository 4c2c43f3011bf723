"""Indicators that update incrementally, one value at a time.

The same code runs in a backtest and live, so a strategy sees the same numbers in
both.  Inputs are floats (analytics, not money).  ``SMA`` keeps an exact running sum:
prices on a decimal grid are summed as integers at 1e-8 resolution, so the mean is
the correctly rounded quotient -- no drift over millions of updates, and the same
value whatever came before.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque

import numpy as np
from numpy.typing import NDArray


class Indicator(ABC):
    """Base: ``update(x)`` returns the new value (NaN until ``ready``); ``value`` is
    the current one, ``previous`` the one before (for crossovers)."""

    __slots__ = ("count", "period", "previous", "value")

    def __init__(self, period: int) -> None:
        if period <= 0:
            raise ValueError("period must be > 0")
        self.period = period
        self.value = math.nan
        self.previous = math.nan
        self.count = 0

    @property
    def ready(self) -> bool:
        return self.count >= self.period

    @abstractmethod
    def update(self, x: float) -> float:
        """Feed the next input; return the new value."""


class BatchIndicator(Indicator):
    """An indicator that can also compute a whole series at once, exactly as ``update``
    would.  A backtest knows the series in advance and computes values chunk by chunk
    with ``batch`` (where ``can_batch`` says so); live, every value comes from
    ``update``."""

    __slots__ = ()

    @property
    @abstractmethod
    def lookback(self) -> int:
        """How many earlier inputs ``batch`` needs to continue a series."""

    @abstractmethod
    def can_batch(self, xs: NDArray[np.float64]) -> bool:
        """Whether ``batch`` gives exactly ``update``'s numbers over all of ``xs`` for
        this (fresh) indicator."""

    @abstractmethod
    def batch(self, xs: NDArray[np.float64]) -> NDArray[np.float64]:
        """The values a fresh indicator's ``update`` returns when fed ``xs`` in order
        (reads and changes nothing of this one)."""


class SMA(BatchIndicator):
    """Simple moving average, exact: a running integer sum at 1e-8 resolution."""

    __slots__ = ("_sum", "_window")

    RESOLUTION = 10**8

    def __init__(self, period: int) -> None:
        super().__init__(period)
        self._window: deque[int] = deque()
        self._sum = 0

    def update(self, x: float) -> float:
        v = round(x * self.RESOLUTION)
        window = self._window
        window.append(v)
        self._sum += v
        if len(window) > self.period:
            self._sum -= window.popleft()
        self.count += 1
        self.previous = self.value
        if self.count >= self.period:
            self.value = self._sum / (self.period * self.RESOLUTION)
        return self.value

    @property
    def lookback(self) -> int:
        return self.period - 1  # a value depends on the last ``period`` inputs only

    def can_batch(self, xs: NDArray[np.float64]) -> bool:
        """Fresh, finite inputs, and every window sum of the 1e-8 integers below 2**53
        (so floats hold it exactly).  Reads min/max only: no copy of the series."""
        if self.count or len(xs) == 0:
            return False
        low, high = float(xs.min()), float(xs.max())
        if not (math.isfinite(low) and math.isfinite(high)):
            return False
        return max(abs(low), abs(high)) * self.RESOLUTION * self.period < 2.0**52

    def batch(self, xs: NDArray[np.float64]) -> NDArray[np.float64]:
        """Bit-identical to ``update``: the same rounding to 1e-8 (``rint`` and
        ``round`` both round half to even), window sums as exact differences of an
        int64 running sum, and one correctly rounded division of two floats that hold
        those integers exactly -- which is what ``int / int`` computes.  Valid where
        ``can_batch`` says so."""
        n = len(xs)
        values = np.full(n, math.nan)
        if n < self.period:
            return values
        running = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.rint(xs * self.RESOLUTION).astype(np.int64), out=running[1:])
        sums = running[self.period :] - running[: n + 1 - self.period]
        values[self.period - 1 :] = sums / float(self.period * self.RESOLUTION)
        return values


class EMA(Indicator):
    """Exponential moving average, seeded with the SMA of the first ``period`` values."""

    __slots__ = ("_alpha", "_seed")

    def __init__(self, period: int) -> None:
        super().__init__(period)
        self._alpha = 2.0 / (period + 1)
        self._seed = 0.0

    def update(self, x: float) -> float:
        self.count += 1
        self.previous = self.value
        if self.count < self.period:
            self._seed += x
        elif self.count == self.period:
            self.value = (self._seed + x) / self.period
        else:
            self.value += self._alpha * (x - self.value)
        return self.value


class RSI(Indicator):
    """Wilder's relative strength index."""

    __slots__ = ("_avg_gain", "_avg_loss", "_last")

    def __init__(self, period: int = 14) -> None:
        super().__init__(period + 1)
        self._last = math.nan
        self._avg_gain = 0.0
        self._avg_loss = 0.0

    def update(self, x: float) -> float:
        self.count += 1
        self.previous = self.value
        if self.count > 1:
            change = x - self._last
            gain, loss = max(change, 0.0), max(-change, 0.0)
            n = self.period - 1
            if self.count <= self.period:
                self._avg_gain += gain / n
                self._avg_loss += loss / n
            else:
                self._avg_gain = (self._avg_gain * (n - 1) + gain) / n
                self._avg_loss = (self._avg_loss * (n - 1) + loss) / n
            if self.count >= self.period:
                if self._avg_loss == 0:
                    self.value = 100.0
                else:
                    rs = self._avg_gain / self._avg_loss
                    self.value = 100.0 - 100.0 / (1.0 + rs)
        self._last = x
        return self.value


def crossed_above(a: Indicator, b: Indicator) -> bool:
    """``a`` was below ``b`` on the previous update and is above it now (strictly, as
    backtesting.py's ``crossover``)."""
    return a.previous < b.previous and a.value > b.value


def crossed_below(a: Indicator, b: Indicator) -> bool:
    return a.previous > b.previous and a.value < b.value
