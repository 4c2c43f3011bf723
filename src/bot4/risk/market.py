"""What the risk engine knows of the market: reference prices, their age, and a
rolling history of returns sampled on a fixed time grid.

The grid matters: correlation between two symbols is only meaningful on returns over
the same intervals, so every symbol's last price is sampled at each grid boundary.
Statistics (correlations, covariance) are floats -- analytics, not money -- computed
once per new sample and cached, so a pre-trade check reads them in O(1).

Every bar of a backtest passes ``update`` and every pre-trade VaR check ``variance``, so
both have a compiled version (``_fastmarket.pyx``, built by ``pip install -e .``; see
docs/risk.md): ``MarketState`` is that one where it is built and ``BOT4_PURE_SIM`` is
not set, and ``PyMarketState`` -- the reference it is tested against, bit for bit --
otherwise.  A change to ``PyMarketState.update``/``variance``/``samples`` must be made
in ``_fastmarket.pyx`` too; ``returns``/``covariance`` are shared (``MarketStatistics``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from itertools import islice, pairwise
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

from bot4.core.numbers import SCALE


class _Moments:
    """A symbol's rolling returns with their sum and sum of squares."""

    __slots__ = ("folded", "returns", "squares", "total")

    def __init__(self) -> None:
        self.returns: deque[float] = deque()
        self.total = 0.0
        self.squares = 0.0
        self.folded = 0  # the sample count these figures include


class _Sampled(Protocol):
    """What the shared statistics read, and the cache they keep (both states' slots)."""

    @property
    def _history(self) -> Mapping[str, Iterable[int]]: ...

    _cov: NDArray[np.float64] | None
    _cov_symbols: list[str]

    def samples(self, symbol: str) -> int: ...

    def returns(self, symbols: list[str], n: int) -> NDArray[np.float64]: ...


class MarketStatistics:
    """The read side both market states share: aligned returns and their covariance,
    computed by numpy from a symbol's sampled prices (``_history[symbol]`` iterates
    them, oldest first, as the objects ``update`` was given)."""

    __slots__ = ()
    _cov: NDArray[np.float64] | None  # in the slots of each state

    def returns(self: _Sampled, symbols: list[str], n: int) -> NDArray[np.float64]:
        """The last ``n`` aligned log returns of each symbol, one row per symbol."""
        rows = []
        for symbol in symbols:
            hist = np.log(np.fromiter(self._history[symbol], dtype=np.float64) / SCALE)
            rows.append(np.diff(hist)[-n:])
        return np.vstack(rows) if rows else np.empty((0, n))

    def covariance(self: _Sampled) -> tuple[list[str], NDArray[np.float64]]:
        """Covariance of returns over the common window, cached until the next sample."""
        cov = self._cov
        if cov is None:
            symbols = sorted(s for s in self._history if self.samples(s) >= 2)
            n = min((self.samples(s) for s in symbols), default=0)
            if n >= 2:
                cov = np.atleast_2d(np.cov(self.returns(symbols, n)))
            else:
                symbols = []
                cov = np.empty((0, 0))
            self._cov = cov
            self._cov_symbols = symbols
        return self._cov_symbols, cov


class PyMarketState(MarketStatistics):
    """Reference prices and sampled returns, in Python: the reference for the compiled
    ``MarketState`` and the fallback where it is not built."""

    __slots__ = (
        "_cov",
        "_cov_symbols",
        "_history",
        "_moments",
        "_slot",
        "_taken",
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
        self._moments: dict[str, _Moments] = {}
        self._taken = 0  # samples taken so far

    def update(self, symbol: str, price_raw: int, ts_ns: int) -> bool:
        """A new reference price.  Crossing a grid boundary first samples every
        symbol's previous price, so a sample means 'the price at the boundary'.
        Returns whether a sample was taken."""
        slot = ts_ns // self.interval_ns
        last = self._slot
        sampled = False
        if last is None:
            self._slot = slot
        elif slot > last:
            # Sample every symbol's price at the boundary (inline: every bar of a
            # backtest passes here).  Raw prices only: returns are folded into the
            # rolling variance when a pre-trade check asks (``variance``), not on
            # every sample -- most samples are never asked about.
            history = self._history
            for sym, price in self.last_prices.items():
                hist = history.get(sym)
                if hist is None:
                    hist = history[sym] = deque(maxlen=self.window + 1)
                hist.append(price)
            self._taken += 1
            self._cov = None
            self._slot = slot
            sampled = True
        self.last_prices[symbol] = price_raw
        self.last_update_ns[symbol] = ts_ns
        return sampled

    def variance(self, symbol: str) -> float | None:
        """Sample variance of the symbol's last ``window`` log returns (None below 2):
        a rolling sum and sum of squares, brought up to date with the samples taken
        since the last call (O(new samples), at most O(window))."""
        hist = self._history.get(symbol)
        if hist is None:
            return None
        m = self._moments.get(symbol)
        if m is None:
            m = self._moments[symbol] = _Moments()
        new = min(self._taken - m.folded, len(hist) - 1)
        m.folded = self._taken
        if new > 0:
            if new >= self.window:  # the whole window is new: start over
                m.returns.clear()
                m.total = m.squares = 0.0
            prices = list(islice(hist, len(hist) - new - 1, None))
            log = math.log
            returns = m.returns
            total, squares = m.total, m.squares
            for a, b in pairwise(prices):
                r = log(b / a)
                returns.append(r)
                total += r
                squares += r * r
                if len(returns) > self.window:
                    old = returns.popleft()
                    total -= old
                    squares -= old * old
            m.total, m.squares = total, squares
        n = len(m.returns)
        if n < 2:
            return None
        return max((m.squares - m.total * m.total / n) / (n - 1), 0.0)

    def samples(self, symbol: str) -> int:
        """Number of returns available for ``symbol``."""
        hist = self._history.get(symbol)
        return max(len(hist) - 1, 0) if hist else 0


def _compiled_market() -> type[PyMarketState] | None:
    """The compiled market state (``bot4.risk._fastmarket``), or None where it is not
    built or ``BOT4_PURE_SIM`` is set."""
    from bot4._compiled import compiled

    fast = compiled("_fastmarket", "bot4.risk")
    if fast is None:
        return None

    class MarketState(fast.MarketCore, MarketStatistics):  # type: ignore[misc,name-defined]
        """Reference prices and sampled returns: ``update``/``variance``/``samples``
        compiled (``MarketCore``), ``returns``/``covariance`` shared."""

        __slots__ = ()

    MarketState.__module__ = __name__
    MarketState.__qualname__ = "MarketState"
    return MarketState


if TYPE_CHECKING:
    MarketState = PyMarketState
else:
    MarketState = _compiled_market() or PyMarketState
