"""Rate limits per venue: weighted token buckets, shared by everything in the process.

An exchange counts what an account (or IP) sends -- request weight per minute, orders
per ten seconds, per day -- and bans clients that ignore it.  So every request asks the
venue's limiter first: each bucket refills continuously at ``capacity / interval``, a
request takes its weight from every bucket it belongs to, and waits (async) until all
of them have it.  After a 429 the limiter refuses to send anything until the
``Retry-After`` instant passes; after a 418 (banned) it refuses until the ban ends.  A
rejected request is never simply repeated: the caller's error policy decides.

Limits come from the venues' published rules (``PUBLISHED``) or, for any other ccxt
exchange, from its ``rateLimit`` (milliseconds between requests).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot4.core.errors import Bot4Error

SECOND = 10**9


class RateLimited(Bot4Error):
    """Sending now would break the venue's limit or a Retry-After / ban window."""

    code = "RATE_LIMITED"

    def __init__(self, venue: str, wait_ns: int, banned: bool = False) -> None:
        self.venue = venue
        self.wait_ns = wait_ns
        self.banned = banned
        what = "banned (418)" if banned else "rate limited"
        super().__init__(f"{venue}: {what}; retry in {wait_ns / SECOND:.3f} s")


@dataclass(frozen=True, slots=True)
class BucketSpec:
    name: str
    capacity: int  # weight per interval
    interval_ns: int


# Published limits (spot), the ones that bite first.  Weights per endpoint are the
# caller's (e.g. Binance: order 1, depth 5-250, exchangeInfo 20).
PUBLISHED: dict[str, tuple[BucketSpec, ...]] = {
    "binance": (
        BucketSpec("request_weight", 6000, 60 * SECOND),
        BucketSpec("orders", 100, 10 * SECOND),
        BucketSpec("orders_day", 200_000, 86_400 * SECOND),
    ),
    "kraken": (BucketSpec("api_counter", 20, 60 * SECOND), BucketSpec("orders", 60, 60 * SECOND)),
    "coinbase": (BucketSpec("private", 30, SECOND), BucketSpec("public", 10, SECOND)),
    "okx": (BucketSpec("orders", 60, 2 * SECOND), BucketSpec("requests", 20, 2 * SECOND)),
    "bybit": (BucketSpec("requests", 600, 5 * SECOND), BucketSpec("orders", 10, SECOND)),
}


class TokenBucket:
    __slots__ = ("capacity", "interval_ns", "name", "tokens", "updated_ns")

    def __init__(self, spec: BucketSpec, now_ns: int) -> None:
        if spec.capacity <= 0 or spec.interval_ns <= 0:
            raise ValueError("capacity and interval must be > 0")
        self.name = spec.name
        self.capacity = spec.capacity
        self.interval_ns = spec.interval_ns
        self.tokens = float(spec.capacity)
        self.updated_ns = now_ns

    def _refill(self, now: int) -> None:
        if now > self.updated_ns:
            rate = self.capacity / self.interval_ns
            self.tokens = min(self.capacity, self.tokens + (now - self.updated_ns) * rate)
            self.updated_ns = now

    def wait_ns(self, weight: int, now: int) -> int:
        """How long until ``weight`` tokens are there (0 = now)."""
        self._refill(now)
        missing = weight - self.tokens
        if missing <= 0:
            return 0
        return int(missing * self.interval_ns / self.capacity) + 1


class VenueLimiter:
    """All the buckets of one venue, plus its Retry-After / ban window."""

    def __init__(self, venue: str, specs: tuple[BucketSpec, ...], clock: Callable[[], int]) -> None:
        if not specs:
            raise ValueError("a venue needs at least one bucket")
        self.venue = venue
        self.clock = clock
        now = clock()
        self.buckets = {s.name: TokenBucket(s, now) for s in specs}
        self.blocked_until_ns = 0
        self.banned = False
        self._lock = threading.Lock()
        self.waited_ns = 0
        self.throttled = 0

    def _wait(self, weights: Mapping[str, int], now: int) -> int:
        wait = max(self.blocked_until_ns - now, 0)
        for name, weight in weights.items():
            bucket = self.buckets.get(name)
            if bucket is None:
                raise KeyError(f"{self.venue} has no bucket {name!r}")
            if weight > bucket.capacity:
                raise ValueError(f"weight {weight} exceeds {name} capacity {bucket.capacity}")
            wait = max(wait, bucket.wait_ns(weight, now))
        return wait

    def try_acquire(self, weights: Mapping[str, int]) -> int:
        """Take the weights now and return 0, or take nothing and return the wait."""
        with self._lock:
            now = self.clock()
            wait = self._wait(weights, now)
            if wait == 0:
                for name, weight in weights.items():
                    self.buckets[name].tokens -= weight
            return wait

    def acquire_now(self, weights: Mapping[str, int]) -> None:
        """Take the weights or raise ``RateLimited`` (never sends over the limit)."""
        wait = self.try_acquire(weights)
        if wait:
            self.throttled += 1
            raise RateLimited(
                self.venue, wait, self.banned and self.blocked_until_ns > self.clock()
            )

    async def acquire(self, weights: Mapping[str, int], max_wait_ns: int | None = None) -> None:
        """Wait (asyncio) until the weights can be taken, then take them."""
        while True:
            wait = self.try_acquire(weights)
            if wait == 0:
                return
            if max_wait_ns is not None and wait > max_wait_ns:
                self.throttled += 1
                raise RateLimited(self.venue, wait, self.banned)
            self.waited_ns += wait
            await asyncio.sleep(wait / SECOND)

    def on_response(self, status: int, retry_after_s: float | None = None) -> None:
        """Honour the venue's verdict: 429 blocks until Retry-After (default 60 s),
        418 is a ban (default 2 min, Binance's first ban)."""
        if status not in (429, 418):
            return
        with self._lock:
            now = self.clock()
            default = 60.0 if status == 429 else 120.0
            until = now + int((retry_after_s if retry_after_s is not None else default) * SECOND)
            self.blocked_until_ns = max(self.blocked_until_ns, until)
            if status == 418:
                self.banned = True
            # Whatever the buckets thought, the venue says we are over: drain them.
            for bucket in self.buckets.values():
                bucket.tokens = min(bucket.tokens, 0.0)
                bucket.updated_ns = now


class LimiterRegistry:
    """One limiter per venue and account, shared by every user in the process."""

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        import time

        self.clock = clock or time.monotonic_ns
        self._limiters: dict[str, VenueLimiter] = {}
        self._lock = threading.Lock()

    def for_venue(
        self, venue: str, rate_limit_ms: float | None = None, key: str = ""
    ) -> VenueLimiter:
        name = f"{venue}:{key}" if key else venue
        with self._lock:
            limiter = self._limiters.get(name)
            if limiter is None:
                specs = PUBLISHED.get(venue)
                if specs is None:
                    # Any other ccxt exchange: its documented spacing, with a small burst.
                    per_ms = rate_limit_ms if rate_limit_ms and rate_limit_ms > 0 else 100.0
                    burst = 5
                    specs = (BucketSpec("requests", burst, int(per_ms * burst * 1_000_000)),)
                limiter = self._limiters[name] = VenueLimiter(venue, specs, self.clock)
            return limiter


# The process's registry: every adapter of a venue goes through the same buckets.
DEFAULT_REGISTRY = LimiterRegistry()
