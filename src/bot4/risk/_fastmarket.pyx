# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, binding=False
"""Compiled core of the risk engine's market state (see docs/risk.md).

``MarketCore`` holds what ``bot4.risk.market.PyMarketState`` holds and its ``update``,
``variance`` and ``samples`` are line-for-line translations of the pure ones, with the
float operations in the same order, so every sample, return and variance is the same
double; ``tests/test_risk_market_compiled.py`` drives both with the same random streams
and compares them bit for bit.  The read side (``returns``, ``covariance``) is shared
Python (``market.MarketStatistics``).

Where the time goes in the pure class, and what replaces it here: every bar of a
backtest crosses a grid boundary and appends each symbol's price to a ``deque`` (one
interpreted loop per bar), and a pre-trade VaR check folds the returns since the last
check in an interpreted loop (``log``, a division, two sums, a deque per return).  Here
a symbol's sampled prices are a C array of doubles and the fold a C loop with libm's
``log`` -- the function ``math.log`` calls.

Exactness: a price is kept as a double only when it is an exact ``int`` with
``0 < p < 2**53``.  Such an int is exactly a double, and CPython's ``b / a`` of two of
them is the C division of the two doubles (``long_true_divide``'s fast path; above
2**53 it is the correctly rounded quotient, which the doubles no longer give), so
``log(b / a)`` here is ``math.log(b / a)`` there.  Any other price (a bigger int, zero, a
negative, another type) is kept as the object itself and its returns are computed by
the same Python expression the pure class runs -- same value, same exception.  The C
code must be compiled without floating-point contraction (``-ffp-contract=off`` in
setup.py): an ``r * r`` fused into an add would round differently.
"""

cimport cython
from cpython.dict cimport PyDict_Next, PyDict_SetItem
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM
from cpython.ref cimport PyObject
from libc.math cimport log
from libc.stdlib cimport free, realloc
from libc.string cimport memmove

import math

cdef extern from "Python.h":
    bint PyLong_CheckExact(object o)
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL

cdef extern from *:
    """
    /* An exact int into a C long long: *out and 1, or 0 if it does not fit.  On
       CPython 3.11 (sign in ob_size, 30-bit digits) ints of up to three digits below
       2**63 are read from their digits -- a time stamp in ns has three, a raw price two;
       anything else, and every other version, through PyLong_AsLongLongAndOverflow
       (which never fails for an exact int). */
    static int bot4m_ll(PyObject* o, long long* out) {
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 \
        && PYLONG_BITS_IN_DIGIT == 30
        Py_ssize_t size = Py_SIZE(o), n = size < 0 ? -size : size;
        const digit* d = ((PyLongObject*)o)->ob_digit;
        unsigned long long u;
        if (n <= 3) {
            if (n == 0) u = 0;
            else if (n == 1) u = d[0];
            else if (n == 2) u = ((unsigned long long)d[1] << 30) | d[0];
            else if (d[2] < 8) u = ((unsigned long long)d[2] << 60)
                                   | ((unsigned long long)d[1] << 30) | d[0];
            else return 0;
            *out = size < 0 ? -(long long)u : (long long)u;
            return 1;
        }
    #endif
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow) return 0;
        *out = v;
        return 1;
    }
    """
    bint bot4m_ll(object o, long long* out) noexcept

cdef object _math_log = math.log
cdef long long _EXACT = 1LL << 53  # ints below this are exact doubles, and b / a is C's


cdef struct Ring:
    # values[start:end] in a growing array; appends at the end, drops from the start,
    # compacted (memmove) when the end is reached with at most half the array in use,
    # so both are O(1) amortised and a window's values are contiguous for the C loop
    double* buf
    Py_ssize_t start
    Py_ssize_t end
    Py_ssize_t cap


cdef int _push(Ring* r, double value) except -1:
    cdef Py_ssize_t n, cap
    cdef double* buf
    if r.end == r.cap:
        n = r.end - r.start
        if r.start > 0 and 2 * n <= r.cap:
            memmove(r.buf, r.buf + r.start, n * sizeof(double))
        else:
            cap = 2 * r.cap if r.cap else 8
            buf = <double*>realloc(r.buf, cap * sizeof(double))
            if buf == NULL:
                raise MemoryError()
            if r.start > 0:
                memmove(buf, buf + r.start, n * sizeof(double))
            r.buf = buf
            r.cap = cap
        r.start = 0
        r.end = n
    r.buf[r.end] = value
    r.end += 1
    return 0


