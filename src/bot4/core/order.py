"""An order and its lifecycle state machine.

``Order`` is mutable book-keeping that only ``apply``-ing events changes; the table
``_TRANSITIONS`` is the whole lifecycle.  Two real-world races are legal on purpose:
a fill that arrives after a cancel request (PENDING_CANCEL) or even after the cancel
confirmation (CANCELED/EXPIRED) is still applied -- fills are facts and are never
dropped -- and an acceptance that arrives after a cancel request keeps the order
PENDING_CANCEL.
"""

from __future__ import annotations

from decimal import Decimal

from bot4.core.enums import ContingencyType, OrderSide, OrderStatus, OrderType, TimeInForce
from bot4.core.errors import InvalidTransition, OverfillError
from bot4.core.events import (
    Event,
    OrderAccepted,
    OrderCancelRejected,
    OrderFilled,
    OrderInitialized,
    OrderTriggered,
    OrderUpdated,
)
from bot4.core.numbers import Rounding, div_round, from_raw

S = OrderStatus
_FILL = "OrderFilled"
_PENDING_CANCEL = S.PENDING_CANCEL
_INITIALIZED = S.INITIALIZED
_CLOSED = frozenset(s for s in S if s.is_closed)
_OPEN = frozenset(s for s in S if s.is_open)
_ILLEGAL = object()  # "no such transition" in _TRANSITIONS lookups
_LIVE = (S.SUBMITTED, S.ACCEPTED, S.TRIGGERED, S.PARTIALLY_FILLED)

# (status, event kind) -> new status.  None = "depends on the event" (fills, cancel
# rejects, updates), resolved in ``Order.can_apply``.
_TRANSITIONS: dict[tuple[OrderStatus, str], OrderStatus | None] = {
    (S.INITIALIZED, "OrderSubmitted"): S.SUBMITTED,
    (S.INITIALIZED, "OrderRejected"): S.REJECTED,
    (S.INITIALIZED, "OrderCanceled"): S.CANCELED,
    (S.INITIALIZED, "OrderUpdated"): None,
    (S.SUBMITTED, "OrderAccepted"): S.ACCEPTED,
    (S.SUBMITTED, "OrderRejected"): S.REJECTED,
    (S.PENDING_CANCEL, "OrderAccepted"): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, "OrderCanceled"): S.CANCELED,
    (S.PENDING_CANCEL, "OrderExpired"): S.EXPIRED,
    (S.PENDING_CANCEL, "OrderCancelRejected"): None,
    (S.PENDING_CANCEL, "OrderTriggered"): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, "OrderUpdated"): None,
    (S.PENDING_CANCEL, _FILL): None,
    (S.CANCELED, _FILL): None,
    (S.EXPIRED, _FILL): None,
}
for _st in _LIVE:
    _TRANSITIONS[(_st, "OrderPendingCancel")] = S.PENDING_CANCEL
    _TRANSITIONS[(_st, "OrderCanceled")] = S.CANCELED
    _TRANSITIONS[(_st, "OrderExpired")] = S.EXPIRED
    _TRANSITIONS[(_st, "OrderUpdated")] = None
    _TRANSITIONS[(_st, _FILL)] = None
for _st in (S.SUBMITTED, S.ACCEPTED):
    _TRANSITIONS[(_st, "OrderTriggered")] = S.TRIGGERED
# The fixed transitions alone: a miss (None) means "ask ``Order.can_apply``".
TRANSITIONS: dict[tuple[OrderStatus, str], OrderStatus] = {
    k: v for k, v in _TRANSITIONS.items() if v is not None
}


