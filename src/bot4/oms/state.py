"""Trading state as a fold over events: orders, positions, balances.

``TradingState.apply`` is the only code that changes orders, positions and balances,
and it is deterministic, so replaying a journal through a fresh state rebuilds exactly
what the live state had.  It checks an event completely before it changes anything:
an illegal event raises and leaves the state as it was.

Funds follow Binance spot: an order's funds are promised (``pending``) when it is
submitted, locked when the venue first acknowledges it (accepted, triggered or filled),
released pro rata on fills and quantity reductions, and fully on cancel, expiry or
rejection.  A sell locks its base quantity; a buy with a limit price locks
price x quantity of quote; a market or stop-market buy locks nothing (its price is not
known); an OCO leg that ``shares_lock`` relies on its sibling's lock.  Fees are paid
from the fee asset's free balance.  A fee taken in the base asset also leaves the
position (see ``Position.apply_fill``), so a position equals the base it bought.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot4.core.enums import OrderSide, OrderStatus
from bot4.core.errors import (
    DuplicateClientOrderId,
    SequenceError,
    UnknownInstrument,
    UnknownOrder,
)
from bot4.core.events import (
    BalanceAdjusted,
    Event,
    OrderAccepted,
    OrderDenied,
    OrderFilled,
    OrderInitialized,
    OrderSubmitted,
    OrderTriggered,
    TradingStateChanged,
)
from bot4.core.instrument import Instrument
from bot4.core.numbers import SCALE
from bot4.core.order import TRANSITIONS as _TRANSITIONS
from bot4.core.order import Order
from bot4.oms.account import Account
from bot4.oms.position import Position

_TAKES_LOCK = frozenset({OrderAccepted.kind, OrderTriggered.kind, OrderFilled.kind})
_NOT_ORDER_EVENTS = frozenset(
    {OrderInitialized.kind, BalanceAdjusted.kind, OrderDenied.kind, TradingStateChanged.kind}
)
_INITIALIZED = OrderStatus.INITIALIZED


class TradingState:
    __slots__ = (
        "account",
        "denials",
        "instruments",
        "last_seq",
        "open_orders",
        "orders",
        "positions",
        "trading_state",
    )

    def __init__(self, instruments: Iterable[Instrument] | Mapping[str, Instrument]) -> None:
        items = instruments.values() if isinstance(instruments, Mapping) else instruments
        self.instruments: dict[str, Instrument] = {i.symbol: i for i in items}
        self.orders: dict[str, Order] = {}
        self.open_orders: dict[str, Order] = {}
        self.positions: dict[str, Position] = {}
        self.account = Account()
        self.last_seq = 0
        self.trading_state = "ACTIVE"
        self.denials = 0

    # -- queries ------------------------------------------------------------------------
    def order(self, client_order_id: str) -> Order:
        order = self.orders.get(client_order_id)
        if order is None:
            raise UnknownOrder(client_order_id)
        return order

    def position(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            if symbol not in self.instruments:
                raise UnknownInstrument(symbol)
            pos = self.positions[symbol] = Position(symbol)
        return pos

    def lock_unit(self, order: Order) -> tuple[str, int]:
        """(asset, money per raw unit of leaves quantity) that ``order`` locks."""
        inst = self.instruments[order.symbol]
        if order.shares_lock:
            return inst.quote, 0
        if order.side is OrderSide.SELL:
            return inst.base, SCALE
        return inst.quote, order.price_raw  # 0 for market and stop-market buys

    def equity_money(self, quote: str, marks_raw: Mapping[str, int]) -> int:
        """Value of all balances in ``quote``; every other asset needs a mark in
        ``marks_raw`` under the symbol ``ASSET + quote``-style key of an instrument."""
        total = 0
        for asset, bal in self.account.balances.items():
            if asset == quote:
                total += bal.total
                continue
            for inst in self.instruments.values():
                if inst.base == asset and inst.quote == quote and inst.symbol in marks_raw:
                    # Exact whenever the balance has at most 9 decimals; else floored.
                    total += bal.total * marks_raw[inst.symbol] // SCALE
                    break
            else:
                if bal.total:
                    raise KeyError(f"no mark to value {asset} in {quote}")
        return total

    def snapshot(self) -> tuple[object, ...]:
        """Everything the state holds, for replay = live comparisons."""
        return (
            self.last_seq,
            sorted((cid, o.snapshot()) for cid, o in self.orders.items()),
            sorted(self.open_orders),
            sorted((s, p.snapshot()) for s, p in self.positions.items()),
            self.account.snapshot(),
            self.trading_state,
            self.denials,
        )

    # -- the fold -----------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        """Fold one event; raises (changing nothing) if it is out of sequence or illegal.

        This is the reference.  Where ``bot4.oms._fastfold`` is built, ``apply`` is its
        compiled ``fold`` (the same checks and changes, tested against this code) and
        this method stays available as ``apply_py``; see docs/core.md."""
        if event.seq != self.last_seq + 1:
            raise SequenceError(self.last_seq + 1, event.seq)
        kind = event.kind
        if kind in _NOT_ORDER_EVENTS:
            if isinstance(event, OrderInitialized):
                self._initialize(event)
            elif isinstance(event, BalanceAdjusted):
                self.account.add_free(event.asset, event.amount_money)
            elif isinstance(event, OrderDenied):
                self.denials += 1
            elif isinstance(event, TradingStateChanged):
                self.trading_state = event.trading_state
        else:
            self._order_event(event, kind)
        self.last_seq = event.seq

    apply_py = apply  # the pure fold, whatever ``apply`` is bound to below

    def open_order(self, fields: tuple[Any, ...], now: int, pending: list[Event]) -> Order:
        """A new plain order's two events, folded: ``OrderInitialized(seq, now, now,
        *fields)`` (``fields``: its fields after the header up to ``display_qty_raw``;
        the link fields keep their defaults), then ``OrderSubmitted``; each is appended
        to ``pending`` once folded.  Returns the order.  Raises like ``apply`` (a
        duplicate id, an unknown symbol), with nothing folded or appended.

        The order manager's one-order submit, the order path's hottest call.  This is
        the reference; the compiled fold's ``open_order`` (bound here where it is built,
        this staying as ``open_order_py``) builds the events slot by slot instead of
        through ``__init__`` -- the same objects, tested against this code."""
        event: Event = OrderInitialized(self.last_seq + 1, now, now, *fields)
        self.apply(event)
        pending.append(event)
        order = self.orders[fields[0]]
        event = OrderSubmitted(self.last_seq + 1, now, now, fields[0])
        self.apply(event)
        pending.append(event)
        return order

    open_order_py = open_order

    def replay(self, events: Iterable[Event]) -> TradingState:
        for event in events:
            self.apply(event)
        return self

    def _initialize(self, event: OrderInitialized) -> None:
        if event.client_order_id in self.orders:
            raise DuplicateClientOrderId(event.client_order_id)
        if event.symbol not in self.instruments:
            raise UnknownInstrument(event.symbol)
        order = self.orders[event.client_order_id] = Order(event)
        order.lock_asset, order.lock_unit = self.lock_unit(order)

    def _order_event(self, event: Event, kind: str) -> None:
        # Dispatch on ``kind`` strings: cheaper than isinstance chains on the hot path.
        cid: str = event.client_order_id  # type: ignore[attr-defined]
        order = self.orders.get(cid)
        if order is None:
            raise UnknownOrder(cid)
        was = order.status
        new_status = _TRANSITIONS.get((was, kind))
        if new_status is None:  # illegal, or decided by the event (fills, updates, ...)
            new_status = order.can_apply(event)  # raises before anything changes
        asset = order.lock_asset
        if was is _INITIALIZED and kind == "OrderSubmitted":
            order.pending_money = (order.quantity_raw - order.filled_qty_raw) * order.lock_unit
            self.account.add_pending(asset, order.pending_money)
        elif not order.lock_taken and kind in _TAKES_LOCK:
            self._take_lock(order, asset, order.lock_unit)
        if kind == "OrderFilled":
            self._fill(order, event, asset, order.lock_unit)  # type: ignore[arg-type]
        order.apply(event, new_status)
        if kind == "OrderUpdated":
            asset, order.lock_unit = self.lock_unit(order)  # a moved limit price
            self._resize_lock(order, asset, order.lock_unit)
        status = order.status
        if status.is_closed:
            self._release(order, asset)
            self.open_orders.pop(cid, None)
        elif status.is_open:
            self.open_orders[cid] = order

    def _take_lock(self, order: Order, asset: str, unit: int) -> None:
        self.account.add_pending(asset, -order.pending_money)
        order.pending_money = 0
        order.lock_taken = True
        order.locked_money = order.leaves_qty_raw * unit
        self.account.lock(asset, order.locked_money)

    def _resize_lock(self, order: Order, asset: str, unit: int) -> None:
        target = order.leaves_qty_raw * unit
        if order.lock_taken:
            self.account.lock(asset, target - order.locked_money)
            order.locked_money = target
        elif order.pending_money:
            self.account.add_pending(asset, target - order.pending_money)
            order.pending_money = target

    def _release(self, order: Order, asset: str) -> None:
        if order.pending_money:
            self.account.add_pending(asset, -order.pending_money)
            order.pending_money = 0
        if order.locked_money:
            self.account.unlock(asset, order.locked_money)
            order.locked_money = 0
        order.lock_taken = True  # nothing can be locked for a closed order any more

    def _fill(self, order: Order, fill: OrderFilled, asset: str, unit: int) -> None:
        inst = self.instruments[order.symbol]
        account = self.account
        q = fill.qty_raw
        release = min(order.locked_money, q * unit)
        if release:
            account.unlock(asset, release)
            order.locked_money -= release
        notional = q * fill.price_raw
        if order.side is OrderSide.BUY:
            account.add_free(inst.quote, -notional)
            account.add_free(inst.base, q * SCALE)
            signed = q
        else:
            account.add_free(inst.base, -q * SCALE)
            account.add_free(inst.quote, notional)
            signed = -q
        if fill.fee_money:
            account.add_free(fill.fee_asset, -fill.fee_money)
        self.position(order.symbol).apply_fill(
            signed, fill.price_raw, fill.fee_money, fill.fee_asset, fill.fee_asset == inst.base
        )


def _install_compiled_fold() -> bool:
    """Bind ``TradingState.apply`` to the compiled fold where it is built (and not
    switched off with ``BOT4_PURE_SIM=1``) and it can use every member it needs."""
    from bot4._compiled import compiled

    fast = compiled("_fastfold", "bot4.oms")
    if fast is None or not fast.install(
        TradingState, TradingState.apply_py, TradingState.open_order_py
    ):
        return False
    # Plain class attributes: the compiled functions bind as methods.
    setattr(TradingState, "apply", fast.fold)  # noqa: B010
    setattr(TradingState, "open_order", fast.open_order)  # noqa: B010
    return True


COMPILED_FOLD = _install_compiled_fold()