@cython.final
cdef class _Series:
    """One symbol's sampled prices (the last ``window + 1``) and its rolling moments:
    the pure class's history deque and ``_Moments`` in one object.  A price that is not
    an exact double-sized int is stored as 0.0 (never a valid fast price) with the
    object itself in ``slow`` under its sample number."""

    cdef Ring prices
    cdef Py_ssize_t maxlen  # window + 1, as the pure class's deque
    cdef long long base  # sample number of prices.buf[prices.start]
    cdef dict slow
    cdef Ring returns
    cdef double total, squares
    cdef long long folded  # the sample count these figures include

    def __cinit__(self, Py_ssize_t maxlen):
        self.maxlen = maxlen
        self.slow = {}

    def __dealloc__(self):
        free(self.prices.buf)
        free(self.returns.buf)

    cdef inline Py_ssize_t size(self):
        return self.prices.end - self.prices.start

    cdef int append(self, object price) except -1:
        cdef long long v = 0
        if PyLong_CheckExact(price) and bot4m_ll(price, &v) and 0 < v < _EXACT:
            _push(&self.prices, <double>v)
        else:
            self.slow[self.base + self.size()] = price
            _push(&self.prices, 0.0)
        if self.size() > self.maxlen:
            if self.prices.buf[self.prices.start] == 0.0:
                del self.slow[self.base]
            self.prices.start += 1
            self.base += 1
        return 0

    cdef object price(self, Py_ssize_t i):
        """The i-th stored price (0 = the oldest) as the object the pure class holds."""
        cdef double v = self.prices.buf[self.prices.start + i]
        if v == 0.0:
            return self.slow[self.base + i]
        return int(v)

    def __len__(self):
        return self.size()

    def __iter__(self):
        cdef Py_ssize_t i
        return iter([self.price(i) for i in range(self.size())])


