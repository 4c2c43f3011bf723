"""Latency of the pre-trade risk checks and of a circuit breaker, on this machine.

    python benchmarks/risk.py           # full run (about 10-20 s)
    python benchmarks/risk.py --quick   # smoke run (a couple of seconds)
    python benchmarks/risk.py --profile # also cProfile the check chain

Setup: an ``OrderManager`` on a ``TestClock`` with 10 instruments and plenty of USDT,
a ``RiskEngine`` with a permissive profile (every check runs, none denies), reference
prices fed as seeded random walks over enough sample intervals to fill the
correlation window, 10 open positions (filled bracket entries whose stop-losses stay
working) and about 1,000 orders of history (brackets that were accepted and then
canceled, or filled and closed by their stop-loss), spread over that time.

Measures (``time.perf_counter_ns`` around each call, percentiles of per-call latency):

* ``engine._check(request, has_stop=True, n_orders=1)``: the whole pre-trade check chain
  for a new buy that passes every check (verified once before timing), with warm caches
  -- the state of a second order between two price updates;
* as extras: the same chain right after a price update (``update_price`` invalidates
  the cached equity, exposure and book vectors, so this is the cold path), and a full
  ``engine.submit_bracket`` (checks + order manager; each bracket is canceled again
  outside the timing so the book stays the same size);
* ``CircuitBreaker.allow()`` on a CLOSED breaker and a whole ``with breaker:`` block.
  These take well under a microsecond, below the clock's resolution, so each sample
  is the mean of a batch of calls (loop overhead included).

The garbage collector is off while timing, as ``timeit`` does.  A short table goes to
stdout, and the last line is one JSON object with the results (microseconds).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import pstats
import random
import sys
import time
from collections.abc import Callable
from decimal import Decimal

from bot4.core.clock import TestClock
from bot4.core.enums import OrderSide, OrderType
from bot4.core.instrument import Instrument
from bot4.core.numbers import SCALE, from_raw
from bot4.oms.manager import OrderManager
from bot4.oms.requests import OrderRequest, RawOrderRequest
from bot4.risk.breaker import BreakerState, CircuitBreaker
from bot4.risk.engine import RiskEngine
from bot4.risk.profile import RiskProfile
from common import report

T0 = 1_700_000_000_000_000_000
N_SYMBOLS = 10
TICK = 10**7  # 0.01 in raw units (SCALE = 10**9)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        raise ValueError("no samples")
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def summary_us(samples_ns: list[float]) -> dict[str, float]:
    s = sorted(samples_ns)
    return {
        "p50": percentile(s, 50) / 1000,
        "p90": percentile(s, 90) / 1000,
        "p99": percentile(s, 99) / 1000,
        "max": s[-1] / 1000,
        "n": len(s),
    }


def timer_overhead_ns(n: int = 20_000) -> float:
    """Median cost of one back-to-back ``perf_counter_ns`` pair (included in samples)."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        t0 = clock()
        samples.append(clock() - t0)
    samples.sort()
    return samples[len(samples) // 2]


class World:
    """An order manager and risk engine with positions, history and price history."""

    def __init__(self, history_orders: int, seed: int = 20250520) -> None:
        self.rng = random.Random(seed)
        self.clock = TestClock(T0)
        self.symbols = [f"SYM{i}USDT" for i in range(N_SYMBOLS)]
        instruments = [
            Instrument.create(
                sym, f"SYM{i}", "USDT", tick_size="0.01", step_size="0.001", min_notional="1"
            )
            for i, sym in enumerate(self.symbols)
        ]
        self.om = OrderManager(instruments, clock=self.clock)
        self.om.deposit("USDT", "100000000")
        profile = RiskProfile.default().with_limits(
            max_position_pct_equity="1",
            max_leverage="10",
            max_orders_per_window=10**9,
            max_open_orders=10**6,
            max_order_notional="100000000",
        )
        self.engine = RiskEngine(self.om, profile)
        lim = profile.limits
        self.interval_ns = lim.sample_interval_seconds * 10**9
        self.prices = {s: (100 + 10 * i) * SCALE for i, s in enumerate(self.symbols)}
        self.n_orders = 0
        self.n_trades = 0
        self.history_orders = 0
        # Enough sample intervals to fill the correlation window, plus a margin.
        intervals = lim.correlation_window + 10
        brackets_per_interval = max(1, -(-(history_orders // 2) // intervals))
        for k in range(intervals):
            self.clock.advance(self.interval_ns)
            self.feed_prices()
            if k == 0:
                self.open_positions()
            for _ in range(brackets_per_interval):
                if self.history_orders < history_orders:
                    self.history_bracket()

    # -- market data ------------------------------------------------------------------
    def feed_prices(self) -> None:
        """One seeded random-walk step for every symbol (about 0.2 % per interval)."""
        for sym in self.symbols:
            p = self.prices[sym]
            p = round(p * (1 + self.rng.gauss(0, 0.002)) / TICK) * TICK
            self.prices[sym] = p
            self.engine.update_price(sym, from_raw(p))

    def price(self, sym: str, ticks: int = 0) -> Decimal:
        return from_raw(self.prices[sym] + ticks * TICK)

    # -- orders -----------------------------------------------------------------------
    def _ids(self) -> tuple[str, str]:
        self.n_orders += 1
        return f"V{self.n_orders}", f"T{self.n_orders}"

    def entry(self, sym: str, qty: str, ticks: int = 0) -> OrderRequest:
        return OrderRequest(sym, OrderSide.BUY, OrderType.LIMIT, qty, self.price(sym, ticks))

    def stop(self, sym: str) -> Decimal:
        return from_raw(self.prices[sym] * 95 // 100 // TICK * TICK)

    def open_positions(self) -> None:
        """One filled bracket entry per symbol; its stop-loss keeps working."""
        for sym in self.symbols:
            entry, _sl = self.engine.submit_bracket(self.entry(sym, "10"), self.stop(sym))
            venue_id, trade_id = self._ids()
            self.om.on_accepted(entry.client_order_id, venue_id)
            self.om.on_fill(entry.client_order_id, trade_id, "10", self.price(sym))

    def history_bracket(self) -> None:
        """Two orders of history: a bracket that is either canceled before any fill
        (entry and stop-loss end CANCELED) or filled and closed by its stop-loss."""
        sym = self.rng.choice(self.symbols)
        if self.rng.random() < 0.6:
            entry, _sl = self.engine.submit_bracket(self.entry(sym, "1", -5), self.stop(sym))
            cid = entry.client_order_id
            self.om.on_accepted(cid, self._ids()[0])
            self.engine.cancel(cid)
            self.om.on_canceled(cid)
        else:
            entry, sl = self.engine.submit_bracket(self.entry(sym, "1"), self.stop(sym))
            venue_id, trade_id = self._ids()
            self.om.on_accepted(entry.client_order_id, venue_id)
            self.om.on_fill(entry.client_order_id, trade_id, "1", self.price(sym))
            venue_id, trade_id = self._ids()
            self.om.on_accepted(sl.client_order_id, venue_id)
            self.om.on_triggered(sl.client_order_id)
            self.om.on_fill(sl.client_order_id, trade_id, "1", self.price(sym))
        self.history_orders += 2

    def check_request(self) -> RawOrderRequest:
        """The request as the risk engine's chain reads it (``submit`` converts once)."""
        return self.entry(self.symbols[3], "5").raw()

    def describe(self) -> str:
        st = self.om.state
        positions = sum(1 for p in st.positions.values() if p.qty_raw)
        return (
            f"{len(self.symbols)} symbols, {positions} open positions, "
            f"{len(st.open_orders)} open orders, {len(st.orders)} orders in total"
        )


# -- measurements --------------------------------------------------------------------
def time_calls(fn: Callable[[], object], n: int, warmup: int = 200) -> list[float]:
    """Per-call latency samples (ns) of ``fn``."""
    clock = time.perf_counter_ns
    for _ in range(warmup):
        fn()
    samples = [0.0] * n
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for i in range(n):
            t0 = clock()
            fn()
            samples[i] = clock() - t0
    finally:
        if gc_was:
            gc.enable()
    return samples


def time_batched(fn: Callable[[], object], n: int, batch: int = 100) -> list[float]:
    """Per-call latency samples (ns), each the mean over ``batch`` back-to-back calls."""
    clock = time.perf_counter_ns
    rng = range(batch)
    for _ in rng:
        fn()
    samples = [0.0] * n
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for i in range(n):
            t0 = clock()
            for _ in rng:
                fn()
            samples[i] = (clock() - t0) / batch
    finally:
        if gc_was:
            gc.enable()
    return samples


def bench_check(world: World, n: int) -> list[float]:
    engine, req = world.engine, world.check_request()
    check = engine._check
    return time_calls(lambda: check(req, has_stop=True, n_orders=1), n)


def bench_check_after_price_update(world: World, n: int) -> list[float]:
    """The chain right after a price update: equity, exposure and book vectors are
    recomputed (the covariance itself is cached until the next sample)."""
    engine, req = world.engine, world.check_request()
    sym = world.symbols[7]
    update = engine.update_price_raw
    clock = time.perf_counter_ns
    samples = [0.0] * n
    gc.disable()
    try:
        for i in range(n):
            update(sym, world.prices[sym] + (i & 1) * TICK, world.clock.now_ns())
            t0 = clock()
            engine._check(req, has_stop=True, n_orders=1)
            samples[i] = clock() - t0
    finally:
        gc.enable()
    update(sym, world.prices[sym], world.clock.now_ns())
    return samples


def bench_submit_bracket(world: World, n: int) -> list[float]:
    engine, om, req = world.engine, world.om, world.check_request()
    stop = world.stop(req.symbol)
    clock = time.perf_counter_ns
    samples = [0.0] * n
    gc.disable()
    try:
        for i in range(n):
            t0 = clock()
            entry, _sl = engine.submit_bracket(req, stop)
            samples[i] = clock() - t0
            cid = entry.client_order_id  # undo, untimed: the book keeps its size
            om.cancel(cid)
            om.on_canceled(cid)
    finally:
        gc.enable()
    return samples


def bench_breaker(n: int) -> tuple[list[float], list[float]]:
    breaker = CircuitBreaker("venue", clock=TestClock(T0))
    allow = breaker.allow

    def with_block() -> None:
        with breaker:
            pass

    allow_samples = time_batched(allow, n)
    with_samples = time_batched(with_block, n)
    assert breaker.state is BreakerState.CLOSED
    return allow_samples, with_samples


def profile_check(world: World, n: int) -> str:
    engine, req = world.engine, world.check_request()
    check = engine._check
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        check(req, has_stop=True, n_orders=1)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a much smaller smoke run")
    parser.add_argument("--profile", action="store_true", help="cProfile the check chain")
    args = parser.parse_args(argv)

    if args.quick:
        history, n_check, n_cold, n_submit, n_breaker = 200, 5_000, 500, 300, 2_000
    else:
        history, n_check, n_cold, n_submit, n_breaker = 1_000, 200_000, 20_000, 10_000, 20_000

    started = time.perf_counter()
    world = World(history)
    setup_s = time.perf_counter() - started
    req = world.check_request()
    assert world.engine.denied == 0 and world.engine.trading_state == "ACTIVE"
    world.engine._check(req, has_stop=True, n_orders=1)  # passes: raises otherwise
    book = world.engine._book_vectors()
    assert book is not None and len(book.symbols) == N_SYMBOLS, "book statistics missing"
    corr, var = world.engine._book_stats(req.symbol, 1.0)
    assert corr is not None and var is not None, "correlation/VaR checks not exercised"
    described = world.describe()

    overhead = timer_overhead_ns()
    check = summary_us(bench_check(world, n_check))
    cold = summary_us(bench_check_after_price_update(world, n_cold))
    submit = summary_us(bench_submit_bracket(world, n_submit))
    allow_s, with_s = bench_breaker(n_breaker)
    allow, with_block = summary_us(allow_s), summary_us(with_s)
    total = time.perf_counter() - started

    print(f"bot4 risk latency  ({'quick' if args.quick else 'full'} run)")
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"book: {described}; setup {setup_s:.2f} s")
    print(f"timer overhead {overhead:.0f} ns per sample (included); gc off while timing")
    print(f"{'operation (us per call)':<36} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>9} {'n':>8}")
    rows = [
        ("risk check chain (warm)", check),
        ("risk check after price update", cold),
        ("submit_bracket (check + OMS)", submit),
        ("breaker.allow() CLOSED*", allow),
        ("with breaker: (CLOSED)*", with_block),
    ]
    for name, s in rows:
        print(
            f"{name:<36} {s['p50']:>8.3f} {s['p90']:>8.3f} {s['p99']:>8.3f}"
            f" {s['max']:>9.3f} {s['n']:>8}"
        )
    print("* mean of a batch of 100 calls per sample")
    print(f"targets: check p50 <= 3 us, p99 <= 10 us; breaker <= 0.5 us; total {total:.1f} s")
    if args.profile:
        print(profile_check(world, n_check), file=sys.stderr)
    result = {
        "check_p50_us": round(check["p50"], 3),
        "check_p99_us": round(check["p99"], 3),
        "breaker_p50_us": round(allow["p50"], 4),
        "breaker_with_p50_us": round(with_block["p50"], 4),
        "check_after_price_update_p50_us": round(cold["p50"], 3),
        "check_after_price_update_p99_us": round(cold["p99"], 3),
        "submit_bracket_p50_us": round(submit["p50"], 3),
        "submit_bracket_p99_us": round(submit["p99"], 3),
        "timer_overhead_ns": overhead,
        "open_positions": sum(1 for p in world.om.state.positions.values() if p.qty_raw),
        "history_orders": world.history_orders,
    }
    report(result, args.quick, total)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
