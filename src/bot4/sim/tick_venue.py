"""The simulated venue for backtests on tick data: trades, quotes (L1) and depth (L2).

It works the order manager's outbox as an exchange would, against the recorded market:

* **latency**: a command reaches the venue ``latency_ns`` after it was sent (seeded
  ``LatencyModel`` draws, or a constant); the market moves on meanwhile;
* **taking liquidity** (market orders, marketable limits, triggered stops): the order
  walks the recorded book from the best level, at the levels' prices, and what it
  takes is gone from the displayed book until the data next sets that level (the next
  diff or quote); what the book cannot give waits for the next book update.  With
  trades only (no book in the data, or a book not updated for ``book_stale_ns``) a
  market order fills in full at the price of the next trade after it arrives;
* **resting limits**: queue position from ``QueuePositionFillModel`` -- the order joins
  behind the quantity displayed at its price; traded volume at the price consumes the
  queue ahead first, trades through the price fill it at once, cancellations shrink the
  queue (proportionally by default).  A book that moves through a resting order (an
  ask at or below our bid) fills it at its own price, up to the crossing quantity.
  With trades only the displayed quantity is unknown and taken as 0 (optimistic);
* IOC/FOK: what the book offers on arrival, the rest expires (FOK: all or nothing);
  post-only limits that would take are rejected;
* stops and take-profits trigger on the last trade price, then work as market/limit;
* fees: ``taker_bps`` for what takes, ``maker_bps`` (negative = rebate) for what rests,
  in the quote asset, exact (rounded up to 1e-18).

Everything is deterministic: the same data and seed give the same fills.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from decimal import Decimal

from bot4.core.enums import LiquiditySide, OrderSide, OrderType, TimeInForce
from bot4.core.numbers import Rounding, div_round
from bot4.core.order import Order
from bot4.data.ticks import DepthEvent, QuoteEvent, TradeEvent
from bot4.oms.manager import OrderManager
from bot4.oms.requests import CancelOrder, Command, SubmitOrder
from bot4.sim.l2_book import L2Book
from bot4.sim.queue_model import CancelPolicy, QueuePositionFillModel

_BUY, _SELL = OrderSide.BUY, OrderSide.SELL
# Stops wait for the price to come to them; take-profits for it to move their way.
_STOPS = frozenset({OrderType.STOP_MARKET, OrderType.STOP_LIMIT})


class TickVenue:
    def __init__(
        self,
        om: OrderManager,
        set_time: Callable[[int], None],
        taker_bps: Decimal | int | str = 10,
        maker_bps: Decimal | int | str | None = None,
        latency_ns: Callable[[], int] | int = 0,
        cancel_policy: CancelPolicy = CancelPolicy.PROPORTIONAL,
        book_stale_ns: int = 60 * 10**9,
    ) -> None:
        self.om = om
        self._set_time = set_time
        self._taker = Decimal(str(taker_bps)).as_integer_ratio()
        self._maker = Decimal(str(taker_bps if maker_bps is None else maker_bps)).as_integer_ratio()
        self._latency = latency_ns
        self.books: dict[str, L2Book] = {}  # symbols whose data has quotes or depth
        self.book_ts: dict[str, int] = {}
        # A book not updated for this long while trades go on is stale (e.g. a quotes
        # file that ends before the trades file): orders then fill as on trades only.
        self.book_stale_ns = book_stale_ns
        self.last_trade: dict[str, int] = {}
        self.queues: dict[str, QueuePositionFillModel] = {}
        self._policy = cancel_policy
        self.stops: dict[str, Order] = {}  # waiting for their trigger
        self.takers: dict[str, Order] = {}  # taking, waiting for liquidity
        self.resting: dict[str, Order] = {}  # passive limits in the queue model
        self._inflight: list[tuple[int, int, Command]] = []  # (arrival ns, seq, command)
        self._seq = 0
        self._venue_no = 0
        self._trade_no = 0
        self.fills = 0
        self.maker_fills = 0

    # -- commands -----------------------------------------------------------------------
    def process(self) -> None:
        """Send the order manager's outbox: each command arrives after its latency."""
        outbox = self.om.outbox
        while outbox:
            cmd = outbox.popleft()
            delay = self._latency() if callable(self._latency) else self._latency
            if delay <= 0 and not self._inflight:
                self._arrive(cmd)
                continue
            self._seq += 1
            heapq.heappush(self._inflight, (self.om.clock.now_ns() + delay, self._seq, cmd))

    def advance(self, now: int) -> None:
        """Deliver every command that arrives by ``now``, each at its own time."""
        inflight = self._inflight
        while inflight and inflight[0][0] <= now:
            at, _, cmd = heapq.heappop(inflight)
            self._set_time(at)
            self._arrive(cmd)

    def _arrive(self, cmd: Command) -> None:
        om = self.om
        order = om.state.orders[cmd.client_order_id]
        if isinstance(cmd, SubmitOrder):
            if order.is_closed:
                return
            self._venue_no += 1
            om.on_accepted(order.client_order_id, f"T{self._venue_no}")
            if order.order_type.has_trigger:
                self.stops[order.client_order_id] = order
                last = self.last_trade.get(order.symbol)
                if last is not None and self._triggers(order, last):
                    self._trigger(order)
            else:
                self._work(order)
        elif isinstance(cmd, CancelOrder):
            self._forget(order)
            if not order.is_closed:
                om.on_canceled(order.client_order_id)
        # A ModifyOrder (an OCO leg resized) needs no work here: fills are capped by the
        # order's own leaves quantity when they happen.
        self.process()

    def _forget(self, order: Order) -> None:
        cid = order.client_order_id
        self.stops.pop(cid, None)
        self.takers.pop(cid, None)
        if self.resting.pop(cid, None) is not None:
            queue = self.queues[order.symbol]
            if cid in queue:
                queue.remove(cid)

    # -- working an order -----------------------------------------------------------------
    def book(self, symbol: str) -> L2Book | None:
        """The symbol's book if the data keeps one and it is fresh, else None."""
        book = self.books.get(symbol)
        if book is None or self.om.clock.now_ns() - self.book_ts[symbol] > self.book_stale_ns:
            return None
        return book

    def _work(self, order: Order) -> None:
        """A live order that takes and/or rests (a plain order, or a triggered stop)."""
        book = self.book(order.symbol)
        limit = order.price_raw if order.order_type.has_price else None
        if limit is None:  # market: take what is there, wait for the rest
            if book is not None:
                self._take(order, book, None)
            if not order.is_closed:
                self.takers[order.client_order_id] = order
            return
        available = self._available(order, book, limit)
        tif = order.time_in_force
        if available and order.post_only:
            self.om.on_rejected(
                order.client_order_id, "-2010 Order would immediately match and take."
            )
            return
        if tif is TimeInForce.FOK and available < order.leaves_qty_raw:
            self.om.on_expired(order.client_order_id)
            return
        if available and book is not None:
            self._take(order, book, limit)
        if order.is_closed:
            return
        if tif is not TimeInForce.GTC:
            self.om.on_expired(order.client_order_id)
            return
        queue = self.queues.get(order.symbol)
        if queue is None:
            queue = self.queues[order.symbol] = QueuePositionFillModel(self._policy)
        shown = book.qty_at(order.side, limit) if book is not None else 0
        queue.join(order.client_order_id, order.side, limit, order.leaves_qty_raw, shown)
        self.resting[order.client_order_id] = order

    @staticmethod
    def _available(order: Order, book: L2Book | None, limit: int) -> int:
        """What the book offers within ``limit`` (0 if it does not cross), counted up to
        the order's leaves quantity -- enough for the FOK and post-only decisions.
        Levels are read best first in growing batches: a deep book is not sorted whole
        for an order that the first levels already answer."""
        if book is None:
            return 0
        need = order.leaves_qty_raw
        side = _SELL if order.side is _BUY else _BUY
        batch = 16
        while True:
            levels = book.depth(side, batch)
            total = 0
            for price, qty in levels:
                if (price > limit) if side is _SELL else (price < limit):
                    return total
                total += qty
                if total >= need:
                    return total
            if len(levels) < batch:
                return total
            batch *= 4

    def _take(self, order: Order, book: L2Book, limit: int | None) -> None:
        """Fill from the best opposite levels while they are within ``limit``; what is
        taken leaves the displayed book."""
        buy = order.side is _BUY
        while not order.is_closed:
            best = book.best_ask() if buy else book.best_bid()
            if best is None:
                return
            price, qty = best
            if limit is not None and (price > limit if buy else price < limit):
                return
            take = min(qty, order.leaves_qty_raw)
            if buy:
                book.set_ask(price, qty - take)
            else:
                book.set_bid(price, qty - take)
            self._fill(order, take, price, maker=False)

    def _fill(self, order: Order, qty: int, price: int, maker: bool) -> None:
        qty = min(qty, order.leaves_qty_raw)
        if qty <= 0:
            return
        num, den = self._maker if maker else self._taker
        fee = div_round(qty * price * num, den * 10_000, Rounding.UP)
        self._trade_no += 1
        self.fills += 1
        self.maker_fills += maker
        om = self.om
        om.on_fill_raw(
            order.client_order_id,
            f"TT{self._trade_no}",
            qty,
            price,
            fee,
            om.state.instruments[order.symbol].quote,
            LiquiditySide.MAKER if maker else LiquiditySide.TAKER,
        )
        if order.is_closed:
            self._forget(order)
        self.process()  # a fill can cancel an OCO sibling or release a bracket's exits

    @staticmethod
    def _triggers(order: Order, last: int) -> bool:
        falls_to = (order.order_type in _STOPS) is (order.side is _SELL)
        return last <= order.trigger_raw if falls_to else last >= order.trigger_raw

    def _trigger(self, order: Order) -> None:
        del self.stops[order.client_order_id]
        self.om.on_triggered(order.client_order_id)
        if not order.is_closed:
            self._work(order)

    # -- market data --------------------------------------------------------------------
    def on_trade(self, ev: TradeEvent) -> None:
        sym = ev.symbol
        self.last_trade[sym] = ev.price_raw
        queue = self.queues.get(sym)
        if queue is not None and ev.aggressor is not None and self.resting:
            for fill in queue.on_trade(ev.price_raw, ev.qty_raw, ev.aggressor):
                order = self.resting.get(fill.order_id)
                if order is not None and not order.is_closed:
                    if fill.remaining == 0:
                        self.resting.pop(fill.order_id, None)
                    self._fill(order, fill.qty, fill.price, maker=True)
        if self.takers and self.book(sym) is None:  # trades only: fill at this trade
            for order in [o for o in self.takers.values() if o.symbol == sym]:
                if not order.is_closed:
                    self._fill(order, order.leaves_qty_raw, ev.price_raw, maker=False)
        if self.stops:
            for order in [o for o in self.stops.values() if o.symbol == sym]:
                if order.client_order_id in self.stops and self._triggers(order, ev.price_raw):
                    self._trigger(order)

    def on_quote(self, ev: QuoteEvent) -> None:
        book = self.books.get(ev.symbol)
        if book is None:
            book = self.books[ev.symbol] = L2Book()
        book.load(((ev.bid_raw, ev.bid_qty_raw),), ((ev.ask_raw, ev.ask_qty_raw),))
        self.book_ts[ev.symbol] = ev.ts_ns
        queue = self.queues.get(ev.symbol)
        if queue is not None:
            queue.on_best(_BUY, ev.bid_raw, ev.bid_qty_raw)
            queue.on_best(_SELL, ev.ask_raw, ev.ask_qty_raw)
        if self.resting or self.takers:
            self._cross(ev.symbol, book)

    def on_depth(self, ev: DepthEvent) -> None:
        book = self.books.get(ev.symbol)
        if book is None:
            book = self.books[ev.symbol] = L2Book()
        self.book_ts[ev.symbol] = ev.ts_ns
        queue = self.queues.get(ev.symbol)
        if ev.snapshot:
            book.load(ev.bids, ev.asks)
            if queue is not None:
                for order in self.resting.values():
                    if order.symbol == ev.symbol:
                        price = order.price_raw
                        queue.on_level(order.side, price, book.qty_at(order.side, price))
        else:
            book.apply(ev.bids, ev.asks)
            if queue is not None and self.resting:
                for price, qty in ev.bids:
                    queue.on_level(_BUY, price, qty)
                for price, qty in ev.asks:
                    queue.on_level(_SELL, price, qty)
        if self.resting or self.takers:
            self._cross(ev.symbol, book)

    def _cross(self, sym: str, book: L2Book) -> None:
        """Resting orders the book moved through fill at their price; waiting takers
        take what the book now offers."""
        for order in [o for o in self.takers.values() if o.symbol == sym]:
            if not order.is_closed:
                self._take(order, book, None)
        bid, ask = book.best_bid(), book.best_ask()
        for order in [o for o in self.resting.values() if o.symbol == sym]:
            if order.is_closed:
                continue
            price = order.price_raw
            if order.side is _BUY and ask is not None and ask[0] <= price:
                take = self._consume(book, _SELL, price, order.leaves_qty_raw)
            elif order.side is _SELL and bid is not None and bid[0] >= price:
                take = self._consume(book, _BUY, price, order.leaves_qty_raw)
            else:
                continue
            if take >= order.leaves_qty_raw:
                self._forget(order)
            else:
                self.queues[sym].remove(order.client_order_id)
                self.queues[sym].join(
                    order.client_order_id,
                    order.side,
                    price,
                    order.leaves_qty_raw - take,
                    0,  # the level ahead of us was just taken: we are first
                )
            self._fill(order, take, price, maker=True)

    @staticmethod
    def _consume(book: L2Book, side: OrderSide, limit: int, want: int) -> int:
        """Take up to ``want`` from ``side``'s levels at or through ``limit``, best first
        (they traded with a resting order of ours on the other side); returns the
        quantity taken."""
        got = 0
        while got < want:
            best = book.best_ask() if side is _SELL else book.best_bid()
            if best is None or ((best[0] > limit) if side is _SELL else (best[0] < limit)):
                break
            price, qty = best
            take = min(qty, want - got)
            book.set(side, price, qty - take)
            got += take
        return got
