# cython: language_level=3, boundscheck=False
"""Compiled fast path of the matching engine (see docs/sim.md).

``FastEngine`` is the first base of the compiled ``bot4.sim.matching.MatchingEngine``;
the pure-Python ``PyMatchingEngine`` is the second.  ``submit`` and ``cancel`` here
handle the common requests -- limit orders (GTC/IOC) and market orders by quantity,
without stop price, iceberg, post-only or self-trade prevention, that pass every check
-- and hand everything else to the pure-Python methods *before changing anything*: a
request that might be refused, or that needs a rule not written here, takes the
reference code path, which raises the exact Binance error.  What is written here is a
line-for-line translation of ``matching.py``/``matching_core.py`` (validation order,
locks, fees, reports, trades); ``tests/test_sim_compiled.py`` drives this engine and the
pure-Python one with the same random streams and compares every report and balance.

Speed comes from the engine's state, ``SimOrder``, the symbol state (``SymbolCore``)
and the account state (``AccountCore``) being C structs (no attribute lookups); the
``__slots__`` of ``Balance``, ``Account``, ``FeeSchedule`` and ``TestClock`` read and
written by offset where the type is exact; requests read as the tuples they are;
reports built directly as tuples; fewer big-int products (one ``price x quantity`` per
order, the percent band as two bounds per last price); and the book's compiled methods
called in C.  Numbers stay Python ints: money is exact at any size, as in the pure
engine.
"""

cimport cython
from cpython.dict cimport PyDict_SetItem, PyDict_DelItem
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from cpython.object cimport PyTypeObject
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from bot4._slots cimport slot_get, slot_set

cdef extern from *:
    PyObject* _dict_setdefault "PyDict_SetDefault" (object d, object key,
                                                   object default) except NULL

from cpython.tuple cimport PyTuple_SET_ITEM

from bot4.sim._fastbook cimport BookCore, Level, Rec, _dict_get


cdef extern from "Python.h":
    Py_ssize_t Py_SIZE(object o)
    object _PyObject_GC_NewVar "(PyObject*)_PyObject_GC_NewVar" (PyTypeObject* cls,
                                                                 Py_ssize_t nitems)
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member

from collections import deque

from bot4.core.clock import TestClock as _TestClock
from bot4.core.enums import LiquiditySide, OrderSide, OrderType, TimeInForce
from bot4.core.numbers import SCALE as _SCALE_OBJ
from bot4.core.numbers import money_from_raw as _money_from_raw
from bot4.oms.account import Account as _Account
from bot4.oms.account import Balance as _Balance
from bot4.sim.fees import DAY_NS as _DAY_NS_OBJ
from bot4.sim.fees import FeeSchedule as _FeeSchedule
from bot4.sim.matching_types import (
    OPEN_STATUSES,
    ExecType,
    ExecutionReport,
    NewOrder,
    SelfTradePrevention,
    SimStatus,
    Trade,
)

cdef object SCALE = _SCALE_OBJ
cdef object DAY_NS = _DAY_NS_OBJ
cdef object _BUY = OrderSide.BUY
cdef object _SELL = OrderSide.SELL
cdef object _LIMIT = OrderType.LIMIT
cdef object _MARKET = OrderType.MARKET
cdef object _GTC = TimeInForce.GTC
cdef object _IOC = TimeInForce.IOC
cdef object _NEW = SimStatus.NEW
cdef object _PARTIAL = SimStatus.PARTIALLY_FILLED
cdef object _FILLED = SimStatus.FILLED
cdef object _EXPIRED = SimStatus.EXPIRED
cdef object _CANCELED = SimStatus.CANCELED
cdef object _IN_MATCH = SimStatus.EXPIRED_IN_MATCH
cdef object _NEW_EXEC = ExecType.NEW
cdef object _TRADE = ExecType.TRADE
cdef object _EXPIRED_EXEC = ExecType.EXPIRED
cdef object _CANCELED_EXEC = ExecType.CANCELED
cdef object _STP_NONE = SelfTradePrevention.NONE
cdef object _MAKER = LiquiditySide.MAKER
cdef object _TAKER = LiquiditySide.TAKER
cdef frozenset _OPEN = OPEN_STATUSES
assert _OPEN == frozenset((_NEW, _PARTIAL)), "_is_open below lists the open statuses"
cdef object _BIG_ID = 2 ** 62  # ids below format as C integers
cdef frozenset _TRIGGERED_TYPES = frozenset(t for t in OrderType if t.has_trigger)
cdef object _ExecutionReport = ExecutionReport
cdef object _Trade = Trade
cdef object _NewOrder = NewOrder
cdef object _popleft = deque.popleft  # called through the descriptor: no method lookup
cdef object _append = deque.append

# bound by ``bind`` (bot4.sim.matching), which imports after this module
cdef object _slow_submit = None
cdef object _slow_cancel = None


def bind(slow_submit: object, slow_cancel: object) -> None:
    """The pure-Python engine's ``submit``/``cancel``, for everything not handled here."""
    global _slow_submit, _slow_cancel
    _slow_submit, _slow_cancel = slow_submit, slow_cancel


# -- slots of other modules' classes, read and written in C ---------------------------------
# ``Balance.free``/``locked``, ``Account.balances`` and ``TestClock._now`` are ``__slots__``
# members: a pointer at a fixed offset in the object, which Python's own member
# descriptor reads and writes.  Where an object's type is exactly that class (checked at
# every use; anything else goes through ``getattr``/``setattr`` or the method), the fast
# path reads the pointer itself instead of an attribute lookup (type, MRO, descriptor)
# -- the same value, at a fraction of the cost.  The offsets come from the descriptors.
cdef Py_ssize_t _slot_offset(type cls, str name) except -1:
    """The offset of a ``__slots__`` member.  ImportError if ``name`` is not one (the
    module is then not used: ``bot4._compiled`` falls back to pure Python, and
    ``tests/test_sim_compiled.py`` fails, so the change cannot pass CI unnoticed)."""
    descr = cls.__dict__.get(name)
    if type(descr).__name__ != "member_descriptor":
        raise ImportError(f"{cls.__name__}.{name} is not a __slots__ member")
    return (<PyMemberDescrObject*>descr).d_member.offset


