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

    def batch(self, xs: NDArray[np.float64]) -> NDArray[np.float64] | None:
        """The values ``update`` would return, fed ``xs`` in order from fresh, computed
        at once -- or None where that cannot be exactly the same numbers (the default).
        A backtest knows the whole series in advance and uses this; live, every value
        comes from ``update``."""
        return None


class SMA(Indicator):
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

    def batch(self, xs: NDArray[np.float64]) -> NDArray[np.float64] | None:
        """Bit-identical to ``update``: the same rounding to 1e-8 (``rint`` and
        ``round`` both round half to even), window sums as exact int64 differences of
        a running sum (a wrapped running sum still gives exact differences, as long as
        each window sum fits), and one correctly rounded division of two floats that
        hold those integers exactly -- which is what ``int / int`` computes.  None when
        a window sum could reach 2**53 (floats would no longer hold it exactly)."""
        n = len(xs)
        if self.count or n == 0 or not np.isfinite(xs).all():
            return None
        if n < self.period:
            return np.full(n, math.nan)
        scaled = np.rint(xs * self.RESOLUTION)
        if float(np.abs(scaled).max()) * self.period >= 2.0**53:
            return None
        running = np.empty(n + 1, dtype=np.int64)
        running[0] = 0
        with np.errstate(over="ignore"):
            np.cumsum(scaled.astype(np.int64), out=running[1:])
            sums = running[self.period :] - running[: n + 1 - self.period]
        values = np.full(n, math.nan)
        values[self.period - 1 :] = sums.astype(np.float64) / float(self.period * self.RESOLUTION)
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
