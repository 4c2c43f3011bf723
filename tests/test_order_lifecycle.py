"""The order state machine: legal paths, refused transitions, fills never dropped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot4.core.enums import OrderSide, OrderStatus, OrderType
from bot4.core.errors import InvalidTransition, OverfillError
from bot4.core.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderExpired,
    OrderFilled,
    OrderInitialized,
    OrderPendingCancel,
    OrderRejected,
    OrderSubmitted,
    OrderTriggered,
    OrderUpdated,
)
from bot4.core.order import Order

S = OrderStatus
QTY = 10

# The lifecycle as the issue states it, written independently of the implementation:
# which status may follow which.  Late fills may complete a canceled/expired order.
LEGAL_NEXT: dict[OrderStatus, set[OrderStatus]] = {
    S.INITIALIZED: {S.SUBMITTED, S.REJECTED, S.CANCELED},
    S.SUBMITTED: {
        S.ACCEPTED,
        S.REJECTED,
        S.PENDING_CANCEL,
        S.CANCELED,
        S.EXPIRED,
        S.TRIGGERED,
        S.PARTIALLY_FILLED,
        S.FILLED,
    },
    S.ACCEPTED: {
        S.PENDING_CANCEL,
        S.CANCELED,
        S.EXPIRED,
        S.TRIGGERED,
        S.PARTIALLY_FILLED,
        S.FILLED,
    },
    S.TRIGGERED: {S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.PARTIALLY_FILLED, S.FILLED},
    S.PARTIALLY_FILLED: {S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.FILLED},
    S.PENDING_CANCEL: {
        S.CANCELED,
        S.EXPIRED,
        S.FILLED,
        S.ACCEPTED,
        S.TRIGGERED,
        S.PARTIALLY_FILLED,
        S.SUBMITTED,
    },
    S.CANCELED: {S.FILLED},
    S.EXPIRED: {S.FILLED},
    S.FILLED: set(),
    S.REJECTED: set(),
}


def new_order(order_type: OrderType = OrderType.STOP_LIMIT) -> Order:
    return Order(
        OrderInitialized(
            seq=1,
            ts_event=0,
            ts_recv=0,
            client_order_id="c1",
            symbol="BTCUSDT",
            side=OrderSide.BUY,
            order_type=order_type,
            quantity_raw=QTY,
            price_raw=100,
            trigger_raw=99,
        )
    )


def make_event(kind: str, arg: int, n: int) -> Event:
    h = {"seq": n, "ts_event": n, "ts_recv": n, "client_order_id": "c1"}
    if kind == "fill":
        return OrderFilled(trade_id=f"t{n}", qty_raw=arg, price_raw=100, **h)
    if kind == "update":
        return OrderUpdated(quantity_raw=arg, **h)
    return {
        "submit": lambda: OrderSubmitted(**h),
        "accept": lambda: OrderAccepted(venue_order_id="v", **h),
        "reject": lambda: OrderRejected(reason="r", **h),
        "pending_cancel": lambda: OrderPendingCancel(**h),
        "cancel_reject": lambda: OrderCancelRejected(reason="r", **h),
        "cancel": lambda: OrderCanceled(**h),
        "expire": lambda: OrderExpired(**h),
        "trigger": lambda: OrderTriggered(**h),
    }[kind]()


KINDS = [
    "submit",
    "accept",
    "reject",
    "pending_cancel",
    "cancel_reject",
    "cancel",
    "expire",
    "trigger",
    "fill",
    "fill",
    "update",
]


@given(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(-2, QTY + 2)), max_size=40))
def test_random_event_sequences_never_leave_the_legal_lifecycle(
    steps: list[tuple[str, int]],
) -> None:
    order = new_order()
    for n, (kind, arg) in enumerate(steps, start=2):
        before = order.snapshot()
        status = order.status
        try:
            order.apply(make_event(kind, arg, n))
        except (InvalidTransition, OverfillError):
            assert order.snapshot() == before, "a refused event changed the order"
            continue
        assert order.status == status or order.status in LEGAL_NEXT[status], (
            f"{status} -> {order.status} on {kind}"
        )
        assert 0 <= order.filled_qty_raw <= order.quantity_raw
        assert (order.status is S.FILLED) == (order.filled_qty_raw == order.quantity_raw)
        if kind == "fill" and status in (S.PENDING_CANCEL, S.CANCELED, S.EXPIRED):
            assert order.filled_qty_raw > 0  # a late fill is applied, never dropped


def test_happy_path_and_fill_after_cancel_request() -> None:
    order = new_order()
    for kind, status in [("submit", S.SUBMITTED), ("accept", S.ACCEPTED), ("trigger", S.TRIGGERED)]:
        order.apply(make_event(kind, 0, 2))
        assert order.status is status
    order.apply(make_event("fill", 3, 3))
    assert order.status is S.PARTIALLY_FILLED
    order.apply(make_event("pending_cancel", 0, 4))
    order.apply(make_event("fill", 2, 5))  # venue filled before it saw the cancel
    assert order.status is S.PENDING_CANCEL and order.filled_qty_raw == 5
    order.apply(make_event("cancel_reject", 0, 6))
    assert order.status is S.PARTIALLY_FILLED
    order.apply(make_event("cancel", 0, 7))
    order.apply(make_event("fill", 5, 8))  # a fill reported after the cancel: applied
    assert order.status is S.FILLED and order.filled_qty_raw == QTY


@pytest.mark.parametrize(
    "path, bad",
    [
        (["submit", "accept", "fill10"], "cancel"),
        (["submit", "reject"], "accept"),
        ([], "accept"),
        (["submit", "accept"], "submit"),
        (["submit", "accept", "cancel"], "pending_cancel"),
        (["submit", "accept", "fill4"], "trigger"),
    ],
)
def test_illegal_transitions_are_refused_with_typed_error(path: list[str], bad: str) -> None:
    order = new_order()
    for n, step in enumerate(path, start=2):
        if step.startswith("fill"):
            order.apply(make_event("fill", int(step[4:]), n))
        else:
            order.apply(make_event(step, 0, n))
    before = order.snapshot()
    with pytest.raises(InvalidTransition) as err:
        order.apply(make_event(bad, 0, 99))
    assert err.value.status == order.status.value
    assert order.snapshot() == before


def test_overfill_is_refused() -> None:
    order = new_order()
    order.apply(make_event("submit", 0, 2))
    with pytest.raises(OverfillError):
        order.apply(make_event("fill", QTY + 1, 3))
    assert order.filled_qty_raw == 0