cdef Py_ssize_t _FREE = _slot_offset(_Balance, "free")
cdef Py_ssize_t _LOCKED = _slot_offset(_Balance, "locked")
cdef Py_ssize_t _BALANCES = _slot_offset(_Account, "balances")
cdef Py_ssize_t _NOW = _slot_offset(_TestClock, "_now")
cdef Py_ssize_t _FEE_CACHE = _slot_offset(_FeeSchedule, "_cache")
cdef Py_ssize_t _FEE_UNIT = _slot_offset(_FeeSchedule, "unit")
cdef Py_ssize_t _FEE_VOLUME = _slot_offset(_FeeSchedule, "_volume")
cdef Py_ssize_t _FEE_VOLUME_RATES = _slot_offset(_FeeSchedule, "volume_rates")


cdef extern from *:
    """
    /* An exact int's truth from its size field -- CPython 3.11's layout only (3.12
       keeps sign and size in lv_tag, where zero is not 0): elsewhere the generic test. */
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    #define BOT4_INT_NZ(o) (Py_SIZE(o) != 0)
    #else
    #define BOT4_INT_NZ(o) PyObject_IsTrue(o)
    #endif
    """
    int BOT4_INT_NZ(object o) except -1


cdef inline int _nz(object x) except -1:
    """``bool(x)``; for an exact int on CPython 3.11, its size field (0 iff it is zero)
    read in C."""
    if type(x) is int:
        return BOT4_INT_NZ(x)
    return bool(x)


cdef extern from *:
    """
    /* Exact small-int arithmetic for the fee (see _charge): a Python int of at most
       four 30-bit digits (< 2**120) read into a C __int128, and back.  CPython 3.11's
       int layout (sign in ob_size, 30-bit digits); other versions and builds take the
       Python path. */
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 \
        && PYLONG_BITS_IN_DIGIT == 30 && defined(__SIZEOF_INT128__)
    #define BOT4_I128 1
    static int bot4_digits(PyObject* o) {
        Py_ssize_t size = Py_SIZE(o);
        return (int)(size < 0 ? -size : size);
    }
    static __int128 bot4_i128(PyObject* o) {
        Py_ssize_t size = Py_SIZE(o), n = size < 0 ? -size : size, i;
        const digit* d = ((PyLongObject*)o)->ob_digit;
        unsigned __int128 v = 0;
        for (i = n - 1; i >= 0; --i) v = (v << PyLong_SHIFT) | d[i];
        return size < 0 ? -(__int128)v : (__int128)v;
    }
    static PyObject* bot4_from_i128(__int128 v) {
        /* past 64 bits: the 30-bit digits written straight into a new int */
        unsigned __int128 u, t;
        Py_ssize_t n = 0, i;
        PyLongObject* r;
        if (v >= LLONG_MIN && v <= LLONG_MAX) return PyLong_FromLongLong((long long)v);
        u = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
        for (t = u; t; t >>= PyLong_SHIFT) ++n;
        r = _PyLong_New(n);
        if (r == NULL) return NULL;
        for (i = 0; i < n; ++i) { r->ob_digit[i] = (digit)(u & PyLong_MASK); u >>= PyLong_SHIFT; }
        if (v < 0) Py_SET_SIZE(r, -n);
        return (PyObject*)r;
    }
    /* an exact int of at most four digits into *out (1), or 0 and *out untouched */
    static int bot4_small(PyObject* o, __int128* out) {
        if (!PyLong_CheckExact(o) || bot4_digits(o) > 4) return 0;
        *out = bot4_i128(o);
        return 1;
    }
    /* a + b / a - b into *r; 1 on overflow (then *r is not the result) */
    static int bot4_add_ovf(__int128 a, __int128 b, __int128* r) {
        return __builtin_add_overflow(a, b, r);
    }
    static int bot4_sub_ovf(__int128 a, __int128 b, __int128* r) {
        return __builtin_sub_overflow(a, b, r);
    }
    /* floor(a / b) for b > 0, as Python's // */
    static __int128 bot4_floordiv(__int128 a, __int128 b) {
        __int128 q = a / b;
        if (a % b != 0 && a < 0) q -= 1;
        return q;
    }
    #else
    #define BOT4_I128 0
    static int bot4_digits(PyObject* o) { (void)o; return 99; }
    static long long bot4_i128(PyObject* o) { (void)o; return 0; }
    static PyObject* bot4_from_i128(long long v) { return PyLong_FromLongLong(v); }
    static long long bot4_floordiv(long long a, long long b) { (void)b; return a; }
    static int bot4_small(PyObject* o, void* out) { (void)o; (void)out; return 0; }
    static int bot4_add_ovf(long long a, long long b, void* r) { (void)a; (void)b; (void)r; return 1; }
    static int bot4_sub_ovf(long long a, long long b, void* r) { (void)a; (void)b; (void)r; return 1; }
    #endif
    """
    ctypedef long long i128 "__int128"
    int BOT4_I128
    int bot4_digits(object o)
    i128 bot4_i128(object o)
    object bot4_from_i128(i128 v)
    i128 bot4_floordiv(i128 a, i128 b)
    bint bot4_small(object o, i128* out)
    bint bot4_add_ovf(i128 a, i128 b, i128* r)
    bint bot4_sub_ovf(i128 a, i128 b, i128* r)


cdef inline bint _c_add(i128* acc, object d) noexcept:
    """``acc += d`` in C where ``d`` is an exact int below 2**120 and the sum fits 128
    bits; False (``acc`` unchanged) otherwise: the caller then uses Python ints."""
    cdef i128 v, r
    if bot4_small(d, &v) and not bot4_add_ovf(acc[0], v, &r):
        acc[0] = r
        return True
    return False


cdef inline bint _c_sub(i128* acc, object d) noexcept:
    """``acc -= d``, as ``_c_add``."""
    cdef i128 v, r
    if bot4_small(d, &v) and not bot4_sub_ovf(acc[0], v, &r):
        acc[0] = r
        return True
    return False


