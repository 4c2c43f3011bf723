# cython: language_level=3, boundscheck=False
"""Compiled core of the L3 book and of the Bitfinex feed loop (see docs/sim.md).

``BookCore`` holds the data ``bot4.sim.book.PyOrderBook`` holds -- the same sorted key
lists, the same dicts, a deque per level with the same dead records and purges -- and
its methods are line-for-line translations of the pure-Python ones.  Records and levels
are C structs (``Rec``, ``Level``) that index like the pure book's lists, with the same
field numbers: that is what lets the matching engine, ``walk``, the exchange server and
the tests work on either book unchanged; ``tests/test_sim_compiled.py`` drives both
with the same random stream and compares them.

The speed comes from typed containers (``list``/``dict`` operations become direct C-API
calls with no bounds checks), struct fields instead of list items, records the garbage
collector does not track, and the feed loop running here over the parsed JSON list
instead of in the interpreter.  Numbers stay Python ints:
the book is exact for any size, as the pure one is.
"""

cimport cython
from bisect import bisect_left, insort
from collections import deque

from cpython.dict cimport PyDict_SetItem, PyDict_DelItem
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.ref cimport PyObject
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.math cimport llround

# record fields: QTY VISIBLE PRICE ORDER_ID IS_BUY DISPLAY ACCOUNT OWNER LEVEL
# level fields:  L_TOTAL L_COUNT L_QUEUE L_PRICE L_IS_BUY
cdef Py_ssize_t _PURGE_SLACK = 16  # as in book.py: purge dead records past 2 * live + 16
cdef long long _INT_LIMIT = 9000000000  # |int| below this: int * 1e9 fits a C long long
# A level's queue operations through the deque's own method descriptors: a call
# instead of looking the method up on the object each time (``queue.popleft()``).
cdef object _append = deque.append
cdef object _pop = deque.pop
cdef object _popleft = deque.popleft


cdef inline object _last(list keys):
    return <object>PyList_GET_ITEM(keys, PyList_GET_SIZE(keys) - 1)


cdef inline int _drop_key(list keys, object key) except -1:
    cdef Py_ssize_t n = PyList_GET_SIZE(keys)
    if <object>PyList_GET_ITEM(keys, n - 1) == key:
        keys.pop()
    else:
        del keys[bisect_left(keys, key)]
    return 0


cdef inline int _add_key(list keys, object key) except -1:
    cdef Py_ssize_t n = PyList_GET_SIZE(keys)
    if n == 0 or key > <object>PyList_GET_ITEM(keys, n - 1):
        keys.append(key)
    else:
        insort(keys, key)
    return 0


@cython.no_gc
@cython.freelist(256)
cdef class Rec:
    """One resting order: ``book.py``'s 9-slot record list as a C struct.

    The compiled book and matching core read and write the fields directly; Python code
    (the pure matching core run on the compiled book for the rare requests, ``walk``,
    the queries, the server, the tests) indexes it exactly like the list, with the same
    field numbers (``rec[QTY]``, ``rec[LEVEL]``, slices).  One allocation instead of a
    list and its item array, and not tracked by the garbage collector: a record refers
    to ints, strs, its ``SimOrder`` (itself untracked) and its level, and the one cycle
    that makes -- record -> level -> queue -> record -- is broken by the book, as the
    pure book does: a dropped level's queue is cleared, and so is every level's when
    the book goes (``BookCore.__dealloc__``).  Young collections used to traverse every
    new record and everything it held."""

    def __len__(self):
        return 9

    cdef list _as_list(self):
        return [self.qty, self.visible, self.price, self.order_id, self.is_buy,
                self.display, self.account, self.owner, self.level]

    def __getitem__(self, index):
        cdef Py_ssize_t i
        if type(index) is not int:
            return self._as_list()[index]
        i = index
        if i < 0:
            i += 9
        if i == 0:
            return self.qty
        if i == 1:
            return self.visible
        if i == 2:
            return self.price
        if i == 3:
            return self.order_id
        if i == 4:
            return self.is_buy
        if i == 5:
            return self.display
        if i == 6:
            return self.account
        if i == 7:
            return self.owner
        if i == 8:
            return self.level
        raise IndexError("record index out of range")

    def __setitem__(self, Py_ssize_t i, value):
        if i < 0:
            i += 9
        if i == 0:
            self.qty = value
        elif i == 1:
            self.visible = value
        elif i == 2:
            self.price = value
        elif i == 3:
            self.order_id = value
        elif i == 4:
            self.is_buy = value
        elif i == 5:
            self.display = value
        elif i == 6:
            self.account = value
        elif i == 7:
            self.owner = value
        elif i == 8:
            self.level = value
        else:
            raise IndexError("record index out of range")

    def __repr__(self):
        return f"Rec({self.qty!r}, {self.visible!r}, {self.price!r}, {self.order_id!r}, ...)"


