"""The order manager: the one place where orders are created and venue reports land.

Every call validates completely, then emits events; each event is applied to the
``TradingState`` (which checks it again) and appended to the journal.  A call that
raises has emitted nothing, so state and journal are exactly as before.

Linked orders (OCO, brackets) follow the rules in ``bot4.oms.linked``.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from decimal import Decimal
from typing import Any, Concatenate, NoReturn, ParamSpec, Protocol, TypeVar

from bot4.core.clock import Clock, LiveClock
from bot4.core.enums import (
    ContingencyType,
    LiquiditySide,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from bot4.core.errors import (
    DuplicateClientOrderId,
    InsufficientBalance,
    InvalidTransition,
    JournalUnavailable,
    UnknownInstrument,
    UnknownOrder,
    ValidationError,
)
from bot4.core.events import (
    BalanceAdjusted,
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
)
from bot4.core.instrument import Instrument
from bot4.core.numbers import (
    SCALE,
    Rounding,
    div_round,
    from_raw,
    money_from_raw,
    money_to_raw,
    to_decimal,
    to_raw,
)
from bot4.core.order import Order
from bot4.core.timestamps import TimestampGuard
from bot4.oms.idempotency import BoundedTTLSet
from bot4.oms.linked import LinkedOrders
from bot4.oms.requests import AnyOrderRequest, CancelOrder, Command, SubmitOrder
from bot4.oms.state import TradingState

CLIENT_ID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")  # Binance's newClientOrderId rule


class EventSink(Protocol):
    def append_many(self, events: Iterable[Event]) -> None: ...


P = ParamSpec("P")
R = TypeVar("R")


def _step(
    method: Callable[Concatenate[OrderManager, P], R],
) -> Callable[Concatenate[OrderManager, P], R]:
    """One public call = one journal transaction: the events a call emits (an order and
    its submission, a fill and the OCO resizes it causes) are written together, and only
    then shown to listeners.  If the journal fails, the manager refuses every later call
    (fail closed): its memory is ahead of the journal, and a restart replays the journal."""

    @functools.wraps(method)
    def wrapper(self: OrderManager, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.failed is not None:
            raise JournalUnavailable(f"journal failed earlier: {self.failed!r}; restart")
        if self._depth:  # inside another step: its transaction
            return method(self, *args, **kwargs)
        self._depth = 1
        try:
            return method(self, *args, **kwargs)
        finally:
            self._depth = 0
            if self._pending:
                self._flush()

    return wrapper


class OrderManager:
    def __init__(
        self,
        instruments: Iterable[Instrument],
        clock: Clock | None = None,
        journal: EventSink | None = None,
        dedup: BoundedTTLSet | None = None,
        timestamp_guard: TimestampGuard | None = None,
        id_prefix: str = "B4",
        state: TradingState | None = None,
    ) -> None:
        self.state = state if state is not None else TradingState(instruments)
        self.clock: Clock = clock if clock is not None else LiveClock()
        self.journal = journal
        self.dedup = dedup if dedup is not None else BoundedTTLSet()
        self.timestamp_guard = timestamp_guard if timestamp_guard is not None else TimestampGuard()
        self.id_prefix = id_prefix
        self._valid_prefix: str | None = None
        self.outbox: deque[Command] = deque()
        # Called with every event after its transaction, in subscription order;
        # ``subscribe(..., kinds=...)`` narrows a listener to the kinds it reads.
        self.listeners: list[Callable[[Event], None]] = []
        self._kinds: dict[Callable[[Event], None], frozenset[str]] = {}
        self._routes: dict[str, list[Callable[[Event], None]]] = {}
        self._routed_for: list[Callable[[Event], None]] = []
        self.duplicate_fills = 0
        self.reference_prices: dict[str, int] = {}
        self.linked = LinkedOrders(self)
        self.failed: BaseException | None = None
        self._pending: list[Event] = []
        self._depth = 0
        self.alerts: list[str] = []
        for order in self.state.orders.values():  # a replayed state keeps its ids
            self.dedup.add(order.client_order_id, order.ts_init)

    # -- events -------------------------------------------------------------------------
    def _emit(
        self, cls: type[Event], ts_event: int | None = None, /, *args: Any, **fields: Any
    ) -> Event:
        """Build the next event (fields after the header positionally, in the class's
        field order, or by name), fold it into the state, queue it for the journal.
        The hot paths pass positions: keyword arguments cost a dict per event."""
        now = self.clock.now_ns()
        state = self.state
        event = cls(state.last_seq + 1, now if ts_event is None else ts_event, now, *args, **fields)
        state.apply(event)
        self._pending.append(event)
        return event

    def _flush(self) -> None:
        events, self._pending = self._pending, []
        if self.journal is not None:
            try:
                self.journal.append_many(events)
            except Exception as exc:
                self.failed = exc
                raise JournalUnavailable(f"journal write failed: {exc!r}") from exc
        listeners = self.listeners
        if listeners != self._routed_for:  # subscribed since: route again
            self._routes.clear()
            self._routed_for = list(listeners)
        routes = self._routes
        for event in events:
            kind = event.kind
            route = routes.get(kind)
            if route is None:
                interest = self._kinds
                route = routes[kind] = [
                    f for f in listeners if f not in interest or kind in interest[f]
                ]
            for listener in route:
                listener(event)

    def subscribe(
        self, listener: Callable[[Event], None], kinds: Iterable[str] | None = None
    ) -> None:
        """Call ``listener`` with each event (only those of ``kinds``, if given) once
        its transaction is written; listeners run in the order they subscribed.
        Narrowing saves a call per event the listener would ignore."""
        if kinds is not None:
            self._kinds[listener] = frozenset(kinds)
        self.listeners.append(listener)

    @_step
    def record(self, cls: type[Event], /, **fields: Any) -> Event:
        """Journal a fact that is not an order command: a risk denial, a trading-state
        change.  It goes through the same sequence, fold and transaction as the rest."""
        return self._emit(cls, **fields)

    @_step
    def deposit(self, asset: str, amount: Decimal | int | str, reason: str = "deposit") -> None:
        """Credit (or with a negative amount, debit) an asset outside trading."""
        if not asset or not isinstance(asset, str):
            raise ValidationError("asset", "must be a non-empty string", asset)
        money = money_to_raw(amount, "amount")
        if money == 0:
            raise ValidationError("amount", "must not be zero", amount)
        if money < 0 and self.state.account.available(asset) + money < 0:
            raise InsufficientBalance("amount", "withdrawal exceeds free balance", amount)
        self._emit(BalanceAdjusted, asset=asset, amount_money=money, reason=reason)

    def set_reference_price(self, symbol: str, price: Decimal | int | str) -> None:
        """The price that PERCENT_PRICE bands limit prices around (a last trade or a
        mid price); orders for a symbol with no reference are not band-checked."""
        if symbol not in self.state.instruments:
            raise UnknownInstrument(symbol)
        raw = to_raw(price, "reference_price")
        if raw <= 0:
            raise ValidationError("reference_price", "must be > 0", price)
        self.reference_prices[symbol] = raw

    # -- validation ---------------------------------------------------------------------
    def _next_client_id(self, taken: AbstractSet[str]) -> str:
        """Deterministic ids (prefix-N), so a replayed manager names orders the same."""
        prefix = self.id_prefix
        if prefix != self._valid_prefix:  # checked once per prefix, not per order
            if not CLIENT_ID_RE.match(f"{prefix}-0"):
                raise ValidationError("id_prefix", "must match ^[.A-Z:/a-z0-9_-]{1,34}$", prefix)
            self._valid_prefix = prefix
        n = len(self.state.orders) + len(taken) + 1
        while True:
            cid = f"{prefix}-{n}"
            if len(cid) > 36:
                raise ValidationError("client_order_id", "generated id over 36 characters", cid)
            if (
                cid not in taken
                and cid not in self.state.orders
                and not self.dedup.contains(cid, self.clock.now_ns())
            ):
                return cid
            n += 1

    def _build(
        self,
        request: AnyOrderRequest,
        cid: str | None,
        taken: AbstractSet[str],
        **link: Any,
    ) -> dict[str, Any]:
        """Validate one request into OrderInitialized fields; raises, changes nothing."""
        fields = self._validate(request, cid, taken, link.get("parent_id"))
        spec = dict(zip(_ORDER_FIELDS, fields, strict=True))
        spec.update(link)
        return spec

    def _validate(
        self, request: AnyOrderRequest, cid: str | None, taken: AbstractSet[str], parent: Any
    ) -> tuple[str, str, OrderSide, OrderType, int, int, int, TimeInForce, bool, bool, int]:
        """Validate one request into OrderInitialized's fields after the header, in
        their order (``_ORDER_FIELDS``): a plain order is built from them positionally
        (a dict and keyword arguments per order cost ~1 µs on the live order path)."""
        req = request.raw()
        inst = self.state.instruments.get(req.symbol)
        if inst is None:
            raise UnknownInstrument(req.symbol)
        side = req.side
        if not isinstance(side, OrderSide):
            raise ValidationError("side", "must be an OrderSide", side)
        otype = req.order_type
        if not isinstance(otype, OrderType):
            raise ValidationError("order_type", "must be an OrderType", otype)
        tif = req.time_in_force
        if not isinstance(tif, TimeInForce):
            raise ValidationError("time_in_force", "must be a TimeInForce", tif)
        cid = cid or req.client_order_id
        if not cid:
            cid = self._next_client_id(taken)  # free and well-formed by construction
        elif not isinstance(cid, str) or not CLIENT_ID_RE.match(cid):
            raise ValidationError("client_order_id", "must match ^[.A-Z:/a-z0-9_-]{1,36}$", cid)
        elif (
            cid in taken
            or cid in self.state.orders
            or self.dedup.contains(cid, self.clock.now_ns())
        ):
            raise DuplicateClientOrderId(cid)
        qty = req.quantity_raw
        inst.check_qty(qty)
        price = req.price_raw
        if otype.has_price:
            if price is None:
                raise ValidationError("price", f"required for {otype.value}", None)
            inst.check_price(price)
            inst.check_notional(price, qty)
            reference = self.reference_prices.get(req.symbol)
            if reference is not None:
                inst.check_percent_price(price, reference)
        elif price is not None:
            raise ValidationError("price", f"not allowed for {otype.value}", from_raw(price))
        trigger = req.trigger_raw
        if otype.has_trigger:
            if trigger is None:
                raise ValidationError("trigger_price", f"required for {otype.value}", None)
            inst.check_price(trigger, "trigger_price")
            if not otype.has_price:
                inst.check_notional(trigger, qty)
        elif trigger is not None:
            raise ValidationError(
                "trigger_price", f"not allowed for {otype.value}", from_raw(trigger)
            )
        if req.post_only and (otype is not OrderType.LIMIT or tif is not TimeInForce.GTC):
            raise ValidationError("post_only", "only for LIMIT GTC orders", True)
        display = req.display_qty_raw
        if display is not None:
            if otype is not OrderType.LIMIT or tif is not TimeInForce.GTC:
                raise ValidationError(
                    "display_qty", "iceberg only for LIMIT GTC orders", from_raw(display)
                )
            inst.check_qty(display, "display_qty")
            if display >= qty:
                raise ValidationError(
                    "display_qty", "must be less than quantity", from_raw(display)
                )
        if req.reduce_only and not parent:
            pos = self.state.positions.get(req.symbol)
            pos_qty = pos.qty_raw if pos else 0
            if pos_qty * side.sign >= 0 or qty > abs(pos_qty):
                raise ValidationError(
                    "reduce_only",
                    "would open or increase the position",
                    from_raw(qty),
                    f"position {from_raw(pos_qty)}",
                )
        return (
            cid,
            req.symbol,
            side,
            otype,
            qty,
            price or 0,
            trigger or 0,
            tif,
            req.post_only,
            req.reduce_only,
            display or 0,
        )

    def _exit_spec(
        self,
        entry: dict[str, Any],
        cid: str,
        taken: set[str],
        order_type: OrderType,
        price: int,
        trigger: int,
        **link: Any,
    ) -> dict[str, Any]:
        """A bracket exit's OrderInitialized fields, from its validated entry: the
        checks ``_build`` would make that can still fail (id, price grid, notional,
        price band), without going through a request and Decimal again."""
        if not CLIENT_ID_RE.match(cid):
            raise ValidationError("client_order_id", "must match ^[.A-Z:/a-z0-9_-]{1,36}$", cid)
        if (
            cid in taken
            or cid in self.state.orders
            or self.dedup.contains(cid, self.clock.now_ns())
        ):
            raise DuplicateClientOrderId(cid)
        symbol = entry["symbol"]
        inst = self.state.instruments[symbol]
        qty = entry["quantity_raw"]
        if order_type.has_price:
            inst.check_price(price)
            inst.check_notional(price, qty)
            if symbol in self.reference_prices:
                inst.check_percent_price(price, self.reference_prices[symbol])
        if order_type.has_trigger:
            inst.check_price(trigger, "trigger_price")
            if not order_type.has_price:
                inst.check_notional(trigger, qty)
        return dict(
            client_order_id=cid,
            symbol=symbol,
            side=entry["side"].opposite,
            order_type=order_type,
            quantity_raw=qty,
            price_raw=price,
            trigger_raw=trigger,
            time_in_force=TimeInForce.GTC,
            post_only=False,
            reduce_only=True,
            display_qty_raw=0,
            parent_id=entry["client_order_id"],
            **link,
        )

    def _check_funds(self, specs: list[dict[str, Any]]) -> None:
        """Enough available funds for what the submitted orders will lock."""
        need: dict[str, int] = {}
        for spec in specs:
            if spec.get("shares_lock") or spec.get("parent_id"):
                continue  # sibling's lock, or released later from the entry's fill
            inst = self.state.instruments[spec["symbol"]]
            if spec["side"] is OrderSide.SELL:
                asset, amount = inst.base, spec["quantity_raw"] * SCALE
            else:
                asset, amount = inst.quote, spec["quantity_raw"] * spec["price_raw"]
            need[asset] = need.get(asset, 0) + amount
        for asset, amount in need.items():
            available = self.state.account.available(asset)
            if amount > available:
                _insufficient(amount, asset, available, spec["quantity_raw"])

    def _check_funds_one(self, symbol: str, side: OrderSide, qty: int, price: int) -> None:
        """``_check_funds`` of one plain order (no sibling, no parent)."""
        inst = self.state.instruments[symbol]
        if side is OrderSide.SELL:
            asset, amount = inst.base, qty * SCALE
        else:
            asset, amount = inst.quote, qty * price
        available = self.state.account.available(asset)
        if amount > available:
            _insufficient(amount, asset, available, qty)

    def _check_ts(self, ts: int | None) -> None:
        if ts is not None:
            self.timestamp_guard.check(ts, self.clock.now_ns(), "timestamp")

    def _create(self, specs: list[dict[str, Any]], submit: int) -> list[Order]:
        """Initialize the orders of ``specs``, then submit the first ``submit`` of them
        (a bracket's exits wait for the entry's fill)."""
        now = self.clock.now_ns()
        add = self.dedup.add
        for spec in specs:
            add(spec["client_order_id"], now)
        orders = self.state.orders
        created = []
        for spec in specs:
            self._emit(OrderInitialized, None, **spec)
            created.append(orders[spec["client_order_id"]])
        for order in created[:submit]:
            cid = order.client_order_id
            self._emit(OrderSubmitted, None, cid)
            self.outbox.append(SubmitOrder(cid))
        return created

    # -- strategy commands --------------------------------------------------------------
    @_step
    def submit(self, request: AnyOrderRequest, ts: int | None = None) -> Order:
        """Validate, journal and queue one order for the venue."""
        if ts is not None:
            self._check_ts(ts)
        fields = self._validate(request, None, _NO_IDS, None)
        cid, symbol, side, _, qty, price = fields[:6]
        self._check_funds_one(symbol, side, qty, price)
        # ``_create`` of one order (one clock reading for both events of the call).
        now = self.clock.now_ns()
        self.dedup.add(cid, now)
        order = self.state.open_order(fields, now, self._pending)
        self.outbox.append(SubmitOrder(cid))
        return order

    @_step
    def submit_oco(
        self, first: AnyOrderRequest, second: AnyOrderRequest, ts: int | None = None
    ) -> list[Order]:
        """Two orders on one quantity: a fill on either reduces or cancels the other."""
        self._check_ts(ts)
        if first.symbol != second.symbol or first.side != second.side:
            raise ValidationError("second", "OCO legs need the same symbol and side", second)
        if first.order_type is OrderType.MARKET or second.order_type is OrderType.MARKET:
            raise ValidationError("order_type", "OCO legs cannot be MARKET", OrderType.MARKET)
        a = self._build(first, None, _NO_IDS, contingency=ContingencyType.OCO)
        b = self._build(second, None, {a["client_order_id"]}, contingency=ContingencyType.OCO)
        if a["quantity_raw"] != b["quantity_raw"]:
            raise ValidationError(
                "quantity", "OCO legs need the same quantity", from_raw(b["quantity_raw"])
            )
        list_id = f"OCO-{a['client_order_id']}"
        a.update(list_id=list_id, linked_ids=(b["client_order_id"],))
        b.update(list_id=list_id, linked_ids=(a["client_order_id"],), shares_lock=True)
        if b["side"] is OrderSide.BUY and b["price_raw"] > a["price_raw"]:
            a["shares_lock"], b["shares_lock"] = True, False  # the dearer leg holds the lock
        self._check_funds([a, b])
        return self._create([a, b], 2)

    @_step
    def submit_bracket(
        self,
        entry: AnyOrderRequest,
        stop_loss: Decimal | int | str | None = None,
        take_profit: Decimal | int | str | None = None,
        ts: int | None = None,
        stop_loss_pct: Decimal | int | str | None = None,
        take_profit_pct: Decimal | int | str | None = None,
    ) -> list[Order]:
        """Entry plus a protective stop-market and, optionally, a take-profit limit (an
        OCO pair released by the entry's fills).  Each exit is a price, or a percentage
        from the entry's average fill price (``stop_loss_pct=0.5`` = 0.5 % below a long
        entry's fill), fixed when the exits are released.  Returns [entry, stop_loss(,
        take_profit)]."""
        self._check_ts(ts)
        if (stop_loss is None) == (stop_loss_pct is None):
            raise ValidationError("stop_loss", "give stop_loss or stop_loss_pct", stop_loss)
        if take_profit is not None and take_profit_pct is not None:
            raise ValidationError("take_profit", "give take_profit or take_profit_pct", take_profit)
        exit_side = entry.side.opposite
        e = self._build(entry, None, _NO_IDS, contingency=ContingencyType.OTO)
        cid = e["client_order_id"]
        sign = entry.side.sign
        sl_offset = -sign * _ppm(stop_loss_pct, "stop_loss_pct") if stop_loss_pct else 0
        tp_offset = sign * _ppm(take_profit_pct, "take_profit_pct") if take_profit_pct else 0
        inst = self.state.instruments[entry.symbol]
        sl_raw = to_raw(stop_loss, "stop_loss") if stop_loss is not None else 0
        tp_raw = to_raw(take_profit, "take_profit") if take_profit is not None else 0
        if sl_offset or tp_offset:
            base = e["price_raw"] or self.reference_prices.get(entry.symbol, 0)
            if not base:
                raise ValidationError(
                    "stop_loss_pct", "a market entry needs a reference price", entry.symbol
                )
            if sl_offset:
                sl_raw = self._offset_level(inst, base, sl_offset, exit_side)
            if tp_offset:
                tp_raw = self._offset_level(inst, base, tp_offset, exit_side)
        taken = {cid}
        tp: dict[str, Any] | None = None
        if tp_offset or take_profit is not None:
            tp = self._exit_spec(
                e,
                f"{cid}-TP",
                taken,
                OrderType.LIMIT,
                tp_raw,
                0,
                contingency=ContingencyType.OCO,
                offset_ppm=tp_offset,
            )
            taken.add(tp["client_order_id"])
        sl = self._exit_spec(
            e,
            f"{cid}-SL",
            taken,
            OrderType.STOP_MARKET,
            0,
            sl_raw,
            contingency=ContingencyType.OCO,
            shares_lock=tp is not None,  # the take-profit holds the pair's lock
            offset_ppm=sl_offset,
        )
        if tp is not None and (sl["trigger_raw"] - tp["price_raw"]) * sign >= 0:
            raise ValidationError(
                "stop_loss", "must be on the losing side of take_profit", from_raw(sl_raw)
            )
        if e["price_raw"] and (sl["trigger_raw"] - e["price_raw"]) * sign >= 0:
            raise ValidationError(
                "stop_loss", "must be on the losing side of the entry", from_raw(sl_raw)
            )
        list_id = f"BRK-{cid}"
        sl_id = sl["client_order_id"]
        e["list_id"] = sl["list_id"] = list_id
        if tp is None:
            e["linked_ids"] = (sl_id,)
            sl["linked_ids"] = ()
            specs = [e, sl]
        else:
            tp_id = tp["client_order_id"]
            e["linked_ids"] = (sl_id, tp_id)
            sl["linked_ids"] = (tp_id,)
            tp["list_id"] = list_id
            tp["linked_ids"] = (sl_id,)
            specs = [e, sl, tp]
        self._check_funds(specs)
        return self._create(specs, 1)

    @staticmethod
    def _offset_level(inst: Instrument, base: int, offset_ppm: int, side: OrderSide) -> int:
        mode = Rounding.UP if side is OrderSide.SELL else Rounding.DOWN
        level = div_round(base * (1_000_000 + offset_ppm), 1_000_000 * inst.tick_raw, mode)
        return max(level, 1) * inst.tick_raw

    @_step
    def cancel(self, client_order_id: str, ts: int | None = None) -> None:
        """Ask the venue to cancel; an OCO leg cancels its whole list."""
        self._check_ts(ts)
        order = self.state.order(client_order_id)
        if order.is_closed:
            raise InvalidTransition(client_order_id, order.status.value, "cancel")
        targets = [order]
        if order.contingency is ContingencyType.OCO and not order.parent_id:
            targets += [self.state.orders[i] for i in order.linked_ids]
        for target in targets:
            status = target.status
            if status is OrderStatus.INITIALIZED:
                self._emit(OrderCanceled, None, target.client_order_id, "canceled")
            elif status.is_open and status is not OrderStatus.PENDING_CANCEL:
                self._emit(OrderPendingCancel, None, target.client_order_id)
                self.outbox.append(CancelOrder(target.client_order_id))

    # -- venue reports ------------------------------------------------------------------
    @_step
    def _report(self, cls: type[Event], cid: str, ts_event: int | None, /, *fields: Any) -> bool:
        """Apply a venue report (``fields``: the event's after the client id, in order);
        a repeat of a report already reflected is a no-op."""
        order = self.state.orders.get(cid)
        if order is None:
            raise UnknownOrder(cid)
        try:
            self._emit(cls, ts_event, cid, *fields)
        except InvalidTransition:
            if _already_reflected(order, cls):
                return False
            raise
        if order.is_closed:
            self.linked.after_close(order)
        return True

    def on_accepted(self, cid: str, venue_order_id: str, ts_event: int | None = None) -> bool:
        return self._report(OrderAccepted, cid, ts_event, str(venue_order_id))

    def on_rejected(self, cid: str, reason: str, ts_event: int | None = None) -> bool:
        return self._report(OrderRejected, cid, ts_event, reason)

    def on_canceled(self, cid: str, ts_event: int | None = None, reason: str = "") -> bool:
        return self._report(OrderCanceled, cid, ts_event, reason)

    def on_cancel_rejected(self, cid: str, reason: str, ts_event: int | None = None) -> bool:
        return self._report(OrderCancelRejected, cid, ts_event, reason)

    def on_expired(self, cid: str, ts_event: int | None = None) -> bool:
        return self._report(OrderExpired, cid, ts_event)

    def on_triggered(self, cid: str, ts_event: int | None = None) -> bool:
        return self._report(OrderTriggered, cid, ts_event)

    @_step
    def on_fill(
        self,
        cid: str,
        trade_id: str,
        qty: Decimal | int | str,
        price: Decimal | int | str,
        fee: Decimal | int | str = 0,
        fee_asset: str = "",
        liquidity: LiquiditySide = LiquiditySide.TAKER,
        ts_event: int | None = None,
    ) -> bool:
        """Apply a fill; False if this trade id was already applied to the order."""
        order = self.state.order(cid)
        q = to_raw(qty, "qty")
        p = to_raw(price, "price")
        if q <= 0:
            raise ValidationError("qty", "must be > 0", qty)
        if p <= 0:
            raise ValidationError("price", "must be > 0", price)
        fee_money = money_to_raw(fee, "fee")
        if not trade_id or not isinstance(trade_id, str):
            raise ValidationError("trade_id", "must be a non-empty string", trade_id)
        if trade_id in order.trade_ids:
            self.duplicate_fills += 1
            return False
        return self._fill(order, trade_id, q, p, fee_money, fee_asset, liquidity, ts_event)

    @_step
    def on_fill_raw(
        self,
        cid: str,
        trade_id: str,
        qty_raw: int,
        price_raw: int,
        fee_money: int = 0,
        fee_asset: str = "",
        liquidity: LiquiditySide = LiquiditySide.TAKER,
        ts_event: int | None = None,
    ) -> bool:
        """``on_fill`` for venues that already hold exact raw integers (the simulator):
        the same checks, without parsing decimals."""
        order = self.state.order(cid)
        if qty_raw <= 0 or price_raw <= 0:
            raise ValidationError("qty", "qty and price must be > 0", (qty_raw, price_raw))
        if trade_id in order.trade_ids:
            self.duplicate_fills += 1
            return False
        return self._fill(
            order, trade_id, qty_raw, price_raw, fee_money, fee_asset, liquidity, ts_event
        )

    def _fill(
        self,
        order: Order,
        trade_id: str,
        q: int,
        p: int,
        fee_money: int,
        fee_asset: str,
        liquidity: LiquiditySide,
        ts_event: int | None,
    ) -> bool:
        cid = order.client_order_id
        inst = self.state.instruments[order.symbol]
        asset = fee_asset or inst.quote
        if fee_money < 0 and asset == inst.base:
            raise ValidationError("fee", "a rebate is paid in the quote asset", fee_money)
        if asset == inst.base and fee_money % SCALE:
            raise ValidationError("fee", "a base-asset fee has at most 9 decimals", fee_money)
        self.linked.check_room(order, q)
        self._emit(OrderFilled, ts_event, cid, trade_id, q, p, fee_money, asset, liquidity)
        self.linked.after_fill(order)
        if order.is_closed:
            self.linked.after_close(order)
        return True


_NO_IDS: frozenset[str] = frozenset()  # no sibling ids taken yet
# OrderInitialized's fields after the header that ``_validate`` returns, in order.
_ORDER_FIELDS = (
    "client_order_id",
    "symbol",
    "side",
    "order_type",
    "quantity_raw",
    "price_raw",
    "trigger_raw",
    "time_in_force",
    "post_only",
    "reduce_only",
    "display_qty_raw",
)


def _insufficient(amount: int, asset: str, available: int, qty: int) -> NoReturn:
    raise InsufficientBalance(
        "quantity",
        f"needs {money_from_raw(amount)} {asset}",
        from_raw(qty),
        f"available {money_from_raw(available)} {asset}",
    )


def _ppm(value: Decimal | int | str, field: str) -> int:
    """A percentage as parts per million, exact (at most 4 decimals of a percent);
    cached for the types it accepts (a strategy passes the same few percentages with
    every order); anything else -- unhashable values too -- gets the typed error."""
    if type(value) in (Decimal, int, str):
        return _ppm_cached(value, field)
    return _ppm_exact(value, field)


def _ppm_exact(value: Decimal | int | str, field: str) -> int:
    ppm = to_decimal(value, field) * 10_000
    if ppm != ppm.to_integral_value() or not 0 < ppm < 1_000_000:
        raise ValidationError(field, "a percentage in (0, 100) with at most 4 decimals", value)
    return int(ppm)


_ppm_cached = functools.lru_cache(maxsize=64, typed=True)(_ppm_exact)  # typed: 1 != Decimal(1)


def _already_reflected(order: Order, cls: type[Event]) -> bool:
    """A duplicate venue report: the order already shows what it says."""
    status = order.status
    if cls is OrderAccepted:
        return status is not OrderStatus.INITIALIZED
    if cls is OrderCanceled or cls is OrderExpired:
        return status.is_closed
    if cls is OrderTriggered:
        return order.triggered or status.is_closed
    return False
