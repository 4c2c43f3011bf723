"""The compiled simulator helpers against their pure-Python references.

Each compiled piece is driven with the same random stream as the pure-Python code it
replaces, and everything observable must agree: return values, refusals, best prices,
sizes, queues, feed statistics.  The first test fails if the compiled helpers are not
in use at all (a broken build must not pass as a slow one)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4 import _compiled
from bot4.core.clock import TestClock
from bot4.core.enums import OrderSide, OrderType, TimeInForce
from bot4.core.errors import ValidationError
from bot4.core.instrument import Instrument
from bot4.core.numbers import money_to_raw, to_raw
from bot4.sim.book import OrderBook, PyOrderBook
from bot4.sim.errors import BinanceError
from bot4.sim.fees import FeeSchedule
from bot4.sim.l3_feed import BitfinexL3Feed, to_raw_exact
from bot4.sim.matching import MatchingEngine, PyMatchingEngine
from bot4.sim.matching_checks import PySymbolState, SymbolState, audit
from bot4.sim.matching_core import AccountState, PyAccountState
from bot4.sim.matching_types import NewOrder, PySimOrder, SelfTradePrevention, SimOrder
from tests.conftest import T0, btcusdt
from tests.test_sim_l3_feed import bitfinex_messages
from tests.test_sim_matching import OPS, session_request

STP = SelfTradePrevention

pytestmark = pytest.mark.skipif(
    _compiled.FORCE_PURE, reason="BOT4_PURE_SIM is set: the pure-Python fallback is forced"
)


def test_the_compiled_helpers_are_built_and_in_use() -> None:
    fast = _compiled.compiled("_fastbook")
    assert fast is not None, "bot4.sim._fastbook is not built: run pip install -e ."
    assert fast.__file__ is not None and not fast.__file__.endswith(".py")
    assert OrderBook is not PyOrderBook and issubclass(OrderBook, fast.BookCore)
    match = _compiled.compiled("_fastmatch")
    assert match is not None, "bot4.sim._fastmatch is not built: run pip install -e ."
    assert SimOrder is match.SimOrder and SimOrder is not PySimOrder
    assert MatchingEngine is not PyMatchingEngine and issubclass(MatchingEngine, match.FastEngine)
    assert SymbolState is not PySymbolState and issubclass(SymbolState, match.SymbolCore)
    assert AccountState is match.AccountCore
    engine, pure = MatchingEngine([btcusdt()]), PyMatchingEngine([btcusdt()])
    engine.deposit("A", "USDT", 1)
    pure.deposit("A", "USDT", 1)
    assert (
        type(engine.symbols["BTCUSDT"]) is SymbolState
        and type(engine.accounts["A"]) is AccountState
    )
    assert type(pure.symbols["BTCUSDT"]) is PySymbolState
    assert type(pure.accounts["A"]) is PyAccountState


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


def test_compiled_book_records_index_like_the_pure_lists() -> None:
    """The compiled book's records and levels are C structs that Python code (the pure
    matching core on the rare requests, ``walk``, the server, the queries) indexes with
    the pure book's field numbers: every field, slices and negative indices, reads and
    writes."""
    fast, pure = OrderBook("X"), PyOrderBook("X")
    recs = [book.add(7, True, 100, 5, 2, "acct", "owner") for book in (fast, pure)]
    for i in range(-9, 9):
        if i % 9 != 8:  # LEVEL: the level objects differ, compared below
            assert recs[0][i] == recs[1][i], i
    assert list(recs[0][:8]) == list(recs[1][:8]) and len(recs[0]) == 9
    lvls = [rec[8] for rec in recs]
    assert [lvl[i] for lvl in lvls for i in (0, 1, 3, 4)] == [2, 1, 100, True] * 2
    assert [list(lvl[2]) for lvl in lvls] == [[recs[0]], [recs[1]]]
    for rec in recs:
        rec[1] = 1
        rec[-9] = 4
    assert recs[0][:2] == recs[1][:2] == [4, 1]
    for obj in (recs[0], lvls[0]):
        with pytest.raises(IndexError):
            obj[9]


def test_a_dropped_compiled_book_frees_its_records() -> None:
    """Records and levels are not tracked by the garbage collector; the book breaks
    their record <-> level cycles itself when it goes, or they would leak."""
    import sys

    owner = object()
    before = sys.getrefcount(owner)
    book = OrderBook("X")
    for oid in range(50):
        book.add(oid, oid % 2 == 0, 100 + oid % 5, 3, 0, "acct", owner)
    for oid in range(1, 40, 3):
        book.cancel(oid)  # dead records left in the middle of queues
    assert sys.getrefcount(owner) > before
    del book
    assert sys.getrefcount(owner) == before


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


# JSON integers: the compiled loop scales those below 9e9 in C and hands larger ones
# (up to 2**64 and past it) to ``to_raw_exact``, which scales any int.
INT_EDGES = st.one_of(
    st.sampled_from([8_999_999_999, 9_000_000_000, 9_300_000_000, 2**63, 2**64 + 5, 10**30]),
    st.integers(-(10**11), 10**11),
    st.integers(-(2**70), 2**70),
).flatmap(lambda n: st.sampled_from([n, -n]))
prices = st.one_of(
    st.sampled_from([0, 0.0, 100.0, 100.5, 101, 99.999999999, 1e-9, 100.1234567891]),
    st.floats(-5, 1e7),
    st.sampled_from([math.nan, math.inf]),
    st.integers(0, 200),
    INT_EDGES,
)
amounts = st.one_of(
    st.sampled_from([0.5, -0.5, 1, -1, 0, 0.1 + 0.2, -2.000000001, 1e-10]),
    st.floats(-1e7, 1e7),
    st.integers(-5, 5),
    INT_EDGES,
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


# -- the matching engine ------------------------------------------------------------------
def _engine_pair(fees: Callable[[], FeeSchedule]) -> tuple[Any, Any, TestClock, TestClock]:
    """The compiled engine and the pure-Python one (pure book, pure orders), alike."""
    clocks = TestClock(T0), TestClock(T0)
    engines = (
        MatchingEngine([btcusdt()], fees(), clocks[0]),
        PyMatchingEngine([btcusdt()], fees(), clocks[1]),
    )
    for e in engines:
        for acc in "ABC":
            e.deposit(acc, "USDT", money_to_raw("30000", "m"))
            e.deposit(acc, "BTC", money_to_raw("0.5", "m"))
    fast, pure = engines
    assert type(fast.book("BTCUSDT")) is OrderBook and type(pure.book("BTCUSDT")) is PyOrderBook
    return fast, pure, clocks[0], clocks[1]


def _outcome(call: Callable[[], object]) -> object:
    try:
        return call()
    except BinanceError as exc:
        return (exc.code, exc.msg)


def _engine_state(e: Any) -> tuple[object, ...]:
    balances = sorted(
        (name, asset, bal.free, bal.locked)
        for name, state in e.accounts.items()
        for asset, bal in state.account.balances.items()
    )
    return (e.snapshot(), balances, list(e.trades), e.last_seq)


def _flat_fees() -> FeeSchedule:
    fees = FeeSchedule.flat("0.0002", "0.001")
    fees.set_override("C", "-0.0001", "0.0005")  # a rebate
    return fees


def _tiered_fees() -> FeeSchedule:
    return FeeSchedule(volume_rates={"USDT": 1}, window_days=1)  # tiers move with volume


class _Counting:
    """Counts the requests the compiled engine hands to the pure-Python code."""

    def __init__(self) -> None:
        self.slow = 0
        fast = _compiled.compiled("_fastmatch")
        assert fast is not None
        self.fast = fast

    def __enter__(self) -> _Counting:
        def slow_submit(engine: Any, req: Any) -> object:
            self.slow += 1
            return PyMatchingEngine.submit(engine, req)

        self.fast.bind(slow_submit, PyMatchingEngine.cancel)
        return self

    def __exit__(self, *exc: object) -> None:
        self.fast.bind(PyMatchingEngine.submit, PyMatchingEngine.cancel)


SUBMITS = {"limit", "market", "quote", "stop"}


@settings(max_examples=400, deadline=None)
@given(OPS, st.booleans())
def test_compiled_engine_equals_the_pure_engine(ops: list[Any], tiered: bool) -> None:
    fast, pure, fast_clock, pure_clock = _engine_pair(_tiered_fees if tiered else _flat_fees)
    with _Counting() as counting:
        for op in ops:
            for clock in (fast_clock, pure_clock):
                clock.advance(op[-1] * 3_600 * 10**9)
            got = _outcome(session_request(fast, op))
            want = _outcome(session_request(pure, op))
            assert got == want, op
            assert _engine_state(fast) == _engine_state(pure), op
        audit(fast)
    submits = sum(op[0] in SUBMITS for op in ops)
    assert counting.slow <= submits


def test_the_compiled_engine_takes_its_fast_path() -> None:
    """Plain limit and market orders never reach the pure-Python code; the rest do."""
    fast, pure, _, _ = _engine_pair(_flat_fees)
    price, qty = to_raw("60000", "p"), to_raw("0.01", "q")
    plain = [
        NewOrder("A", "BTCUSDT", OrderSide.SELL, OrderType.LIMIT, qty, price),
        NewOrder(
            "B", "BTCUSDT", OrderSide.BUY, OrderType.LIMIT, qty * 3, price, 0, TimeInForce.IOC
        ),
        NewOrder("A", "BTCUSDT", OrderSide.BUY, OrderType.LIMIT, qty, price - 10**9),
        NewOrder("C", "BTCUSDT", OrderSide.SELL, OrderType.MARKET, qty),
    ]
    other = [
        NewOrder("A", "BTCUSDT", OrderSide.SELL, OrderType.LIMIT, qty, price, post_only=True),
        NewOrder("A", "BTCUSDT", OrderSide.SELL, OrderType.LIMIT, qty, price + 1),  # off tick
        NewOrder("A", "BTCUSDT", OrderSide.SELL, OrderType.LIMIT, qty, price, stp=STP.EXPIRE_BOTH),
    ]
    with _Counting() as counting:
        for req in plain:
            assert _outcome(lambda r=req: fast.submit(r)) == _outcome(lambda r=req: pure.submit(r))
        assert counting.slow == 0
        for req in other:
            assert _outcome(lambda r=req: fast.submit(r)) == _outcome(lambda r=req: pure.submit(r))
        assert counting.slow == len(other)
    assert _engine_state(fast) == _engine_state(pure)
    assert len(fast.trades) == 2


def test_market_buy_cost_counts_hidden_iceberg_quantity() -> None:
    """The fast path prices a market buy itself (``walk``'s no-STP case, in C): its
    funds check must count an iceberg's hidden quantity as ``walk`` does, so one buy
    that only the visible slices would make affordable is refused by both engines."""
    fast, pure, _, _ = _engine_pair(_flat_fees)
    price, slice_ = to_raw("60000", "p"), to_raw("0.05", "q")
    for e in (fast, pure):
        e.deposit("D", "USDT", money_to_raw("5000", "m"))
        e.submit(NewOrder("A", "BTCUSDT", OrderSide.SELL, OrderType.LIMIT, slice_ * 8, price,
                          display_qty_raw=slice_))  # fmt: skip
        e.submit(NewOrder("B", "BTCUSDT", OrderSide.SELL, OrderType.LIMIT, slice_, price * 2))
    costly = NewOrder("D", "BTCUSDT", OrderSide.BUY, OrderType.MARKET, slice_ * 2)  # 6,000 USDT
    affordable = NewOrder("D", "BTCUSDT", OrderSide.BUY, OrderType.MARKET, slice_ * 3 // 2)
    with _Counting() as counting:
        refused = _outcome(lambda: fast.submit(costly))
        assert refused == _outcome(lambda: pure.submit(costly))
        assert isinstance(refused, tuple) and refused[0] == -2010
        slow = counting.slow
        assert _outcome(lambda: fast.submit(affordable)) == _outcome(
            lambda: pure.submit(affordable)
        )
        assert counting.slow == slow  # accepted on the fast path
    assert _engine_state(fast) == _engine_state(pure)


class _StepClock:
    """Not a ``TestClock``: the compiled engine must call ``now_ns`` (it reads a
    ``TestClock``'s slot directly)."""

    def __init__(self) -> None:
        self.calls = 0

    def now_ns(self) -> int:
        self.calls += 1
        return T0 + self.calls * 1_000


def test_compiled_engine_with_another_clock_equals_the_pure_engine() -> None:
    clocks = _StepClock(), _StepClock()
    fast = MatchingEngine([btcusdt()], _flat_fees(), clocks[0])
    pure = PyMatchingEngine([btcusdt()], _flat_fees(), clocks[1])
    price, qty = to_raw("60000", "p"), to_raw("0.01", "q")
    for e in (fast, pure):
        for acc in "AB":
            e.deposit(acc, "USDT", money_to_raw("30000", "m"))
            e.deposit(acc, "BTC", money_to_raw("0.5", "m"))
    requests = [
        NewOrder("A", "BTCUSDT", OrderSide.SELL, OrderType.LIMIT, qty * 2, price),
        NewOrder("B", "BTCUSDT", OrderSide.BUY, OrderType.LIMIT, qty, price),
        NewOrder("B", "BTCUSDT", OrderSide.BUY, OrderType.MARKET, qty),
    ]
    for req in requests:
        assert fast.submit(req) == pure.submit(req)
    resting = fast.submit(NewOrder("A", "BTCUSDT", OrderSide.SELL, OrderType.LIMIT, qty, price))
    pure.submit(NewOrder("A", "BTCUSDT", OrderSide.SELL, OrderType.LIMIT, qty, price))
    oid = resting[0].order_id
    assert fast.cancel("A", "BTCUSDT", oid) == pure.cancel("A", "BTCUSDT", oid)
    assert clocks[0].calls == clocks[1].calls == 5
    assert _engine_state(fast) == _engine_state(pure)


def test_percent_band_edges_equal_the_pure_engine() -> None:
    """The fast path turns PERCENT_PRICE into two integer bounds per last price (floor
    above, ceiling below): at and one unit past each edge it must accept and refuse
    exactly what the pure engine's products accept and refuse."""
    inst = Instrument.create(
        "XY", "X", "Y", tick_size="0.000000001", step_size="1", min_qty="1", max_qty="10",
        min_notional="0", percent_up="1.3", percent_down="0.7",
    )  # fmt: skip
    engines = MatchingEngine([inst]), PyMatchingEngine([inst])
    for e in engines:
        e.deposit("A", "Y", 10**40)
    for last in (10**9 + 7, 3 * 10**9 + 1, 999_999_999_999):
        up, down = last * 13 // 10, -(-last * 7 // 10)
        for e in engines:
            e.set_last_price("XY", last)
        for price in (up - 1, up, up + 1, down - 1, down, down + 1):
            req = NewOrder("A", "XY", OrderSide.BUY, OrderType.LIMIT, 10**9, price)
            with _Counting() as counting:
                got = _outcome(lambda r=req: engines[0].submit(r))
            want = _outcome(lambda r=req: engines[1].submit(r))
            assert got == want, (last, price)
            refused = price in (up + 1, down - 1)
            assert isinstance(got, tuple) is refused, (last, price, got)
            assert counting.slow == refused  # the edges themselves take the fast path


_FEE_INTS = st.one_of(
    st.integers(-(2**130), 2**130),
    st.integers(-(2**64), 2**64),
    st.sampled_from([0, 1, -1, 2**60 - 1, 2**60, 2**90 - 1, 2**90, 2**120 - 1, 2**120, -(2**120)]),
)


@settings(max_examples=2000, deadline=None)
@given(
    amount=_FEE_INTS,
    num=st.one_of(st.integers(-(2**40), 2**40), _FEE_INTS),
    den=st.one_of(st.integers(-3, 10**6), _FEE_INTS),
    unit=st.one_of(st.sampled_from([1, 10, 10**10]), st.integers(-3, 2**64)),
)
def test_fee_charge_in_128_bit_integers_equals_the_python_ints(
    amount: int, num: int, den: int, unit: int
) -> None:
    """The fast path charges fees in C 128-bit integers where every operand and product
    fits (and in Python ints otherwise): the same value, and the same error."""
    charge = _compiled.compiled("_fastmatch").charge_for_tests  # type: ignore[union-attr]
    schedule = FeeSchedule.flat("0.001", "0.001")
    schedule.unit = unit
    try:
        want: object = schedule.charge(amount, num, den)
    except ZeroDivisionError:
        want = ZeroDivisionError
    try:
        fast, slow = charge(amount, num, den, unit)
    except ZeroDivisionError:
        fast = slow = ZeroDivisionError
    assert fast == slow == want
    assert type(fast) is type(want)


@pytest.mark.parametrize("oid", [1, 9, 10, 99, 100, 12345, 10**18, 2**62 - 1, 2**63 - 1])
def test_generated_client_order_ids_equal_the_pure_format(oid: int) -> None:
    sim_id = _compiled.compiled("_fastmatch").sim_id_for_tests  # type: ignore[union-attr]
    got = sim_id(oid)
    assert got == f"sim-{oid}" and type(got) is str and got.isascii()


# -- balances in C 128-bit integers --------------------------------------------------------
_EDGES = [0, 1, 2**62, 2**63, 2**64, 2**119, 2**120, 2**126, 2**127, 2**128, 2**200]
money = st.one_of(
    st.integers(-(10**31), 10**31),
    st.builds(
        lambda edge, delta, neg: (-1 if neg else 1) * (edge + delta),
        st.sampled_from(_EDGES),
        st.integers(-2, 2),
        st.booleans(),
    ),
)
balance_steps = st.lists(
    st.tuples(st.sampled_from(["move", "sub", "diff", "lock", "unlock", "short"]), money, money),
    max_size=30,
)


def _reference_step(bal: Any, op: str, a: int, b: int) -> object:
    """What the fast path's money helpers do, in ``oms.account.Balance`` terms."""
    if op == "short":
        return a > bal.free
    if op == "move":
        bal.free, bal.locked = bal.free + a, bal.locked + b
    elif op == "sub":
        bal.free, bal.locked = bal.free - a, bal.locked - b
    elif op == "diff":
        bal.free += a - b
    elif op == "lock":
        bal.free, bal.locked = bal.free - a, bal.locked + a
    else:
        bal.free, bal.locked = bal.free + a, bal.locked - a
    return (bal.free, bal.locked)


@settings(max_examples=2000, deadline=None)
@given(money, money, balance_steps)
def test_compiled_balances_equal_python_int_balances(free: int, locked: int, steps: Any) -> None:
    """The compiled engine's balances hold amounts in C 128-bit integers where they fit
    and Python ints otherwise (past 2**120 on input, past 2**127 by a sum): every
    update and funds check gives exactly the Python-int result, across both edges."""
    from bot4.oms.account import Balance

    match = _compiled.compiled("_fastmatch")
    assert match is not None
    fast, ref = match.SimBalance(free, locked), Balance(free, locked)
    got = match.balance_ops_for_tests(fast, list(steps))
    want = [_reference_step(ref, *step) for step in steps]
    assert got == want
    assert (fast.free, fast.locked, fast.total) == (ref.free, ref.locked, ref.total)
    assert type(fast.free) is int and type(fast.locked) is int
    assert repr(fast) == repr(ref)
    # the fallback paths of the same helpers, on a plain Balance, agree too
    plain = Balance(free, locked)
    assert match.balance_ops_for_tests(plain, list(steps)) == want


def test_compiled_accounts_hold_compiled_balances_with_the_balance_api() -> None:
    """The compiled engine's accounts build ``SimBalance``s; anything written to one
    through the ``Balance`` API (the exchange server restores ``bal.free, bal.locked``)
    reads back as written, pickles, and snapshots like the pure engine's."""
    import pickle

    match = _compiled.compiled("_fastmatch")
    assert match is not None
    engine, pure = MatchingEngine([btcusdt()]), PyMatchingEngine([btcusdt()])
    for eng in (engine, pure):
        eng.deposit("A", "USDT", 10**30)
        eng.deposit("A", "BTC", 2**130)
    bal = engine.account("A").balances["USDT"]
    assert type(bal) is match.SimBalance
    assert engine.account("A").snapshot() == pure.account("A").snapshot()
    bal.free, bal.locked = 7, 2**150
    assert (bal.free, bal.locked, bal.total) == (7, 2**150, 7 + 2**150)
    copy = pickle.loads(pickle.dumps(bal))
    assert (copy.free, copy.locked) == (7, 2**150)
    with pytest.raises(AttributeError):
        bal.other = 1  # type: ignore[attr-defined]


def test_generated_client_ids_step_past_taken_ones_like_the_pure_engine() -> None:
    """A generated ``sim-<id>`` that the account already uses (a client's own choice)
    gets ``x`` appended until it is free -- on the fast path as in the pure engine."""
    from bot4.core.numbers import SCALE

    engines = [MatchingEngine([btcusdt()]), PyMatchingEngine([btcusdt()])]
    runs = []
    for eng in engines:
        eng.deposit("A", "USDT", 10**6 * SCALE * SCALE)
        out = []
        for cid in ("sim-3", "sim-3x", "", "sim-5", ""):
            req = NewOrder(
                "A", "BTCUSDT", OrderSide.BUY, OrderType.LIMIT, 10**7, 50_000 * SCALE,
                client_order_id=cid,
            )  # fmt: skip
            out.extend(eng.submit(req))
        runs.append(out)
        assert eng.account("A").snapshot() == engines[0].account("A").snapshot()
    assert runs[0] == runs[1]
    assert [r.client_order_id for r in runs[0]] == ["sim-3", "sim-3x", "sim-3xx", "sim-5", "sim-5x"]


@pytest.mark.parametrize("extra", [0, 2**119, 2**121, 2**127, 2**140])
def test_locked_money_past_the_c_integers_releases_like_the_pure_engine(extra: int) -> None:
    """An order's locked money is held in C while it fits (like ``SimBalance``); an
    amount past 2**120 (here added by hand to an order and its balance alike) is
    updated by fills and released by a cancel exactly as the pure engine does."""
    from bot4.core.numbers import SCALE

    snapshots, reports = [], []
    for eng in (MatchingEngine([btcusdt()]), PyMatchingEngine([btcusdt()])):
        eng.deposit("A", "USDT", 10**6 * SCALE * SCALE)
        eng.deposit("B", "BTC", 10 * SCALE * SCALE)
        out = []
        for acc, side, qty, price in (
            ("A", OrderSide.BUY, 10**8, 50_000),
            ("B", OrderSide.SELL, 10**7, 0),
        ):
            otype = OrderType.LIMIT if price else OrderType.MARKET
            if acc == "B":  # a partial fill of A's order, with the extra amount locked
                o = eng.open_orders[1]
                o.locked_money += extra
                eng.account("A").balances["USDT"].locked += extra
            out.extend(eng.submit(NewOrder(acc, "BTCUSDT", side, otype, qty, price * SCALE)))
        assert eng.open_orders[1].locked_money == 9 * 10**7 * 50_000 * SCALE + extra
        out.extend(eng.cancel("A", "BTCUSDT", 1))
        reports.append(out)
        snapshots.append((eng.account("A").snapshot(), eng.account("B").snapshot()))
    assert reports[0] == reports[1]
    assert snapshots[0] == snapshots[1]


@settings(max_examples=2000, deadline=None)
@given(money, money)
def test_products_in_128_bit_integers_equal_the_python_ints(a: int, b: int) -> None:
    """Notionals and other products are multiplied in C 128-bit integers where both
    factors' digits fit (the product below 2**120), and built back into an int digit
    by digit past 64 bits: the same value as Python's, signs and both edges included."""
    match = _compiled.compiled("_fastmatch")
    assert match is not None
    got = match.mul_for_tests(a, b)
    assert got == a * b and type(got) is int
    assert match.mul_for_tests(b, a) == a * b
    assert match.mul_for_tests(a, 0) == 0 and match.mul_for_tests(a, -1) == -a