@cython.no_gc
@cython.freelist(64)
cdef class Level:
    """One price level: ``book.py``'s ``[total, count, queue, price, is_buy]`` as a C
    struct, indexed like the list by Python code (``lvl[L_TOTAL]``); the count is a C
    integer.  Untracked by the garbage collector for the reasons ``Rec`` gives."""

    def __len__(self):
        return 5

    def __getitem__(self, index):
        cdef Py_ssize_t i
        if type(index) is not int:
            return [self.total, self.count, self.queue, self.price, self.is_buy][index]
        i = index
        if i < 0:
            i += 5
        if i == 0:
            return self.total
        if i == 1:
            return self.count
        if i == 2:
            return self.queue
        if i == 3:
            return self.price
        if i == 4:
            return self.is_buy
        raise IndexError("level index out of range")

    def __setitem__(self, Py_ssize_t i, value):
        if i < 0:
            i += 5
        if i == 0:
            self.total = value
        elif i == 1:
            self.count = value
        elif i == 2:
            self.queue = value
        elif i == 3:
            self.price = value
        elif i == 4:
            self.is_buy = value
        else:
            raise IndexError("level index out of range")

    def __repr__(self):
        return f"Level({self.total!r}, {self.count}, <{len(self.queue)} queued>, {self.price!r})"