@cython.auto_pickle(False)
cdef class SimBalance:
    """``oms.account.Balance`` (``free``, ``locked``, ``total``, ``repr``) for the
    compiled engine's accounts, with each amount in a C 128-bit integer.

    Every money update of the fast path (locks, releases, fills, fees) used to build a
    new Python int and free the old one; here it is a C addition.  Exactness is kept:
    an amount is held in C only while it is an exact int of at most four 30-bit digits
    (below 2**120) and its sums do not overflow 128 bits; anything else -- a larger
    int, another type, an overflow, or a CPython other than 3.11 -- is held as the
    Python object itself and updated with Python arithmetic, as ``Balance`` does.
    Reading ``free``/``locked`` gives an exact Python int (or that object): the
    exchange server, ``Account.snapshot()`` and the pure matching core see the same
    values as with ``Balance``."""

    cdef i128 f, l          # the amounts, unless f_big / l_big
    cdef object f_obj, l_obj  # the amounts that are not held in C
    cdef bint f_big, l_big

    def __init__(self, free=0, locked=0):
        self._put_free(free)
        self._put_locked(locked)

    cdef inline int _put_free(self, object v) except -1:
        if BOT4_I128 and bot4_small(v, &self.f):
            self.f_big = False
            self.f_obj = None
        else:
            self.f_big = True
            self.f_obj = v
        return 0

    cdef inline int _put_locked(self, object v) except -1:
        if BOT4_I128 and bot4_small(v, &self.l):
            self.l_big = False
            self.l_obj = None
        else:
            self.l_big = True
            self.l_obj = v
        return 0

    cdef inline object _free(self):
        return self.f_obj if self.f_big else bot4_from_i128(self.f)

    cdef inline object _locked(self):
        return self.l_obj if self.l_big else bot4_from_i128(self.l)

    cdef inline int add_free(self, object d) except -1:
        """``free += d``."""
        if self.f_big or not _c_add(&self.f, d):
            self._put_free(self._free() + d)
        return 0

    cdef inline int sub_free(self, object d) except -1:
        """``free -= d``."""
        if self.f_big or not _c_sub(&self.f, d):
            self._put_free(self._free() - d)
        return 0

    cdef inline int add_locked(self, object d) except -1:
        """``locked += d``."""
        if self.l_big or not _c_add(&self.l, d):
            self._put_locked(self._locked() + d)
        return 0

    cdef inline int sub_locked(self, object d) except -1:
        """``locked -= d``."""
        if self.l_big or not _c_sub(&self.l, d):
            self._put_locked(self._locked() - d)
        return 0

    cdef inline int short_of(self, object need) except -1:
        """``need > free``."""
        cdef i128 v
        if not self.f_big and bot4_small(need, &v):
            return v > self.f
        return need > self._free()

    @property
    def free(self):
        return self._free()

    @free.setter
    def free(self, value):
        self._put_free(value)

    @property
    def locked(self):
        return self._locked()

    @locked.setter
    def locked(self, value):
        self._put_locked(value)

    @property
    def total(self):
        return self._free() + self._locked()

    def __repr__(self):
        return f"Balance(free={_money_from_raw(self.free)}, locked={_money_from_raw(self.locked)})"

    def __reduce__(self):
        return SimBalance, (self.free, self.locked)


class SimAccount(_Account):
    """``oms.account.Account`` whose balances are ``SimBalance``s (built by
    ``balance``, which every path that creates a balance goes through)."""

    __slots__ = ()

    def balance(self, asset):
        bal = self.balances.get(asset)
        if bal is None:
            bal = self.balances[asset] = SimBalance()
        return bal


cdef object _SimAccount = SimAccount


cdef inline int _short(object bal, object need) except -1:
    """``need > bal.free`` (a missing balance holds 0)."""
    if type(bal) is SimBalance:
        return (<SimBalance>bal).short_of(need)
    return need > (_free(bal) if bal is not None else 0)


cdef inline object _free(object bal):
    """``bal.free``."""
    if type(bal) is _Balance:
        return slot_get(bal, _FREE)
    return bal.free


cdef inline int _move(object bal, object d_free, object d_locked) except -1:
    """``bal.free += d_free; bal.locked += d_locked`` (a zero leaves the field as is)."""
    if type(bal) is SimBalance:
        if _nz(d_free):
            (<SimBalance>bal).add_free(d_free)
        if _nz(d_locked):
            (<SimBalance>bal).add_locked(d_locked)
    elif type(bal) is _Balance:
        if _nz(d_free):
            slot_set(bal, _FREE, slot_get(bal, _FREE) + d_free)
        if _nz(d_locked):
            slot_set(bal, _LOCKED, slot_get(bal, _LOCKED) + d_locked)
    else:
        if d_free:
            bal.free = bal.free + d_free
        if d_locked:
            bal.locked = bal.locked + d_locked
    return 0


cdef inline int _sub(object bal, object d_free, object d_locked) except -1:
    """``bal.free -= d_free; bal.locked -= d_locked`` (a zero leaves the field as is):
    ``_move`` of the negated amounts without building them."""
    if type(bal) is SimBalance:
        if _nz(d_free):
            (<SimBalance>bal).sub_free(d_free)
        if _nz(d_locked):
            (<SimBalance>bal).sub_locked(d_locked)
    elif type(bal) is _Balance:
        if _nz(d_free):
            slot_set(bal, _FREE, slot_get(bal, _FREE) - d_free)
        if _nz(d_locked):
            slot_set(bal, _LOCKED, slot_get(bal, _LOCKED) - d_locked)
    else:
        if d_free:
            bal.free = bal.free - d_free
        if d_locked:
            bal.locked = bal.locked - d_locked
    return 0


cdef inline int _move_diff(object bal, object a, object b) except -1:
    """``bal.free += a - b``; on a ``SimBalance`` without building ``a - b``."""
    cdef i128 x, y, r
    if (type(bal) is SimBalance and not (<SimBalance>bal).f_big and bot4_small(a, &x)
            and bot4_small(b, &y) and not bot4_add_ovf((<SimBalance>bal).f, x - y, &r)):
        (<SimBalance>bal).f = r  # x - y cannot overflow: both are below 2**120
        return 0
    return _move(bal, a - b, 0)


cdef inline int _lock(object bal, object money) except -1:
    """``bal.free -= money; bal.locked += money``."""
    if type(bal) is SimBalance:
        (<SimBalance>bal).sub_free(money)
        (<SimBalance>bal).add_locked(money)
        return 0
    if type(bal) is _Balance and _nz(money):
        slot_set(bal, _FREE, slot_get(bal, _FREE) - money)
        slot_set(bal, _LOCKED, slot_get(bal, _LOCKED) + money)
        return 0
    return _move(bal, -money, money)


