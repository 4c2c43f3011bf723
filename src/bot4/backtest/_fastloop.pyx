# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled per-bar loop of ``Backtest._run`` (see docs/backtest.md, "The compiled loop").

``BarLoop._bars`` is a line-for-line translation of the pure-Python loop in
``bot4.backtest.engine.Backtest._run``, which stays the reference (and the fallback
where this module is not built, or ``BOT4_PURE_SIM=1``): per bar, the clock moves to
the open, the venue works the bar if its reach says so, the clock moves to the close,
``risk.update_price_raw``, the indicators' ``update``/batch advances, the ``Bar``'s
fields, ``strategy.on_bar``, the timers, the equity point -- the same Python calls with
the same arguments in the same order.  ``tests/test_backtest_compiled.py`` runs both
loops on the same data and compares fills, trades, denials and every equity point.

What is cheaper here, and why it is the same:

* The chunk's columns are read through typed memoryviews instead of lists built by
  ``tolist()``: a float or int object is made for a bar's value when it is needed (the
  same value: ``tolist`` converts each element the same way).
* ``round(x * SCALE)`` (the venue's raw open/high/low) is CPython's own ``float.__round__``
  algorithm in C on the same double product (C ``round``, then half to even), and the
  venue's reach test compares those integers in C where both sides fit 64 bits (Python
  ints otherwise).  The extension is built with ``-ffp-contract=off`` so the compiler
  cannot fuse the product into a differently rounded operation.
* ``TestClock._now``, the ``Bar``'s fields and an indicator's ``previous``/``value``/
  ``count`` are ``__slots__`` members: where the object's class resolves the name to
  the very descriptor the offset was taken from, the pointer is written at that offset
  (what the descriptor itself does) instead of an attribute store; anything else (a
  subclass that redefines the name, a ``Bar`` without slots) goes through ``setattr``.
* The equity point is ``int / 1e18`` exactly as Python computes it (``float.__rtruediv__``
  converts the int with ``PyLong_AsDouble``, then one C division) and is stored in the
  float64 array without a float object (its time likewise).
* A ``Chunk`` holds one symbol's columns over a whole chunk of the engine's loop, and
  ``BarLoop.run`` takes the chunk's list of runs: where symbols alternate bar by bar
  (runs of one bar), nothing is sliced or converted per run.
"""

from libc.math cimport fabs, round as c_round
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from cpython.ref cimport PyObject
from bot4._slots cimport slot_get, slot_set


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL
    double PyLong_AsDouble(object o) except? -1.0
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1
    object PyLong_FromLongLong(long long v)
    object PyLong_FromDouble(double v)
    object PyFloat_FromDouble(double v)
    bint PyLong_CheckExact(object o)
    bint PyFloat_CheckExact(object o)

from bot4.core.clock import TestClock as _TestClock
from bot4.core.numbers import SCALE as _SCALE_OBJ
from bot4.strategy.base import Bar as _Bar
from bot4.strategy.indicators import Indicator as _Indicator

cdef double _SCALE = float(_SCALE_OBJ)  # 1e9: what ``x * SCALE`` converts the int to
cdef double _MONEY = 1e18  # ``float(10**18)``: the engine's money unit as a float
cdef object _MONEY_OBJ = float(10**18)
cdef double _TWO63 = 9223372036854775808.0


# -- __slots__ members written by offset ------------------------------------------------
cdef object _member(object cls, str name):
    """The class's own member descriptor for ``name``, or None if it is not a slot."""
    descr = cls.__dict__.get(name)
    if type(descr).__name__ != "member_descriptor":
        return None
    return descr


cdef Py_ssize_t _offset(object descr):
    return (<PyMemberDescrObject*>descr).d_member.offset if descr is not None else -1


cdef object _NOW_D = _member(_TestClock, "_now")
cdef Py_ssize_t _NOW = _offset(_NOW_D)
cdef tuple _BAR_FIELDS = ("ts_ns", "open", "high", "low", "close", "volume")
cdef list _BAR_D = [_member(_Bar, f) for f in _BAR_FIELDS]
cdef Py_ssize_t _B_TS = _offset(_BAR_D[0])
cdef Py_ssize_t _B_OPEN = _offset(_BAR_D[1])
cdef Py_ssize_t _B_HIGH = _offset(_BAR_D[2])
cdef Py_ssize_t _B_LOW = _offset(_BAR_D[3])
cdef Py_ssize_t _B_CLOSE = _offset(_BAR_D[4])
cdef Py_ssize_t _B_VOLUME = _offset(_BAR_D[5])
cdef object _PREV_D = _member(_Indicator, "previous")
cdef object _VALUE_D = _member(_Indicator, "value")
cdef object _COUNT_D = _member(_Indicator, "count")
cdef Py_ssize_t _PREV = _offset(_PREV_D)
cdef Py_ssize_t _VALUE = _offset(_VALUE_D)
cdef Py_ssize_t _COUNT = _offset(_COUNT_D)


