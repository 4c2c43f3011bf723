"""The L3 book: price-time queues, modify rules, icebergs in depth, and a random-walk
comparison against a plain reference (a dict of orders sorted on demand)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.sim.book import L_QUEUE, OrderBook, RestingOrder, UnknownBookOrder


def ids_at(book: OrderBook, is_buy: bool, price: int) -> list[int]:
    return [o.order_id for o in book.level_orders(is_buy, price)]


def test_best_prices_depth_and_time_priority() -> None:
    book = OrderBook("X")
    assert book.best_bid() is None and book.best_ask() is None
    assert book.best_bid_qty() == 0 and book.best_ask_qty() == 0
    book.add(1, True, 100, 5)
    book.add(2, True, 101, 7)
    book.add(3, True, 100, 2)
    book.add(4, False, 105, 1)
    book.add(5, False, 103, 4)
    book.add(6, False, 103, 6)
    assert (book.best_bid(), book.best_bid_qty()) == (101, 7)
    assert (book.best_ask(), book.best_ask_qty()) == (103, 10)
    assert book.depth() == ([(101, 7), (100, 7)], [(103, 10), (105, 1)])
    assert book.depth(1) == ([(101, 7)], [(103, 10)])
    assert book.depth(0) == ([], [])
    assert ids_at(book, True, 100) == [1, 3]
    assert [o.order_id for o in book.side_orders(False)] == [5, 6, 4]
    assert len(book) == 6 and 4 in book and 9 not in book
    assert not book.is_crossed()
    book.check()


def test_cancel_removes_orders_and_empty_levels() -> None:
    book = OrderBook()
    book.add(1, False, 105, 1)
    book.add(2, False, 105, 2)
    book.add(3, False, 106, 3)
    assert book.cancel(1) == RestingOrder(1, False, 105, 1, 1, 0, None)
    assert book.depth() == ([], [(105, 2), (106, 3)])
    book.cancel(2)
    assert book.best_ask() == 106 and 105 not in book.asks
    with pytest.raises(UnknownBookOrder):
        book.cancel(2)
    book.cancel(3)
    assert book.best_ask() is None and not book.asks and not book.ask_keys
    book.check()


def test_reduce_keeps_priority_increase_and_reprice_lose_it() -> None:
    book = OrderBook()
    for oid in (1, 2, 3):
        book.add(oid, True, 100, 10)
    assert book.modify(1, 100, 4) is True  # reduce: stays first
    assert ids_at(book, True, 100) == [1, 2, 3]
    assert book.best_bid_qty() == 24
    assert book.modify(1, 100, 4) is True  # no change at all
    assert book.modify(2, 100, 11) is False  # increase: back of the queue
    assert ids_at(book, True, 100) == [1, 3, 2]
    assert book.modify(1, 99, 4) is False  # new price: new level
    assert ids_at(book, True, 100) == [3, 2]
    assert ids_at(book, True, 99) == [1]
    assert book.modify(1, 100, 4) is False  # and back: behind the others
    assert ids_at(book, True, 100) == [3, 2, 1]
    assert 99 not in book.bids
    with pytest.raises(UnknownBookOrder):
        book.modify(42, 100, 1)
    with pytest.raises(ValueError):
        book.modify(1, 100, 0)
    book.check()


def test_iceberg_shows_only_its_slice() -> None:
    book = OrderBook()
    book.add(1, False, 105, 10, display=3)
    book.add(2, False, 105, 2)
    assert book.depth() == ([], [(105, 5)])
    assert book.get(1) == RestingOrder(1, False, 105, 10, 3, 3, None)
    assert book.modify(1, 105, 2) is True  # below the slice: the slice shrinks
    assert book.get(1) == RestingOrder(1, False, 105, 2, 2, 3, None)
    assert book.best_ask_qty() == 4
    book.check()


def test_bad_adds_are_refused_and_change_nothing() -> None:
    book = OrderBook()
    book.add(1, True, 100, 1)
    before = book.snapshot()
    for args in ((1, True, 100, 1), (2, True, 0, 1), (2, True, 100, 0), (2, False, -5, 1)):
        with pytest.raises(ValueError):
            book.add(*args)
    with pytest.raises(ValueError):
        book.add(2, True, 100, 5, display=-1)
    assert book.snapshot() == before
    book.check()


def test_a_crossed_book_is_representable_and_reported() -> None:
    book = OrderBook()
    book.add(1, True, 100, 1)
    book.add(2, False, 100, 1)
    assert book.is_crossed()  # locked
    book.add(3, False, 99, 1)
    assert book.is_crossed() and book.best_ask() == 99
    book.cancel(2)
    book.cancel(3)
    assert not book.is_crossed()
    book.check()


def test_dead_records_are_purged_from_long_queues() -> None:
    book = OrderBook()
    for oid in range(200):
        book.add(oid, True, 100, 1)
    for oid in range(1, 199):  # cancel everything in the middle of the queue
        book.cancel(oid)
    assert ids_at(book, True, 100) == [0, 199]
    assert len(book.bids[100][L_QUEUE]) < 40  # compacted, not 200 records
    book.check()


def test_detach_leaves_the_level_for_the_caller_to_drop() -> None:
    book = OrderBook()
    book.add(1, True, 100, 1)
    rec = book.record(1)
    book.detach(rec)
    assert 1 not in book and 100 in book.bids  # emptied level still there
    book.drop_level(rec[8])
    assert not book.bids and not book.bid_keys
    with pytest.raises(UnknownBookOrder):
        book.record(1)
    book.check()


# -- random walk against a reference ----------------------------------------------------
class RefBook:
    """The obvious implementation: a dict of orders with an arrival stamp."""

    def __init__(self) -> None:
        self.orders: dict[int, list[int | bool]] = {}  # id -> [is_buy, price, qty, stamp]
        self.clock = 0

    def _stamp(self) -> int:
        self.clock += 1
        return self.clock

    def add(self, oid: int, is_buy: bool, price: int, qty: int) -> None:
        self.orders[oid] = [is_buy, price, qty, self._stamp()]

    def modify(self, oid: int, price: int, qty: int) -> None:
        o = self.orders[oid]
        if price != o[1] or qty > o[2]:
            o[3] = self._stamp()
        o[1], o[2] = price, qty

    def side(self, is_buy: bool) -> list[tuple[int, int, int]]:
        rows = [(int(o[1]), int(o[3]), oid) for oid, o in self.orders.items() if o[0] is is_buy]
        rows.sort(key=lambda r: (-r[0] if is_buy else r[0], r[1]))
        return [(oid, price, int(self.orders[oid][2])) for price, _, oid in rows]


ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "cancel", "modify"]),
        st.integers(0, 30),  # order id
        st.booleans(),
        st.integers(95, 105),
        st.integers(1, 20),
    ),
    max_size=120,
)


@settings(max_examples=300)
@given(ops)
def test_random_operations_match_the_reference(
    steps: list[tuple[str, int, bool, int, int]],
) -> None:
    book, ref = OrderBook(), RefBook()
    for kind, oid, is_buy, price, qty in steps:
        if kind == "add" and oid not in ref.orders:
            book.add(oid, is_buy, price, qty)
            ref.add(oid, is_buy, price, qty)
        elif kind == "cancel" and oid in ref.orders:
            book.cancel(oid)
            del ref.orders[oid]
        elif kind == "modify" and oid in ref.orders:
            book.modify(oid, price, qty)
            ref.modify(oid, price, qty)
        for is_buy_side in (True, False):
            got = [(o.order_id, o.price, o.qty) for o in book.side_orders(is_buy_side)]
            assert got == ref.side(is_buy_side)
        bids = ref.side(True)
        asks = ref.side(False)
        assert book.best_bid() == (bids[0][1] if bids else None)
        assert book.best_ask() == (asks[0][1] if asks else None)
        if bids:
            assert book.best_bid_qty() == sum(q for _, p, q in bids if p == bids[0][1])
    book.check()
