"""Throughput of the core operations, on this machine.

    python benchmarks/core_ops.py           # full run (about 20-40 s)
    python benchmarks/core_ops.py --quick   # smoke run (a couple of seconds)

Measures:

* order events per second: an ``OrderManager`` with no journal driven through order
  lifecycles (submit -> accepted -> partial fills -> final fill; every fourth order
  cancelled instead), counted as events emitted (``state.last_seq``) / elapsed;
* position fills per second: ``Position.apply_fill`` on a seeded random sequence of
  buys and sells, raw integers;
* journal appends per second: ``SqlJournal`` on a temporary SQLite file, one ``append``
  (one transaction, one commit) per event; and, as an extra, ``append_many`` in batches
  of 1000 events per transaction.

Each figure is the median of a few repeats (``time.perf_counter``).  A short table goes
to stdout, and the last line is one JSON object with the results.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bot4.core.clock import TestClock
from bot4.core.enums import OrderSide, OrderType
from bot4.core.events import Event
from bot4.core.instrument import Instrument
from bot4.core.numbers import SCALE
from bot4.oms.journal import SqlJournal
from bot4.oms.manager import OrderManager
from bot4.oms.position import Position
from bot4.oms.requests import OrderRequest
from common import report

T0 = 1_700_000_000_000_000_000
BTCUSDT = Instrument.create(
    "BTCUSDT", "BTC", "USDT", tick_size="0.01", step_size="0.00001", min_notional="5"
)


def new_manager() -> tuple[OrderManager, TestClock]:
    clock = TestClock(T0)
    om = OrderManager([BTCUSDT], clock=clock)
    om.deposit("USDT", "1000000000")
    om.deposit("BTC", "100000")
    return om, clock


def drive_orders(om: OrderManager, clock: TestClock, lifecycles: int) -> None:
    """Order lifecycles, alternating buys and sells at one price so balances stay flat."""
    buy = OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "0.4", price="30000")
    sell = OrderRequest("BTCUSDT", OrderSide.SELL, OrderType.LIMIT, "0.4", price="30000")
    for i in range(lifecycles):
        clock.advance(1_000)
        cid = om.submit(sell if i & 1 else buy).client_order_id
        om.on_accepted(cid, f"V{i}")
        if i % 4 == 3:
            om.cancel(cid)
            om.on_canceled(cid)
            continue
        om.on_fill(cid, f"T{i}a", "0.1", "30000", fee="0.03", fee_asset="USDT")
        om.on_fill(cid, f"T{i}b", "0.1", "30000")
        om.on_fill(cid, f"T{i}c", "0.1", "30000")
        om.on_fill(cid, f"T{i}d", "0.1", "30000", fee="0.03", fee_asset="USDT")


def bench_order_events(lifecycles: int) -> tuple[float, int]:
    om, clock = new_manager()
    before = om.state.last_seq
    t = time.perf_counter()
    drive_orders(om, clock, lifecycles)
    elapsed = time.perf_counter() - t
    events = om.state.last_seq - before
    return events / elapsed, events


def fill_sequence(n: int, seed: int = 20240521) -> list[tuple[int, int, int]]:
    """Seeded (signed qty, price, fee) triples: random buys and sells, some flipping."""
    rng = random.Random(seed)
    out = []
    price = 30_000 * SCALE
    for _ in range(n):
        price = max(SCALE, price + rng.randint(-500, 500) * 10_000_000)  # +-5 USDT
        qty = rng.randint(1, 100_000) * 10_000  # 0.00001 .. 1 BTC
        out.append((qty if rng.random() < 0.5 else -qty, price, rng.randint(0, 10**16)))
    return out


def bench_position_fills(fills: list[tuple[int, int, int]]) -> float:
    pos = Position("BTCUSDT")
    apply_fill = pos.apply_fill
    t = time.perf_counter()
    for q, p, fee in fills:
        apply_fill(q, p, fee, "USDT")
    elapsed = time.perf_counter() - t
    assert pos.trades == len(fills)
    return len(fills) / elapsed


def order_events(n: int) -> list[Event]:
    """The first ``n`` events (seq 1..n) of a manager driven through order lifecycles."""
    clock = TestClock(T0)
    om = OrderManager([BTCUSDT], clock=clock)
    events: list[Event] = []
    om.listeners.append(events.append)
    om.deposit("USDT", "1000000000")
    om.deposit("BTC", "100000")
    while len(events) < n:
        drive_orders(om, clock, 50)
    return events[:n]


def bench_journal(events: list[Event], batch: int, directory: Path) -> float:
    fd, name = tempfile.mkstemp(suffix=".db", dir=directory)
    os.close(fd)
    os.unlink(name)
    try:
        with SqlJournal(f"sqlite:///{name}") as journal:
            t = time.perf_counter()
            if batch == 1:
                append = journal.append
                for ev in events:
                    append(ev)
            else:
                for i in range(0, len(events), batch):
                    journal.append_many(events[i : i + batch])
            elapsed = time.perf_counter() - t
            assert journal.last_seq == len(events)
        return len(events) / elapsed
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(name + suffix).unlink(missing_ok=True)


def median_of(repeats: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(repeats))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a much smaller smoke run")
    args = parser.parse_args(argv)

    if args.quick:
        repeats, lifecycles, n_fills, n_single, n_batched = 3, 300, 20_000, 300, 3_000
    else:
        repeats, lifecycles, n_fills, n_single, n_batched = 5, 30_000, 1_000_000, 20_000, 200_000

    started = time.perf_counter()
    runs = [bench_order_events(lifecycles) for _ in range(repeats)]
    order_rate = statistics.median(r for r, _ in runs)
    events_per_run = runs[0][1]

    fills = fill_sequence(n_fills)
    fill_rate = median_of(repeats, lambda: bench_position_fills(fills))

    single = order_events(n_single)
    batched = order_events(n_batched)
    with tempfile.TemporaryDirectory(prefix="bot4-bench-") as tmp:
        directory = Path(tmp)
        append_rate = median_of(repeats, lambda: bench_journal(single, 1, directory))
        batched_rate = median_of(repeats, lambda: bench_journal(batched, 1000, directory))
    total = time.perf_counter() - started

    rows = [
        ("order events / s", order_rate, f"{events_per_run} events, {lifecycles} orders"),
        ("position fills / s", fill_rate, f"{n_fills} fills"),
        ("journal appends / s", append_rate, f"{n_single} events, 1 commit each"),
        ("journal batched appends / s", batched_rate, f"{n_batched} events, 1000 per commit"),
    ]
    print(f"bot4 core ops  ({'quick' if args.quick else 'full'} run, median of {repeats})")
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{'operation':<30} {'rate':>14}  notes")
    for name, rate, note in rows:
        print(f"{name:<30} {rate:>14,.0f}  {note}")
    print(f"total {total:.1f} s")
    result = {
        "order_events_per_sec": round(order_rate, 1),
        "position_fills_per_sec": round(fill_rate, 1),
        "journal_appends_per_sec": round(append_rate, 1),
        "journal_batched_appends_per_sec": round(batched_rate, 1),
        "order_events_per_run": events_per_run,
        "repeats": repeats,
    }
    report(result, args.quick, total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