@cython.no_gc_clear
cdef class BookCore:
    """The book's state and its changing operations; queries live in the Python
    subclass (``bot4.sim.book.OrderBook``), which is the public type.

    ``no_gc_clear``: if the collector ever finds a book in a cycle, it breaks the cycle
    elsewhere and leaves the book whole for ``__dealloc__``, which must still see its
    levels to break their (untracked) record <-> level cycles."""

    # fields in _fastbook.pxd; ``_spare``: emptied queues of dropped levels, for reuse

    def __init__(self, symbol: str = "") -> None:
        self._spare = []
        self.symbol = symbol
        self.bids = {}
        self.asks = {}
        self.bid_keys = []
        self.ask_keys = []
        self.orders = {}

    def __dealloc__(self):
        cdef dict levels
        for levels in (self.bids, self.asks):
            if levels is not None:
                for lvl in levels.values():
                    if isinstance(lvl, Level) and isinstance((<Level>lvl).queue, deque):
                        (<Level>lvl).queue.clear()

    cdef Rec _new_record(self, object order_id, object is_buy, object price, object qty,
                         object display, object account, object owner):
        cdef object visible = display if display and 0 < display < qty else qty
        cdef Rec rec = Rec.__new__(Rec)
        cdef object queue
        cdef dict levels
        cdef list keys
        cdef object key
        cdef Level lvl
        cdef PyObject* found
        rec.qty = qty
        rec.visible = visible
        rec.price = price
        rec.order_id = order_id
        rec.is_buy = is_buy
        rec.display = display
        rec.account = account
        rec.owner = owner
        if is_buy:
            levels, keys, key = self.bids, self.bid_keys, price
        else:
            levels, keys, key = self.asks, self.ask_keys, -price
        found = _dict_get(levels, price)
        if found == NULL:
            if PyList_GET_SIZE(self._spare):
                queue = self._spare.pop()
            else:
                queue = deque()
            _append(queue, rec)
            lvl = Level.__new__(Level)
            lvl.total = visible
            lvl.count = 1
            lvl.queue = queue
            lvl.price = price
            lvl.is_buy = is_buy
            PyDict_SetItem(levels, price, lvl)
            _add_key(keys, key)
        else:
            lvl = <Level>found
            lvl.total = lvl.total + visible
            lvl.count += 1
            _append(lvl.queue, rec)
        rec.level = lvl
        PyDict_SetItem(self.orders, order_id, rec)
        return rec

    cdef int _recycle(self, Level lvl) except -1:
        """Empty a dropped level's queue (breaking the record <-> level cycles, as the
        pure book does) and keep it for the next new level: a deque costs more to
        create than the rest of an add.  The dropped level is left an empty tuple."""
        queue = lvl.queue
        queue.clear()
        lvl.queue = ()
        if PyList_GET_SIZE(self._spare) < 64:
            self._spare.append(queue)
        return 0

    cdef int _purge(self, Level lvl) except -1:
        """Drop the dead records of a long queue (the pure book's comprehension)."""
        cdef object fresh = deque()
        for r in lvl.queue:
            if (<Rec>r).qty:
                fresh.append(r)
        lvl.queue = fresh
        return 0

    def add(self, order_id, is_buy, price, qty, display=0, account=None, owner=None):
        """Rest a new order at the back of its level's queue; returns its record."""
        if order_id in self.orders or price <= 0 or qty <= 0 or display < 0:
            raise ValueError(f"bad add of {order_id}: price {price}, qty {qty}, display {display}")
        return self._new_record(order_id, is_buy, price, qty, display, account, owner)

    cdef int _remove(self, Rec rec) except -1:
        cdef Level lvl = <Level>rec.level
        cdef object queue
        cdef Py_ssize_t count
        PyDict_DelItem(self.orders, rec.order_id)
        rec.qty = 0
        count = lvl.count - 1
        if count:
            lvl.count = count
            lvl.total = lvl.total - rec.visible
            rec.visible = 0
            queue = lvl.queue
            if queue[-1] is rec:
                _pop(queue)
            elif queue[0] is rec:
                _popleft(queue)
            elif len(queue) > 2 * count + _PURGE_SLACK:
                self._purge(lvl)
            return 0
        rec.visible = 0
        lvl.count = 0
        lvl.total = 0
        self._recycle(lvl)
        price = lvl.price
        if lvl.is_buy:
            PyDict_DelItem(self.bids, price)
            _drop_key(self.bid_keys, price)
        else:
            PyDict_DelItem(self.asks, price)
            _drop_key(self.ask_keys, -price)
        return 0

    def remove_record(self, Rec rec) -> None:
        """Remove a live record, and its level if that empties."""
        self._remove(rec)

    def detach(self, Rec rec) -> None:
        """Take a record out of the book but leave an emptied level in place."""
        cdef Level lvl = <Level>rec.level
        lvl.total = lvl.total - rec.visible
        lvl.count -= 1
        rec.qty = 0
        rec.visible = 0
        PyDict_DelItem(self.orders, rec.order_id)
        queue = lvl.queue
        if queue[-1] is rec:
            _pop(queue)
        elif queue[0] is rec:
            _popleft(queue)
        elif len(queue) > 2 * lvl.count + _PURGE_SLACK:
            self._purge(lvl)

    def drop_level(self, Level lvl) -> None:
        """Remove an empty level from its side."""
        self._drop_level(lvl)

    cdef int _drop_level(self, Level lvl) except -1:
        self._recycle(lvl)
        price = lvl.price
        if lvl.is_buy:
            PyDict_DelItem(self.bids, price)
            _drop_key(self.bid_keys, price)
        else:
            PyDict_DelItem(self.asks, price)
            _drop_key(self.ask_keys, -price)
        return 0

    def modify(self, order_id, price, qty):
        """See ``PyOrderBook.modify``."""
        cdef PyObject* found = _dict_get(self.orders, order_id)
        cdef Rec rec
        if found == NULL:
            from bot4.sim.book import UnknownBookOrder
            raise UnknownBookOrder(order_id)
        if price <= 0 or qty <= 0:
            raise ValueError(f"bad modify of {order_id}: price {price}, qty {qty}")
        rec = <Rec>found
        old = rec.qty
        if price == rec.price and qty <= old:
            if qty < old:
                rec.qty = qty
                vis = rec.visible
                if vis > qty:
                    lvl = <Level>rec.level
                    lvl.total = lvl.total - (vis - qty)
                    rec.visible = qty
            return True
        self._remove(rec)
        self._new_record(order_id, rec.is_buy, price, qty, rec.display, rec.account, rec.owner)
        return False

    cdef int _upsert(self, object order_id, object is_buy, object price, object qty) except -1:
        cdef PyObject* found = _dict_get(self.orders, order_id)
        cdef Rec rec
        cdef Level lvl
        cdef int outcome = 0
        cdef bint same_side
        if found != NULL:
            rec = <Rec>found
            old = rec.qty
            same_side = rec.is_buy is is_buy
            if same_side and price == rec.price and qty <= old:
                if qty < old:
                    rec.qty = qty
                    vis = rec.visible
                    if vis > qty:
                        lvl = <Level>rec.level
                        lvl.total = lvl.total - (vis - qty)
                        rec.visible = qty
                return 1  # KEPT
            outcome = 2 if same_side else 3  # REQUEUED / FLIPPED
            self._remove(rec)
        self._new_record(order_id, is_buy, price, qty, 0, None, None)
        return outcome

    def upsert(self, order_id, is_buy, price, qty) -> int:
        """See ``PyOrderBook.upsert``."""
        if price <= 0 or qty <= 0:
            raise ValueError(f"bad update of {order_id}: price {price}, qty {qty}")
        return self._upsert(order_id, is_buy, price, qty)


