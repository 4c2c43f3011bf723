"""What the matching engine checks before it changes anything.

``validate`` applies Binance's parameter rules, the instrument's filters and the funds
check, in that order, and raises the exact Binance rejection.  The filters run as
plain integer comparisons (the instrument's Decimal band check costs a microsecond);
only when one fails is the instrument's own check (``bot4.core.instrument``) called, so
the error carries the core's rule name.  A property test checks that both refuse
exactly the same orders.

``walk`` replays, without touching anything, exactly what a taker would trade against
the book as it stands (queue order, iceberg refills, self-trade prevention).  It
answers "can this FOK fill completely", "what does this market buy cost" and "how much
does this quoteOrderQty buy", so those checks agree with the matching to the unit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from bot4.core.enums import OrderSide, OrderType, TimeInForce
from bot4.core.errors import ValidationError
from bot4.core.instrument import Instrument
from bot4.core.numbers import SCALE
from bot4.oms.account import Account, Balance
from bot4.sim.book import DISPLAY, L_QUEUE, OWNER, QTY, VISIBLE, OrderBook
from bot4.sim.errors import (
    ICEBERG_QTY_MSG,
    NO_LIQUIDITY_LOT_SIZE_MSG,
    NO_LIQUIDITY_MSG,
    BinanceError,
    DuplicateOrder,
    EitherParameter,
    FilterFailure,
    InsufficientBalanceError,
    MandatoryParameter,
    NewOrderRejected,
    ParameterNotRequired,
    PostOnlyWouldTake,
    StopWouldTrigger,
    UnsupportedOrderCombination,
    from_bot4_error,
)
from bot4.sim.matching_types import NewOrder, SelfTradePrevention, SimOrder

if TYPE_CHECKING:
    from bot4.sim.matching import MatchingEngine

_PRICED = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT})
_TRIGGERED = frozenset(
    {
        OrderType.STOP_MARKET,
        OrderType.STOP_LIMIT,
        OrderType.TAKE_PROFIT,
        OrderType.TAKE_PROFIT_LIMIT,
    }
)
_STOPS = frozenset({OrderType.STOP_MARKET, OrderType.STOP_LIMIT})
_NO_LIMIT = 10**30
_BUY = OrderSide.BUY
_SELL = OrderSide.SELL
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_GTC = TimeInForce.GTC
_STP_NONE = SelfTradePrevention.NONE
_EXPIRE_MAKER = SelfTradePrevention.EXPIRE_MAKER
_DECREMENT = SelfTradePrevention.DECREMENT


def _fail(check: Callable[[], None], rule: str) -> NoReturn:
    try:
        check()
    except ValidationError as exc:
        raise from_bot4_error(exc) from None
    raise FilterFailure(rule)


class SymbolChecks:
    """The filter checks of ``SymbolState``, shared by the pure-Python state and the
    compiled one (``bot4.sim._fastmatch.SymbolCore`` holds the same fields in C)."""

    __slots__ = ()
    inst: Instrument
    tick: int
    step: int
    min_qty: int
    max_qty: int
    min_notional: int
    max_notional: int
    pct_up: tuple[int, int]
    pct_down: tuple[int, int]

    def check_price(self, price: int, field: str = "price") -> None:
        if price % self.tick:
            _fail(lambda: self.inst.check_price(price, field), "PRICE_FILTER")

    def check_qty(self, qty: int, field: str = "quantity") -> None:
        if qty % self.step or qty < self.min_qty or (self.max_qty and qty > self.max_qty):
            _fail(lambda: self.inst.check_qty(qty, field), "LOT_SIZE")

    def check_notional(self, price: int, qty: int) -> None:
        notional = price * qty
        if notional < self.min_notional or (self.max_notional and notional > self.max_notional):
            _fail(lambda: self.inst.check_notional(price, qty), "NOTIONAL")

    def check_percent(self, price: int, reference: int) -> None:
        up_n, up_d = self.pct_up
        down_n, down_d = self.pct_down
        if price * up_d > reference * up_n or price * down_d < reference * down_n:
            _fail(lambda: self.inst.check_percent_price(price, reference), "PERCENT_PRICE")


class PySymbolState(SymbolChecks):
    """One symbol in the engine: its book, last price, parked stops and its filters
    as plain ints (percent bands as exact fractions).  ``SymbolState`` is this class,
    or where it is built, its compiled twin (fields in C, the same checks)."""

    __slots__ = (
        "base",
        "book",
        "inst",
        "last_price",
        "max_notional",
        "max_qty",
        "min_notional",
        "min_qty",
        "pct_down",
        "pct_up",
        "quote",
        "step",
        "stops_down",
        "stops_up",
        "symbol",
        "tick",
        "trade_seq",
    )

    def __init__(self, inst: Instrument, book_class: type[OrderBook] = OrderBook) -> None:
        self.inst = inst
        self.symbol = inst.symbol
        self.base = inst.base
        self.quote = inst.quote
        self.book = book_class(inst.symbol)
        self.last_price = 0
        self.trade_seq = 0
        self.stops_up: list[tuple[int, int]] = []  # (trigger, order id): fire at last >= trigger
        self.stops_down: list[tuple[int, int]] = []  # fire at last <= trigger
        self.tick = inst.tick_raw
        self.step = inst.step_raw
        self.min_qty = inst.min_qty_raw
        self.max_qty = inst.max_qty_raw
        self.min_notional = inst.min_notional_raw
        self.max_notional = inst.max_notional_raw
        self.pct_up = inst.percent_up.as_integer_ratio()
        self.pct_down = inst.percent_down.as_integer_ratio()


def _compiled_symbol_state() -> type[PySymbolState] | None:
    """``SymbolState`` with its fields in C, or None where ``_fastmatch`` is not built
    (or ``BOT4_PURE_SIM`` is set)."""
    from bot4._compiled import compiled

    fast = compiled("_fastmatch")
    if fast is None:
        return None

    class SymbolState(fast.SymbolCore, SymbolChecks):  # type: ignore[misc,name-defined]
        """One symbol in the engine (see ``PySymbolState``), fields in C."""

        __slots__ = ()

    SymbolState.__module__ = __name__
    return SymbolState


if TYPE_CHECKING:
    SymbolState = PySymbolState
else:
    SymbolState = _compiled_symbol_state() or PySymbolState


def fires_up(order_type: OrderType, is_buy: bool) -> bool:
    """Stop-loss buys and take-profit sells trigger when the price rises to them."""
    return (order_type in _STOPS) is is_buy


def insufficient(bal: Balance | None, need: int) -> bool:
    return need > (bal.free if bal is not None else 0)


def validate(
    engine: MatchingEngine,
    st: SymbolState,
    account: Account,
    open_orders: dict[str, SimOrder],
    default_stp: SelfTradePrevention,
    req: NewOrder,
) -> tuple[int, SelfTradePrevention, int]:
    """Check a new order completely; returns (quantity, STP mode, lock unit) where the
    lock unit is the money locked per raw unit of quantity (0: nothing locked)."""
    otype, side, tif = req.order_type, req.side, req.time_in_force
    if side is _BUY:
        is_buy = True
    elif side is _SELL:
        is_buy = False
    else:
        raise BinanceError("Invalid side.", -1117)
    if type(otype) is not OrderType:
        raise BinanceError("Invalid orderType.", -1116)
    if type(tif) is not TimeInForce:
        raise BinanceError("Invalid timeInForce.", -1115)
    price, trig, qty = req.price_raw, req.trigger_raw, req.quantity_raw
    display, quote_qty = req.display_qty_raw, req.quote_qty_raw
    priced = otype in _PRICED
    if priced:
        if price <= 0:
            raise MandatoryParameter("price")
    elif price:
        raise ParameterNotRequired("price")
    if otype in _TRIGGERED:
        if trig <= 0:
            raise MandatoryParameter("stopPrice")
    elif trig:
        raise ParameterNotRequired("stopPrice")
    if quote_qty:
        if otype is not _MARKET or qty:
            raise ParameterNotRequired("quoteOrderQty")
        if quote_qty < 0:
            raise MandatoryParameter("quoteOrderQty")
    elif qty <= 0:
        if otype is _MARKET:
            raise EitherParameter("quantity", "quoteOrderQty")
        raise MandatoryParameter("quantity")
    if req.post_only and (otype is not _LIMIT or tif is not _GTC):
        raise UnsupportedOrderCombination()
    if display:
        if display < 0 or not priced or tif is not _GTC:
            raise UnsupportedOrderCombination()
        if display >= qty:
            raise NewOrderRejected(ICEBERG_QTY_MSG)

    # -- filters (the conditions are written out for the common case that passes; the
    # SymbolState methods re-check and raise the exact error)
    last = st.last_price
    tick = st.tick
    if priced and price % tick:
        st.check_price(price)
    if trig and trig % tick:
        st.check_price(trig, "stopPrice")
    if qty:
        max_qty = st.max_qty
        if qty % st.step or qty < st.min_qty or (max_qty and qty > max_qty):
            st.check_qty(qty)
        if display:
            st.check_qty(display, "icebergQty")
            if -(-qty // display) > engine.iceberg_parts:
                raise FilterFailure("ICEBERG_PARTS")
        if priced or last:
            notional = (price if priced else last) * qty  # market: Binance uses an average
            max_notional = st.max_notional
            if notional < st.min_notional or (max_notional and notional > max_notional):
                st.check_notional(price if priced else last, qty)
    else:
        money = quote_qty * SCALE
        if money < st.min_notional or (st.max_notional and money > st.max_notional):
            raise FilterFailure("NOTIONAL")
    if priced and last:
        up_n, up_d = st.pct_up
        down_n, down_d = st.pct_down
        if price * up_d > last * up_n or price * down_d < last * down_n:
            st.check_percent(price, last)

    # -- the order against the account and the book
    cid = req.client_order_id
    if cid and cid in open_orders:
        raise DuplicateOrder()
    stp = req.stp if req.stp is not None else default_stp
    if type(stp) is not SelfTradePrevention:
        raise BinanceError("Invalid selfTradePreventionMode.", -1130)
    if trig and last and ((last >= trig) if fires_up(otype, is_buy) else (last <= trig)):
        raise StopWouldTrigger()
    book = st.book
    if req.post_only:
        keys = book.ask_keys if is_buy else book.bid_keys
        if keys and ((-keys[-1] <= price) if is_buy else (keys[-1] >= price)):
            raise PostOnlyWouldTake()

    # -- funds
    balances = account.balances
    if quote_qty:
        qty, cost = walk(
            st, is_buy, 0, st.max_qty or _NO_LIMIT, req.account, stp, quote_qty * SCALE
        )
        if qty < max(st.min_qty, st.step):
            other = book.ask_keys if is_buy else book.bid_keys
            raise NewOrderRejected(NO_LIQUIDITY_LOT_SIZE_MSG if other else NO_LIQUIDITY_MSG)
        if is_buy:
            if insufficient(balances.get(st.quote), cost):
                raise InsufficientBalanceError()
            return qty, stp, 0
    if is_buy:
        if priced:
            need, unit = price * qty, price
        elif trig:
            return qty, stp, 0  # a stop-market buy locks nothing; checked when it triggers
        else:
            need, unit = walk(st, True, 0, qty, req.account, stp, 0)[1], 0
        bal = balances.get(st.quote)
    else:
        need, unit = qty * SCALE, SCALE
        bal = balances.get(st.base)
    if insufficient(bal, need):
        raise InsufficientBalanceError()
    return qty, stp, unit


def walk(
    st: SymbolState,
    is_buy: bool,
    limit: int,
    qty: int,
    account: str,
    stp: SelfTradePrevention,
    budget: int,
) -> tuple[int, int]:
    """(quantity, quote money) a taker would trade now, down to ``limit`` (0: none),
    spending at most ``budget`` money (0: no budget; each fill rounded down to the step),
    exactly as ``MatchingEngine._take`` would.  Changes nothing."""
    book: OrderBook = st.book
    levels, keys = (book.asks, book.ask_keys) if is_buy else (book.bids, book.bid_keys)
    step = st.step
    guard = stp is not _STP_NONE
    capped = budget > 0
    rem, filled, cost = qty, 0, 0
    for i in range(len(keys) - 1, -1, -1):
        price = -keys[i] if is_buy else keys[i]
        if limit and (price > limit if is_buy else price < limit):
            break
        live = [r for r in levels[price][L_QUEUE] if r[QTY]]
        if not guard or all(r[OWNER].account != account for r in live):
            avail = sum(r[QTY] for r in live)
            take = rem if rem < avail else avail
            if capped:
                take, budget = _within_budget(take, budget, price, step)
            filled += take
            cost += take * price
            rem -= take
            if not rem or take < avail:
                break
            continue
        # Someone's own orders are here: replay the queue one slice at a time.
        queue = deque([r[VISIBLE], r[QTY], r[DISPLAY], r[OWNER].account == account] for r in live)
        while rem and queue:
            vis, left, disp, mine = queue.popleft()
            if mine:
                if stp is _EXPIRE_MAKER:
                    continue
                if stp is _DECREMENT:
                    rem -= rem if rem < left else left
                    continue
                return filled, cost  # EXPIRE_TAKER / EXPIRE_BOTH end the taker here
            take = rem if rem < vis else vis
            if capped:
                take, budget = _within_budget(take, budget, price, step)
            filled += take
            cost += take * price
            rem -= take
            if take < vis:
                if rem:  # the budget ran out
                    return filled, cost
                break
            left -= take
            if left:
                queue.append([disp if disp < left else left, left, disp, mine])
        if rem and capped and budget < price * step:
            break
    return filled, cost


def audit(engine: MatchingEngine) -> None:
    """Verify the engine's invariants (tests and debugging; slow).  Raises
    AssertionError: books valid and never crossed, every open order where its state
    says it is, each account's locked balance equal to what its open orders hold, no
    negative balance."""
    locked: dict[tuple[str, str], int] = {}
    for st in engine.symbols.values():
        book = st.book
        book.check()
        assert not book.is_crossed(), f"{st.symbol}: crossed book"
        parked = {oid for _, oid in st.stops_up} | {oid for _, oid in st.stops_down}
        assert len(parked) == len(st.stops_up) + len(st.stops_down), "stop parked twice"
        for oid in book.orders:
            o = engine.open_orders.get(oid)
            assert o is not None and o.working, f"order {oid} in the book but not open"
        for oid in parked:
            o = engine.open_orders.get(oid)
            assert o is not None and not o.working, f"stop {oid} parked but not waiting"
    for oid, o in engine.open_orders.items():
        assert o.status.is_open, f"order {oid} open with status {o.status}"
        st = engine.symbols[o.symbol]
        leaves = o.orig_qty - o.executed - o.prevented
        assert leaves > 0, f"order {oid} open with nothing left"
        if o.working:
            rec = st.book.orders.get(oid)
            assert rec is not None and rec[QTY] == leaves, f"order {oid}: book quantity"
        assert o.locked_money == leaves * o.lock_unit, f"order {oid}: lock"
        asset = st.quote if o.is_buy else st.base
        key = (o.account, asset)
        locked[key] = locked.get(key, 0) + o.locked_money
        assert engine.accounts[o.account].open.get(o.client_order_id) is o
    for name, state in engine.accounts.items():
        assert all(o.status.is_open for o in state.open.values())
        for asset, bal in state.account.balances.items():
            assert bal.free >= 0, f"{name} {asset}: negative free balance"
            assert bal.locked == locked.get((name, asset), 0), f"{name} {asset}: locked"


def _within_budget(take: int, budget: int, price: int, step: int) -> tuple[int, int]:
    """A quote-quantity market order's take at ``price``: no more than the budget left
    buys, on the step; returns (take, budget left)."""
    cap = budget // price
    cap -= cap % step
    if cap < take:
        take = cap
    return take, budget - take * price
