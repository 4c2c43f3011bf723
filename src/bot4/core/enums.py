"""Enumerations of the domain; values are the strings written to the journal."""

from __future__ import annotations

from enum import StrEnum


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is OrderSide.BUY else -1

    @property
    def opposite(self) -> OrderSide:
        return OrderSide.SELL if self is OrderSide.BUY else OrderSide.BUY


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"  # Binance STOP_LOSS
    STOP_LIMIT = "STOP_LIMIT"  # Binance STOP_LOSS_LIMIT
    TAKE_PROFIT = "TAKE_PROFIT"  # market once triggered
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"

    @property
    def has_price(self) -> bool:
        return self in _PRICED

    @property
    def has_trigger(self) -> bool:
        return self in _TRIGGERED


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

    @property
    def is_closed(self) -> bool:
        return self in _CLOSED

    @property
    def is_open(self) -> bool:
        """Working at (or on its way to) the venue: may still fill."""
        return self in _OPEN


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


class LiquiditySide(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class ContingencyType(StrEnum):
    """How the orders of a list are linked."""

    NONE = "NONE"
    OCO = "OCO"  # one-cancels-other (a fill on one reduces/cancels the others)
    OTO = "OTO"  # one-triggers-other (bracket entry releases its children)