cdef inline int _unlock(object bal, object money) except -1:
    """``bal.free += money; bal.locked -= money``."""
    if type(bal) is SimBalance:
        (<SimBalance>bal).add_free(money)
        (<SimBalance>bal).sub_locked(money)
        return 0
    if type(bal) is _Balance and _nz(money):
        slot_set(bal, _FREE, slot_get(bal, _FREE) + money)
        slot_set(bal, _LOCKED, slot_get(bal, _LOCKED) - money)
        return 0
    return _move(bal, money, -money)


cdef int _unlock_c(object bal, i128 money) except -1:
    """``_unlock(bal, money)`` for an amount held in C (a non-zero one): on a
    ``SimBalance`` without building an int, where both sums fit."""
    cdef SimBalance b
    cdef i128 f, l
    if type(bal) is SimBalance:
        b = <SimBalance>bal
        if (not b.f_big and not b.l_big and not bot4_add_ovf(b.f, money, &f)
                and not bot4_sub_ovf(b.l, money, &l)):
            b.f = f
            b.l = l
            return 0
    return _unlock(bal, bot4_from_i128(money))


cdef inline object _now(object clock):
    """``clock.now_ns()``; a ``TestClock``'s time read from its slot."""
    if type(clock) is _TestClock:
        return slot_get(clock, _NOW)
    return clock.now_ns()


cdef inline tuple _alloc_tuple(object cls, Py_ssize_t n):
    """An empty instance of a named-tuple class (a tuple subclass without a dict),
    to be filled in place with ``_set`` -- every one of its ``n`` items, before
    anything else can see it: the memory is not zeroed.  ``tuple.__new__`` would
    build and copy a tuple.

    The tuple is never tracked by the garbage collector (``PyObject_GC_NewVar``
    leaves it untracked, where ``PyType_GenericAlloc`` would zero it and track it):
    reports and trades hold only ints, strs, None and enum members, so they can never
    be part of a reference cycle (CPython untracks plain tuples of such atoms the same
    way, and reports are by far the most numerous objects the engine allocates:
    tracking them made the collector cost a tenth of the engine's time)."""
    return <tuple>_PyObject_GC_NewVar(<PyTypeObject*>cls, n)


cdef inline void _set(tuple t, Py_ssize_t i, object value) noexcept:
    Py_INCREF(value)
    PyTuple_SET_ITEM(t, i, value)


@cython.no_gc
@cython.freelist(64)
cdef class SimOrder:
    """The engine's record of one order, as a C struct; the same fields, constructor
    and methods as ``bot4.sim.matching_types.PySimOrder`` (see there).

    Not tracked by the garbage collector (``no_gc``): an order refers to ints, strs,
    enum members and its two ``Balance`` objects, none of which refers back, so it
    can never be part of a cycle."""

    cdef public object order_id, client_order_id, account, symbol, side, order_type, tif
    cdef public object post_only, price, trigger, display, quote_qty, stp, orig_qty
    cdef public object executed, cum_quote, prevented, status, time, update_time
    cdef public object base_bal, quote_bal, lock_unit
    cdef public bint is_buy, working
    # ``locked_money`` (a property): in C while it is an exact int below 2**120, as
    # in ``SimBalance`` -- a release or a fill then reads and updates the order itself
    # instead of an int object of its own
    cdef i128 lm
    cdef object lm_obj
    cdef bint lm_big

    cdef inline int _put_lm(self, object v) except -1:
        if BOT4_I128 and bot4_small(v, &self.lm):
            self.lm_big = False
            self.lm_obj = None
        else:
            self.lm_big = True
            self.lm_obj = v
        return 0

    cdef inline object _lm(self):
        return self.lm_obj if self.lm_big else bot4_from_i128(self.lm)

    cdef inline int sub_lm(self, object d) except -1:
        """``locked_money -= d``."""
        if self.lm_big or not _c_sub(&self.lm, d):
            self._put_lm(self._lm() - d)
        return 0

    @property
    def locked_money(self):
        return self._lm()

    @locked_money.setter
    def locked_money(self, value):
        self._put_lm(value)

    def __init__(self, order_id, req, client_order_id, orig_qty, stp, now, base_bal,
                 quote_bal, lock_unit):
        self.order_id = order_id
        self.client_order_id = client_order_id
        self.account = req.account
        self.symbol = req.symbol
        self.side = req.side
        self.is_buy = req.side is _BUY
        self.order_type = req.order_type
        self.tif = req.time_in_force
        self.post_only = req.post_only
        self.price = req.price_raw
        self.trigger = req.trigger_raw
        self.display = req.display_qty_raw
        self.quote_qty = req.quote_qty_raw
        self.stp = stp
        self.orig_qty = orig_qty
        self.executed = 0
        self.cum_quote = 0
        self.prevented = 0
        self.status = _NEW
        self.time = now
        self.update_time = now
        self.working = req.order_type not in _TRIGGERED_TYPES
        self.base_bal = base_bal
        self.quote_bal = quote_bal
        self.lock_unit = lock_unit
        self._put_lm(0)

    @property
    def leaves_qty(self):
        if not self.status.is_open:
            return 0
        return self.orig_qty - self.executed - self.prevented

    def snapshot(self):
        return (
            self.order_id, self.client_order_id, self.account, self.symbol, self.side,
            self.order_type, self.tif, self.post_only, self.price, self.trigger,
            self.display, self.quote_qty, self.stp, self.orig_qty, self.executed,
            self.cum_quote, self.prevented, self.status, self.time, self.update_time,
            self.working, self.lock_unit, self._lm(),
        )

    def __repr__(self):
        return (
            f"SimOrder({self.order_id}, {self.client_order_id!r}, {self.account!r}, "
            f"{self.symbol}, {self.side}, {self.order_type}, price={self.price}, "
            f"qty={self.orig_qty}, executed={self.executed}, status={self.status})"
        )


cdef inline object _leaves(SimOrder o):
    """``o.orig_qty - o.executed - o.prevented``, without new ints while nothing has
    been executed or prevented (a passive order, a taker's first level), and one
    subtraction while nothing has been prevented (the fast path has no STP)."""
    if type(o.prevented) is int and not _nz(o.prevented):
        if type(o.orig_qty) is int and not _nz(o.executed):
            return o.orig_qty
        return o.orig_qty - o.executed  # (``x - 0`` would still build a new int)
    return o.orig_qty - o.executed - o.prevented


