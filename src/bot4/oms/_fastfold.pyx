# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled event fold: ``TradingState.apply`` for the hot event kinds (docs/core.md,
"The compiled fold").

``fold(state, event)`` does what the pure-Python ``TradingState.apply`` (which stays the
reference, kept as ``TradingState.apply_py``) does, on the same objects: the
``TradingState``'s dicts, the ``Order``, ``Position``, ``Account`` and ``Balance``
instances are the ordinary Python ones, and every amount stays a Python int (money is
1e-18 units and does not fit 64 bits).  ``tests/test_oms_compiled.py`` folds random
sessions both ways and compares the whole snapshot after every event, and the
exception and untouched state for illegal events.

What is cheaper here, and why it is the same:

* The event's class is dispatched by identity instead of ``kind`` strings and a
  ``(status, kind)`` tuple lookup (which hashes an enum member in Python): the lifecycle
  table ``bot4.core.order._TRANSITIONS`` is copied at import into a C array indexed by
  status and event class.
* Slot members (``Order``, ``Position``, ``Balance``, ``Account``, ``TradingState`` and
  the events' fields) are read and written at the member descriptor's offset, which is
  what the descriptor itself does.  Only for the exact classes whose names resolve to
  those very descriptors (checked at import, and per object by ``type(x) is C``):
  anything else -- a subclass, an event kind not handled here -- goes to the pure code.
* Everything is checked before anything changes; an event that would raise is handed,
  untouched, to the pure code, which raises the reference's exception.
* The small helpers (``Account.lock``/``add_pending``/``add_free``, ``_take_lock``,
  ``_release``, ``_fill``, ``Order.apply``, ``Position.apply_fill``, ``Order.__init__``)
  are inlined, with the same operations on the same Python ints in the same order.
"""

from cpython.ref cimport PyObject

from bot4._slots cimport slot_get as _get, slot_set as _set
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_DelItem


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member

from bot4.core import events as _ev
from bot4.core.enums import OrderSide as _Side
from bot4.core.enums import OrderStatus as _Status
from bot4.core.numbers import SCALE as _SCALE_OBJ
from bot4.core.numbers import Rounding as _Rounding
from bot4.core.numbers import div_round as _div_round
from bot4.core.order import _TRANSITIONS
from bot4.core.order import Order as _Order
from bot4.oms.account import Account as _Account
from bot4.oms.account import Balance as _Balance
from bot4.oms.position import Position as _Position

cdef object _SCALE = _SCALE_OBJ
cdef object _ZERO = 0
cdef object _TOWARD_ZERO = _Rounding.TOWARD_ZERO
cdef object _SELL = _Side.SELL
cdef object _BUY = _Side.BUY

# -- slots -------------------------------------------------------------------------------
cdef Py_ssize_t _off(object cls, str name) except -2:
    """The offset of ``cls.name`` if the class resolves it to a slot, else -1."""
    descr = getattr(cls, name, None)
    if type(descr).__name__ != "member_descriptor" or not issubclass(cls, descr.__objclass__):
        return -1
    return (<PyMemberDescrObject*>descr).d_member.offset


cdef object _TS = None  # TradingState, set by ``install``
cdef object _PURE = None  # TradingState.apply_py
cdef object _PURE_OPEN = None  # TradingState.open_order_py
cdef bint _READY = False
cdef Py_ssize_t S_ACCOUNT, S_INSTRUMENTS, S_LAST_SEQ, S_OPEN, S_ORDERS, S_POSITIONS

_ORDER_SLOTS = _Order.__slots__
cdef dict _O = {n: _off(_Order, n) for n in _ORDER_SLOTS}
cdef Py_ssize_t O_CID = _O["client_order_id"], O_SYMBOL = _O["symbol"], O_SIDE = _O["side"]
cdef Py_ssize_t O_TYPE = _O["order_type"], O_QTY = _O["quantity_raw"]
cdef Py_ssize_t O_INITQ = _O["initial_qty_raw"], O_PRICE = _O["price_raw"]
cdef Py_ssize_t O_TRIGGER = _O["trigger_raw"], O_TIF = _O["time_in_force"]
cdef Py_ssize_t O_POST = _O["post_only"], O_REDUCE = _O["reduce_only"]
cdef Py_ssize_t O_DISPLAY = _O["display_qty_raw"], O_LIST = _O["list_id"]
cdef Py_ssize_t O_CONT = _O["contingency"], O_PARENT = _O["parent_id"]
cdef Py_ssize_t O_LINKED = _O["linked_ids"], O_SHARES = _O["shares_lock"]
cdef Py_ssize_t O_OFFSET = _O["offset_ppm"], O_STATUS = _O["status"]
cdef Py_ssize_t O_PREV = _O["previous_status"], O_VENUE = _O["venue_order_id"]
cdef Py_ssize_t O_FILLED = _O["filled_qty_raw"], O_NOTIONAL = _O["fill_notional_money"]
cdef Py_ssize_t O_FEES = _O["fees_money"], O_TRADES = _O["trade_ids"]
cdef Py_ssize_t O_PENDING = _O["pending_money"], O_LOCKED = _O["locked_money"]
cdef Py_ssize_t O_TAKEN = _O["lock_taken"], O_LASSET = _O["lock_asset"]
cdef Py_ssize_t O_LUNIT = _O["lock_unit"], O_TRIGGERED = _O["triggered"]
cdef Py_ssize_t O_TSINIT = _O["ts_init"], O_TSLAST = _O["ts_last"]

_INIT_SETS = {
    "client_order_id", "contingency", "display_qty_raw", "fees_money",
    "fill_notional_money", "filled_qty_raw", "initial_qty_raw", "linked_ids", "list_id",
    "lock_asset", "lock_taken", "lock_unit", "locked_money", "offset_ppm", "order_type",
    "parent_id", "pending_money", "post_only", "previous_status", "price_raw",
    "quantity_raw", "reduce_only", "shares_lock", "side", "status", "symbol",
    "time_in_force", "trade_ids", "trigger_raw", "triggered", "ts_init", "ts_last",
    "venue_order_id",
}

cdef Py_ssize_t A_BALANCES = _off(_Account, "balances"), A_PENDING = _off(_Account, "pending")
cdef Py_ssize_t B_FREE = _off(_Balance, "free"), B_LOCKED = _off(_Balance, "locked")
cdef Py_ssize_t P_QTY = _off(_Position, "qty_raw"), P_COST = _off(_Position, "cost_money")
cdef Py_ssize_t P_REAL = _off(_Position, "realized_money")
cdef Py_ssize_t P_FEES = _off(_Position, "fees_money"), P_TRADES = _off(_Position, "trades")

# -- events ------------------------------------------------------------------------------
cdef object E_INIT = _ev.OrderInitialized
cdef object E_SUB = _ev.OrderSubmitted
cdef object E_ACC = _ev.OrderAccepted
cdef object E_FILL = _ev.OrderFilled
cdef object E_UPD = _ev.OrderUpdated
cdef object E_PC = _ev.OrderPendingCancel
cdef object E_CAN = _ev.OrderCanceled
cdef tuple _KINDS = (E_SUB, E_ACC, E_FILL, E_UPD, E_PC, E_CAN)
cdef enum:
    K_SUB = 0
    K_ACC = 1
    K_FILL = 2
    K_UPD = 3
    K_PC = 4
    K_CAN = 5
    NK = 6
cdef Py_ssize_t E_SEQ[NK]
cdef Py_ssize_t E_TS[NK]
cdef Py_ssize_t E_CID[NK]
for _i, _c in enumerate(_KINDS):
    E_SEQ[_i] = _off(_c, "seq")
    E_TS[_i] = _off(_c, "ts_event")
    E_CID[_i] = _off(_c, "client_order_id")
cdef Py_ssize_t EI_SEQ = _off(E_INIT, "seq")
cdef tuple _INIT_FIELDS = (
    "client_order_id", "symbol", "side", "order_type", "quantity_raw", "price_raw",
    "trigger_raw", "time_in_force", "post_only", "reduce_only", "display_qty_raw",
    "list_id", "contingency", "parent_id", "linked_ids", "shares_lock", "offset_ppm",
    "ts_event",
)
cdef dict _I = {n: _off(E_INIT, n) for n in _INIT_FIELDS}
# Offsets read once per OrderInitialized (constants: a dict lookup each cost ~25 ns).
cdef Py_ssize_t I_CID = _I["client_order_id"]
cdef Py_ssize_t I_SYMBOL = _I["symbol"]
cdef Py_ssize_t I_SIDE = _I["side"]
cdef Py_ssize_t I_ORDER_TYPE = _I["order_type"]
cdef Py_ssize_t I_QUANTITY = _I["quantity_raw"]
cdef Py_ssize_t I_PRICE = _I["price_raw"]
cdef Py_ssize_t I_TRIGGER = _I["trigger_raw"]
cdef Py_ssize_t I_TIME_IN_FORCE = _I["time_in_force"]
cdef Py_ssize_t I_POST_ONLY = _I["post_only"]
cdef Py_ssize_t I_REDUCE_ONLY = _I["reduce_only"]
cdef Py_ssize_t I_DISPLAY_QTY = _I["display_qty_raw"]
cdef Py_ssize_t I_LIST_ID = _I["list_id"]
cdef Py_ssize_t I_CONTINGENCY = _I["contingency"]
cdef Py_ssize_t I_PARENT_ID = _I["parent_id"]
cdef Py_ssize_t I_LINKED_IDS = _I["linked_ids"]
cdef Py_ssize_t I_SHARES_LOCK = _I["shares_lock"]
cdef Py_ssize_t I_OFFSET_PPM = _I["offset_ppm"]
cdef Py_ssize_t I_TS_EVENT = _I["ts_event"]
# ``open_order`` builds OrderInitialized and OrderSubmitted slot by slot: every field's
# offset in declaration order, and the defaults of the fields it does not take.
from dataclasses import fields as _dc_fields
cdef tuple _INIT_NAMES = tuple(f.name for f in _dc_fields(E_INIT))
cdef tuple _INIT_GIVEN = (
    "seq", "ts_event", "ts_recv", "client_order_id", "symbol", "side", "order_type",
    "quantity_raw", "price_raw", "trigger_raw", "time_in_force", "post_only",
    "reduce_only", "display_qty_raw",
)
cdef enum:
    N_INIT_FIELDS = 20
    N_INIT_GIVEN = 14
cdef Py_ssize_t _INIT_OFF[N_INIT_FIELDS]
cdef list _INIT_DEFAULTS = [
    f.default for f in _dc_fields(E_INIT)[N_INIT_GIVEN:]
] if len(_INIT_NAMES) == N_INIT_FIELDS else []
for _i, _n in enumerate(_INIT_NAMES[:N_INIT_FIELDS]):
    _INIT_OFF[_i] = _off(E_INIT, _n)
cdef bint _INIT_LAYOUT = (
    len(_INIT_NAMES) == N_INIT_FIELDS
    and _INIT_NAMES[:N_INIT_GIVEN] == _INIT_GIVEN
    and min([_INIT_OFF[_i] for _i in range(N_INIT_FIELDS)]) >= 0
    and all(not isinstance(d, (list, dict, set)) for d in _INIT_DEFAULTS)
)
cdef Py_ssize_t ES_RECV = _off(E_SUB, "ts_recv")
cdef bint _SUB_LAYOUT = (
    tuple(f.name for f in _dc_fields(E_SUB)) == ("seq", "ts_event", "ts_recv", "client_order_id")
)
cdef Py_ssize_t EF_TRADE = _off(E_FILL, "trade_id"), EF_QTY = _off(E_FILL, "qty_raw")
cdef Py_ssize_t EF_PRICE = _off(E_FILL, "price_raw"), EF_FEE = _off(E_FILL, "fee_money")
cdef Py_ssize_t EF_FASSET = _off(E_FILL, "fee_asset")
cdef Py_ssize_t EA_VENUE = _off(E_ACC, "venue_order_id")
cdef Py_ssize_t EU_QTY = _off(E_UPD, "quantity_raw"), EU_TRIGGER = _off(E_UPD, "trigger_raw")
cdef Py_ssize_t EU_PRICE = _off(E_UPD, "price_raw")

# -- the lifecycle table -----------------------------------------------------------------
cdef enum:
    NS = 10
    ILLEGAL = -2
    DEPENDS = -1
cdef list _STATUSES = list(_Status)
cdef PyObject* _ST[NS]
cdef bint _CLOSED[NS]
cdef bint _OPEN[NS]
cdef int _TRANS[NS][NK]
_MISSING = object()
cdef int S_INITIALIZED = _STATUSES.index(_Status.INITIALIZED)
cdef int S_PC = _STATUSES.index(_Status.PENDING_CANCEL)
cdef int S_PARTIAL = _STATUSES.index(_Status.PARTIALLY_FILLED)
cdef int S_FILLED = _STATUSES.index(_Status.FILLED)
cdef int S_CANCELED = _STATUSES.index(_Status.CANCELED)
cdef int S_EXPIRED = _STATUSES.index(_Status.EXPIRED)
cdef int S_SUBMITTED = _STATUSES.index(_Status.SUBMITTED)
cdef int S_ACCEPTED = _STATUSES.index(_Status.ACCEPTED)
if len(_STATUSES) != NS:
    raise ImportError("OrderStatus changed: rebuild bot4.oms._fastfold")
for _i, _s in enumerate(_STATUSES):
    _ST[_i] = <PyObject*>_s  # enum members live as long as the class
    _CLOSED[_i] = bool(_s.is_closed)
    _OPEN[_i] = bool(_s.is_open)
    for _k, _c in enumerate(_KINDS):
        _t = _TRANSITIONS.get((_s, _c.kind), _MISSING)
        _TRANS[_i][_k] = DEPENDS if _t is None else (
            ILLEGAL if _t is _MISSING else _STATUSES.index(_t)
        )


cdef inline int _status(object s) noexcept:
    cdef int i
    for i in range(NS):
        if _ST[i] == <PyObject*>s:
            return i
    return -1


def slots_in_use() -> dict:
    """Whether every member this module reads or writes by offset is a slot (for the
    tests: a class that drops one must be noticed, not silently go pure)."""
    return {
        **{f"Order.{n}": o >= 0 for n, o in _O.items()},
        **{f"OrderInitialized.{n}": o >= 0 for n, o in _I.items()},
        "Account": A_BALANCES >= 0 and A_PENDING >= 0,
        "Balance": B_FREE >= 0 and B_LOCKED >= 0,
        "Position": min(P_QTY, P_COST, P_REAL, P_FEES, P_TRADES) >= 0,
        "events": min(min(E_SEQ), min(E_TS), min(E_CID)) >= 0 and min(
            EF_TRADE, EF_QTY, EF_PRICE, EF_FEE, EF_FASSET, EA_VENUE, EU_QTY, EU_TRIGGER,
            EU_PRICE, EI_SEQ,
        ) >= 0,
        # ``_initialize`` sets exactly these members (``Order.__init__``'s).
        "Order.__init__": set(_ORDER_SLOTS) == _INIT_SETS,
        # ``open_order``: OrderInitialized's fields as it expects them, all slots, and
        # immutable defaults (shared by every event it builds); OrderSubmitted's.
        "OrderInitialized layout": bool(_INIT_LAYOUT),
        "OrderSubmitted layout": bool(_SUB_LAYOUT) and ES_RECV >= 0,
        "TradingState": _READY,
    }


def install(cls: type, pure: object, pure_open: object) -> bool:
    """Take ``cls`` (``TradingState``), its pure ``apply`` and ``open_order``; False
    (stay pure) if any member this module uses is not a slot."""
    global _TS, _PURE, _PURE_OPEN, _READY
    global S_ACCOUNT, S_INSTRUMENTS, S_LAST_SEQ, S_OPEN, S_ORDERS, S_POSITIONS
    S_ACCOUNT = _off(cls, "account")
    S_INSTRUMENTS = _off(cls, "instruments")
    S_LAST_SEQ = _off(cls, "last_seq")
    S_OPEN = _off(cls, "open_orders")
    S_ORDERS = _off(cls, "orders")
    S_POSITIONS = _off(cls, "positions")
    _TS, _PURE, _PURE_OPEN = cls, pure, pure_open
    _READY = False
    ok = min(S_ACCOUNT, S_INSTRUMENTS, S_LAST_SEQ, S_OPEN, S_ORDERS, S_POSITIONS) >= 0
    _READY = ok and all(v for k, v in slots_in_use().items() if k != "TradingState")
    return _READY


# -- account -----------------------------------------------------------------------------
cdef inline object _bget(object bal, Py_ssize_t off, str name):
    return _get(bal, off) if type(bal) is _Balance else getattr(bal, name)


cdef inline void _bset(object bal, Py_ssize_t off, str name, object v) except *:
    if type(bal) is _Balance:
        _set(bal, off, v)
    else:
        setattr(bal, name, v)


cdef object _balance(object account, object asset):
    """``Account.balance``."""
    cdef dict balances = _get(account, A_BALANCES)
    cdef PyObject* b = PyDict_GetItem(balances, asset)
    if b != NULL:
        return <object>b
    bal = _Balance()
    balances[asset] = bal
    return bal


cdef inline void _add_free(object account, object asset, object amount) except *:
    bal = _balance(account, asset)
    _bset(bal, B_FREE, "free", _bget(bal, B_FREE, "free") + amount)


cdef inline void _lock(object account, object asset, object amount) except *:
    bal = _balance(account, asset)
    _bset(bal, B_FREE, "free", _bget(bal, B_FREE, "free") - amount)
    _bset(bal, B_LOCKED, "locked", _bget(bal, B_LOCKED, "locked") + amount)


cdef inline void _add_pending(object account, object asset, object amount) except *:
    cdef dict pending = _get(account, A_PENDING)
    cdef PyObject* p = PyDict_GetItem(pending, asset)
    left = (<object>p if p != NULL else _ZERO) + amount
    if left:
        PyDict_SetItem(pending, asset, left)
    elif p != NULL:
        PyDict_DelItem(pending, asset)


# -- the fold ----------------------------------------------------------------------------
def fold(state, event):
    """``TradingState.apply``: fold one event; raises (changing nothing) if it is out of
    sequence or illegal."""
    cdef object et = type(event)
    if not _READY or type(state) is not _TS:
        return _PURE(state, event)
    if et is E_INIT:
        return _initialize(state, event)
    cdef int k
    if et is E_SUB:
        k = K_SUB
    elif et is E_ACC:
        k = K_ACC
    elif et is E_FILL:
        k = K_FILL
    elif et is E_UPD:
        k = K_UPD
    elif et is E_PC:
        k = K_PC
    elif et is E_CAN:
        k = K_CAN
    else:
        return _PURE(state, event)
    return _order_event(state, event, k)


def open_order(state, fields, now, pending):
    """``TradingState.open_order``: a new plain order's OrderInitialized and
    OrderSubmitted, built slot by slot (what their ``__init__`` stores, without a Python
    call per field), each folded, then appended to ``pending``; the order."""
    if (
        not _READY or type(state) is not _TS or type(fields) is not tuple
        or len(<tuple>fields) != N_INIT_GIVEN - 3 or type(pending) is not list
    ):
        return _PURE_OPEN(state, fields, now, pending)
    cdef tuple given = <tuple>fields
    cdef Py_ssize_t i
    ev = E_INIT.__new__(E_INIT)
    _set(ev, _INIT_OFF[0], _get(state, S_LAST_SEQ) + 1)
    _set(ev, _INIT_OFF[1], now)
    _set(ev, _INIT_OFF[2], now)
    for i in range(N_INIT_GIVEN - 3):
        _set(ev, _INIT_OFF[3 + i], given[i])
    for i in range(N_INIT_FIELDS - N_INIT_GIVEN):
        _set(ev, _INIT_OFF[N_INIT_GIVEN + i], _INIT_DEFAULTS[i])
    _initialize(state, ev)
    (<list>pending).append(ev)
    cid = given[0]
    order = (<dict>_get(state, S_ORDERS))[cid]
    sub = E_SUB.__new__(E_SUB)
    _set(sub, E_SEQ[K_SUB], _get(state, S_LAST_SEQ) + 1)
    _set(sub, E_TS[K_SUB], now)
    _set(sub, ES_RECV, now)
    _set(sub, E_CID[K_SUB], cid)
    _order_event(state, sub, K_SUB)
    (<list>pending).append(sub)
    return order


cdef object _initialize(object state, object ev):
    seq = _get(ev, EI_SEQ)
    if seq != _get(state, S_LAST_SEQ) + 1:
        return _PURE(state, ev)
    cdef dict orders = _get(state, S_ORDERS)
    cdef dict instruments = _get(state, S_INSTRUMENTS)
    cid = _get(ev, I_CID)
    symbol = _get(ev, I_SYMBOL)
    if cid in orders or symbol not in instruments:
        return _PURE(state, ev)  # raises DuplicateClientOrderId / UnknownInstrument
    inst = instruments[symbol]
    # ``Order.__init__``, member by member.
    order = _Order.__new__(_Order)
    _set(order, O_CID, cid)
    _set(order, O_SYMBOL, symbol)
    side = _get(ev, I_SIDE)
    _set(order, O_SIDE, side)
    _set(order, O_TYPE, _get(ev, I_ORDER_TYPE))
    qty = _get(ev, I_QUANTITY)
    _set(order, O_QTY, qty)
    _set(order, O_INITQ, qty)
    price = _get(ev, I_PRICE)
    _set(order, O_PRICE, price)
    _set(order, O_TRIGGER, _get(ev, I_TRIGGER))
    _set(order, O_TIF, _get(ev, I_TIME_IN_FORCE))
    _set(order, O_POST, _get(ev, I_POST_ONLY))
    _set(order, O_REDUCE, _get(ev, I_REDUCE_ONLY))
    _set(order, O_DISPLAY, _get(ev, I_DISPLAY_QTY))
    _set(order, O_LIST, _get(ev, I_LIST_ID))
    _set(order, O_CONT, _get(ev, I_CONTINGENCY))
    _set(order, O_PARENT, _get(ev, I_PARENT_ID))
    _set(order, O_LINKED, _get(ev, I_LINKED_IDS))
    shares = _get(ev, I_SHARES_LOCK)
    _set(order, O_SHARES, shares)
    _set(order, O_OFFSET, _get(ev, I_OFFSET_PPM))
    st = <object>_ST[S_INITIALIZED]
    _set(order, O_STATUS, st)
    _set(order, O_PREV, st)
    _set(order, O_VENUE, "")
    _set(order, O_FILLED, _ZERO)
    _set(order, O_NOTIONAL, _ZERO)
    _set(order, O_FEES, {})
    _set(order, O_TRADES, set())
    _set(order, O_PENDING, _ZERO)
    _set(order, O_LOCKED, _ZERO)
    _set(order, O_TAKEN, False)
    _set(order, O_LASSET, "")
    _set(order, O_LUNIT, _ZERO)
    _set(order, O_TRIGGERED, False)
    ts = _get(ev, I_TS_EVENT)
    _set(order, O_TSINIT, ts)
    _set(order, O_TSLAST, ts)
    orders[cid] = order
    # ``TradingState.lock_unit``
    if shares:
        _set(order, O_LASSET, inst.quote)
        _set(order, O_LUNIT, _ZERO)
    elif side is _SELL:
        _set(order, O_LASSET, inst.base)
        _set(order, O_LUNIT, _SCALE)
    else:
        _set(order, O_LASSET, inst.quote)
        _set(order, O_LUNIT, price)
    _set(state, S_LAST_SEQ, seq)


cdef object _order_event(object state, object ev, int k):
    seq = _get(ev, E_SEQ[k])
    if seq != _get(state, S_LAST_SEQ) + 1:
        return _PURE(state, ev)  # raises SequenceError
    cid = _get(ev, E_CID[k])
    cdef dict orders = _get(state, S_ORDERS)
    cdef PyObject* op = PyDict_GetItem(orders, cid)
    if op == NULL or type(<object>op) is not _Order:
        return _PURE(state, ev)  # raises UnknownOrder, or an order this cannot read
    order = <object>op
    was = _get(order, O_STATUS)
    cdef int wi = _status(was)
    if wi < 0:
        return _PURE(state, ev)
    cdef int ni = _TRANS[wi][k]
    account = _get(state, S_ACCOUNT)
    if type(account) is not _Account:
        return _PURE(state, ev)
    # -- checks (``Order.can_apply``): anything illegal is the pure code's to raise --
    if ni == ILLEGAL:
        return _PURE(state, ev)
    filled = _get(order, O_FILLED)
    inst = None
    if ni == DEPENDS:
        if k == K_FILL:
            q = _get(ev, EF_QTY)
            leaves = _get(order, O_QTY) - filled
            if q <= 0 or q > leaves:
                return _PURE(state, ev)  # OverfillError
            if q == leaves:
                ni = S_FILLED
            elif wi == S_PC or wi == S_CANCELED or wi == S_EXPIRED:
                ni = wi
            else:
                ni = S_PARTIAL
        elif k == K_UPD:
            if _get(ev, EU_QTY) <= filled:
                return _PURE(state, ev)  # OverfillError
            ni = wi
        else:
            return _PURE(state, ev)
    if k == K_FILL or k == K_UPD:
        inst = (<dict>_get(state, S_INSTRUMENTS)).get(_get(order, O_SYMBOL))
        if inst is None:
            return _PURE(state, ev)  # the reference fails half-way: let it
    # -- changes ------------------------------------------------------------------------
    asset = _get(order, O_LASSET)
    unit = _get(order, O_LUNIT)
    if wi == S_INITIALIZED and k == K_SUB:
        pm = (_get(order, O_QTY) - filled) * unit
        _set(order, O_PENDING, pm)
        _add_pending(account, asset, pm)
    elif (k == K_ACC or k == K_FILL) and not _get(order, O_TAKEN):
        # ``_take_lock``
        _add_pending(account, asset, -_get(order, O_PENDING))
        _set(order, O_PENDING, _ZERO)
        _set(order, O_TAKEN, True)
        lm = (_get(order, O_QTY) - filled) * unit
        _set(order, O_LOCKED, lm)
        _lock(account, asset, lm)
    if k == K_FILL:
        _fill(state, account, order, ev, inst, asset, unit)
    # ``Order.apply``
    if k == K_FILL:
        q = _get(ev, EF_QTY)
        _set(order, O_FILLED, filled + q)
        _set(order, O_NOTIONAL, _get(order, O_NOTIONAL) + q * _get(ev, EF_PRICE))
        fee = _get(ev, EF_FEE)
        if fee:
            fasset = _get(ev, EF_FASSET)
            fees = _get(order, O_FEES)
            fees[fasset] = fees.get(fasset, 0) + fee
        _get(order, O_TRADES).add(_get(ev, EF_TRADE))
    elif k == K_ACC:
        if not _get(order, O_VENUE):
            _set(order, O_VENUE, _get(ev, EA_VENUE))
    elif k == K_UPD:
        _set(order, O_QTY, _get(ev, EU_QTY))
        v = _get(ev, EU_TRIGGER)
        if v:
            _set(order, O_TRIGGER, v)
        v = _get(ev, EU_PRICE)
        if v:
            _set(order, O_PRICE, v)
    elif k == K_PC:
        _set(order, O_PREV, was)
    if wi == S_PC and ni == S_PC:
        # ``_behind_pending_cancel``
        if k == K_FILL:
            _set(order, O_PREV, <object>_ST[S_PARTIAL])
        elif k == K_ACC and _get(order, O_PREV) is <object>_ST[S_SUBMITTED]:
            _set(order, O_PREV, <object>_ST[S_ACCEPTED])
    elif ni != wi:
        if k != K_PC:
            _set(order, O_PREV, was)
        _set(order, O_STATUS, <object>_ST[ni])
    _set(order, O_TSLAST, _get(ev, E_TS[k]))
    if k == K_UPD:
        # ``lock_unit`` (a moved limit price), then ``_resize_lock``
        if _get(order, O_SHARES):
            asset, unit = inst.quote, _ZERO
        elif _get(order, O_SIDE) is _SELL:
            asset, unit = inst.base, _SCALE
        else:
            asset, unit = inst.quote, _get(order, O_PRICE)
        _set(order, O_LUNIT, unit)
        target = (_get(order, O_QTY) - _get(order, O_FILLED)) * unit
        if _get(order, O_TAKEN):
            _lock(account, asset, target - _get(order, O_LOCKED))
            _set(order, O_LOCKED, target)
        else:
            pm = _get(order, O_PENDING)
            if pm:
                _add_pending(account, asset, target - pm)
                _set(order, O_PENDING, target)
    if _CLOSED[ni]:
        # ``_release``
        pm = _get(order, O_PENDING)
        if pm:
            _add_pending(account, asset, -pm)
            _set(order, O_PENDING, _ZERO)
        lm = _get(order, O_LOCKED)
        if lm:
            _lock(account, asset, -lm)
            _set(order, O_LOCKED, _ZERO)
        _set(order, O_TAKEN, True)
        (<dict>_get(state, S_OPEN)).pop(cid, None)
    elif _OPEN[ni]:
        (<dict>_get(state, S_OPEN))[cid] = order
    _set(state, S_LAST_SEQ, seq)


cdef void _fill(object state, object account, object order, object ev, object inst,
                object asset, object unit) except *:
    q = _get(ev, EF_QTY)
    price = _get(ev, EF_PRICE)
    locked = _get(order, O_LOCKED)
    release = min(locked, q * unit)
    if release:
        _lock(account, asset, -release)
        _set(order, O_LOCKED, locked - release)
    notional = q * price
    base = inst.base
    if _get(order, O_SIDE) is _BUY:
        _add_free(account, inst.quote, -notional)
        _add_free(account, base, q * _SCALE)
        signed = q
    else:
        _add_free(account, base, -q * _SCALE)
        _add_free(account, inst.quote, notional)
        signed = -q
    fee = _get(ev, EF_FEE)
    fasset = _get(ev, EF_FASSET)
    if fee:
        _add_free(account, fasset, -fee)
    # ``TradingState.position``: the instrument is known, so this cannot raise.
    symbol = _get(order, O_SYMBOL)
    cdef dict positions = _get(state, S_POSITIONS)
    pos = positions.get(symbol)
    if pos is None:
        pos = positions[symbol] = _Position(symbol)
    in_base = fasset == base
    if type(pos) is not _Position:
        pos.apply_fill(signed, price, fee, fasset, in_base)
        return
    # ``Position.apply_fill``
    _set(pos, P_TRADES, _get(pos, P_TRADES) + 1)
    if fee:
        fees = _get(pos, P_FEES)
        fees[fasset] = fees.get(fasset, 0) + fee
    _trade(pos, signed, price)
    if in_base and fee:
        _trade(pos, -(fee // _SCALE), _ZERO)


cdef void _trade(object pos, object q, object price) except *:
    """``Position._trade``."""
    qty = _get(pos, P_QTY)
    if qty == 0 or (qty > 0) == (q > 0):
        _set(pos, P_QTY, qty + q)
        _set(pos, P_COST, _get(pos, P_COST) + q * price)
        return
    closing = -qty if abs(q) >= abs(qty) else q
    removed = _div_round(_get(pos, P_COST) * -closing, qty, _TOWARD_ZERO)
    _set(pos, P_REAL, _get(pos, P_REAL) + (-closing * price - removed))
    _set(pos, P_COST, _get(pos, P_COST) - removed)
    _set(pos, P_QTY, qty + closing)
    opening = q - closing
    if opening:
        _set(pos, P_COST, opening * price)
        _set(pos, P_QTY, opening)