cdef bint _resolves(object obj, str name, object descr):
    """Whether ``obj.name`` is the slot ``descr`` (so writing at its offset is exactly
    ``setattr``): the class resolves the name to that very descriptor."""
    return descr is not None and isinstance(obj, descr.__objclass__) and (
        getattr(type(obj), name, None) is descr
    )


def slots_in_use() -> dict:
    """Which members this module writes by offset (for the tests: a change to
    ``TestClock``, ``Bar`` or ``Indicator`` that drops a slot must be noticed)."""
    return {
        "TestClock._now": _NOW >= 0,
        **{f"Bar.{f}": d is not None for f, d in zip(_BAR_FIELDS, _BAR_D)},
        "Indicator.previous": _PREV >= 0,
        "Indicator.value": _VALUE >= 0,
        "Indicator.count": _COUNT >= 0,
    }


# -- numbers ------------------------------------------------------------------------------
cdef inline double _round_half_even(double x) noexcept:
    """CPython's ``float.__round__`` without digits, before the conversion to int:
    round half away from zero, then a half goes to the even neighbour."""
    cdef double r = c_round(x)
    if fabs(x - r) == 0.5:
        r = 2.0 * c_round(x / 2.0)
    return r


cdef inline bint _finite(double x) noexcept:
    return x - x == 0.0  # false for NaN and the infinities


cdef inline double _round_scaled(double x) except? -1.0:
    """``round(x * SCALE)`` as an integral double: the same product, CPython's
    rounding; NaN and the infinities raise what ``round`` raises."""
    cdef double p = x * _SCALE
    if not _finite(p):
        round(PyFloat_FromDouble(p))
    return _round_half_even(p)


cdef inline object _as_int(double r):
    """The Python int of an integral double (``PyLong_FromDouble``, which
    ``round`` uses; the 64-bit shortcut where it fits)."""
    if fabs(r) < _TWO63:
        return PyLong_FromLongLong(<long long>r)
    return PyLong_FromDouble(r)


cdef inline int _cmp_le(double r, object w) except -1:
    """``int(r) <= w`` for an integral double ``r`` and a Python object ``w``."""
    cdef int overflow = 0
    cdef long long v
    if PyLong_CheckExact(w) and fabs(r) < _TWO63:
        v = PyLong_AsLongLongAndOverflow(w, &overflow)
        if overflow == 0:
            return (<long long>r) <= v
        return overflow > 0
    return bool(_as_int(r) <= w)


cdef inline int _cmp_ge(double r, object w) except -1:
    """``int(r) >= w``, likewise."""
    cdef int overflow = 0
    cdef long long v
    if PyLong_CheckExact(w) and fabs(r) < _TWO63:
        v = PyLong_AsLongLongAndOverflow(w, &overflow)
        if overflow == 0:
            return (<long long>r) >= v
        return overflow < 0
    return bool(_as_int(r) >= w)


cdef inline double _per_money(object value) except? -1.0:
    """``value / float(10**18)`` as the pure loop computes it."""
    if PyLong_CheckExact(value):
        return PyLong_AsDouble(value) / _MONEY
    return <double>(value / _MONEY_OBJ)


cdef inline object _next_count(object count):
    """``count + 1``."""
    cdef int overflow = 0
    cdef long long v
    if PyLong_CheckExact(count):
        v = PyLong_AsLongLongAndOverflow(count, &overflow)
        if overflow == 0 and v < 9223372036854775807:
            return PyLong_FromLongLong(v + 1)
    return count + 1


def round_scaled(double x) -> int:
    """``round(x * SCALE)`` as the loop computes it (for the tests)."""
    return _as_int(_round_scaled(x))


def reaches(tuple working, double h_r, double lo_r) -> bool:
    """The loop's reach test of integral doubles (for the tests): ``working[2] or
    int(lo_r) <= working[0] or int(h_r) >= working[1]``."""
    return bool(working[2] or _cmp_le(lo_r, working[0]) or _cmp_ge(h_r, working[1]))


