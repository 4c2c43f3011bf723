"""Clocks: the one thing (with data and venue) that differs between backtest and live.

Time is integer nanoseconds since the Unix epoch everywhere in bot4.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int: ...


class LiveClock:
    """Wall-clock time."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.time_ns()


class TestClock:
    """A clock that only moves when told to: backtests and tests."""

    __slots__ = ("_now",)
    __test__ = False  # not a pytest test class

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def set(self, ts_ns: int) -> None:
        if ts_ns < self._now:
            raise ValueError(f"a clock cannot go back: {ts_ns} < {self._now}")
        self._now = ts_ns

    def advance(self, delta_ns: int) -> int:
        self.set(self._now + delta_ns)
        return self._now
