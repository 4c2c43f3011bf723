"""The engine's message bus: sync dispatch, per-symbol ordering and independence,
backpressure (conflation, drop-oldest, lossless critical), error isolation, shutdown.

Concurrency is driven by asyncio events and bare ``sleep(0)`` yields, not by wall-clock
sleeps, so the tests are fast and do not depend on timing; ``wait_for`` timeouts only
turn a hang into a failure.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.core.events import OrderFilled
from bot4.engine.bus import (
    AsyncMessageBus,
    Backpressure,
    BusClosed,
    BusFull,
    BusStats,
    HandlerError,
    MessageBus,
    reraise,
)

GUARD = 5.0  # seconds: only ever reached when a test is about to fail


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), GUARD))


def balanced(stats: BusStats) -> bool:
    """Every published message is accounted for exactly once."""
    return stats.published == (
        stats.delivered
        + stats.total_dropped
        + stats.total_conflated
        + stats.discarded
        + stats.interrupted
        + stats.abandoned
    )


def fill(i: int) -> OrderFilled:
    return OrderFilled(
        seq=i, ts_event=i, ts_recv=i, client_order_id="C1", trade_id=f"T{i}", qty_raw=1, price_raw=1
    )


# -- synchronous dispatch -------------------------------------------------------------------
def test_sync_handlers_run_in_subscription_order_with_wildcards() -> None:
    bus = MessageBus()
    seen: list[tuple[str, object]] = []
    bus.subscribe("data.bar.BTCUSDT", lambda m: seen.append(("exact", m)))
    bus.subscribe("data.bar.*", lambda m: seen.append(("bars", m)))
    bus.subscribe("*", lambda m: seen.append(("all", m)))
    bus.publish("data.bar.BTCUSDT", 1)
    bus.publish("data.bar.ETHUSDT", 2)
    bus.publish("order.filled", 3)
    assert seen == [
        ("exact", 1),
        ("bars", 1),
        ("all", 1),
        ("bars", 2),
        ("all", 2),
        ("all", 3),
    ]


def test_sync_subscribe_is_idempotent_and_unsubscribe_takes_effect() -> None:
    bus = MessageBus()
    seen: list[int] = []
    bus.subscribe("t", seen.append)
    bus.subscribe("t", seen.append)
    bus.publish("t", 1)
    assert seen == [1]
    assert bus.unsubscribe("t", seen.append)
    assert not bus.unsubscribe("t", seen.append)
    bus.publish("t", 2)
    bus.publish("nobody.listens", 3)
    assert seen == [1]
    with pytest.raises(ValueError):
        bus.subscribe("a.*.b", seen.append)
    with pytest.raises(ValueError):
        bus.subscribe("", seen.append)


def test_sync_nested_publish_is_depth_first() -> None:
    bus = MessageBus()
    seen: list[str] = []

    def on_bar(msg: str) -> None:
        seen.append(f"strategy:{msg}")
        bus.publish("order.submitted", f"order-for-{msg}")

    bus.subscribe("data.bar.X", on_bar)
    bus.subscribe("data.bar.X", lambda m: seen.append(f"logger:{m}"))
    bus.subscribe("order.submitted", lambda m: seen.append(f"risk:{m}"))
    bus.publish("data.bar.X", "b1")
    assert seen == ["strategy:b1", "risk:order-for-b1", "logger:b1"]


def test_sync_error_isolation_and_reraise() -> None:
    errors: list[HandlerError] = []
    bus = MessageBus(on_error=errors.append)
    seen: list[int] = []

    def flaky(msg: int) -> None:
        if msg == 2:
            raise ValueError("boom")
        seen.append(msg)

    bus.subscribe("t", flaky)
    bus.subscribe("t", lambda m: seen.append(m * 10))
    for i in range(1, 4):
        bus.publish("t", i)
    assert seen == [1, 10, 20, 3, 30]  # the next handler and the next message still ran
    assert bus.errors == 1
    assert [(e.topic, e.symbol, e.message, type(e.exception)) for e in errors] == [
        ("t", None, 2, ValueError)
    ]

    strict = MessageBus(on_error=reraise)
    strict.subscribe("t", flaky)
    with pytest.raises(ValueError, match="boom"):
        strict.publish("t", 2)


def test_sync_publish_rejects_async_handlers() -> None:
    bus = MessageBus()

    async def handler(msg: object) -> None:
        return None

    bus.subscribe("t", handler)
    with pytest.raises(TypeError, match="AsyncMessageBus"):
        bus.publish("t", 1)


def test_policy_classification_longest_prefix_and_events_are_critical() -> None:
    bus = AsyncMessageBus(
        policies={"data": Backpressure.DROP_OLDEST, "data.book": Backpressure.CONFLATE}
    )
    assert bus.classify("data.book.BTCUSDT") == (Backpressure.CONFLATE, "data.book")
    assert bus.classify("data.bookish") == (Backpressure.DROP_OLDEST, "data")
    assert bus.classify("order.filled") == (Backpressure.BLOCK, "order.filled")
    with pytest.raises(ValueError):
        AsyncMessageBus(policies={"data.": Backpressure.CONFLATE})
    with pytest.raises(ValueError):
        AsyncMessageBus(capacity=0)

    async def scenario() -> None:
        # An Event on a droppable topic is still never dropped.
        abus = AsyncMessageBus(capacity=1)
        gate = asyncio.Event()
        got: list[int] = []

        async def slow(msg: OrderFilled) -> None:
            await gate.wait()
            got.append(msg.seq)

        abus.subscribe("data.trade.X", slow)
        publisher = asyncio.create_task(
            _publish_all(abus, [("data.trade.X", fill(i), "X") for i in range(5)])
        )
        await asyncio.sleep(0)
        gate.set()
        await publisher
        await abus.join()
        assert got == [0, 1, 2, 3, 4]
        assert abus.stats().total_dropped == 0
        await abus.stop()

    run(scenario)


async def _publish_all(bus: AsyncMessageBus, items: list[tuple[str, Any, str]]) -> None:
    for topic, msg, symbol in items:
        await bus.publish(topic, msg, symbol=symbol)


# -- ordering under concurrency (property) -------------------------------------------------
SYMBOLS = ("BTC", "ETH", "SOL")
KINDS = ("order", "trade", "book")  # BLOCK, DROP_OLDEST, CONFLATE
TOPIC = {"order": "order.{}", "trade": "data.trade.{}", "book": "data.book.{}"}

op = st.tuples(
    st.integers(0, len(SYMBOLS) - 1),  # which symbol
    st.sampled_from(KINDS),
    st.integers(0, 2),  # publisher yields before publishing
)


@given(
    ops=st.lists(op, min_size=1, max_size=60),
    delays=st.lists(st.integers(0, 4), min_size=1, max_size=16),
    capacity=st.integers(1, 6),
    per_symbol_publishers=st.booleans(),
    critical_only=st.booleans(),
)
@settings(max_examples=120)
def test_each_symbol_sees_its_events_in_publish_order(
    ops: list[tuple[int, str, int]],
    delays: list[int],
    capacity: int,
    per_symbol_publishers: bool,
    critical_only: bool,
) -> None:
    """Random interleavings of publishes across symbols, random handler delays (in loop
    yields), small queues: per symbol, delivery is sequential (never two handlers of one
    symbol at once), in publish order, and complete for critical messages."""
    if critical_only:
        ops = [(s, "order", y) for s, _, y in ops]

    async def scenario() -> None:
        bus = AsyncMessageBus(capacity=capacity)
        seen: dict[str, list[int]] = {s: [] for s in SYMBOLS}
        active = dict.fromkeys(SYMBOLS, 0)
        overlaps = 0  # counted, not asserted here: the bus would catch the AssertionError
        calls = 0

        async def handler(msg: tuple[str, int, str]) -> None:
            nonlocal calls, overlaps
            symbol, index, _kind = msg
            active[symbol] += 1
            overlaps += active[symbol] > 1  # two handlers of one symbol at once
            calls += 1
            for _ in range(delays[calls % len(delays)]):
                await asyncio.sleep(0)
            seen[symbol].append(index)
            active[symbol] -= 1

        for symbol in SYMBOLS:
            for kind in KINDS:
                bus.subscribe(TOPIC[kind].format(symbol), handler)

        published: dict[str, list[tuple[int, str]]] = {s: [] for s in SYMBOLS}

        async def publisher(my_ops: list[tuple[int, tuple[int, str, int]]]) -> None:
            for index, (s, kind, yields) in my_ops:
                for _ in range(yields):
                    await asyncio.sleep(0)
                symbol = SYMBOLS[s]
                published[symbol].append((index, kind))
                await bus.publish(TOPIC[kind].format(symbol), (symbol, index, kind), symbol)

        indexed = list(enumerate(ops))
        if per_symbol_publishers:
            groups = [[(i, o) for i, o in indexed if o[0] == s] for s in range(len(SYMBOLS))]
            await asyncio.gather(*(publisher(group) for group in groups))
        else:
            await publisher(indexed)
        await bus.join()

        stats = bus.stats()
        assert overlaps == 0 and stats.errors == 0
        assert balanced(stats)
        for symbol in SYMBOLS:
            got = seen[symbol]
            assert got == sorted(got) and len(set(got)) == len(got)  # in order, no repeats
            sent = [i for i, _ in published[symbol]]
            assert set(got) <= set(sent)
            critical = [i for i, kind in published[symbol] if kind == "order"]
            assert set(critical) <= set(got)  # critical: all delivered
        if critical_only:
            assert stats.total_dropped == stats.total_conflated == 0
            assert stats.delivered == len(ops)
        assert all(depth <= capacity for depth in stats.max_depth.values())
        await bus.stop()

    run(scenario)


# -- independence ------------------------------------------------------------------------
def test_blocked_symbol_does_not_delay_another() -> None:
    async def scenario() -> None:
        bus = AsyncMessageBus(capacity=4)
        btc_started = asyncio.Event()
        release_btc = asyncio.Event()
        eth_done = asyncio.Event()
        btc_seen: list[int] = []
        eth_seen: list[int] = []

        async def on_btc(msg: int) -> None:
            btc_started.set()
            await release_btc.wait()
            btc_seen.append(msg)

        def on_eth(msg: int) -> None:
            eth_seen.append(msg)
            if len(eth_seen) == 200:
                eth_done.set()

        bus.subscribe("order.BTCUSDT", on_btc)
        bus.subscribe("order.ETHUSDT", on_eth)
        await bus.publish("order.BTCUSDT", 0, "BTCUSDT")
        await btc_started.wait()
        # BTC's lane fills up behind its blocked handler; its publisher then waits ...
        for i in range(1, 5):
            await bus.publish("order.BTCUSDT", i, "BTCUSDT")
        btc_publisher = asyncio.create_task(bus.publish("order.BTCUSDT", 5, "BTCUSDT"))
        await asyncio.sleep(0)
        assert not btc_publisher.done()
        with pytest.raises(BusFull):
            bus.publish_nowait("order.BTCUSDT", 99, "BTCUSDT")
        # ... while ETH flows through its own lane, publisher and handler alike.
        for i in range(200):
            await bus.publish("order.ETHUSDT", i, "ETHUSDT")
        await eth_done.wait()
        assert eth_seen == list(range(200))
        assert btc_seen == [] and not btc_publisher.done()
        release_btc.set()
        assert await btc_publisher is True
        await bus.join()
        assert btc_seen == [0, 1, 2, 3, 4, 5]  # 99 was refused, not lost silently
        stats = bus.stats()
        assert stats.publisher_waits >= 1 and balanced(stats)  # ETH's publisher waits too
        assert stats.depth == {"BTCUSDT": 0, "ETHUSDT": 0}
        await bus.stop()

    run(scenario)


# -- backpressure: exact counts ------------------------------------------------------------
async def _blocked_lane(
    bus: AsyncMessageBus, topic: str, symbol: str
) -> tuple[list[Any], asyncio.Event, asyncio.Event]:
    """Subscribe a handler to ``topic`` that blocks on its first message; return what
    it saw, the 'first message started' event and the release event."""
    seen: list[Any] = []
    started = asyncio.Event()
    release = asyncio.Event()

    async def handler(msg: Any) -> None:
        started.set()
        await release.wait()
        seen.append(msg)

    bus.subscribe(topic, handler)
    return seen, started, release


def test_conflation_keeps_latest_per_topic_with_exact_counts() -> None:
    async def scenario() -> None:
        bus = AsyncMessageBus(capacity=8)
        seen, started, release = await _blocked_lane(bus, "data.book.BTCUSDT", "BTCUSDT")
        bus.subscribe("data.quote.BTCUSDT", seen.append)
        bus.subscribe("data.book.ETHUSDT", seen.append)
        await bus.publish("data.book.BTCUSDT", "book-0", "BTCUSDT")
        await started.wait()  # book-0 is in flight; the rest queue behind it
        for i in range(1, 101):
            assert await bus.publish("data.book.BTCUSDT", f"book-{i}", "BTCUSDT")
            if i % 10 == 0:
                await bus.publish("data.quote.BTCUSDT", f"quote-{i}", "BTCUSDT")
        assert bus.stats().depth["BTCUSDT"] == 2  # one book, one quote
        release.set()
        await bus.join()
        # The latest quote was published after the latest book, and stays after it.
        assert seen == ["book-0", "book-100", "quote-100"]
        stats = bus.stats()
        assert dict(stats.conflated) == {
            ("BTCUSDT", "data.book"): 99,
            ("BTCUSDT", "data.quote"): 9,
        }
        assert stats.total_dropped == 0 and stats.delivered == 3 and balanced(stats)
        await bus.stop()

    run(scenario)


def test_conflated_message_moves_behind_later_critical_events() -> None:
    """book-1, fill, book-2 must not deliver book-2 before the fill."""

    async def scenario() -> None:
        bus = AsyncMessageBus(capacity=8)
        seen, started, release = await _blocked_lane(bus, "order.block", "BTC")
        bus.subscribe("data.book.BTC", seen.append)
        bus.subscribe("order.filled", seen.append)
        await bus.publish("order.block", "blocker", "BTC")
        await started.wait()
        await bus.publish("data.book.BTC", "book-1", "BTC")
        await bus.publish("order.filled", "fill", "BTC")
        await bus.publish("data.book.BTC", "book-2", "BTC")
        release.set()
        await bus.join()
        assert seen == ["blocker", "fill", "book-2"]
        assert dict(bus.stats().conflated) == {("BTC", "data.book"): 1}
        await bus.stop()

    run(scenario)


def test_drop_oldest_exact_counts() -> None:
    async def scenario() -> None:
        bus = AsyncMessageBus(capacity=10)
        seen, started, release = await _blocked_lane(bus, "data.trade.BTCUSDT", "BTCUSDT")
        eth: list[int] = []
        bus.subscribe("data.trade.ETHUSDT", eth.append)
        await bus.publish("data.trade.BTCUSDT", 0, "BTCUSDT")
        await started.wait()
        for i in range(1, 101):
            await bus.publish("data.trade.BTCUSDT", i, "BTCUSDT")
            await bus.publish("data.trade.ETHUSDT", i, "ETHUSDT")
            await asyncio.sleep(0)  # a feed awaits its socket between messages
        release.set()
        await bus.join()
        assert seen == [0, *range(91, 101)]  # the 10 newest survive behind the in-flight one
        assert eth == list(range(1, 101))  # ETH's lane kept up: nothing dropped there
        stats = bus.stats()
        assert dict(stats.dropped) == {("BTCUSDT", "data.trade"): 90}
        assert stats.max_depth == {"BTCUSDT": 10, "ETHUSDT": 1}
        assert balanced(stats)
        await bus.stop()

    run(scenario)


def test_full_lane_evicts_market_data_for_critical_and_drops_data_when_all_critical() -> None:
    async def scenario() -> None:
        bus = AsyncMessageBus(capacity=3)
        seen, started, release = await _blocked_lane(bus, "order.blocker", "X")
        for topic in ("data.trade.X", "data.book.X", "order.new"):
            bus.subscribe(topic, seen.append)
        await bus.publish("order.blocker", "blocker", "X")
        await started.wait()
        await bus.publish("data.trade.X", "t1", "X")
        await bus.publish("data.book.X", "b1", "X")
        await bus.publish("order.new", "o1", "X")
        # Full: t1, b1, o1.  A critical newcomer evicts the oldest droppable (t1), then b1.
        await bus.publish("order.new", "o2", "X")
        await bus.publish("order.new", "o3", "X")
        # All critical now: market data is dropped on arrival, critical would wait.
        assert await bus.publish("data.book.X", "b2", "X") is False
        assert bus.publish_nowait("data.trade.X", "t2", "X") is False
        with pytest.raises(BusFull):
            bus.publish_nowait("order.new", "o4", "X")
        release.set()
        await bus.join()
        assert seen == ["blocker", "o1", "o2", "o3"]
        stats = bus.stats()
        assert dict(stats.dropped) == {("X", "data.trade"): 2, ("X", "data.book"): 2}
        assert stats.total_conflated == 0 and balanced(stats)
        await bus.stop()

    run(scenario)


def test_critical_events_never_dropped_under_overload() -> None:
    """10,000 fills into a queue of 10 with a slow consumer: all arrive, in order."""
    n = 10_000

    async def scenario() -> None:
        bus = AsyncMessageBus(capacity=10)
        got: list[int] = []

        async def slow_consumer(msg: OrderFilled) -> None:
            await asyncio.sleep(0)
            if msg.seq % 2_000 == 0:
                await asyncio.sleep(0.001)  # an occasional real stall
            got.append(msg.seq)

        bus.subscribe("order.filled", slow_consumer)
        bus.subscribe("data.trade.BTCUSDT", lambda m: None)
        events = [fill(i) for i in range(n)]

        async def trades() -> None:  # market data competing for the same lane
            for i in range(n):
                await bus.publish("data.trade.BTCUSDT", i, "BTCUSDT")
                if i % 7 == 0:
                    await asyncio.sleep(0)

        async def fills() -> None:
            for event in events:
                await bus.publish("order.filled", event, "BTCUSDT")

        await asyncio.gather(fills(), trades())
        await bus.join()
        assert got == list(range(n))
        stats = bus.stats()
        assert stats.publisher_waits > 0
        assert stats.max_depth["BTCUSDT"] <= 10
        assert ("BTCUSDT", "order.filled") not in stats.dropped
        assert balanced(stats)
        await bus.stop()

    run(scenario)


# -- error isolation ---------------------------------------------------------------------
def test_async_handler_errors_are_reported_and_do_not_stop_the_lane() -> None:
    async def scenario() -> None:
        errors: list[HandlerError] = []
        bus = AsyncMessageBus(MessageBus(on_error=errors.append), capacity=4)
        seen: list[tuple[str, int]] = []

        async def flaky(msg: int) -> None:
            await asyncio.sleep(0)
            if msg % 3 == 0:
                raise RuntimeError(f"bad {msg}")
            seen.append(("flaky", msg))

        bus.subscribe("order.x", flaky)
        bus.subscribe("order.x", lambda m: seen.append(("next", m)))
        for i in range(1, 10):
            await bus.publish("order.x", i, "BTC")
        await bus.join()
        assert [m for h, m in seen if h == "next"] == list(range(1, 10))
        assert [m for h, m in seen if h == "flaky"] == [1, 2, 4, 5, 7, 8]
        assert [(e.symbol, e.message) for e in errors] == [("BTC", 3), ("BTC", 6), ("BTC", 9)]
        assert bus.stats().errors == 3 and bus.bus.errors == 3

        # A callback that raises (reraise) is logged; the lane still lives.
        strict = AsyncMessageBus(MessageBus(on_error=reraise))
        out: list[int] = []

        def picky(msg: int) -> None:
            if msg == 1:
                raise ValueError("no")
            out.append(msg)

        strict.subscribe("order.y", picky)
        for i in range(3):
            await strict.publish("order.y", i, "ETH")
        await strict.join()
        assert out == [0, 2] and strict.stats().errors == 1
        await bus.stop()
        await strict.stop()

    run(scenario)


# -- shutdown ------------------------------------------------------------------------------
def test_stop_drains_everything_including_waiting_publishers() -> None:
    async def scenario() -> None:
        bus = AsyncMessageBus(capacity=2)
        seen, started, release = await _blocked_lane(bus, "order.x", "BTC")
        await bus.publish("order.x", 0, "BTC")
        await started.wait()
        await bus.publish("order.x", 1, "BTC")
        await bus.publish("order.x", 2, "BTC")
        waiting = asyncio.create_task(bus.publish("order.x", 3, "BTC"))
        await asyncio.sleep(0)
        stopping = asyncio.create_task(bus.stop())
        await asyncio.sleep(0)
        assert bus.closed
        with pytest.raises(BusClosed):
            await bus.publish("order.x", 4, "BTC")
        release.set()
        report = await stopping
        assert await waiting is True
        assert seen == [0, 1, 2, 3]
        assert (report.drained, report.discarded, report.interrupted) == (4, 0, 0)
        assert not report.timed_out
        assert balanced(bus.stats())
        assert (await bus.stop()).drained == 0  # a second stop is a no-op

    run(scenario)


def test_stop_without_drain_cancels_and_counts() -> None:
    async def scenario() -> None:
        bus = AsyncMessageBus(capacity=3)
        seen, started, _release = await _blocked_lane(bus, "order.x", "BTC")
        eth_seen: list[int] = []
        bus.subscribe("order.y", eth_seen.append)
        await bus.publish("order.x", 0, "BTC")
        await started.wait()
        for i in range(1, 4):
            await bus.publish("order.x", i, "BTC")
        waiters = [asyncio.create_task(bus.publish("order.x", i, "BTC")) for i in (4, 5)]
        await bus.publish("order.y", 1, "ETH")
        await asyncio.sleep(0)
        report = await bus.stop(drain=False)
        assert report.interrupted == 1  # message 0, mid-handler
        assert report.discarded == 5  # 1-3 queued, 4-5 waiting
        assert dict(report.discarded_by_symbol) == {"BTC": 5}
        for task in waiters:
            with pytest.raises(BusClosed):
                await task
        assert seen == []
        stats = bus.stats()
        assert stats.discarded == 5 and stats.interrupted == 1 and balanced(stats)
        await bus.join()  # returns at once: nothing is pending any more

    run(scenario)


def test_stop_drain_timeout_falls_back_to_cancel() -> None:
    async def scenario() -> None:
        bus = AsyncMessageBus(capacity=4)
        _seen, started, _release = await _blocked_lane(bus, "order.x", "BTC")
        await bus.publish("order.x", 0, "BTC")
        await started.wait()
        await bus.publish("order.x", 1, "BTC")
        report = await bus.stop(drain=True, timeout=0.05)
        assert report.timed_out
        assert (report.drained, report.discarded, report.interrupted) == (0, 1, 1)
        assert balanced(bus.stats())

    run(scenario)


def test_cancelled_waiting_publisher_is_counted_abandoned() -> None:
    async def scenario() -> None:
        bus = AsyncMessageBus(capacity=1)
        seen, started, release = await _blocked_lane(bus, "order.x", "BTC")
        await bus.publish("order.x", 0, "BTC")
        await started.wait()
        await bus.publish("order.x", 1, "BTC")
        waiting = asyncio.create_task(bus.publish("order.x", 2, "BTC"))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        release.set()
        await bus.join()
        assert seen == [0, 1]
        stats = bus.stats()
        assert stats.abandoned == 1 and balanced(stats)
        await bus.stop()

    run(scenario)


def test_stop_from_a_handler_is_refused() -> None:
    async def scenario() -> None:
        errors: list[HandlerError] = []
        bus = AsyncMessageBus(MessageBus(on_error=errors.append))

        async def kill_switch(msg: object) -> None:
            await bus.stop()

        bus.subscribe("risk.halt", kill_switch)
        await bus.publish("risk.halt", None)
        await bus.join()
        assert [type(e.exception) for e in errors] == [RuntimeError]
        await bus.stop()

    run(scenario)


# -- the benchmark script ------------------------------------------------------------------
def test_bus_benchmark_quick_reports_json() -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bus.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("sync_publish_ns", "async_msgs_per_sec"):
        assert isinstance(result[key], int | float) and result[key] > 0, key
