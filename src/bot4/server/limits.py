"""Binance's rate limits: request weight per IP, bans, and new orders per account.

* **Weight.**  Every REST request costs a weight (depth by its limit, exchangeInfo 20
  ...), counted per IP in fixed one-minute windows and reported in
  ``X-MBX-USED-WEIGHT-1M``.  A request that would exceed the limit is refused with
  HTTP 429, code -1003 and ``Retry-After`` (seconds to the next window); it is not
  counted, but it is a *strike*.
* **Bans.**  A client that keeps going after 429s is banned: after ``ban_after`` strikes
  in one window every request is refused with HTTP 418 until the ban ends; each ban
  doubles the previous one, up to three days (Binance's scale, 2 minutes to 3 days).
  A window without strikes resets the strike count, so a client that backs off after
  its first 429 is never banned.
* **Orders.**  New orders per account in 10-second and one-day windows
  (``X-MBX-ORDER-COUNT-10S``/``-1D``); over the limit: 429 with -1015.

The clock is injected (``bot4.core.clock.Clock``) so tests move time instead of sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bot4.core.clock import Clock

MINUTE_MS: Final = 60_000
MAX_BAN_MS: Final = 3 * 86_400_000


@dataclass(frozen=True, slots=True)
class Decision:
    """The limiter's answer: ``status`` 200 (go on), 429 or 418."""

    status: int
    used: int
    retry_after_s: int = 0
    code: int = 0
    msg: str = ""


class _IpState:
    __slots__ = ("ban_ms", "banned_until", "last_strike", "strikes", "used", "window")

    def __init__(self) -> None:
        self.window = -1
        self.last_strike = -2
        self.used = 0
        self.strikes = 0
        self.banned_until = 0
        self.ban_ms = 0


class WeightLimiter:
    """Request weight per IP per minute, with 429s and escalating 418 bans."""

    def __init__(
        self, clock: Clock, limit: int, ban_after: int = 3, ban_seconds: int = 120
    ) -> None:
        self.clock = clock
        self.limit = limit
        self.ban_after = ban_after
        self.first_ban_ms = ban_seconds * 1000
        self._ips: dict[str, _IpState] = {}

    def charge(self, ip: str, weight: int) -> Decision:
        now = self.clock.now_ns() // 1_000_000
        st = self._ips.get(ip)
        if st is None:
            if len(self._ips) > 100_000:
                self._ips.clear()  # memory bound: forgetting resets, it never bans
            st = self._ips[ip] = _IpState()
        if now < st.banned_until:
            return self._banned(st, now)
        window = now // MINUTE_MS
        if window != st.window:
            if st.last_strike < window - 1:  # the minute before passed without a 429
                st.strikes = 0
            st.window = window
            st.used = 0
        if st.used + weight <= self.limit:
            st.used += weight
            return Decision(200, st.used)
        st.strikes += 1
        st.last_strike = window
        if st.strikes > self.ban_after:
            st.ban_ms = min(MAX_BAN_MS, st.ban_ms * 2 if st.ban_ms else self.first_ban_ms)
            st.banned_until = now + st.ban_ms
            st.strikes = 0
            return self._banned(st, now)
        retry = ((window + 1) * MINUTE_MS - now + 999) // 1000
        return Decision(
            429,
            st.used,
            retry,
            -1003,
            f"Too much request weight used; current limit is {self.limit} request weight per "
            "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
        )

    def _banned(self, st: _IpState, now: int) -> Decision:
        retry = (st.banned_until - now + 999) // 1000
        return Decision(
            418,
            st.used,
            retry,
            -1003,
            f"Way too much request weight used; IP banned until {st.banned_until}. "
            "Please use WebSocket Streams for live updates to avoid bans.",
        )

    def used(self, ip: str) -> int:
        st = self._ips.get(ip)
        if st is None or st.window != self.clock.now_ns() // 1_000_000 // MINUTE_MS:
            return 0
        return st.used


class OrderLimiter:
    """New orders per account in fixed 10-second and one-day windows."""

    def __init__(self, clock: Clock, per_10s: int, per_day: int) -> None:
        self.clock = clock
        self.per_10s = per_10s
        self.per_day = per_day
        self._counts: dict[str, list[int]] = {}  # account -> [10s window, n, day, n]

    def charge(self, account: str) -> Decision:
        now = self.clock.now_ns() // 1_000_000
        w10, day = now // 10_000, now // 86_400_000
        c = self._counts.get(account)
        if c is None:
            c = self._counts[account] = [w10, 0, day, 0]
        if c[0] != w10:
            c[0], c[1] = w10, 0
        if c[2] != day:
            c[2], c[3] = day, 0
        if c[1] >= self.per_10s:
            return self._refuse(c[1], self.per_10s, "10 SECOND", (w10 + 1) * 10_000 - now)
        if c[3] >= self.per_day:
            return self._refuse(c[3], self.per_day, "1 DAY", (day + 1) * 86_400_000 - now)
        c[1] += 1
        c[3] += 1
        return Decision(200, c[1])

    def counts(self, account: str) -> tuple[int, int]:
        c = self._counts.get(account)
        return (c[1], c[3]) if c is not None else (0, 0)

    @staticmethod
    def _refuse(count: int, limit: int, span: str, left_ms: int) -> Decision:
        return Decision(
            429,
            count,
            (left_ms + 999) // 1000,
            -1015,
            f"Too many new orders; current limit is {limit} orders per {span}.",
        )