cdef class MarketCore:
    """Reference prices and the sampled history (see ``market.PyMarketState``, whose
    methods these translate).  ``last_prices`` and ``last_update_ns`` are the dicts
    other code reads, exactly as in the pure class."""

    cdef public dict last_prices
    cdef public dict last_update_ns
    cdef public dict _history  # symbol -> _Series (the pure class: a deque)
    cdef public object _cov
    cdef public list _cov_symbols
    cdef readonly object interval_ns
    cdef readonly Py_ssize_t window
    cdef long long _interval  # interval_ns as a C integer (when _interval_c)
    cdef bint _interval_c
    cdef int _slot_kind  # 0: no slot yet, 1: _slot_c, 2: _slot_obj (not a C integer)
    cdef long long _slot_c
    cdef object _slot_obj
    cdef readonly long long _taken  # samples taken so far
    cdef list _seen  # (symbol, its _Series) in the order _sample last met them

    def __init__(self, interval_ns, window):
        if interval_ns <= 0 or window < 2:
            raise ValueError("interval_ns must be > 0 and window >= 2")
        self.interval_ns = interval_ns
        self.window = window
        if PyLong_CheckExact(interval_ns):
            self._interval_c = bot4m_ll(interval_ns, &self._interval)
        self.last_prices = {}
        self.last_update_ns = {}
        self._history = {}
        self._slot_kind = 0
        self._cov = None
        self._cov_symbols = []
        self._taken = 0
        self._seen = []

    @property
    def _slot(self):
        if self._slot_kind == 0:
            return None
        return self._slot_c if self._slot_kind == 1 else self._slot_obj

    cdef int _sample(self) except -1:
        """Every symbol's last price, appended to its history (a grid boundary).  The
        i-th symbol of ``last_prices`` is usually the one seen at the i-th place last
        time: its series is then taken from ``_seen`` (an identity check) instead of a
        lookup in ``_history``."""
        cdef Py_ssize_t pos = 0, i = 0
        cdef PyObject* key
        cdef PyObject* value
        cdef PyObject* found
        cdef _Series series
        cdef list seen = self._seen
        cdef tuple entry
        while PyDict_Next(self.last_prices, &pos, &key, &value):
            if i < PyList_GET_SIZE(seen):
                entry = <tuple>PyList_GET_ITEM(seen, i)
                if PyTuple_GET_ITEM(entry, 0) == key:
                    series = <_Series>PyTuple_GET_ITEM(entry, 1)
                else:
                    series = self._series(<object>key)
                    seen[i] = (<object>key, series)
            else:
                series = self._series(<object>key)
                seen.append((<object>key, series))
            series.append(<object>value)
            i += 1
        self._taken += 1
        self._cov = None
        return 0

    cdef _Series _series(self, object symbol):
        cdef PyObject* found = PyDict_GetItemWithError(self._history, symbol)
        if found != NULL:
            return <_Series>found
        series = _Series(self.window + 1)
        PyDict_SetItem(self._history, symbol, series)
        return series

    cdef int _set_slot(self, object slot) except -1:
        cdef long long v
        if PyLong_CheckExact(slot) and bot4m_ll(slot, &v):
            self._slot_kind = 1
            self._slot_c = v
            self._slot_obj = None
            return 0
        self._slot_kind = 2
        self._slot_obj = slot
        return 0

    def update(self, symbol, price_raw, ts_ns):
        """A new reference price.  Crossing a grid boundary first samples every
        symbol's previous price, so a sample means 'the price at the boundary'.
        Returns whether a sample was taken."""
        cdef long long t, slot
        cdef bint sampled = False
        if self._interval_c and self._slot_kind != 2 and PyLong_CheckExact(ts_ns):
            if bot4m_ll(ts_ns, &t):
                slot = t // self._interval  # C truncates: floor it as Python does
                if t % self._interval < 0:
                    slot -= 1
                if self._slot_kind == 0:
                    self._slot_kind = 1
                    self._slot_c = slot
                elif slot > self._slot_c:
                    self._sample()
                    self._slot_c = slot
                    sampled = True
                PyDict_SetItem(self.last_prices, symbol, price_raw)
                PyDict_SetItem(self.last_update_ns, symbol, ts_ns)
                return sampled
        # any other time stamp or grid: the pure class's Python expressions
        slot_obj = ts_ns // self.interval_ns
        last = self._slot
        if last is None:
            self._set_slot(slot_obj)
        elif slot_obj > last:
            self._sample()
            self._set_slot(slot_obj)
            sampled = True
        self.last_prices[symbol] = price_raw
        self.last_update_ns[symbol] = ts_ns
        return sampled

    def variance(self, symbol):
        """Sample variance of the symbol's last ``window`` log returns (None below 2),
        folded in since the last call -- the pure class's loop, in C."""
        cdef PyObject* found = PyDict_GetItemWithError(self._history, symbol)
        if found == NULL:
            return None
        cdef _Series s = <_Series>found
        cdef Py_ssize_t size = s.size()
        cdef long long new = self._taken - s.folded
        cdef Py_ssize_t i, first
        cdef double a, b, r, old, total, squares, x
        cdef double* p
        cdef Ring* rets = &s.returns
        if new > size - 1:
            new = size - 1
        s.folded = self._taken
        if new > 0:
            if new >= self.window:  # the whole window is new: start over
                rets.start = rets.end = 0
                s.total = s.squares = 0.0
            total = s.total
            squares = s.squares
            first = size - <Py_ssize_t>new - 1
            for i in range(first, size - 1):
                p = s.prices.buf + s.prices.start  # (the prices do not move in the fold)
                a = p[i]
                b = p[i + 1]
                if a != 0.0 and b != 0.0:
                    r = log(b / a)
                else:
                    r = _math_log(s.price(i + 1) / s.price(i))
                _push(rets, r)
                total += r
                squares += r * r
                if rets.end - rets.start > self.window:
                    old = rets.buf[rets.start]
                    rets.start += 1
                    total -= old
                    squares -= old * old
            s.total = total
            s.squares = squares
        cdef Py_ssize_t n = rets.end - rets.start
        if n < 2:
            return None
        x = (s.squares - s.total * s.total / n) / (n - 1)
        return 0.0 if 0.0 > x else x  # max(x, 0.0): x itself unless 0.0 is greater

    def samples(self, symbol):
        """Number of returns available for ``symbol``."""
        cdef PyObject* found = PyDict_GetItemWithError(self._history, symbol)
        if found == NULL:
            return 0
        cdef Py_ssize_t size = (<_Series>found).size()
        return size - 1 if size > 1 else 0
