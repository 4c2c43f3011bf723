"""What a strategy asks for, and what the order manager hands to a venue.

``OrderRequest`` takes Decimal/str/int at the edge; the order manager validates it
against the instrument and turns it into exact raw integers.  Commands in the outbox
are what the venue adapter must do; the OMS never talks to a venue itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot4.core.enums import OrderSide, OrderType, TimeInForce


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    side: OrderSide
    order_type: OrderType
    quantity: Decimal | int | str
    price: Decimal | int | str | None = None
    trigger_price: Decimal | int | str | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    display_qty: Decimal | int | str | None = None  # iceberg: the visible part
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class SubmitOrder:
    client_order_id: str


@dataclass(frozen=True, slots=True)
class CancelOrder:
    client_order_id: str


@dataclass(frozen=True, slots=True)
class ModifyOrder:
    client_order_id: str
    quantity_raw: int


Command = SubmitOrder | CancelOrder | ModifyOrder
