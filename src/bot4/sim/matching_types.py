"""What goes into and comes out of the matching engine.

In: ``NewOrder`` (a request in raw integers).  Out: ``ExecutionReport`` (one per order
event, the shape of Binance's ``executionReport``) and ``Trade`` (one per match, the
shape of the public trade stream).  Both outputs are immutable named tuples: cheap to
build in the hot path (a frozen dataclass costs about three times more) and easy to
turn into JSON.  ``SimOrder`` is the engine's live record of an order; treat it as
read-only outside the engine.

Statuses and execution types are Binance's strings, so the network front passes them
through; ``to_bot4_status`` maps them onto bot4's own lifecycle.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from bot4.core.enums import LiquiditySide, OrderSide, OrderStatus, OrderType, TimeInForce
from bot4.oms.account import Balance


class SelfTradePrevention(StrEnum):
    """Binance's STP modes; the taker order's mode decides (Binance STP FAQ)."""

    NONE = "NONE"
    EXPIRE_TAKER = "EXPIRE_TAKER"
    EXPIRE_MAKER = "EXPIRE_MAKER"
    EXPIRE_BOTH = "EXPIRE_BOTH"
    DECREMENT = "DECREMENT"


class ExecType(StrEnum):
    """Why a report was sent.  All but TRIGGERED are Binance's execution types."""

    NEW = "NEW"
    TRADE = "TRADE"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    REPLACED = "REPLACED"
    TRADE_PREVENTION = "TRADE_PREVENTION"
    TRIGGERED = "TRIGGERED"  # a stop order started working; Binance reports no event

    @property
    def binance(self) -> str:
        return "NEW" if self is ExecType.TRIGGERED else self.value


class SimStatus(StrEnum):
    """Binance's order statuses (EXPIRED_IN_MATCH = expired by self-trade prevention)."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES


OPEN_STATUSES = frozenset({SimStatus.NEW, SimStatus.PARTIALLY_FILLED})
_TRIGGERED_TYPES = frozenset(t for t in OrderType if t.has_trigger)
_BUY = OrderSide.BUY
_NEW = SimStatus.NEW

_TO_BOT4 = {
    SimStatus.NEW: OrderStatus.ACCEPTED,
    SimStatus.PARTIALLY_FILLED: OrderStatus.PARTIALLY_FILLED,
    SimStatus.FILLED: OrderStatus.FILLED,
    SimStatus.CANCELED: OrderStatus.CANCELED,
    SimStatus.REJECTED: OrderStatus.REJECTED,
    SimStatus.EXPIRED: OrderStatus.EXPIRED,
    SimStatus.EXPIRED_IN_MATCH: OrderStatus.EXPIRED,
}


def to_bot4_status(status: SimStatus) -> OrderStatus:
    return _TO_BOT4[status]


_BINANCE_TYPE = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.STOP_MARKET: "STOP_LOSS",
    OrderType.STOP_LIMIT: "STOP_LOSS_LIMIT",
    OrderType.TAKE_PROFIT: "TAKE_PROFIT",
    OrderType.TAKE_PROFIT_LIMIT: "TAKE_PROFIT_LIMIT",
}
_FROM_BINANCE_TYPE = {v: k for k, v in _BINANCE_TYPE.items()}


def binance_order_type(order_type: OrderType, post_only: bool = False) -> str:
    """bot4's order type as Binance names it (a post-only limit is LIMIT_MAKER)."""
    return "LIMIT_MAKER" if post_only else _BINANCE_TYPE[order_type]


def from_binance_order_type(name: str) -> tuple[OrderType, bool]:
    """(order type, post_only) for a Binance type name; KeyError if unknown."""
    if name == "LIMIT_MAKER":
        return OrderType.LIMIT, True
    return _FROM_BINANCE_TYPE[name], False


class NewOrder(NamedTuple):
    """A new order in raw integers (prices/quantities in 1e-9 units).

    Binance's parameters map one to one: ``quantity_raw`` = quantity, ``price_raw`` =
    price, ``trigger_raw`` = stopPrice, ``display_qty_raw`` = icebergQty,
    ``quote_qty_raw`` = quoteOrderQty (MARKET only, in quote units of 1e-9), ``stp`` =
    selfTradePreventionMode (None: the account's default).  Zero means "not sent".
    """

    account: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    quantity_raw: int = 0
    price_raw: int = 0
    trigger_raw: int = 0
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    display_qty_raw: int = 0
    client_order_id: str = ""
    stp: SelfTradePrevention | None = None
    quote_qty_raw: int = 0


