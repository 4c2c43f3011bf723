"""Immutable events: every state change in bot4 is one of these.

Each event carries a monotonic ``seq`` (assigned by the component that applies it),
``ts_event`` (when it happened, at the venue or strategy) and ``ts_recv`` (when bot4
learned of it), both integer nanoseconds since the Unix epoch.  State is a fold over
events, so the journal of these records is enough to rebuild everything.

Amounts are raw fixed-point integers (see ``bot4.core.numbers``): ``*_raw`` prices and
quantities in 1e-9 units, ``*_money`` amounts in 1e-18 units.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, ClassVar

from bot4.core.enums import (
    ContingencyType,
    LiquiditySide,
    OrderSide,
    OrderType,
    TimeInForce,
)
from bot4.core.frozen import fast_frozen_init


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    ts_event: int
    ts_recv: int

    kind: ClassVar[str] = "Event"

    def to_payload(self) -> dict[str, Any]:
        """The fields other than seq and the timestamps, JSON-ready (enums as values)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in _HEADER:
                continue
            value = getattr(self, f.name)
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


_HEADER = frozenset({"seq", "ts_event", "ts_recv"})


@dataclass(frozen=True, slots=True)
class BalanceAdjusted(Event):
    """A deposit (positive) or withdrawal (negative) outside trading."""

    asset: str
    amount_money: int
    reason: str = "deposit"

    kind: ClassVar[str] = "BalanceAdjusted"


@dataclass(frozen=True, slots=True)
class OrderInitialized(Event):
    client_order_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    quantity_raw: int
    price_raw: int = 0
    trigger_raw: int = 0
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    display_qty_raw: int = 0
    list_id: str = ""
    contingency: ContingencyType = ContingencyType.NONE
    parent_id: str = ""
    linked_ids: tuple[str, ...] = ()
    shares_lock: bool = False
    offset_ppm: int = 0  # a bracket exit placed this far (parts per million) from the fill

    kind: ClassVar[str] = "OrderInitialized"


@dataclass(frozen=True, slots=True)
class OrderSubmitted(Event):
    client_order_id: str

    kind: ClassVar[str] = "OrderSubmitted"


@dataclass(frozen=True, slots=True)
class OrderAccepted(Event):
    client_order_id: str
    venue_order_id: str

    kind: ClassVar[str] = "OrderAccepted"


@dataclass(frozen=True, slots=True)
class OrderRejected(Event):
    client_order_id: str
    reason: str

    kind: ClassVar[str] = "OrderRejected"


@dataclass(frozen=True, slots=True)
class OrderPendingCancel(Event):
    client_order_id: str

    kind: ClassVar[str] = "OrderPendingCancel"


@dataclass(frozen=True, slots=True)
class OrderCancelRejected(Event):
    client_order_id: str
    reason: str

    kind: ClassVar[str] = "OrderCancelRejected"


@dataclass(frozen=True, slots=True)
class OrderCanceled(Event):
    client_order_id: str
    reason: str = ""

    kind: ClassVar[str] = "OrderCanceled"


@dataclass(frozen=True, slots=True)
class OrderExpired(Event):
    client_order_id: str

    kind: ClassVar[str] = "OrderExpired"


@dataclass(frozen=True, slots=True)
class OrderTriggered(Event):
    client_order_id: str

    kind: ClassVar[str] = "OrderTriggered"


@dataclass(frozen=True, slots=True)
class OrderUpdated(Event):
    """The order's total quantity changed (a linked leg reduced or grown), and/or its
        trigger or limit price moved (an exit set relative to the entry's fill price); a price
    of 0 means unchanged."""

    client_order_id: str
    quantity_raw: int
    reason: str = ""
    trigger_raw: int = 0
    price_raw: int = 0

    kind: ClassVar[str] = "OrderUpdated"


@dataclass(frozen=True, slots=True)
class OrderFilled(Event):
    client_order_id: str
    trade_id: str
    qty_raw: int
    price_raw: int
    fee_money: int = 0
    fee_asset: str = ""
    liquidity: LiquiditySide = LiquiditySide.TAKER

    kind: ClassVar[str] = "OrderFilled"


@dataclass(frozen=True, slots=True)
class OrderDenied(Event):
    """The risk engine refused an order before it entered the order path.  Journaled so
    every denial has a durable reason; it changes no order, position or balance."""

    symbol: str
    side: OrderSide
    order_type: OrderType
    quantity_raw: int
    price_raw: int
    reason: str
    message: str
    client_order_id: str = ""

    kind: ClassVar[str] = "OrderDenied"


@dataclass(frozen=True, slots=True)
class TradingStateChanged(Event):
    """ACTIVE / REDUCING / HALTED, and why (a kill-switch trip, a reset, a stage)."""

    trading_state: str
    reason: str

    kind: ClassVar[str] = "TradingStateChanged"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        BalanceAdjusted,
        OrderInitialized,
        OrderSubmitted,
        OrderAccepted,
        OrderRejected,
        OrderPendingCancel,
        OrderCancelRejected,
        OrderCanceled,
        OrderExpired,
        OrderTriggered,
        OrderUpdated,
        OrderFilled,
        OrderDenied,
        TradingStateChanged,
    )
}


for _cls in EVENT_TYPES.values():
    fast_frozen_init(_cls)

_ENUM_FIELDS: dict[str, type[Enum]] = {
    "side": OrderSide,
    "order_type": OrderType,
    "time_in_force": TimeInForce,
    "contingency": ContingencyType,
    "liquidity": LiquiditySide,
}


def event_from_record(
    kind: str, seq: int, ts_event: int, ts_recv: int, payload: dict[str, Any]
) -> Event:
    """Rebuild an event from its journal record (the inverse of ``to_payload``)."""
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown event kind {kind!r}")
    args = dict(payload)
    for name, enum_cls in _ENUM_FIELDS.items():
        if name in args:
            args[name] = enum_cls(args[name])
    if "linked_ids" in args:
        args["linked_ids"] = tuple(args["linked_ids"])
    return cls(seq=seq, ts_event=ts_event, ts_recv=ts_recv, **args)
