"""What a strategy asks for, and what the order manager hands to a venue.

``OrderRequest`` takes Decimal/str/int at the edge; ``raw()`` turns it into a
``RawOrderRequest`` of exact integers (1e-9 units) once, and the risk engine and the
order manager read only that.  The strategy API builds ``RawOrderRequest`` directly
(its floats are converted exactly, see ``bot4.strategy.base``), so an order is parsed
once, not once per stage.  Commands in the outbox are what the venue adapter must do;
the OMS never talks to a venue itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot4.core.enums import OrderSide, OrderType, TimeInForce
from bot4.core.numbers import to_raw


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

    def raw(self) -> RawOrderRequest:
        """The same request in exact integers; a ``ValidationError`` naming the field
        for a float, NaN, or more than nine decimals."""
        return RawOrderRequest(
            self.symbol,
            self.side,
            self.order_type,
            to_raw(self.quantity, "quantity"),
            None if self.price is None else to_raw(self.price, "price"),
            None if self.trigger_price is None else to_raw(self.trigger_price, "trigger_price"),
            self.time_in_force,
            self.post_only,
            self.reduce_only,
            None if self.display_qty is None else to_raw(self.display_qty, "display_qty"),
            self.client_order_id,
        )


@dataclass(slots=True)
class RawOrderRequest:
    """An order request in raw integers (1e-9 units; None = not given).  Not yet
    validated against the instrument: the order manager does that.  Treated as
    immutable (not frozen: a frozen dataclass's ``__init__`` costs three times as much,
    and one is built per order)."""

    symbol: str
    side: OrderSide
    order_type: OrderType
    quantity_raw: int
    price_raw: int | None = None
    trigger_raw: int | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    display_qty_raw: int | None = None
    client_order_id: str | None = None

    def raw(self) -> RawOrderRequest:
        return self


AnyOrderRequest = OrderRequest | RawOrderRequest


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
