"""Cost of the engine's message bus, on this machine.

    python benchmarks/bus.py           # full run (about 10 s)
    python benchmarks/bus.py --quick   # smoke run (about a second)

Measures:

* ``sync_publish_ns``: one ``MessageBus.publish`` to a topic with one no-op handler
  (the backtest path: a dict lookup and a loop), per call, loop overhead included;
  ``direct_call_ns`` is the same loop calling the handler directly, so the difference
  is what the bus adds.  ``sync_publish_4_handlers_ns`` fans out to four handlers.
* ``async_msgs_per_sec``: ``AsyncMessageBus`` with four symbols, one publisher task per
  symbol awaiting ``publish`` of critical (lossless) messages into lanes of 1024, one
  no-op handler; counted from the first publish until ``join`` returns, so queueing,
  backpressure waits, task switches and dispatch are all in it.
  ``async_handler_msgs_per_sec`` is the same with an ``async def`` handler (awaited per
  message); ``async_one_lane_msgs_per_sec`` publishes everything on one symbol.

Each figure is the median of a few repeats (``time.perf_counter_ns``).  A short table
goes to stdout, and the last line is one JSON object with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable

from bot4.engine.bus import AsyncMessageBus, Handler, MessageBus

TOPIC = "data.bar.BTCUSDT"


def noop(msg: object) -> None:
    return None


async def async_noop(msg: object) -> None:
    return None


def time_sync_publish(n: int, handlers: int) -> float:
    bus = MessageBus()
    for i in range(handlers):
        bus.subscribe(TOPIC, noop if i == 0 else (lambda msg: None))
    publish = bus.publish
    payload = object()
    start = time.perf_counter_ns()
    for _ in range(n):
        publish(TOPIC, payload)
    return (time.perf_counter_ns() - start) / n


def time_direct_call(n: int) -> float:
    handler = noop
    payload = object()
    start = time.perf_counter_ns()
    for _ in range(n):
        handler(payload)
    return (time.perf_counter_ns() - start) / n


async def _async_run(n: int, symbols: int, handler: Handler) -> float:
    bus = AsyncMessageBus(capacity=1024)
    names = [f"SYM{i}USDT" for i in range(symbols)]
    for name in names:
        bus.subscribe(f"order.{name}", handler)
    per_symbol = n // symbols

    async def publisher(name: str) -> None:
        topic = f"order.{name}"
        publish = bus.publish
        for i in range(per_symbol):
            await publish(topic, i, name)

    start = time.perf_counter_ns()
    await asyncio.gather(*(publisher(name) for name in names))
    await bus.join()
    elapsed = time.perf_counter_ns() - start
    stats = bus.stats()
    assert stats.delivered == per_symbol * symbols and stats.total_dropped == 0
    await bus.stop()
    return per_symbol * symbols / (elapsed / 1e9)


def time_async(n: int, symbols: int, handler: Handler) -> float:
    return asyncio.run(_async_run(n, symbols, handler))


def median(fn: Callable[[], float], repeats: int) -> float:
    fn()  # warm-up
    return statistics.median(fn() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    sync_n, async_n, repeats = (100_000, 20_000, 3) if args.quick else (1_000_000, 200_000, 5)

    result: dict[str, object] = {
        "sync_publish_ns": round(median(lambda: time_sync_publish(sync_n, 1), repeats), 1),
        "sync_publish_4_handlers_ns": round(
            median(lambda: time_sync_publish(sync_n, 4), repeats), 1
        ),
        "direct_call_ns": round(median(lambda: time_direct_call(sync_n), repeats), 1),
        "async_msgs_per_sec": round(median(lambda: time_async(async_n, 4, noop), repeats)),
        "async_handler_msgs_per_sec": round(
            median(lambda: time_async(async_n, 4, async_noop), repeats)
        ),
        "async_one_lane_msgs_per_sec": round(median(lambda: time_async(async_n, 1, noop), repeats)),
        "quick": args.quick,
        "sync_publishes_per_run": sync_n,
        "async_msgs_per_run": async_n,
        "python": platform.python_version(),
    }
    print(f"{'sync publish, 1 handler':32} {result['sync_publish_ns']:>12} ns")
    print(f"{'sync publish, 4 handlers':32} {result['sync_publish_4_handlers_ns']:>12} ns")
    print(f"{'direct call (baseline)':32} {result['direct_call_ns']:>12} ns")
    print(f"{'async msgs / s (4 lanes)':32} {result['async_msgs_per_sec']:>12,}")
    print(f"{'async msgs / s (async handler)':32} {result['async_handler_msgs_per_sec']:>12,}")
    print(f"{'async msgs / s (1 lane)':32} {result['async_one_lane_msgs_per_sec']:>12,}")
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
