"""The simulated venue for backtests on bars: the other end of the order path.

It executes the order manager's outbox as an exchange would, against OHLC bars:

* acceptance is immediate (the order manager hears ``on_accepted`` at once);
* a market order fills at the next bar's open -- a decision made on a bar's close
  cannot trade at that close;
* resting orders (limits, stops, take-profits, bracket exits) are worked along the
  bar's documented intra-bar path (``bot4.sim.bar_path``): a level inside the bar fills
  at the level, a gap through it at the open; two orders in one bar fill in path order;
* IOC/FOK limits that cannot fill in the first bar they see expire; a post-only limit
  that would take at that bar's open is rejected;
* fees: ``taker_bps`` for market and triggered stop orders, ``maker_bps`` for limits
  (negative = rebate), charged in the quote asset, exact (rounded up to 1e-18).

Bars carry no depth, so every fill is complete (no partial fills, no slippage beyond
the path); ``bot4.sim.models`` has the queue and partial-fill models for richer data.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from bot4.core.enums import LiquiditySide, OrderSide, OrderType, TimeInForce
from bot4.core.numbers import Rounding, div_round
from bot4.core.order import Order
from bot4.oms.manager import OrderManager
from bot4.oms.requests import CancelOrder, SubmitOrder
from bot4.sim.bar_path import Bar, order_in_bar

_STOPS = (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)
_NEVER = 1 << 80  # above any raw price: no order waits for a rise


class BarVenue:
    def __init__(
        self,
        om: OrderManager,
        taker_bps: Decimal | int | str = 10,
        maker_bps: Decimal | int | str | None = None,
    ) -> None:
        self.om = om
        self._taker = Decimal(str(taker_bps)).as_integer_ratio()
        self._maker = Decimal(str(taker_bps if maker_bps is None else maker_bps)).as_integer_ratio()
        self.pending_market: dict[str, list[Order]] = {}  # symbol -> orders for next open
        self.resting: dict[str, list[Order]] = {}  # symbol -> working orders
        self.fresh: set[str] = set()  # IOC/FOK/post-only orders not yet tried
        # symbol -> (highest level waiting for a fall, lowest waiting for a rise, must
        # see the next bar regardless): a bar whose range reaches neither level has
        # nothing to do, which the runner can tell without calling ``on_bar``.
        self.reach: dict[str, tuple[int, int, bool]] = {}
        self._trade_no = 0
        self._venue_no = 0
        self.fills = 0
        self.on_fill: Callable[[Order], None] | None = None

    # -- commands ---------------------------------------------------------------------
    def process(self) -> None:
        """Work the order manager's outbox (until it is empty: a fill can cause more)."""
        om = self.om
        outbox = om.outbox
        orders = om.state.orders
        touched: set[str] = set()
        while outbox:
            cmd = outbox.popleft()
            order = orders[cmd.client_order_id]
            touched.add(order.symbol)
            if isinstance(cmd, SubmitOrder):
                if order.is_closed:
                    continue
                self._venue_no += 1
                om.on_accepted(order.client_order_id, str(self._venue_no))
                book = self.pending_market if order.order_type is OrderType.MARKET else self.resting
                book.setdefault(order.symbol, []).append(order)
                if order.time_in_force is not TimeInForce.GTC or order.post_only:
                    self.fresh.add(order.client_order_id)
            elif isinstance(cmd, CancelOrder):
                self._remove(order)
                if not order.is_closed:
                    om.on_canceled(order.client_order_id)
            # A ModifyOrder (an OCO leg resized) needs no work here: the venue reads
            # each resting order's leaves quantity from the order itself when it fills.
        for symbol in touched:
            self._update_reach(symbol)

    def _update_reach(self, symbol: str) -> None:
        """Recompute the symbol's ``reach`` from its working orders: the same levels
        ``on_bar``'s quick rejection tests, so skipping a bar outside them is exact."""
        fall = -1
        rise = _NEVER
        force = bool(self.pending_market.get(symbol))
        fresh = self.fresh
        for order in self.resting.get(symbol, ()):
            if order.is_closed:
                continue
            if order.client_order_id in fresh:
                force = True
            level, falls_to = self._level(order)
            if falls_to:
                fall = max(fall, level)
            else:
                rise = min(rise, level)
        if force or fall >= 0 or rise != _NEVER:
            self.reach[symbol] = (fall, rise, force)
        else:
            self.reach.pop(symbol, None)

    def _remove(self, order: Order) -> None:
        for book in (self.pending_market, self.resting):
            lst = book.get(order.symbol)
            if lst and order in lst:
                lst.remove(order)
        self.fresh.discard(order.client_order_id)

    def has_work(self, symbol: str) -> bool:
        return bool(self.pending_market.get(symbol) or self.resting.get(symbol))

    @staticmethod
    def _level(order: Order) -> tuple[int, bool]:
        """(the price the order waits for, whether the price must fall to it)."""
        otype = order.order_type
        buy = order.side is OrderSide.BUY
        if otype.has_trigger:
            # A sell stop and a buy take-profit wait for the price to fall.
            return order.trigger_raw, (otype in _STOPS) is not buy
        return order.price_raw, buy  # a buy limit waits for the price to fall to it

    # -- bars -------------------------------------------------------------------------
    def on_bar(self, symbol: str, o: int, h: int, lo: int, c: int) -> None:
        """Execute what this bar allows: market orders at its open, then resting orders
        along its path (raw prices)."""
        pending = self.pending_market.get(symbol)
        if pending:
            self.pending_market[symbol] = []
            for order in pending:
                if not order.is_closed:
                    self._fill(order, o, self._taker, LiquiditySide.TAKER)
            self.process()
        resting = self.resting.get(symbol)
        if not resting:
            self._update_reach(symbol)
            return
        bar: Bar | None = None
        hits: list[tuple[int, int, Order, int, bool]] = []
        fresh = self.fresh
        for order in resting:
            if order.is_closed:
                continue
            # Quick rejection: the bar's range does not reach the order's level.
            level, falls_to = self._level(order)
            if (lo > level) if falls_to else (h < level):
                if fresh and order.client_order_id in fresh:
                    self._expire_fresh(order)
                continue
            buy = order.side is OrderSide.BUY
            if bar is None:
                bar = Bar(o, h, lo, c)
            if order.post_only and order.client_order_id in self.fresh:
                self.fresh.discard(order.client_order_id)
                would_take = (o <= order.price_raw) if buy else (o >= order.price_raw)
                if would_take:
                    self.om.on_rejected(
                        order.client_order_id, "-2010 Order would immediately match and take."
                    )
                    continue
            outcome = order_in_bar(
                bar,
                order.side,
                order.order_type,
                price=order.price_raw or None,
                trigger_price=order.trigger_raw or None,
            )
            if outcome.fill_price is not None and outcome.fill_distance is not None:
                maker = order.order_type is OrderType.LIMIT and not outcome.gapped
                hits.append((outcome.fill_distance, len(hits), order, outcome.fill_price, maker))
            elif order.client_order_id in self.fresh:
                self._expire_fresh(order)
        # Earliest on the path first; an OCO sibling that filled first closes the other.
        for _dist, _n, order, price, maker in sorted(hits, key=lambda x: (x[0], x[1])):
            if order.is_closed:
                continue
            self.fresh.discard(order.client_order_id)
            self._fill(
                order,
                price,
                self._maker if maker else self._taker,
                LiquiditySide.MAKER if maker else LiquiditySide.TAKER,
            )
            self.process()
        if hits or fresh:
            self.resting[symbol] = [x for x in self.resting[symbol] if not x.is_closed]
        self._update_reach(symbol)

    def _expire_fresh(self, order: Order) -> None:
        self.fresh.discard(order.client_order_id)
        if order.time_in_force is not TimeInForce.GTC:
            self.om.on_expired(order.client_order_id)

    def _fill(self, order: Order, price: int, rate: tuple[int, int], liq: LiquiditySide) -> None:
        qty = order.leaves_qty_raw
        notional = qty * price
        num, den = rate
        fee = div_round(notional * num, den * 10_000, Rounding.UP)
        self._trade_no += 1
        self.fills += 1
        self.om.on_fill_raw(
            order.client_order_id,
            f"BT{self._trade_no}",
            qty,
            price,
            fee,
            self.om.state.instruments[order.symbol].quote,
            liq,
        )
        if self.on_fill is not None:
            self.on_fill(order)