# -- the loop -------------------------------------------------------------------------------
cdef class Chunk:
    """One symbol's columns over a span of bars (a chunk of the engine's loop), with
    what its bars need besides: the exact raw closes (``np.rint(close * SCALE)`` as
    int64, computed by the engine as the pure loop does), the close times, and the
    values of its batch indicators over the same span.  Runs of bars index into it, so
    a run of one bar (symbols alternating) costs no new arrays."""

    cdef str sym
    cdef object bar
    cdef list updates, inds, keep
    cdef const int64_t[:] ts, c_raw, close_ts
    cdef const double[:] o, h, lo, c, v
    cdef const char** adv_data
    cdef Py_ssize_t* adv_stride
    cdef Py_ssize_t n_adv, n
    cdef readonly Py_ssize_t start  # the span's first bar in the series
    cdef bint bar_fast, adv_fast

    def __cinit__(self) -> None:
        self.adv_data = NULL
        self.adv_stride = NULL

    def __init__(
        self,
        str sym,
        object bar,
        list updates,
        list advances,
        Py_ssize_t start,
        const int64_t[:] ts,
        const double[:] o,
        const double[:] h,
        const double[:] lo,
        const double[:] c,
        const double[:] v,
        const int64_t[:] c_raw,
        const int64_t[:] close_ts,
    ) -> None:
        cdef Py_ssize_t n = ts.shape[0], j
        cdef const double[:] view
        if (
            o.shape[0] != n or h.shape[0] != n or lo.shape[0] != n or c.shape[0] != n
            or v.shape[0] != n or c_raw.shape[0] != n or close_ts.shape[0] != n
        ):
            raise ValueError("columns of different lengths")
        self.sym, self.bar, self.updates, self.start, self.n = sym, bar, updates, start, n
        self.ts, self.o, self.h, self.lo, self.c, self.v = ts, o, h, lo, c, v
        self.c_raw, self.close_ts = c_raw, close_ts
        self.bar_fast = type(bar) is _Bar and _B_TS >= 0 and _B_OPEN >= 0 and (
            _B_HIGH >= 0 and _B_LOW >= 0 and _B_CLOSE >= 0 and _B_VOLUME >= 0
        )
        self.inds = []
        self.keep = []  # the indicator values' buffers, alive while their pointers are
        self.adv_fast = True
        for ind, vals in advances:
            view = vals
            if view.shape[0] != n:
                raise ValueError("indicator values of another length")
            self.inds.append(ind)
            self.keep.append(view)
            self.adv_fast = self.adv_fast and (
                _resolves(ind, "previous", _PREV_D)
                and _resolves(ind, "value", _VALUE_D)
                and _resolves(ind, "count", _COUNT_D)
            )
        self.n_adv = len(self.inds)
        if self.n_adv and n:
            self.adv_data = <const char**>malloc(self.n_adv * sizeof(char*))
            self.adv_stride = <Py_ssize_t*>malloc(self.n_adv * sizeof(Py_ssize_t))
            if self.adv_data == NULL or self.adv_stride == NULL:
                raise MemoryError()
            for j in range(self.n_adv):
                view = self.keep[j]
                self.adv_data[j] = <const char*>&view[0]
                self.adv_stride[j] = view.strides[0]

    def __dealloc__(self) -> None:
        free(self.adv_data)
        free(self.adv_stride)


