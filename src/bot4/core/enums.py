"""Enumerations of the domain; values are the strings written to the journal.

Derived facts (``OrderType.has_price``, ``OrderSide.sign``, ``OrderStatus.is_closed``
...) are plain attributes set on each member once, at import: they are read several
times per order, and a property on an enum member costs a function call each time.
"""

from __future__ import annotations

from enum import StrEnum


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    sign: int  # +1 buy, -1 sell
    opposite: OrderSide


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"  # Binance STOP_LOSS
    STOP_LIMIT = "STOP_LIMIT"  # Binance STOP_LOSS_LIMIT
    TAKE_PROFIT = "TAKE_PROFIT"  # market once triggered
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"

    has_price: bool  # carries a limit price
    has_trigger: bool  # waits for a trigger (stop) price


_PRICED = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT})
_TRIGGERED = frozenset(
    {
        OrderType.STOP_MARKET,
        OrderType.STOP_LIMIT,
        OrderType.TAKE_PROFIT,
        OrderType.TAKE_PROFIT_LIMIT,
    }
)


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    INITIALIZED = "INITIALIZED"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    TRIGGERED = "TRIGGERED"
    PENDING_CANCEL = "PENDING_CANCEL"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    is_closed: bool  # final: filled, canceled, rejected or expired
    is_open: bool  # working at (or on its way to) the venue: may still fill


_CLOSED = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)
_OPEN = frozenset(
    {
        OrderStatus.SUBMITTED,
        OrderStatus.ACCEPTED,
        OrderStatus.TRIGGERED,
        OrderStatus.PENDING_CANCEL,
        OrderStatus.PARTIALLY_FILLED,
    }
)


def _derive() -> None:
    for side in OrderSide:
        side.sign = 1 if side is OrderSide.BUY else -1
        side.opposite = OrderSide.SELL if side is OrderSide.BUY else OrderSide.BUY
    for otype in OrderType:
        otype.has_price = otype in _PRICED
        otype.has_trigger = otype in _TRIGGERED
    for status in OrderStatus:
        status.is_closed = status in _CLOSED
        status.is_open = status in _OPEN


_derive()


class LiquiditySide(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class ContingencyType(StrEnum):
    """How the orders of a list are linked."""

    NONE = "NONE"
    OCO = "OCO"  # one-cancels-other (a fill on one reduces/cancels the others)
    OTO = "OTO"  # one-triggers-other (bracket entry releases its children)