cdef class SymbolCore:
    """The fields of ``bot4.sim.matching_checks.SymbolState`` as a C struct (the
    compiled engine's ``SymbolState`` is ``class SymbolState(SymbolCore, SymbolChecks)``):
    the fast path reads them as C fields instead of attributes.  The filters come from
    the immutable ``Instrument`` and are read-only here."""

    cdef readonly object inst, symbol, base, quote, book
    cdef readonly object tick, step, min_qty, max_qty, min_notional, max_notional
    cdef readonly tuple pct_up, pct_down
    cdef public object last_price, trade_seq
    cdef public list stops_up, stops_down
    cdef object up_n, up_d, down_n, down_d
    cdef object band_last, band_hi, band_lo  # the percent band around band_last

    cdef int _set_band(self, object last) except -1:
        """The PERCENT_PRICE band as two integer bounds, computed once per last price:
        with positive denominators and integer prices, ``price * up_d > last * up_n``
        iff ``price > floor(last * up_n / up_d)``, and ``price * down_d < last * down_n``
        iff ``price < ceil(last * down_n / down_d)``."""
        self.band_hi = _mul(last, self.up_n) // self.up_d
        self.band_lo = -(-_mul(last, self.down_n) // self.down_d)
        self.band_last = last
        return 0

    def __init__(self, inst, book_class=None):
        if book_class is None:
            from bot4.sim.book import OrderBook as book_class
        self.inst = inst
        self.symbol = inst.symbol
        self.base = inst.base
        self.quote = inst.quote
        self.book = book_class(inst.symbol)
        self.last_price = 0
        self.trade_seq = 0
        self.stops_up = []
        self.stops_down = []
        self.tick = inst.tick_raw
        self.step = inst.step_raw
        self.min_qty = inst.min_qty_raw
        self.max_qty = inst.max_qty_raw
        self.min_notional = inst.min_notional_raw
        self.max_notional = inst.max_notional_raw
        self.pct_up = inst.percent_up.as_integer_ratio()
        self.pct_down = inst.percent_down.as_integer_ratio()
        self.up_n, self.up_d = self.pct_up
        self.down_n, self.down_d = self.pct_down


cdef class AccountCore:
    """``bot4.sim.matching_core.PyAccountState`` as a C struct: one account's balances
    (``account``, an ``oms.account.Account``), its open orders by client order id, its
    STP default and its (base, quote) ``Balance`` pair per symbol."""

    cdef public object account, stp
    cdef public dict open, balances
    cdef object key  # the account's name as first submitted (see FastEngine.submit)

    def __init__(self, stp):
        self.account = SimAccount()
        self.open = {}
        self.stp = stp
        self.balances = {}


cdef object _market_buy_cost(BookCore book, object qty):
    """``walk(st, True, 0, qty, account, NONE, 0)[1]``: what a market buy of ``qty``
    costs against the asks as they stand (no self-trade prevention, no budget: the
    only case the fast path takes), hidden iceberg quantity included."""
    cdef list keys = book.ask_keys
    cdef dict levels = book.asks
    cdef Py_ssize_t i
    rem = qty
    cost = 0
    for i in range(PyList_GET_SIZE(keys) - 1, -1, -1):
        price = -(<object>PyList_GET_ITEM(keys, i))
        avail = 0
        for r in (<Level>levels[price]).queue:
            avail = avail + (<Rec>r).qty  # dead records hold 0
            if avail >= rem:
                break
        take = rem if rem < avail else avail
        cost = cost + _mul(take, price)
        rem = rem - take
        if not rem:
            break
    return cost


cdef inline bint _is_open(object status) noexcept:
    """``status in OPEN_STATUSES`` without hashing (an enum's hash is Python code)."""
    return status is _NEW or status is _PARTIAL




cdef extern from *:
    """
    /* "sim-<v>" for v > 0, built in place (one allocation, no formatting calls) */
    static PyObject* bot4_sim_id(long long v) {
        char digits[24];
        int k = 0, i;
        PyObject* s;
        Py_UCS1* d;
        while (v > 0) { digits[k++] = (char)('0' + v % 10); v /= 10; }
        s = PyUnicode_New(4 + k, 127);
        if (s == NULL) return NULL;
        d = PyUnicode_1BYTE_DATA(s);
        d[0] = 's'; d[1] = 'i'; d[2] = 'm'; d[3] = '-';
        for (i = 0; i < k; ++i) d[4 + i] = (Py_UCS1)digits[k - 1 - i];
        return s;
    }
    """
    object bot4_sim_id(long long v)


cdef inline object _charge(object amount, object num, object den, object unit):
    """``FeeSchedule.charge``.  Where every operand is an int below 2**120 and the
    products stay below 2**120 (four 30-bit digits between the factors), it is
    computed in C 128-bit integers -- exactly the same operations, floor division
    included -- instead of big-int objects; anything else in Python ints."""
    cdef i128 a, n, d, fee
    if (BOT4_I128 and type(amount) is int and type(num) is int and type(den) is int
            and type(unit) is int and bot4_digits(amount) + bot4_digits(num) <= 4
            and bot4_digits(den) + bot4_digits(unit) <= 4):
        a = bot4_i128(amount)
        n = bot4_i128(num)
        d = bot4_i128(den) * bot4_i128(unit)
        if d > 0:
            if n >= 0:
                fee = -bot4_floordiv(-a * n, d) * bot4_i128(unit)
                return bot4_from_i128(fee if fee <= a else a)
            return bot4_from_i128(-bot4_floordiv(a * -n, d) * bot4_i128(unit))
    return _charge_py(amount, num, den, unit)


cdef object _charge_py(object amount, object num, object den, object unit):
    """``FeeSchedule.charge`` in Python ints (any size)."""
    cdef object fee
    if num >= 0:
        fee = -(-amount * num // (den * unit)) * unit
        return fee if fee <= amount else amount
    return -(amount * -num // (den * unit)) * unit


cdef inline object _mul(object a, object b):
    """``a * b``; in C 128-bit integers where both are exact ints whose digits total
    at most four (so the product is below 2**120): a notional (price x quantity,
    about 2**74 here) is a multi-digit product, which Python's int multiplication
    computes through its general (Karatsuba) entry point."""
    if (BOT4_I128 and type(a) is int and type(b) is int
            and bot4_digits(a) + bot4_digits(b) <= 4):
        return bot4_from_i128(bot4_i128(a) * bot4_i128(b))
    return a * b


def sim_id_for_tests(long long oid):
    """The fast path's generated client order id for ``oid`` (> 0), for the test."""
    return bot4_sim_id(oid)


def balance_ops_for_tests(bal, list ops):
    """Apply ``(op, a, b)`` steps to ``bal`` through the fast path's money helpers
    (``"move"``/``"sub"``: ``a`` to free, ``b`` to locked; ``"diff"``: ``a - b`` to
    free; ``"lock"``/``"unlock"``:
    ``a``; ``"short"``: is ``a`` more than free), for the property test; returns each
    step's ``(free, locked)``, or the ``short`` answer."""
    out = []
    for op, a, b in ops:
        if op == "move":
            _move(bal, a, b)
        elif op == "sub":
            _sub(bal, a, b)
        elif op == "diff":
            _move_diff(bal, a, b)
        elif op == "lock":
            _lock(bal, a)
        elif op == "unlock":
            _unlock(bal, a)
        else:
            out.append(bool(_short(bal, a)))
            continue
        out.append((bal.free, bal.locked))
    return out


def mul_for_tests(a, b):
    """``_mul``, for the property test."""
    return _mul(a, b)


def charge_for_tests(amount, num, den, unit):
    """``_charge`` and its Python-int path, for the property test."""
    return _charge(amount, num, den, unit), _charge_py(amount, num, den, unit)


cdef class FastEngine:
    """The engine's state as C fields, and the compiled ``submit``/``cancel``."""

    cdef public dict symbols, accounts, orders, open_orders, _client_ids, fees_collected
    cdef public list trades
    cdef public object fees, clock, default_stp, iceberg_parts, _next_id, _seq
    cdef public bint retain_closed, record_trades
    cdef object _day_now, _day  # the last ``now // DAY_NS`` computed, and its ``now``

    # -- the commands ----------------------------------------------------------------------
    def submit(self, req):
        """``PyMatchingEngine.submit``; the common case compiled, the rest there."""
        cdef tuple r
        cdef PyObject* found
        cdef bint is_buy, priced
        cdef SymbolCore st
        cdef AccountCore acct
        if type(req) is not _NewOrder:
            return _slow_submit(self, req)
        r = <tuple>req
        account, symbol, side, otype, qty, price, trig, tif, post_only, display, cid, stp, \
            quote_qty = r
        found = _dict_get(self.symbols, symbol)
        if found == NULL or not isinstance(<object>found, SymbolCore):
            return _slow_submit(self, req)
        st = <SymbolCore>found
        found = _dict_get(self.accounts, account)
        if found == NULL or not isinstance(<object>found, AccountCore):
            return _slow_submit(self, req)
        acct = <AccountCore>found
        # The account's and the symbol's names as one string object each from here on
        # (equal strings; a parsed request brings new ones every time): the later
        # lookups by them -- fee cache and volume, the account on close -- then match
        # by identity instead of comparing characters.
        if type(account) is str:
            if acct.key is None:
                acct.key = account
            elif acct.key is not account and acct.key == account:
                account = acct.key
        if symbol is not st.symbol and type(symbol) is str and symbol == st.symbol:
            symbol = st.symbol
        book = st.book
        if (_nz(trig) or _nz(display) or _nz(quote_qty) or _nz(post_only)
                or not isinstance(book, BookCore)):
            return _slow_submit(self, req)
        if stp is None:
            stp = acct.stp
        if stp is not _STP_NONE:
            return _slow_submit(self, req)
        if side is _BUY:
            is_buy = True
        elif side is _SELL:
            is_buy = False
        else:
            return _slow_submit(self, req)
        if tif is not _GTC and tif is not _IOC:
            return _slow_submit(self, req)
        if otype is _LIMIT:
            if price <= 0:
                return _slow_submit(self, req)
            priced = True
        elif otype is _MARKET:
            if price:
                return _slow_submit(self, req)
            priced = False
        else:
            return _slow_submit(self, req)
        if qty <= 0:
            return _slow_submit(self, req)
        open_of = acct.open
        if cid and cid in open_of:
            return _slow_submit(self, req)

        # -- filters, as matching_checks.validate writes them out
        last = st.last_price
        if priced and _nz(price % st.tick):
            return _slow_submit(self, req)
        max_qty = st.max_qty
        if _nz(qty % st.step) or qty < st.min_qty or (_nz(max_qty) and qty > max_qty):
            return _slow_submit(self, req)
        if priced or _nz(last):
            notional = _mul(price if priced else last, qty)
            max_notional = st.max_notional
            if notional < st.min_notional or (_nz(max_notional) and notional > max_notional):
                return _slow_submit(self, req)
        if priced and _nz(last):
            if last is not st.band_last and last != st.band_last:
                st._set_band(last)  # (a buy's trades leave a new int of the same price)
            if price > st.band_hi or price < st.band_lo:
                return _slow_submit(self, req)

        # -- funds
        account_obj = acct.account
        balances = slot_get(account_obj, _BALANCES) if (
            type(account_obj) is _SimAccount or type(account_obj) is _Account
        ) else account_obj.balances
        # the (base, quote) pair the account keeps for this symbol holds the very
        # ``Balance`` objects of ``balances`` (both come from ``Account.balance``):
        # one lookup instead of two where it exists
        pair = acct.balances.get(st.symbol)
        if is_buy:
            if priced:
                need, unit = notional, price  # price * qty, from the filter above
            else:
                need, unit = _market_buy_cost(<BookCore>book, qty), 0
            bal = (<tuple>pair)[1] if pair is not None else balances.get(st.quote)
        else:
            need, unit = _mul(qty, SCALE), SCALE
            bal = (<tuple>pair)[0] if pair is not None else balances.get(st.base)
        if _short(bal, need):
            return _slow_submit(self, req)

        # -- accepted: as PyMatchingEngine.submit
        now = _now(self.clock)
        oid = self._next_id
        self._next_id = oid + 1
        cdef bint generated = not cid
        if generated:  # made unique among the account's open orders below, on insert
            cid = bot4_sim_id(<long long>oid) if 0 < oid < _BIG_ID else f"sim-{oid}"
        if pair is None:
            pair = acct.balances[st.symbol] = (
                acct.account.balance(st.base),
                acct.account.balance(st.quote),
            )
        base_bal, quote_bal = pair
        cdef SimOrder o = SimOrder.__new__(SimOrder)
        o.order_id = oid
        o.client_order_id = cid
        o.account = account
        o.symbol = symbol
        o.side = side
        o.is_buy = is_buy
        o.order_type = otype
        o.tif = tif
        o.post_only = post_only
        o.price = price
        o.trigger = trig
        o.display = display
        o.quote_qty = quote_qty
        o.stp = stp
        o.orig_qty = qty
        o.executed = 0
        o.cum_quote = 0
        o.prevented = 0
        o.status = _NEW
        o.time = now
        o.update_time = now
        o.working = True
        o.base_bal = base_bal
        o.quote_bal = quote_bal
        o.lock_unit = unit
        o._put_lm(0)
        if _nz(unit):
            lock = need  # qty * unit: price * qty for a buy, qty * SCALE for a sell
            bal = quote_bal if is_buy else base_bal
            _lock(bal, lock)
            o._put_lm(lock)
        if generated:
            # ``while cid in open_of: cid += "x"``, then the insert: one lookup a try
            while _dict_setdefault(open_of, cid, o) != <PyObject*>o:
                cid += "x"
            o.client_order_id = cid
        else:
            PyDict_SetItem(open_of, cid, o)
        PyDict_SetItem(self.open_orders, oid, o)
        if self.retain_closed:
            self.orders[oid] = o
            self._client_ids[account, cid] = oid
        cdef list out = [self._report(o, _NEW_EXEC, now, 0, 0, -1, 0, "", None)]
        seq = st.trade_seq
        self._execute(st, <BookCore>book, o, now, out)
        if st.trade_seq != seq and (st.stops_up or st.stops_down):
            self._run_stops(st, now, out)
        return out

    def cancel(self, account, symbol, order_id=None, client_order_id=""):
        """``PyMatchingEngine.cancel``; a cancel by order id of a resting order compiled,
        the rest (client ids, parked stops, every refusal) there."""
        cdef PyObject* found
        cdef SimOrder o
        cdef SymbolCore st
        if order_id is None or client_order_id:
            return _slow_cancel(self, account, symbol, order_id, client_order_id)
        found = _dict_get(self.symbols, symbol)
        if (found == NULL or not isinstance(<object>found, SymbolCore)
                or _dict_get(self.accounts, account) == NULL):
            return _slow_cancel(self, account, symbol, order_id, client_order_id)
        st = <SymbolCore>found
        found = _dict_get(self.open_orders, order_id)
        if found == NULL or type(<object>found) is not SimOrder:
            return _slow_cancel(self, account, symbol, order_id, client_order_id)
        o = <SimOrder>found
        book = st.book
        if (not o.working or o.account != account or o.symbol != symbol
                or not isinstance(book, BookCore)):
            return _slow_cancel(self, account, symbol, order_id, client_order_id)
        now = _now(self.clock)
        (<BookCore>book)._remove(<Rec>(<BookCore>book).orders[o.order_id])
        self._release(o)
        o.status = _CANCELED
        o.update_time = now
        self._close(o)
        return [self._report(o, _CANCELED_EXEC, now, 0, 0, -1, 0, "", None)]

    # -- internals (matching_core.MatchingCore, translated) --------------------------------
    cdef tuple _report(self, SimOrder o, object exec_type, object now, object last_qty,
                       object last_price, object trade_id, object fee, object fee_asset,
                       object liquidity):
        seq = self._seq + 1
        self._seq = seq
        cdef tuple t = _alloc_tuple(_ExecutionReport, 27)
        _set(t, 0, seq)
        _set(t, 1, now)
        _set(t, 2, exec_type)
        _set(t, 3, o.status)
        _set(t, 4, o.account)
        _set(t, 5, o.symbol)
        _set(t, 6, o.order_id)
        _set(t, 7, o.client_order_id)
        _set(t, 8, o.side)
        _set(t, 9, o.order_type)
        _set(t, 10, o.post_only)
        _set(t, 11, o.tif)
        _set(t, 12, o.price)
        _set(t, 13, o.trigger)
        _set(t, 14, o.orig_qty)
        _set(t, 15, o.executed)
        _set(t, 16, o.cum_quote)
        _set(t, 17, o.prevented)
        _set(t, 18, last_qty)
        _set(t, 19, last_price)
        _set(t, 20, trade_id)
        _set(t, 21, fee)
        _set(t, 22, fee_asset)
        _set(t, 23, liquidity)
        _set(t, 24, 0)
        _set(t, 25, 0)
        _set(t, 26, "")
        return t

    cdef int _release(self, SimOrder o) except -1:
        if o.lm_big:
            money = o.lm_obj
            if _nz(money):
                _unlock(o.quote_bal if o.is_buy else o.base_bal, money)
                o._put_lm(0)
        elif o.lm != 0:
            _unlock_c(o.quote_bal if o.is_buy else o.base_bal, o.lm)
            o.lm = 0
        return 0

    cdef int _close(self, SimOrder o) except -1:
        PyDict_DelItem(self.open_orders, o.order_id)
        acct = self.accounts[o.account]
        if isinstance(acct, AccountCore):
            PyDict_DelItem((<AccountCore>acct).open, o.client_order_id)
        else:
            del acct.open[o.client_order_id]
        return 0

    cdef int _finish(self, SimOrder o, object status, object now, list out) except -1:
        self._release(o)
        o.status = status
        o.update_time = now
        self._close(o)
        out.append(self._report(o, _EXPIRED_EXEC, now, 0, 0, -1, 0, "", None))
        return 0

    cdef int _execute(self, SymbolCore st, BookCore book, SimOrder o, object now,
                       list out) except -1:
        cdef bint crosses
        cdef list keys
        price = o.price
        if not _nz(price):
            self._take(st, book, o, 0, now, out)
            if _is_open(o.status):
                self._finish(o, _EXPIRED, now, out)
            return 0
        if o.is_buy:
            keys = book.ask_keys
            crosses = PyList_GET_SIZE(keys) and -(<object>PyList_GET_ITEM(
                keys, PyList_GET_SIZE(keys) - 1)) <= price
        else:
            keys = book.bid_keys
            crosses = PyList_GET_SIZE(keys) and (<object>PyList_GET_ITEM(
                keys, PyList_GET_SIZE(keys) - 1)) >= price
        if crosses:
            self._take(st, book, o, price, now, out)
            if not _is_open(o.status):
                return 0
        if o.tif is _GTC:
            leaves = _leaves(o)
            book._new_record(o.order_id, o.is_buy, price, leaves, o.display, o.account, o)
        else:
            self._finish(o, _EXPIRED, now, out)
        return 0

    cdef int _take(self, SymbolCore st, BookCore book, SimOrder o, object limit, object now,
                    list out) except -1:
        """``MatchingCore._take`` for a taker without self-trade prevention."""
        cdef dict levels
        cdef list keys
        cdef Level lvl
        cdef Rec rec
        cdef bint is_buy = o.is_buy
        cdef SimOrder maker
        if is_buy:
            levels, keys = book.asks, book.ask_keys
        else:
            levels, keys = book.bids, book.bid_keys
        rem = _leaves(o)
        while _nz(rem) and PyList_GET_SIZE(keys):
            top = <object>PyList_GET_ITEM(keys, PyList_GET_SIZE(keys) - 1)
            price = -top if is_buy else top
            if _nz(limit) and (price > limit if is_buy else price < limit):
                break
            lvl = <Level>levels[price]
            queue = lvl.queue
            while _nz(rem):
                rec = <Rec>queue[0]
                mq = rec.qty
                if not _nz(mq):
                    _popleft(queue)
                    continue
                maker = <SimOrder?>rec.owner
                vis = rec.visible
                fill = rem if rem < vis else vis
                rem -= fill
                mq -= fill
                vis -= fill
                rec.qty = mq
                lvl.total = lvl.total - fill
                self._trade(st, o, maker, price, fill, mq, now, out)
                if _nz(vis):
                    rec.visible = vis
                    continue
                _popleft(queue)
                if _nz(mq):  # iceberg: the next slice queues at the back
                    vis = rec.display if rec.display < mq else mq
                    rec.visible = vis
                    lvl.total = lvl.total + vis
                    _append(queue, rec)
                    continue
                rec.visible = 0
                lvl.count -= 1
                PyDict_DelItem(book.orders, maker.order_id)
                self._close(maker)
                if not lvl.count:
                    break
            if not lvl.count:
                book._drop_level(lvl)
            if o.status is _IN_MATCH:
                return 0
        return 0

    cdef int _trade(self, SymbolCore st, SimOrder taker, SimOrder maker, object price,
                     object qty, object maker_left, object now, list out) except -1:
        notional = _mul(price, qty)
        base_money = _mul(qty, SCALE)
        if now is not self._day_now:  # a multi-digit division, once per clock value
            self._day = now // DAY_NS
            self._day_now = now
        day = self._day
        tid = st.trade_seq + 1
        st.trade_seq = tid
        st.last_price = price
        fees = self.fees
        self._settle(fees, st, maker, True, price, qty, notional, base_money, day,
                     maker_left, tid, now, out)
        self._settle(fees, st, taker, False, price, qty, notional, base_money, day,
                     0, tid, now, out)
        if not _is_open(taker.status):
            self._release(taker)
            self._close(taker)
        if self.record_trades:
            t = _alloc_tuple(_Trade, 11)
            _set(t, 0, tid)
            _set(t, 1, st.symbol)
            _set(t, 2, price)
            _set(t, 3, qty)
            _set(t, 4, notional)
            _set(t, 5, now)
            _set(t, 6, taker.side)
            _set(t, 7, maker.order_id)
            _set(t, 8, taker.order_id)
            _set(t, 9, maker.account)
            _set(t, 10, taker.account)
            self.trades.append(t)
        return 0

    cdef int _settle(self, object fees, SymbolCore st, SimOrder o, bint is_maker, object price,
                      object qty, object notional, object base_money, object day,
                      object maker_left, object tid, object now, list out) except -1:
        """One side of ``MatchingCore._trade``: balances, locks, fee, order, report."""
        account = o.account
        cdef bint plain = type(fees) is _FeeSchedule
        cdef PyObject* found
        cdef tuple rates
        if plain:  # FeeSchedule.rates' cache hit, inlined
            found = _dict_get(<dict>slot_get(fees, _FEE_CACHE), account)
            if found != NULL and (<tuple>found)[0] == day:
                rates = <tuple>(<tuple>found)[1]
            else:
                rates = fees.rates(account, day)
            unit = slot_get(fees, _FEE_UNIT)
        else:
            rates = fees.rates(account, day)
            unit = fees.unit
        if is_maker:
            num, den = rates[0], rates[1]
        else:
            num, den = rates[2], rates[3]
        qb = o.quote_bal
        bb = o.base_bal
        lock_unit = o.lock_unit
        if o.is_buy:
            if _nz(lock_unit):
                # qty * lock_unit; a maker always trades at its own (locked) price
                release = notional if lock_unit == price else _mul(qty, lock_unit)
                o.sub_lm(release)
                if release is not notional:
                    _move_diff(qb, release, notional)
                _sub(qb, 0, release)
            else:
                _sub(qb, notional, 0)
            if num >= 0:
                fee = _charge(base_money, num, den, unit)
                fee_asset = st.base
                _move_diff(bb, base_money, fee)
            else:
                fee = _charge(notional, num, den, unit)
                fee_asset = st.quote
                _move(bb, base_money, 0)
                _sub(qb, fee, 0)
        else:
            if _nz(lock_unit):
                o.sub_lm(base_money)
                _sub(bb, 0, base_money)
            else:
                _sub(bb, base_money, 0)
            fee = _charge(notional, num, den, unit)
            fee_asset = st.quote
            _move_diff(qb, notional, fee)
        if _nz(fee):
            collected = self.fees_collected
            found = _dict_get(collected, fee_asset)
            PyDict_SetItem(collected, fee_asset, fee if found == NULL else <object>found + fee)
        if plain and slot_get(fees, _FEE_VOLUME_RATES) is None:  # FeeSchedule.record
            # inlined; its back-dating check cannot fire here: the rates lookup above
            # left (day, rates) in the cache for this account
            volume = <dict>slot_get(fees, _FEE_VOLUME)
            found = _dict_get(volume, account)
            if found == NULL:
                days = {}
                PyDict_SetItem(volume, account, days)
            else:
                days = <dict>found
            found = _dict_get(days, day)
            PyDict_SetItem(days, day, notional if found == NULL else <object>found + notional)
        else:
            fees.record(account, st.quote, notional, day)
        o.executed = o.executed + qty
        o.cum_quote = o.cum_quote + notional
        left = maker_left if is_maker else _leaves(o)
        o.status = _PARTIAL if _nz(left) else _FILLED
        o.update_time = now
        out.append(self._report(o, _TRADE, now, qty, price, tid, fee, fee_asset,
                                _MAKER if is_maker else _TAKER))
        return 0
