"""Rate limits (weighted token buckets, Retry-After, bans) and the error taxonomy."""

from __future__ import annotations

import asyncio

import ccxt
import pytest

from bot4.venues.errors import ErrorAction, classify, counts_against_venue
from bot4.venues.rate_limit import (
    SECOND,
    BucketSpec,
    LimiterRegistry,
    RateLimited,
    VenueLimiter,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000 * SECOND

    def __call__(self) -> int:
        return self.now


def limiter(clock: Clock) -> VenueLimiter:
    return VenueLimiter(
        "binance",
        (BucketSpec("weight", 100, 60 * SECOND), BucketSpec("orders", 10, 10 * SECOND)),
        clock,
    )


def test_weights_drain_and_refill_exactly() -> None:
    clock = Clock()
    lim = limiter(clock)
    for _ in range(10):
        assert lim.try_acquire({"weight": 1, "orders": 1}) == 0
    # The 11th order waits for one order token: 10 s / 10 = 1 s.
    wait = lim.try_acquire({"weight": 1, "orders": 1})
    assert SECOND <= wait <= SECOND + 1
    clock.now += wait
    assert lim.try_acquire({"weight": 1, "orders": 1}) == 0
    # Weight: 11 used, ~1.67 refilled in that second: 90.67 left; 95 must wait.
    assert lim.buckets["weight"].tokens == pytest.approx(89 + 100 * wait / (60 * SECOND))
    assert lim.try_acquire({"weight": 95}) > 0
    assert lim.try_acquire({"weight": 90}) == 0


def test_429_blocks_until_retry_after_and_418_is_a_ban() -> None:
    clock = Clock()
    lim = limiter(clock)
    lim.on_response(429, retry_after_s=7)
    with pytest.raises(RateLimited) as err:
        lim.acquire_now({"weight": 1})
    assert err.value.wait_ns == 7 * SECOND and not err.value.banned
    clock.now += 7 * SECOND - 1
    assert lim.try_acquire({"weight": 1}) > 0  # still inside the Retry-After window
    clock.now += 1
    # The buckets were drained at the 429 and refilled for 7 s since: 11 weight, 7 orders.
    assert lim.try_acquire({"weight": 11}) == 0
    assert lim.try_acquire({"weight": 1}) > 0
    lim.on_response(418, retry_after_s=120)
    with pytest.raises(RateLimited) as err:
        lim.acquire_now({"weight": 1})
    assert err.value.banned
    lim.on_response(200)
    assert lim.try_acquire({"weight": 1}) > 0  # a 200 does not lift the ban


def test_async_acquire_waits_then_goes() -> None:
    lim = VenueLimiter("x", (BucketSpec("r", 2, SECOND // 10),), __import__("time").monotonic_ns)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(6):
            await lim.acquire({"r": 1})
        return loop.time() - start

    elapsed = asyncio.run(main())
    assert 0.15 <= elapsed < 1.0  # 4 waits of 50 ms each after the burst of 2
    with pytest.raises(ValueError):
        asyncio.run(lim.acquire({"r": 3}))  # more than the bucket can ever hold


def test_registry_shares_one_limiter_per_venue() -> None:
    reg = LimiterRegistry(Clock())
    assert reg.for_venue("binance") is reg.for_venue("binance")
    assert reg.for_venue("binance", key="acct2") is not reg.for_venue("binance")
    other = reg.for_venue("someccxtexchange", rate_limit_ms=50)
    assert other.buckets["requests"].capacity == 5
    assert set(reg.for_venue("binance").buckets) == {"request_weight", "orders", "orders_day"}


@pytest.mark.parametrize(
    "exc, write, action",
    [
        (ccxt.InsufficientFunds("x"), True, ErrorAction.REFUSE),
        (ccxt.InvalidOrder("LOT_SIZE"), True, ErrorAction.REFUSE),
        (ccxt.RateLimitExceeded("429"), True, ErrorAction.WAIT),
        (ccxt.DDoSProtection("418"), False, ErrorAction.WAIT),
        (ccxt.RequestTimeout("t"), False, ErrorAction.RETRY),
        (ccxt.RequestTimeout("t"), True, ErrorAction.UNKNOWN_OUTCOME),
        (ccxt.ExchangeNotAvailable("503"), True, ErrorAction.UNKNOWN_OUTCOME),
        (ccxt.NetworkError("reset"), False, ErrorAction.RETRY),
        (ccxt.AuthenticationError("-1022"), False, ErrorAction.REAUTHENTICATE),
        (ccxt.InvalidNonce("-1021"), False, ErrorAction.RESYNC),
        (ccxt.OrderNotFound("-2011"), True, ErrorAction.RESYNC),
        (ccxt.AccountSuspended("x"), False, ErrorAction.STOP_TRADING),
        (ccxt.ExchangeError("?"), False, ErrorAction.REFUSE),
        (RuntimeError("?"), False, ErrorAction.STOP_TRADING),
    ],
)
def test_error_taxonomy(exc: BaseException, write: bool, action: ErrorAction) -> None:
    assert classify(exc, write=write) is action


def test_only_venue_health_counts_for_the_breaker() -> None:
    assert counts_against_venue(ccxt.ExchangeNotAvailable("503"))
    assert not counts_against_venue(ccxt.InsufficientFunds("x"))
