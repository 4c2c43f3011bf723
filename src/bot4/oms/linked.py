"""Linked orders: OCO groups and brackets kept consistent in the same step.

* OCO: the legs share one quantity.  A partial fill on one leg reduces the others to
  what is left; a complete fill cancels them.  Before any fill on a leg is applied,
  ``check_room`` makes sure the legs together stay within their shared quantity, so no
  sequence of reports can make them over-fill (an excess is an ``OverfillError`` for
  reconciliation, not a position).
* Bracket: entry + stop-loss (+ take-profit).  The exits wait (INITIALIZED) until the
  entry first fills, are released with the filled quantity net of base-asset fees, grow
  with each further entry fill, and form an OCO group capped by that quantity.  If the
  exits close it all while the entry still works, the entry's rest is cancelled; if the
  entry ends unfilled, the exits are cancelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot4.core.enums import ContingencyType, OrderSide, OrderStatus
from bot4.core.errors import OverfillError
from bot4.core.events import OrderCanceled, OrderPendingCancel, OrderSubmitted, OrderUpdated
from bot4.core.numbers import SCALE, Rounding, div_round, from_raw
from bot4.core.order import Order
from bot4.oms.requests import CancelOrder, ModifyOrder, SubmitOrder

if TYPE_CHECKING:
    from bot4.oms.manager import OrderManager


class LinkedOrders:
    """The order manager's rules for linked orders; it emits through the manager, so
    its events share the manager's sequence, fold and journal transaction."""

    def __init__(self, manager: OrderManager) -> None:
        self.m = manager

    def legs(self, order: Order) -> list[Order]:
        return [order, *(self.m.state.orders[i] for i in order.linked_ids)]

    def cap(self, leg: Order) -> int:
        """The quantity an OCO group may fill in total."""
        if leg.parent_id:
            return self.exit_cap(self.m.state.orders[leg.parent_id])
        return leg.initial_qty_raw

    def exit_cap(self, entry: Order) -> int:
        """What a bracket's exits may close: the entry's filled quantity, less a
        commission the venue took in the base asset (a spot buy that paid 0.1 % in BTC
        holds 0.999 BTC, and an exit for the gross amount would be refused)."""
        inst = self.m.state.instruments[entry.symbol]
        fee = entry.fees_money.get(inst.base, 0) if entry.side is OrderSide.BUY else 0
        fee_qty = inst.round_qty(-(-fee // SCALE) + inst.step_raw - 1) if fee else 0
        return max(entry.filled_qty_raw - fee_qty, 0)

    def check_room(self, order: Order, qty: int) -> None:
        if order.contingency is not ContingencyType.OCO:
            return
        room = self.cap(order) - sum(leg.filled_qty_raw for leg in self.legs(order))
        if qty > room:
            raise OverfillError(order.client_order_id, from_raw(qty), from_raw(max(room, 0)))

    def after_fill(self, order: Order) -> None:
        if order.contingency is ContingencyType.OTO:
            children = [self.m.state.orders[i] for i in order.linked_ids]
            cap = self.exit_cap(order)
            for child in children:
                if child.status is OrderStatus.INITIALIZED and cap > 0:
                    trigger, price = self.relative_prices(order, child)
                    cid = child.client_order_id
                    self.m._emit(OrderUpdated, None, cid, cap, "entry filled", trigger, price)
                    self.m._emit(OrderSubmitted, None, cid)
                    self.m.outbox.append(SubmitOrder(cid))
            open_children = [c for c in children if not c.is_closed]
            if open_children:
                self.rebalance(open_children[0])
            elif children and order.is_open:
                self.m.alerts.append(
                    f"{order.client_order_id}: filled after its exits closed; unprotected"
                )
        elif order.contingency is ContingencyType.OCO:
            self.rebalance(order)

    def rebalance(self, leg: Order) -> None:
        """Resize or cancel the open legs of ``leg``'s OCO group to what is left."""
        legs = self.legs(leg)
        room = self.cap(leg) - sum(x.filled_qty_raw for x in legs)
        parent = self.m.state.orders.get(leg.parent_id) if leg.parent_id else None
        for x in legs:
            if x.is_closed or x.status is OrderStatus.INITIALIZED:
                continue
            if room > 0:
                target = x.filled_qty_raw + room
                if target != x.quantity_raw:
                    self.m._emit(OrderUpdated, None, x.client_order_id, target, "OCO resize")
                    self.m.outbox.append(ModifyOrder(x.client_order_id, target))
            else:
                self.m._emit(OrderCanceled, None, x.client_order_id, "OCO: sibling filled")
                self.m.outbox.append(CancelOrder(x.client_order_id))
        if (
            room <= 0
            and parent is not None
            and parent.is_open
            and parent.status is not OrderStatus.PENDING_CANCEL
        ):
            self.m._emit(OrderPendingCancel, None, parent.client_order_id)
            self.m.outbox.append(CancelOrder(parent.client_order_id))

    def relative_prices(self, entry: Order, child: Order) -> tuple[int, int]:
        """(trigger, price) for an exit placed ``offset_ppm`` from the entry's average
        fill price, rounded to the tick on the exit's safe side (a sell up, a buy down);
        (0, 0) for an exit with absolute prices."""
        if not child.offset_ppm:
            return 0, 0
        inst = self.m.state.instruments[child.symbol]
        num = entry.fill_notional_money * (1_000_000 + child.offset_ppm)
        den = entry.filled_qty_raw * 1_000_000 * inst.tick_raw
        mode = Rounding.UP if child.side is OrderSide.SELL else Rounding.DOWN
        level = max(div_round(num, den, mode), 1) * inst.tick_raw
        if child.order_type.has_trigger:
            return level, 0
        return 0, level

    def after_close(self, order: Order) -> None:
        if order.contingency is ContingencyType.OTO and order.filled_qty_raw == 0:
            for cid in order.linked_ids:
                child = self.m.state.orders[cid]
                if child.status is OrderStatus.INITIALIZED:
                    self.m._emit(OrderCanceled, None, cid, "entry not filled")
