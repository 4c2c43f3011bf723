"""The compiled simulator helpers against their pure-Python references.

Each compiled piece is driven with the same random stream as the pure-Python code it
replaces, and everything observable must agree: return values, refusals, best prices,
sizes, queues, feed statistics.  The first test fails if the compiled helpers are not
in use at all (a broken build must not pass as a slow one)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.core.errors import ValidationError
from bot4.core.numbers import to_raw
from bot4.sim import _compiled
from bot4.sim.book import OrderBook, PyOrderBook
from bot4.sim.l3_feed import BitfinexL3Feed, to_raw_exact
from tests.test_sim_l3_feed import bitfinex_messages

pytestmark = pytest.mark.skipif(
    _compiled.FORCE_PURE, reason="BOT4_PURE_SIM is set: the pure-Python fallback is forced"
)


def test_the_compiled_helpers_are_built_and_in_use() -> None:
    fast = _compiled.compiled("_fastbook")
    assert fast is not None, "bot4.sim._fastbook is not built: run pip install -e ."
    assert fast.__file__ is not None and not fast.__file__.endswith(".py")
    assert OrderBook is not PyOrderBook and issubclass(OrderBook, fast.BookCore)


# -- the book -----------------------------------------------------------------------------
book_ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "cancel", "modify", "upsert", "remove", "detach"]),
        st.integers(1, 12),  # order id
        st.booleans(),  # buy?
        st.integers(-1, 8),  # price (ticks; <= 0 is refused)
        st.integers(-1, 9),  # quantity (<= 0 is refused)
        st.integers(-1, 4),  # iceberg slice
    ),
    max_size=120,
)


def _call(book: Any, op: tuple[str, int, bool, int, int, int]) -> object:
    """One operation; the outcome, or the type of the refusal."""
    name, oid, is_buy, price, qty, display = op
    price *= 1000
    try:
        if name == "add":
            rec = book.add(oid, is_buy, price, qty, display, f"acct{oid % 3}")
            return list(rec[:8])
        if name == "cancel":
            return book.cancel(oid)
        if name == "modify":
            return book.modify(oid, price, qty)
        if name == "upsert":
            return book.upsert(oid, is_buy, price, qty)
        rec = book.record(oid)
        if name == "remove":
            book.remove_record(rec)
            return None
        lvl = rec[8]
        book.detach(rec)
        if not lvl[1]:
            book.drop_level(lvl)
        return None
    except (ValueError, KeyError) as exc:
        return type(exc)


def _observe(book: Any) -> tuple[object, ...]:
    return (
        book.snapshot(),
        book.depth(),
        book.best_bid(),
        book.best_ask(),
        book.best_bid_qty(),
        book.best_ask_qty(),
        book.is_crossed(),
        len(book),
        sorted(book.bids),
        sorted(book.asks),
        list(book.bid_keys),
        list(book.ask_keys),
    )


@settings(max_examples=300, deadline=None)
@given(book_ops)
def test_compiled_book_equals_the_pure_book(
    ops: list[tuple[str, int, bool, int, int, int]],
) -> None:
    fast, pure = OrderBook("X"), PyOrderBook("X")
    for op in ops:
        assert _call(fast, op) == _call(pure, op), op
        assert _observe(fast) == _observe(pure), op
    fast.check()
    pure.check()


def test_compiled_book_purges_long_queues_like_the_pure_one() -> None:
    books = OrderBook(), PyOrderBook()
    for book in books:
        for oid in range(300):
            book.add(oid, False, 100, 1 + oid % 7)
        for oid in range(1, 299, 1):
            if oid % 5:
                book.cancel(oid)
        book.check()
    fast, pure = books
    assert _observe(fast) == _observe(pure)
    assert len(fast.asks[100][2]) == len(pure.asks[100][2])  # the same purges ran


# -- the Bitfinex feed loop ---------------------------------------------------------------
def _feed_state(feed: BitfinexL3Feed) -> tuple[object, ...]:
    return (_observe(feed.book), feed.stats, feed._was_crossed)


def test_compiled_feed_loop_equals_the_pure_loop_on_the_bitfinex_file() -> None:
    messages = bitfinex_messages()
    fast, pure = BitfinexL3Feed(OrderBook("t")), BitfinexL3Feed(PyOrderBook("t"))
    for start, stop in ((0, 1000), (1000, 50_000), (50_000, len(messages))):  # resumable
        fast.apply_all(messages[start:stop])
        pure.apply_all(messages[start:stop])
        assert _feed_state(fast) == _feed_state(pure)
    assert fast.stats.order_messages > 99_000 and fast.stats.crossed_episodes > 0


prices = st.one_of(
    st.sampled_from([0, 0.0, 100.0, 100.5, 101, 99.999999999, 1e-9, 100.1234567891]),
    st.floats(-5, 1e7),
    st.sampled_from([math.nan, math.inf]),
    st.integers(0, 200),
)
amounts = st.one_of(
    st.sampled_from([0.5, -0.5, 1, -1, 0, 0.1 + 0.2, -2.000000001, 1e-10]),
    st.floats(-1e7, 1e7),
    st.integers(-5, 5),
)
feed_messages = st.lists(
    st.one_of(
        st.tuples(st.integers(1, 10), prices, amounts).map(lambda t: [7, list(t)]),
        st.just([7, "hb"]),
        st.just({"event": "info"}),
        st.lists(
            st.tuples(st.integers(20, 30), st.sampled_from([99.5, 100.0]), amounts).map(list),
            min_size=1,
            max_size=3,
        ).map(lambda entries: [7, entries]),
    ),
    max_size=60,
)


def _apply(feed: BitfinexL3Feed, messages: list[Any]) -> object:
    try:
        feed.apply_all(messages)
    except (ValueError, ValidationError) as exc:
        return type(exc)
    return None


@settings(max_examples=300, deadline=None)
@given(feed_messages, st.integers(0, 60))
def test_compiled_feed_loop_equals_the_pure_loop_on_random_messages(
    messages: list[Any], cut: int
) -> None:
    fast, pure = BitfinexL3Feed(OrderBook("t")), BitfinexL3Feed(PyOrderBook("t"))
    for part in (messages[:cut], messages[cut:]):
        assert _apply(fast, part) == _apply(pure, part)
        assert _feed_state(fast) == _feed_state(pure)
    fast.book.check()


# -- the exact conversion's shortcut ------------------------------------------------------
def _slow(value: float) -> object:
    try:
        return to_raw(repr(value), "value")
    except ValidationError:
        return ValidationError


def _fast(value: float) -> object:
    try:
        return to_raw_exact(value)
    except ValidationError:
        return ValidationError


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(-2e6, 2e6),
        st.decimals(-2_000_000, 2_000_000, places=9).map(float),
        st.integers(-(10**15), 10**15).map(lambda n: n / 10**9),
    )
)
def test_conversion_shortcut_equals_the_decimal_path(value: float) -> None:
    assert _fast(value) == _slow(value)


def test_conversion_shortcut_at_its_edges() -> None:
    for value in (999_999.999999999, -999_999.999999999, 1e6, 0.000000001, -0.0,
                  math.nextafter(0.1, 1), 123456.1234567891, 5e-10):  # fmt: skip
        assert _fast(value) == _slow(value), value