cdef class BarLoop:
    """The objects of one backtest run that every bar touches, bound once; ``run``
    works the runs of consecutive bars of one chunk of the engine's loop."""

    cdef object clock, reach, venue_bar, update_price, on_bar, risk, fire_timers, strategy
    cdef list timers
    cdef double[:] equity
    cdef int64_t[:] equity_ts
    cdef bint clock_fast
    cdef public double last_equity

    def __init__(
        self,
        clock: object,
        reach: dict,
        venue_bar: object,
        update_price: object,
        on_bar: object,
        risk: object,
        strategy: object,
        timers: list,
        fire_timers: object,
        double[:] equity,
        int64_t[:] equity_ts,
    ) -> None:
        if equity_ts.shape[0] != equity.shape[0]:
            raise ValueError("equity and its times of different lengths")
        self.clock = clock
        self.reach = reach
        self.venue_bar = venue_bar
        self.update_price = update_price
        self.on_bar = on_bar
        self.risk = risk
        self.strategy = strategy
        self.timers = timers
        self.fire_timers = fire_timers
        self.equity = equity
        self.equity_ts = equity_ts
        self.clock_fast = type(clock) is _TestClock and _NOW >= 0
        self.last_equity = 0.0

    def run(self, list runs, list chunks, Py_ssize_t done) -> int:
        """Each run ``(series index, first bar, end bar)`` in order, its bars read from
        ``chunks[series index]``; equity points (and their times) are written from
        ``done`` on.  Returns the new ``done``."""
        cdef Py_ssize_t sidx, i0, i1
        cdef Chunk ch
        cdef object item
        for item in runs:
            sidx, i0, i1 = item
            ch = chunks[sidx]
            if i0 < ch.start or i1 > ch.start + ch.n or i0 > i1:
                raise ValueError("a run outside its chunk")
            if done < 0 or done + (i1 - i0) > self.equity.shape[0]:
                raise ValueError("more bars than equity points")
            done = self._bars(ch, i0 - ch.start, i1 - ch.start, done)
        return done

    cdef Py_ssize_t _bars(self, Chunk ch, Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t done) except -1:
        """Bars ``k0 .. k1 - 1`` of the chunk: the pure loop's body, bar by bar."""
        cdef Py_ssize_t k, j
        cdef str sym = ch.sym
        cdef object bar = ch.bar
        cdef list updates = ch.updates, inds = ch.inds
        cdef Py_ssize_t n_adv = ch.n_adv
        cdef const char** adv_data = ch.adv_data
        cdef Py_ssize_t* adv_stride = ch.adv_stride
        cdef const int64_t[:] ts = ch.ts, c_raw = ch.c_raw, close_ts = ch.close_ts
        cdef const double[:] o = ch.o, h = ch.h, lo = ch.lo, c = ch.c, v = ch.v
        cdef bint bar_fast = ch.bar_fast, adv_fast = ch.adv_fast
        cdef object clock = self.clock, reach = self.reach, risk = self.risk
        cdef object update_price = self.update_price, on_bar = self.on_bar
        cdef object venue_bar = self.venue_bar
        cdef list timers = self.timers
        cdef double[:] equity = self.equity
        cdef int64_t[:] equity_ts = self.equity_ts
        cdef bint clock_fast = self.clock_fast
        cdef double last_equity = self.last_equity
        cdef double h_r, lo_r, o_r
        cdef PyObject* working
        cdef object w, ts_obj, close_obj, c_obj, update, ind, eq, value, x

        try:
            for k in range(k0, k1):
                ts_obj = PyLong_FromLongLong(ts[k])
                if clock_fast:  # the bar's open (monotonic: bars are time-ordered)
                    slot_set(clock, _NOW, ts_obj)
                else:
                    clock._now = ts_obj
                working = PyDict_GetItemWithError(reach, sym)
                if working != NULL:
                    w = <object>working
                    h_r = _round_scaled(h[k])
                    lo_r = _round_scaled(lo[k])
                    if w[2] or _cmp_le(lo_r, w[0]) or _cmp_ge(h_r, w[1]):
                        o_r = _round_scaled(o[k])
                        venue_bar(
                            sym,
                            _as_int(o_r),
                            _as_int(h_r),
                            _as_int(lo_r),
                            PyLong_FromLongLong(c_raw[k]),
                        )
                close_obj = PyLong_FromLongLong(close_ts[k])
                if clock_fast:
                    slot_set(clock, _NOW, close_obj)
                else:
                    clock._now = close_obj
                update_price(sym, PyLong_FromLongLong(c_raw[k]), close_obj)
                c_obj = PyFloat_FromDouble(c[k])
                for update in updates:
                    update(c_obj)
                if adv_fast:
                    for j in range(n_adv):
                        ind = inds[j]
                        slot_set(ind, _PREV, slot_get(ind, _VALUE))
                        x = PyFloat_FromDouble((<const double*>(adv_data[j] + k * adv_stride[j]))[0])
                        slot_set(ind, _VALUE, x)
                        slot_set(ind, _COUNT, _next_count(slot_get(ind, _COUNT)))
                else:
                    for j in range(n_adv):
                        ind = inds[j]
                        ind.previous = ind.value
                        ind.value = PyFloat_FromDouble(
                            (<const double*>(adv_data[j] + k * adv_stride[j]))[0]
                        )
                        ind.count += 1
                if bar_fast:
                    slot_set(bar, _B_TS, ts_obj)
                    slot_set(bar, _B_OPEN, PyFloat_FromDouble(o[k]))
                    slot_set(bar, _B_HIGH, PyFloat_FromDouble(h[k]))
                    slot_set(bar, _B_LOW, PyFloat_FromDouble(lo[k]))
                    slot_set(bar, _B_CLOSE, c_obj)
                    slot_set(bar, _B_VOLUME, PyFloat_FromDouble(v[k]))
                else:
                    bar.ts_ns = ts_obj
                    bar.open = PyFloat_FromDouble(o[k])
                    bar.high = PyFloat_FromDouble(h[k])
                    bar.low = PyFloat_FromDouble(lo[k])
                    bar.close = c_obj
                    bar.volume = PyFloat_FromDouble(v[k])
                on_bar(bar)
                if timers:
                    self.fire_timers(timers, close_obj, self.strategy)
                eq = risk._equity
                if eq is None or not risk._equity_ok:
                    value = risk.equity_money()
                    if value is not None:
                        last_equity = _per_money(value)
                else:
                    last_equity = _per_money(eq)
                equity[done] = last_equity
                equity_ts[done] = close_ts[k]  # each point is stamped at its close
                done += 1
        finally:
            self.last_equity = last_equity
        return done