cdef inline bint _raw_c(object value, long long* out):
    """``bot4.sim.l3_feed.to_raw_exact`` in C for the common inputs: an int (Bitfinex
    sends whole prices as JSON integers, about half of all prices) below 9e9 is scaled
    in C (the product fits 63 bits); a float takes the shortcut (the proof is there):
    below 1e6 the nearest multiple of 1e-9 is the float's exact value iff it reads back.
    False: take the exact slow path (``convert``), which handles any int and refuses
    what it must."""
    cdef double x
    cdef long long k
    cdef int overflow = 0
    if type(value) is int:  # JSON integers (Bitfinex sends whole prices as ints): scale
        k = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow or not (-_INT_LIMIT < k < _INT_LIMIT):
            return False
        out[0] = k * 1000000000
        return True
    if type(value) is not float:
        return False
    x = PyFloat_AS_DOUBLE(value)
    if not (-1e6 < x < 1e6):
        return False
    k = llround(x * 1e9)
    if <double>k / 1e9 != x:
        return False
    out[0] = k
    return True


def apply_bitfinex(BookCore book, list messages, object convert, object other, object after,
                   list counters, object stats):
    """The Bitfinex R0 loop of ``BitfinexL3Feed.apply_all``, compiled.

    ``convert`` is the exact JSON number -> raw int conversion (``to_raw_exact``), for
    what the C shortcut does not cover; ``other(msg)`` handles a message that is not a
    single-order update.  ``counters`` (ADDED, KEPT, REQUEUED, FLIPPED, deletes,
    missed, crossed, locked, episodes, was_crossed) is updated in place at the end,
    ``stats.first_crossed_at`` when it happens, exactly as the pure loop does.
    """
    cdef Py_ssize_t i, n = PyList_GET_SIZE(messages)
    cdef long long added = 0, kept = 0, requeued = 0, flipped = 0
    cdef long long deletes = 0, missed = 0, crossed = 0, locked = 0, episodes = 0
    cdef bint was = counters[9]
    cdef bint cross_state = False
    cdef int outcome
    cdef long long kp, kq
    cdef object msg, body, oid, price, amount, p, q, is_buy, bid_top, ask_top
    cdef object last_bid = None, last_ask = None
    cdef PyObject* found
    cdef dict orders = book.orders
    cdef list bid_keys = book.bid_keys
    cdef list ask_keys = book.ask_keys
    cdef int gap_sign = -1  # of the last (bid_top, ask_top) pair seen
    for i in range(n):
        msg = <object>PyList_GET_ITEM(messages, i)
        body = None
        if type(msg) is list and PyList_GET_SIZE(<list>msg) >= 2:
            body = <object>PyList_GET_ITEM(<list>msg, 1)
        if type(body) is not list or PyList_GET_SIZE(<list>body) != 3 or type(
            <object>PyList_GET_ITEM(<list>body, 0)
        ) is list:
            other(msg)
        else:
            oid = <object>PyList_GET_ITEM(<list>body, 0)
            price = <object>PyList_GET_ITEM(<list>body, 1)
            amount = <object>PyList_GET_ITEM(<list>body, 2)
            if not price:
                deletes += 1
                found = _dict_get(orders, oid)
                if found == NULL:
                    missed += 1
                else:
                    book._remove(<Rec>found)
            else:
                if not _raw_c(price, &kp) or not _raw_c(amount, &kq):
                    kp = kq = 0
                    p = convert(price)
                    q = convert(amount)
                    if q > 0:
                        is_buy = True
                    else:
                        is_buy = False
                        q = -q
                    if p <= 0 or q <= 0:
                        raise ValueError(f"bad update of {oid}: price {p}, qty {q}")
                else:
                    if kq > 0:
                        is_buy = True
                    else:
                        is_buy = False
                        kq = -kq
                    if kp <= 0 or kq <= 0:
                        raise ValueError(f"bad update of {oid}: price {kp}, qty {kq}")
                    p = kp
                    q = kq
                outcome = book._upsert(oid, is_buy, p, q)
                if outcome == 0:
                    added += 1
                elif outcome == 1:
                    kept += 1
                elif outcome == 2:
                    requeued += 1
                else:
                    flipped += 1
        if PyList_GET_SIZE(bid_keys) and PyList_GET_SIZE(ask_keys):
            bid_top = _last(bid_keys)
            ask_top = _last(ask_keys)
            if bid_top is not last_bid or ask_top is not last_ask:
                last_bid, last_ask = bid_top, ask_top
                gap = bid_top + ask_top  # best bid - best ask
                gap_sign = 1 if gap > 0 else (0 if gap == 0 else -1)
            if gap_sign >= 0:
                if gap_sign:
                    crossed += 1
                else:
                    locked += 1
                if not was:
                    episodes += 1
                    was = True
                    if stats.first_crossed_at < 0:
                        stats.first_crossed_at = i
            else:
                was = False
        else:
            was = False
        if after is not None:
            after(i)
    counters[0] += added
    counters[1] += kept
    counters[2] += requeued
    counters[3] += flipped
    counters[4] += deletes
    counters[5] += missed
    counters[6] += crossed
    counters[7] += locked
    counters[8] += episodes
    counters[9] = was
