"""Replay protection: refuse messages outside a receive window around now.

Binance refuses a signed request whose timestamp is older than ``recvWindow`` or more
than a second ahead of its clock; bot4 applies the same rule to commands that enter
the order path, so that a replayed or delayed message cannot place an order late.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot4.core.errors import TimestampOutOfWindow

MS = 1_000_000


@dataclass(frozen=True, slots=True)
class TimestampGuard:
    recv_window_ns: int = 5_000 * MS
    max_ahead_ns: int = 1_000 * MS

    def __post_init__(self) -> None:
        if self.recv_window_ns <= 0:
            raise ValueError("recv_window_ns must be > 0")
        if self.max_ahead_ns < 0:
            raise ValueError("max_ahead_ns must be >= 0")

    def check(self, ts_ns: int, now_ns: int, field: str = "timestamp") -> None:
        """Raise ``TimestampOutOfWindow`` naming ``field`` if ``ts_ns`` is stale or
        too far in the future relative to ``now_ns``."""
        if isinstance(ts_ns, bool) or not isinstance(ts_ns, int):
            raise TimestampOutOfWindow(field, "must be integer nanoseconds", ts_ns)
        age = now_ns - ts_ns
        if age > self.recv_window_ns:
            raise TimestampOutOfWindow(
                field,
                "older than the receive window",
                ts_ns,
                f"{age / MS:.3f} ms old, window {self.recv_window_ns / MS:.3f} ms",
            )
        if -age > self.max_ahead_ns:
            raise TimestampOutOfWindow(
                field,
                "too far in the future",
                ts_ns,
                f"{-age / MS:.3f} ms ahead, allowed {self.max_ahead_ns / MS:.3f} ms",
            )
