"""Typed errors: every rejection names its rule, the field and the offending value.

Errors are values with codes (see docs/ARCHITECTURE.md): callers branch on ``code`` or
the exception class, never on message text.  Every error leaves state untouched: the
component that raises has validated before it mutated anything.
"""

from __future__ import annotations


class Bot4Error(Exception):
    """Base of every error bot4 raises on purpose."""

    code: str = "BOT4_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(Bot4Error, ValueError):
    """Bad input: names the field, the rule it broke and the value it had."""

    code = "INVALID_VALUE"

    def __init__(self, field: str, rule: str, value: object, detail: str = "") -> None:
        self.field = field
        self.rule = rule
        self.value = value
        text = f"{field}: {rule} (got {value!r})"
        if detail:
            text = f"{text}: {detail}"
        super().__init__(text)


class InstrumentRuleViolation(ValidationError):
    """An exchange filter rejected the order, in the spirit of Binance's
    ``Filter failure: LOT_SIZE``; ``rule`` is the filter name."""

    code = "FILTER_FAILURE"

    def __init__(self, field: str, rule: str, value: object, detail: str = "") -> None:
        super().__init__(field, rule, value, detail)
        self.message = (
            f"Filter failure: {rule} ({field}={value!r}{': ' + detail if detail else ''})"
        )
        self.args = (self.message,)


class UnknownInstrument(ValidationError):
    code = "UNKNOWN_INSTRUMENT"

    def __init__(self, symbol: object) -> None:
        super().__init__("symbol", "unknown symbol", symbol)


class DuplicateClientOrderId(ValidationError):
    code = "DUPLICATE_CLIENT_ORDER_ID"

    def __init__(self, client_order_id: str) -> None:
        super().__init__("client_order_id", "duplicate client order id", client_order_id)


class TimestampOutOfWindow(ValidationError):
    """A message older than the receive window or too far in the future (replay guard)."""

    code = "TIMESTAMP_OUT_OF_WINDOW"


class InsufficientBalance(ValidationError):
    code = "INSUFFICIENT_BALANCE"


class UnknownOrder(ValidationError):
    code = "UNKNOWN_ORDER"

    def __init__(self, client_order_id: object) -> None:
        super().__init__("client_order_id", "unknown order", client_order_id)


class InvalidTransition(Bot4Error):
    """An order event that the lifecycle state machine does not allow from the
    order's current status."""

    code = "INVALID_TRANSITION"

    def __init__(self, client_order_id: str, status: str, event: str) -> None:
        self.client_order_id = client_order_id
        self.status = status
        self.event = event
        super().__init__(f"order {client_order_id}: {event} is not allowed from status {status}")


class OverfillError(Bot4Error):
    """A fill larger than the order's leaves quantity (or a linked leg's share of the
    position).  Reported, never applied: the venue must be reconciled."""

    code = "OVERFILL"

    def __init__(self, client_order_id: str, fill_qty: object, leaves_qty: object) -> None:
        self.client_order_id = client_order_id
        self.fill_qty = fill_qty
        self.leaves_qty = leaves_qty
        super().__init__(
            f"order {client_order_id}: fill of {fill_qty} exceeds leaves quantity {leaves_qty}"
        )


class SequenceError(Bot4Error):
    """An event sequence number that is not exactly one more than the last one seen."""

    code = "SEQUENCE_ERROR"

    def __init__(self, expected: int, got: int) -> None:
        self.expected = expected
        self.got = got
        kind = "gap" if got > expected else "out-of-order or duplicate"
        super().__init__(f"sequence {kind}: expected {expected}, got {got}")
        self.kind = kind


class JournalUnavailable(Bot4Error):
    """The journal could not persist events: the manager fails closed and refuses every
    further call; restart it from the journal (the source of truth)."""

    code = "JOURNAL_UNAVAILABLE"