class ExecutionReport(NamedTuple):
    """One order event.  Quantities/prices raw (1e-9), money raw (1e-18).  On a TRADE
    report the ``last_*``, ``trade_id``, fee and liquidity fields describe the fill."""

    seq: int  # engine-wide, strictly increasing
    ts: int  # ns
    exec_type: ExecType
    status: SimStatus
    account: str
    symbol: str
    order_id: int
    client_order_id: str
    side: OrderSide
    order_type: OrderType
    post_only: bool
    time_in_force: TimeInForce
    price_raw: int
    trigger_raw: int
    orig_qty_raw: int
    executed_qty_raw: int
    cum_quote_money: int
    prevented_qty_raw: int
    last_qty_raw: int = 0
    last_price_raw: int = 0
    trade_id: int = -1
    fee_money: int = 0
    fee_asset: str = ""
    liquidity: LiquiditySide | None = None
    last_prevented_qty_raw: int = 0
    reject_code: int = 0  # a REJECTED report (``MatchingEngine.process``): Binance's code
    reject_reason: str = ""  # ... and message

    @property
    def leaves_qty_raw(self) -> int:
        """What can still fill (0 once the order is closed)."""
        if not self.status.is_open:
            return 0
        return self.orig_qty_raw - self.executed_qty_raw - self.prevented_qty_raw

    @property
    def binance_order_type(self) -> str:
        return binance_order_type(self.order_type, self.post_only)


class Trade(NamedTuple):
    """One match, as the public trade stream shows it."""

    trade_id: int  # per symbol, from 1
    symbol: str
    price_raw: int
    qty_raw: int
    quote_money: int
    ts: int
    taker_side: OrderSide
    maker_order_id: int
    taker_order_id: int
    maker_account: str
    taker_account: str

    @property
    def buyer_is_maker(self) -> bool:
        return self.taker_side is OrderSide.SELL


class PySimOrder:
    """The engine's record of one order (open or closed).  Read-only for callers.
    ``SimOrder`` is this class, or its compiled twin (``bot4.sim._fastmatch``) where
    that is built.

    ``locked_money`` is what the order still holds locked in ``lock_asset``: a sell
    locks its remaining base quantity, a buy with a price locks price x remaining
    quantity of quote, a market buy locks nothing (its cost is checked against the
    book when it arrives or triggers)."""

    __slots__ = (
        "account",
        "base_bal",
        "client_order_id",
        "cum_quote",
        "display",
        "executed",
        "is_buy",
        "lock_unit",
        "locked_money",
        "order_id",
        "order_type",
        "orig_qty",
        "post_only",
        "prevented",
        "price",
        "quote_bal",
        "quote_qty",
        "side",
        "status",
        "stp",
        "symbol",
        "tif",
        "time",
        "trigger",
        "update_time",
        "working",
    )

    def __init__(
        self,
        order_id: int,
        req: NewOrder,
        client_order_id: str,
        orig_qty: int,
        stp: SelfTradePrevention,
        now: int,
        base_bal: Balance,
        quote_bal: Balance,
        lock_unit: int,
    ) -> None:
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
        self.locked_money = 0

    @property
    def leaves_qty(self) -> int:
        if not self.status.is_open:
            return 0
        return self.orig_qty - self.executed - self.prevented

    def snapshot(self) -> tuple[object, ...]:
        return (
            self.order_id,
            self.client_order_id,
            self.account,
            self.symbol,
            self.side,
            self.order_type,
            self.tif,
            self.post_only,
            self.price,
            self.trigger,
            self.display,
            self.quote_qty,
            self.stp,
            self.orig_qty,
            self.executed,
            self.cum_quote,
            self.prevented,
            self.status,
            self.time,
            self.update_time,
            self.working,
            self.lock_unit,
            self.locked_money,
        )

    def __repr__(self) -> str:
        return (
            f"SimOrder({self.order_id}, {self.client_order_id!r}, {self.account!r}, "
            f"{self.symbol}, {self.side}, {self.order_type}, price={self.price}, "
            f"qty={self.orig_qty}, executed={self.executed}, status={self.status})"
        )


def _compiled_order() -> type[PySimOrder] | None:
    from bot4._compiled import compiled

    fast = compiled("_fastmatch")
    return None if fast is None else fast.SimOrder


if TYPE_CHECKING:
    SimOrder = PySimOrder
else:
    SimOrder = _compiled_order() or PySimOrder
