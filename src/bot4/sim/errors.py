"""Binance-style rejections: typed exceptions carrying Binance's own ``code`` and ``msg``.

The simulator's network front must answer exactly what Binance answers, because
clients (ccxt first of all) branch on the code and sometimes on the message text
(``LOT_SIZE`` or ``PRICE_FILTER`` in a message makes ccxt raise InvalidOrder).  So the
messages below are Binance's words, character for character, from its published error
list; ``BinanceError.to_dict()`` is the response body.

Every error is raised before the matching engine changes anything (the engine validates
completely first), so a rejection never half-applies.

These are not ``bot4.core.errors.Bot4Error`` subclasses on purpose: Bot4Error's
``code`` is a string name, Binance's is a negative integer.  ``from_bot4_error`` maps the
core's typed errors (e.g. ``InstrumentRuleViolation`` with ``rule="LOT_SIZE"``) onto
these.
"""

from __future__ import annotations

from typing import Final

from bot4.core.errors import (
    Bot4Error,
    DuplicateClientOrderId,
    InstrumentRuleViolation,
    InsufficientBalance,
    TimestampOutOfWindow,
    UnknownInstrument,
    UnknownOrder,
    ValidationError,
)

INSUFFICIENT_BALANCE_MSG: Final = "Account has insufficient balance for requested action."
UNKNOWN_ORDER_MSG: Final = "Unknown order sent."
DUPLICATE_ORDER_MSG: Final = "Duplicate order sent."
POST_ONLY_MSG: Final = "Order would immediately match and take."
STOP_TRIGGERS_MSG: Final = "Order would trigger immediately."
ICEBERG_QTY_MSG: Final = "IcebergQty exceeds QTY."
UNSUPPORTED_COMBINATION_MSG: Final = "Unsupported order combination."
INVALID_SYMBOL_MSG: Final = "Invalid symbol."
INVALID_API_KEY_MSG: Final = "Invalid API-key, IP, or permissions for action."
CANCEL_INVALID_MSG: Final = "Cancel order is invalid. Check origClOrdId and orderId."
NO_LIQUIDITY_LOT_SIZE_MSG: Final = (
    "Order book liquidity is less than `LOT_SIZE` filter minimum quantity."
)
NO_LIQUIDITY_MSG: Final = "Order book liquidity is less than symbol minimum quantity."
AMEND_INCREASE_MSG: Final = "Order amend (quantity increase) is not supported."
TIMESTAMP_MSG: Final = "Timestamp for this request is outside of the recvWindow."
UNKNOWN_MSG: Final = "An unknown error occurred while processing the request."


class BinanceError(Exception):
    """A rejection as Binance reports it: ``{"code": code, "msg": msg}``."""

    code: int = -1000

    def __init__(self, msg: str, code: int | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, int | str]:
        return {"code": self.code, "msg": self.msg}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, msg={self.msg!r})"


class FilterFailure(BinanceError):
    """-1013: an exchange filter (``PRICE_FILTER``, ``LOT_SIZE``, ``NOTIONAL``,
    ``PERCENT_PRICE``, ``ICEBERG_PARTS`` ...) refused the order."""

    code = -1013

    def __init__(self, filter_name: str) -> None:
        super().__init__(f"Filter failure: {filter_name}")
        self.filter = filter_name


class UnsupportedOrderCombination(BinanceError):
    code = -1014

    def __init__(self) -> None:
        super().__init__(UNSUPPORTED_COMBINATION_MSG)


class MandatoryParameter(BinanceError):
    """-1102: a parameter the order type needs is missing or not positive."""

    code = -1102

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
        self.param = name


class EitherParameter(BinanceError):
    code = -1102

    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"Param '{first}' or '{second}' must be sent, but both were empty/null!")


class ParameterNotRequired(BinanceError):
    """-1106: a parameter the order type must not carry (a price on a market order)."""

    code = -1106

    def __init__(self, name: str) -> None:
        super().__init__(f"Parameter '{name}' sent when not required.")
        self.param = name


class InvalidSymbol(BinanceError):
    code = -1121

    def __init__(self) -> None:
        super().__init__(INVALID_SYMBOL_MSG)


class NewOrderRejected(BinanceError):
    """-2010: the matching engine refused a new order (balance, post-only, duplicate
    client id, stop that would trigger at once ...); ``msg`` says which."""

    code = -2010


class InsufficientBalanceError(NewOrderRejected):
    def __init__(self) -> None:
        super().__init__(INSUFFICIENT_BALANCE_MSG)


class PostOnlyWouldTake(NewOrderRejected):
    def __init__(self) -> None:
        super().__init__(POST_ONLY_MSG)


class DuplicateOrder(NewOrderRejected):
    def __init__(self) -> None:
        super().__init__(DUPLICATE_ORDER_MSG)


class StopWouldTrigger(NewOrderRejected):
    def __init__(self) -> None:
        super().__init__(STOP_TRIGGERS_MSG)


class CancelRejected(BinanceError):
    """-2011: cancel (or amend) of an order that is not open."""

    code = -2011


class UnknownOrderError(CancelRejected):
    def __init__(self) -> None:
        super().__init__(UNKNOWN_ORDER_MSG)


class InvalidApiKey(BinanceError):
    """-2015: the simulator has no such account."""

    code = -2015

    def __init__(self) -> None:
        super().__init__(INVALID_API_KEY_MSG)


def from_bot4_error(exc: Bot4Error) -> BinanceError:
    """The Binance rejection that corresponds to one of bot4's typed errors."""
    if isinstance(exc, InstrumentRuleViolation):
        return FilterFailure(exc.rule)
    if isinstance(exc, UnknownInstrument):
        return InvalidSymbol()
    if isinstance(exc, InsufficientBalance):
        return InsufficientBalanceError()
    if isinstance(exc, UnknownOrder):
        return UnknownOrderError()
    if isinstance(exc, DuplicateClientOrderId):
        return DuplicateOrder()
    if isinstance(exc, TimestampOutOfWindow):
        return BinanceError(TIMESTAMP_MSG, -1021)
    if isinstance(exc, ValidationError):
        if exc.rule == "must be > 0":
            return MandatoryParameter(exc.field)
        return BinanceError("Illegal characters found in a parameter.", -1100)
    return BinanceError(UNKNOWN_MSG, -1000)
