"""An L3 order book: every resting order, price-time priority, for one symbol.

Layout, chosen by profiling (see ``benchmarks/matching.py``):

* A resting order is a small ``list`` (field indices below), not an object: building a
  list costs about a tenth of a slotted instance, and the L3 feed and the matching
  engine build one per add.  ``RestingOrder`` is the typed, immutable view handed out.
  The compiled book (``_fastbook``) uses C structs (``Rec``, ``Level``) that index
  exactly like these lists, so code reading records works on either book.
* A price level is a list ``[total, count, queue, price, is_buy]``; ``queue`` is a ``deque`` of
  order records in time priority.  A cancel does not search the queue: it zeroes the
  record's quantity (a dead record) and fixes the level's totals; dead records are
  skipped when they reach the front and purged when they outnumber live ones.
* Prices of each side sit in one sorted list of keys with the best level *last*, so
  the best price is ``keys[-1]`` and emptying the best level is a ``pop()``: bids are
  keyed by price, asks by ``-price``.

Icebergs: ``VISIBLE`` is the slice on display (what depth shows); when it is used up
the next slice is cut from the hidden rest and the record goes to the back of the
queue (a refill loses time priority, as on real venues).  ``QTY`` counts both parts.

The book does not match: a crossed book is representable (raw feeds are crossed now
and then).  Matching lives in ``bot4.sim.matching`` and works on these records.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

# -- order record fields ---------------------------------------------------------------
QTY = 0  # remaining quantity (visible + hidden), raw; 0 marks a dead record
VISIBLE = 1  # displayed quantity still resting in this queue slot
PRICE = 2
ORDER_ID = 3
IS_BUY = 4
DISPLAY = 5  # iceberg slice size; 0 = the whole order is displayed
ACCOUNT = 6
OWNER = 7  # the matching engine's order object (None for feed-only books)
LEVEL = 8  # the level record the order rests in

# -- level record fields ---------------------------------------------------------------
L_TOTAL = 0  # displayed quantity of the live orders
L_COUNT = 1  # live orders
L_QUEUE = 2  # deque of order records in time priority (may hold dead ones)
L_PRICE = 3
L_IS_BUY = 4

# upsert outcomes
ADDED, KEPT, REQUEUED, FLIPPED = 0, 1, 2, 3

Record = list[Any]
Level2 = tuple[int, int]  # (price, displayed quantity)


class RestingOrder(NamedTuple):
    """A copy of one resting order, for callers outside the hot path."""

    order_id: int
    is_buy: bool
    price: int
    qty: int
    visible: int
    display: int
    account: Any


class UnknownBookOrder(KeyError):
    """An order id that is not resting in this book."""


def _view(rec: Record) -> RestingOrder:
    return RestingOrder(
        rec[ORDER_ID], rec[IS_BUY], rec[PRICE], rec[QTY], rec[VISIBLE], rec[DISPLAY], rec[ACCOUNT]
    )


class BookQueries:
    """The read side of the book (and ``cancel``/``record``), shared by the pure-Python
    book and the compiled one: these are not on any hot path."""

    __slots__ = ()
    symbol: str
    bids: dict[int, Record]
    asks: dict[int, Record]
    bid_keys: list[int]  # prices ascending: best bid last
    ask_keys: list[int]  # -price ascending: best ask last
    orders: dict[int, Record]
    # the mutation ``cancel`` needs; each book (pure and compiled) implements it
    remove_record: Callable[[Record], None]

    # -- queries -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self.orders

    def get(self, order_id: int) -> RestingOrder | None:
        rec = self.orders.get(order_id)
        return None if rec is None else _view(rec)

    def best_bid(self) -> int | None:
        keys = self.bid_keys
        return keys[-1] if keys else None

    def best_ask(self) -> int | None:
        keys = self.ask_keys
        return -keys[-1] if keys else None

    def best_bid_qty(self) -> int:
        keys = self.bid_keys
        return int(self.bids[keys[-1]][L_TOTAL]) if keys else 0

    def best_ask_qty(self) -> int:
        keys = self.ask_keys
        return int(self.asks[-keys[-1]][L_TOTAL]) if keys else 0

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask (crossed or locked)."""
        return bool(self.bid_keys and self.ask_keys and self.bid_keys[-1] >= -self.ask_keys[-1])

    def depth(
        self, levels: int | None = None
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """L2 view: (bids best first, asks best first) of (price, displayed qty)."""
        n = len(self.bid_keys) if levels is None else levels
        bids = [(p, self.bids[p][L_TOTAL]) for p in reversed(self.bid_keys[-n:])] if n else []
        m = len(self.ask_keys) if levels is None else levels
        asks = [(-k, self.asks[-k][L_TOTAL]) for k in reversed(self.ask_keys[-m:])] if m else []
        return bids, asks

    def level_orders(self, is_buy: bool, price: int) -> list[RestingOrder]:
        """The live orders at one price, in time priority."""
        lvl = (self.bids if is_buy else self.asks).get(price)
        if lvl is None:
            return []
        return [_view(rec) for rec in lvl[L_QUEUE] if rec[QTY]]

    def side_orders(self, is_buy: bool) -> list[RestingOrder]:
        """Every live order of one side in matching priority (best price, then time)."""
        out: list[RestingOrder] = []
        keys = self.bid_keys if is_buy else self.ask_keys
        for k in reversed(keys):
            out.extend(self.level_orders(is_buy, k if is_buy else -k))
        return out

    def snapshot(self) -> tuple[object, ...]:
        """Everything observable, in priority order: equal snapshots = equal books."""
        return (
            tuple(self.side_orders(True)),
            tuple(self.side_orders(False)),
        )

    def cancel(self, order_id: int) -> RestingOrder:
        """Remove a resting order; raises ``UnknownBookOrder`` if it is not here."""
        rec = self.orders.get(order_id)
        if rec is None:
            raise UnknownBookOrder(order_id)
        view = _view(rec)
        self.remove_record(rec)
        return view

    def record(self, order_id: int) -> Record:
        """The live record itself (for the matching engine; do not keep it)."""
        rec = self.orders.get(order_id)
        if rec is None:
            raise UnknownBookOrder(order_id)
        return rec

    # -- self-check (tests) --------------------------------------------------------------
    def check(self) -> None:
        """Verify every invariant the fast paths rely on; raises AssertionError."""
        seen: set[int] = set()
        for is_buy, levels, keys in (
            (True, self.bids, self.bid_keys),
            (False, self.asks, self.ask_keys),
        ):
            assert keys == sorted(keys), "price keys out of order"
            assert len(set(keys)) == len(keys), "duplicate price keys"
            expected = {k if is_buy else -k for k in keys}
            assert set(levels) == expected, "level dict and keys disagree"
            for price, lvl in levels.items():
                assert lvl[L_PRICE] == price and lvl[L_IS_BUY] is is_buy
                live = [r for r in lvl[L_QUEUE] if r[QTY]]
                assert live, f"empty level {price} left in the book"
                assert lvl[L_COUNT] == len(live), f"count of level {price}"
                assert lvl[L_TOTAL] == sum(r[VISIBLE] for r in live), f"total of level {price}"
                for r in live:
                    oid = r[ORDER_ID]
                    assert r[PRICE] == price and r[IS_BUY] is is_buy and r[LEVEL] is lvl
                    assert 0 < r[VISIBLE] <= r[QTY]
                    assert oid not in seen, f"order {oid} queued twice"
                    assert id(self.orders.get(oid)) == id(r), f"index of {oid}"
                    seen.add(oid)
        assert seen == set(self.orders), "order index holds orders not in any queue"


class PyOrderBook(BookQueries):
    """Price-time priority book; all prices and quantities are raw ints (1e-9).  The
    pure-Python implementation: the fallback where the compiled one is not built, and
    the reference the compiled one is tested against."""

    __slots__ = ("ask_keys", "asks", "bid_keys", "bids", "orders", "symbol")

    def __init__(self, symbol: str = "") -> None:
        self.symbol = symbol
        self.bids = {}
        self.asks = {}
        self.bid_keys = []
        self.ask_keys = []
        self.orders = {}

    # -- changes -------------------------------------------------------------------------
    # add / remove_record / modify are the L3 feed's inner loop: the level bookkeeping is
    # written out in each rather than shared through helper calls (a call costs about as
    # much as the work).  ``check()`` verifies the invariants they maintain.
    def add(
        self,
        order_id: int,
        is_buy: bool,
        price: int,
        qty: int,
        display: int = 0,
        account: Any = None,
        owner: Any = None,
    ) -> Record:
        """Rest a new order at the back of its level's queue; returns its record."""
        orders = self.orders
        if order_id in orders or price <= 0 or qty <= 0 or display < 0:
            raise ValueError(f"bad add of {order_id}: price {price}, qty {qty}, display {display}")
        visible = display if 0 < display < qty else qty
        rec = [qty, visible, price, order_id, is_buy, display, account, owner, None]
        if is_buy:
            levels, keys, key = self.bids, self.bid_keys, price
        else:
            levels, keys, key = self.asks, self.ask_keys, -price
        lvl = levels.get(price)
        if lvl is None:
            lvl = levels[price] = [visible, 1, deque((rec,)), price, is_buy]
            if not keys or key > keys[-1]:
                keys.append(key)
            else:
                insort(keys, key)
        else:
            lvl[L_TOTAL] += visible
            lvl[L_COUNT] += 1
            lvl[L_QUEUE].append(rec)
        rec[LEVEL] = lvl
        orders[order_id] = rec
        return rec

    def remove_record(self, rec: Record) -> None:
        """Remove a live record, and its level if that empties."""
        lvl = rec[LEVEL]
        del self.orders[rec[ORDER_ID]]
        rec[QTY] = 0
        count = lvl[L_COUNT] - 1
        if count:
            lvl[L_COUNT] = count
            lvl[L_TOTAL] -= rec[VISIBLE]
            rec[VISIBLE] = 0
            queue = lvl[L_QUEUE]
            if queue[-1] is rec:
                queue.pop()
            elif queue[0] is rec:
                queue.popleft()
            elif len(queue) > 2 * count + 16:
                lvl[L_QUEUE] = deque([r for r in queue if r[QTY]])
            return
        rec[VISIBLE] = 0
        lvl[L_COUNT] = 0
        lvl[L_TOTAL] = 0
        lvl[L_QUEUE].clear()  # dead records point back at the level: free them now
        price = lvl[L_PRICE]
        if lvl[L_IS_BUY]:
            del self.bids[price]
            keys, key = self.bid_keys, price
        else:
            del self.asks[price]
            keys, key = self.ask_keys, -price
        if keys[-1] == key:
            keys.pop()
        else:
            del keys[bisect_left(keys, key)]

    def detach(self, rec: Record) -> None:
        """Take a record out of the book but leave an emptied level in place: the
        matching loop holds the level and drops it itself (``drop_level``) when done."""
        lvl = rec[LEVEL]
        lvl[L_TOTAL] -= rec[VISIBLE]
        lvl[L_COUNT] -= 1
        rec[QTY] = 0
        rec[VISIBLE] = 0
        del self.orders[rec[ORDER_ID]]
        queue = lvl[L_QUEUE]
        if queue[-1] is rec:
            queue.pop()
        elif queue[0] is rec:
            queue.popleft()
        elif len(queue) > 2 * lvl[L_COUNT] + 16:
            lvl[L_QUEUE] = deque([r for r in queue if r[QTY]])

    def drop_level(self, lvl: Record) -> None:
        """Remove an empty level from its side."""
        lvl[L_QUEUE].clear()  # break the record <-> level cycles: no work for the GC
        price = lvl[L_PRICE]
        if lvl[L_IS_BUY]:
            levels, keys, key = self.bids, self.bid_keys, price
        else:
            levels, keys, key = self.asks, self.ask_keys, -price
        del levels[price]
        if keys[-1] == key:
            keys.pop()
        else:
            del keys[bisect_left(keys, key)]

    def modify(self, order_id: int, price: int, qty: int) -> bool:
        """Change price and/or remaining quantity.  Reducing the quantity at the same
        price keeps the order's place; a new price or a larger quantity sends it to the
        back of its (new) level's queue, as venues do.  Returns True if it kept its
        place.  An iceberg keeps its slice size; the slice shrinks only if the new
        quantity is below it."""
        rec = self.orders.get(order_id)
        if rec is None:
            raise UnknownBookOrder(order_id)
        if price <= 0 or qty <= 0:
            raise ValueError(f"bad modify of {order_id}: price {price}, qty {qty}")
        old = rec[QTY]
        if price == rec[PRICE] and qty <= old:
            if qty < old:
                rec[QTY] = qty
                vis = rec[VISIBLE]
                if vis > qty:
                    rec[LEVEL][L_TOTAL] -= vis - qty
                    rec[VISIBLE] = qty
            return True
        self.remove_record(rec)
        self.add(order_id, rec[IS_BUY], price, qty, rec[DISPLAY], rec[ACCOUNT], rec[OWNER])
        return False

    def upsert(self, order_id: int, is_buy: bool, price: int, qty: int) -> int:
        """Add or change an order the way an L3 feed describes it (the L3 feed's one call
        per message, written out for speed).  Returns ``ADDED``, ``KEPT`` (same price,
        same or smaller size: the order keeps its place), ``REQUEUED`` (new price or
        larger size: back of the queue) or ``FLIPPED`` (same id, other side: a new
        order).  Plain orders only: an existing iceberg's slice is not kept."""
        if price <= 0 or qty <= 0:
            raise ValueError(f"bad update of {order_id}: price {price}, qty {qty}")
        orders = self.orders
        rec = orders.get(order_id)
        outcome = ADDED
        if rec is not None:
            old = rec[QTY]
            same_side = rec[IS_BUY] is is_buy
            if same_side and price == rec[PRICE] and qty <= old:
                if qty < old:
                    rec[QTY] = qty
                    vis = rec[VISIBLE]
                    if vis > qty:
                        rec[LEVEL][L_TOTAL] -= vis - qty
                        rec[VISIBLE] = qty
                return KEPT
            outcome = REQUEUED if same_side else FLIPPED
            # remove the old record (remove_record, written out)
            lvl = rec[LEVEL]
            del orders[order_id]
            rec[QTY] = 0
            count = lvl[L_COUNT] - 1
            if count:
                lvl[L_COUNT] = count
                lvl[L_TOTAL] -= rec[VISIBLE]
                queue = lvl[L_QUEUE]
                if queue[-1] is rec:
                    queue.pop()
                elif queue[0] is rec:
                    queue.popleft()
                elif len(queue) > 2 * count + 16:
                    lvl[L_QUEUE] = deque([r for r in queue if r[QTY]])
            else:
                lvl[L_COUNT] = lvl[L_TOTAL] = 0
                lvl[L_QUEUE].clear()
                old_price = lvl[L_PRICE]
                if lvl[L_IS_BUY]:
                    del self.bids[old_price]
                    keys, key = self.bid_keys, old_price
                else:
                    del self.asks[old_price]
                    keys, key = self.ask_keys, -old_price
                if keys[-1] == key:
                    keys.pop()
                else:
                    del keys[bisect_left(keys, key)]
            rec[VISIBLE] = 0
        # add the new record (add, written out)
        rec = [qty, qty, price, order_id, is_buy, 0, None, None, None]
        if is_buy:
            levels, keys, key = self.bids, self.bid_keys, price
        else:
            levels, keys, key = self.asks, self.ask_keys, -price
        lvl = levels.get(price)
        if lvl is None:
            lvl = levels[price] = [qty, 1, deque((rec,)), price, is_buy]
            if not keys or key > keys[-1]:
                keys.append(key)
            else:
                insort(keys, key)
        else:
            lvl[L_TOTAL] += qty
            lvl[L_COUNT] += 1
            lvl[L_QUEUE].append(rec)
        rec[LEVEL] = lvl
        orders[order_id] = rec
        return outcome


def _compiled_book() -> type[PyOrderBook] | None:
    """The compiled book (``bot4.sim._fastbook``), or None where it is not built or
    ``BOT4_PURE_SIM`` is set."""
    from bot4._compiled import compiled

    fast = compiled("_fastbook")
    if fast is None:
        return None

    class OrderBook(fast.BookCore, BookQueries):  # type: ignore[misc,name-defined]
        """Price-time priority book; all prices and quantities are raw ints (1e-9).
        Compiled changes (``BookCore``), shared queries (``BookQueries``)."""

        __slots__ = ()

    OrderBook.__module__ = __name__
    OrderBook.__qualname__ = "OrderBook"
    return OrderBook


if TYPE_CHECKING:
    OrderBook = PyOrderBook
else:
    OrderBook = _compiled_book() or PyOrderBook