class Order:
    """One order's state, folded from its events."""

    __slots__ = (
        "client_order_id",
        "contingency",
        "display_qty_raw",
        "fees_money",
        "fill_notional_money",
        "filled_qty_raw",
        "initial_qty_raw",
        "linked_ids",
        "list_id",
        "lock_asset",
        "lock_taken",
        "lock_unit",
        "locked_money",
        "offset_ppm",
        "order_type",
        "parent_id",
        "pending_money",
        "post_only",
        "previous_status",
        "price_raw",
        "quantity_raw",
        "reduce_only",
        "shares_lock",
        "side",
        "status",
        "symbol",
        "time_in_force",
        "trade_ids",
        "trigger_raw",
        "triggered",
        "ts_init",
        "ts_last",
        "venue_order_id",
    )

    def __init__(self, init: OrderInitialized) -> None:
        self.client_order_id: str = init.client_order_id
        self.symbol: str = init.symbol
        self.side: OrderSide = init.side
        self.order_type: OrderType = init.order_type
        self.quantity_raw: int = init.quantity_raw
        self.initial_qty_raw: int = init.quantity_raw
        self.price_raw: int = init.price_raw
        self.trigger_raw: int = init.trigger_raw
        self.time_in_force: TimeInForce = init.time_in_force
        self.post_only: bool = init.post_only
        self.reduce_only: bool = init.reduce_only
        self.display_qty_raw: int = init.display_qty_raw
        self.list_id: str = init.list_id
        self.contingency: ContingencyType = init.contingency
        self.parent_id: str = init.parent_id
        self.linked_ids: tuple[str, ...] = init.linked_ids
        self.shares_lock: bool = init.shares_lock
        self.offset_ppm: int = init.offset_ppm
        self.status: OrderStatus = _INITIALIZED
        self.previous_status: OrderStatus = _INITIALIZED
        self.venue_order_id: str = ""
        self.filled_qty_raw: int = 0
        self.fill_notional_money: int = 0
        self.fees_money: dict[str, int] = {}
        self.trade_ids: set[str] = set()
        self.pending_money: int = 0  # funds promised before acknowledgement
        self.locked_money: int = 0  # funds locked at the venue for the leaves
        self.lock_taken: bool = False
        # What the order locks per raw unit of leaves quantity, and in which asset:
        # set by the trading state (it knows the instrument), kept with the order
        # because every event of the order reads it.
        self.lock_asset: str = ""
        self.lock_unit: int = 0
        self.triggered: bool = False
        self.ts_init: int = init.ts_event
        self.ts_last: int = init.ts_event

    # -- derived ----------------------------------------------------------------------
    @property
    def leaves_qty_raw(self) -> int:
        return self.quantity_raw - self.filled_qty_raw

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    @property
    def is_closed(self) -> bool:
        return self.status.is_closed

    @property
    def quantity(self) -> Decimal:
        return from_raw(self.quantity_raw)

    @property
    def filled_qty(self) -> Decimal:
        return from_raw(self.filled_qty_raw)

    @property
    def price(self) -> Decimal | None:
        return from_raw(self.price_raw) if self.price_raw else None

    @property
    def avg_fill_price(self) -> Decimal | None:
        """Volume-weighted fill price, rounded half-even to 1e-9 (display only)."""
        if not self.filled_qty_raw:
            return None
        return from_raw(
            div_round(self.fill_notional_money, self.filled_qty_raw, Rounding.HALF_EVEN)
        )

    # -- the state machine ------------------------------------------------------------
    def can_apply(self, event: Event) -> OrderStatus:
        """The status ``event`` leads to, or ``InvalidTransition``/``OverfillError``.
        Pure: checks everything ``apply`` would do without changing the order."""
        target = _TRANSITIONS.get((self.status, event.kind), _ILLEGAL)
        if target is not None:
            if target is _ILLEGAL:
                raise InvalidTransition(self.client_order_id, self.status.value, event.kind)
            return target  # type: ignore[return-value]
        if isinstance(event, OrderFilled):
            if event.qty_raw <= 0:
                raise OverfillError(self.client_order_id, from_raw(event.qty_raw), self.leaves_qty)
            if event.qty_raw > self.leaves_qty_raw:
                raise OverfillError(self.client_order_id, from_raw(event.qty_raw), self.leaves_qty)
            if event.qty_raw == self.leaves_qty_raw:
                return S.FILLED
            if self.status in (S.PENDING_CANCEL, S.CANCELED, S.EXPIRED):
                return self.status
            return S.PARTIALLY_FILLED
        if isinstance(event, OrderCancelRejected):
            return self.previous_status
        if isinstance(event, OrderUpdated):
            # A resize keeps the order working: it must leave some quantity to fill.
            if event.quantity_raw <= self.filled_qty_raw:
                raise OverfillError(
                    self.client_order_id,
                    from_raw(self.filled_qty_raw),
                    from_raw(event.quantity_raw),
                )
            return self.status
        raise InvalidTransition(self.client_order_id, self.status.value, event.kind)

    @property
    def leaves_qty(self) -> Decimal:
        return from_raw(self.leaves_qty_raw)

    def apply(self, event: Event, new_status: OrderStatus | None = None) -> None:
        """Fold one event into the order; ``new_status`` is what ``can_apply`` returned
        for it, if the caller already asked."""
        if new_status is None:
            new_status = self.can_apply(event)
        kind = event.kind  # string compares: cheaper than an isinstance chain
        # (The kind tells the type; annotated assignments narrow it for mypy without
        # the cost of an ``assert isinstance`` per event.)
        if kind == "OrderFilled":
            fill: OrderFilled = event  # type: ignore[assignment]
            self.filled_qty_raw += fill.qty_raw
            self.fill_notional_money += fill.qty_raw * fill.price_raw
            if fill.fee_money:
                self.fees_money[fill.fee_asset] = (
                    self.fees_money.get(fill.fee_asset, 0) + fill.fee_money
                )
            self.trade_ids.add(fill.trade_id)
        elif kind == "OrderAccepted":
            if not self.venue_order_id:
                accepted: OrderAccepted = event  # type: ignore[assignment]
                self.venue_order_id = accepted.venue_order_id
        elif kind == "OrderUpdated":
            update: OrderUpdated = event  # type: ignore[assignment]
            self.quantity_raw = update.quantity_raw
            if update.trigger_raw:
                self.trigger_raw = update.trigger_raw
            if update.price_raw:
                self.price_raw = update.price_raw
        elif kind == "OrderTriggered":
            self.triggered = True
        elif kind == "OrderPendingCancel":
            self.previous_status = self.status
        status = self.status
        if status is _PENDING_CANCEL and new_status is _PENDING_CANCEL:
            # Where the order goes back to if the cancel is rejected.
            self.previous_status = _behind_pending_cancel(self.previous_status, event)
        elif new_status is not status:
            if kind != "OrderPendingCancel":
                self.previous_status = status
            self.status = new_status
        self.ts_last = event.ts_event

    def snapshot(self) -> tuple[object, ...]:
        """Everything about the order, for equality checks (replay = live)."""
        return tuple(
            sorted(self.trade_ids)
            if name == "trade_ids"
            else sorted(self.fees_money.items())
            if name == "fees_money"
            else getattr(self, name)
            for name in self.__slots__
        )


def _behind_pending_cancel(previous: OrderStatus, event: Event) -> OrderStatus:
    if isinstance(event, OrderFilled):
        return S.PARTIALLY_FILLED
    if isinstance(event, OrderTriggered) and previous is not S.PARTIALLY_FILLED:
        return S.TRIGGERED
    if isinstance(event, OrderAccepted) and previous is S.SUBMITTED:
        return S.ACCEPTED
    return previous
