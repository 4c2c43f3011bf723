"""A seeded market maker: a live market with no input.

Per symbol, a reference price follows a random walk (normal steps in ticks, from the
seeded RNG), and the maker quotes a ladder of ``levels`` bids and asks on a fixed price
grid around it: bids strictly below the reference, asks at or above, one grid step
apart.  The grid is fixed (multiples of the spacing), so a small move of the reference
changes only the ends of the ladder, like a real book, instead of re-pricing every level.

Each step: walk; cancel the quotes that left the ladder (before placing anything, so the
maker never crosses itself); place the missing levels (a level a client took is
re-quoted); re-size one random level now and then (depth activity); and with
``trade_probability`` send a small IOC order at the best opposite price, which trades
against whatever rests there, a client's order included.  So a client's limit order
fills when the walk reaches it (the maker's new quotes cross it) or when it is the best
price and the maker's taker order comes.

Deterministic: given the seed and the same sequence of ``step`` calls and client
commands, the maker sends the same orders.  It is an ordinary account of the engine
(no fees, deep pockets), so every rule the clients meet applies to it too.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from bot4.core.enums import OrderSide, OrderType, TimeInForce
from bot4.core.numbers import SCALE, to_raw
from bot4.server.config import MakerSpec, SymbolSpec
from bot4.server.exchange import Exchange
from bot4.sim.errors import BinanceError
from bot4.sim.matching_types import NewOrder

log = logging.getLogger(__name__)

ACCOUNT: Final = "__market_maker__"
NOTE: Final = "maker.ref"
DEEP_POCKETS: Final = 10**12 * 10**18  # 1e12 of every asset, in money units
_BUY: Final = OrderSide.BUY
_SELL: Final = OrderSide.SELL


@dataclass(slots=True)
class _Book:
    """The maker's view of one symbol."""

    spec: SymbolSpec
    tick: int
    step: int
    min_qty: int
    min_notional: int  # raw quote units (1e-9)
    ref_ticks: int
    bids: dict[int, int]  # price raw -> order id
    asks: dict[int, int]


class MarketMaker:
    def __init__(
        self,
        ex: Exchange,
        symbols: list[SymbolSpec],
        spec: MakerSpec,
        seed: int,
        account: str = ACCOUNT,
    ) -> None:
        self.ex = ex
        self.spec = spec
        self.account = account
        self.rng = random.Random(seed)
        self.errors = 0
        assets = [a for s in symbols for a in (s.base, s.quote)]
        ex.open_internal(account, assets, DEEP_POCKETS)
        self.books: dict[str, _Book] = {}
        for s in symbols:
            inst = ex.instruments[s.symbol]
            tick = inst.tick_raw
            ref = to_raw(s.price, "price") // tick
            min_notional = max(inst.min_notional_raw // SCALE, tick)
            self.books[s.symbol] = _Book(
                s,
                tick,
                inst.step_raw,
                max(inst.min_qty_raw, inst.step_raw),
                min_notional,
                ref,
                {},
                {},
            )
        self.adopt_orders()

    def adopt_orders(self) -> None:
        """Rebuild the ladder maps from the engine's open orders (after a restore)."""
        for b in self.books.values():
            b.bids.clear()
            b.asks.clear()
        for o in self.ex.engine.open_orders_of(self.account):
            book = self.books.get(o.symbol)
            if book is None or not o.price:
                continue
            ladder = book.bids if o.is_buy else book.asks
            if o.price in ladder:  # a duplicate level: keep one, cancel the other
                self._cancel(o.symbol, o.order_id)
            else:
                ladder[o.price] = o.order_id

    def start(self) -> None:
        """Publish the reference prices (PERCENT_PRICE needs one) and quote once."""
        for symbol, b in self.books.items():
            if not self.ex.engine.last_price(symbol):
                self.ex.set_last_price(symbol, b.ref_ticks * b.tick)
        self.step()

    # -- one step ----------------------------------------------------------------------
    def step(self) -> None:
        for symbol, b in self.books.items():
            try:
                self._step_symbol(symbol, b)
            except BinanceError as exc:  # the market must go on; count and log
                self.errors += 1
                log.debug("market maker %s: %r", symbol, exc)
        # the reference prices next to the commands: a replay after a crash puts the
        # ladder back around them (the RNG continues from the last snapshot instead)
        self.ex.note(NOTE, {s: b.ref_ticks for s, b in self.books.items()})

    def load_refs(self, refs: dict[str, int]) -> None:
        """The reference prices of a replayed log (``NOTE``), then the ladder."""
        for symbol, ref in refs.items():
            if symbol in self.books:
                self.books[symbol].ref_ticks = int(ref)
        self.adopt_orders()

    def _step_symbol(self, symbol: str, b: _Book) -> None:
        rng = self.rng
        spec = self.spec
        sigma = float(spec.volatility_bps) * 1e-4 * b.ref_ticks
        b.ref_ticks = max(b.ref_ticks + round(rng.gauss(0.0, sigma)), 10)
        spacing = max(1, round(b.ref_ticks * float(spec.spacing_bps) * 1e-4)) * b.tick
        ref_price = b.ref_ticks * b.tick
        best_bid = (ref_price - 1) // spacing * spacing
        bids = {best_bid - i * spacing for i in range(spec.levels) if best_bid - i * spacing > 0}
        asks = {best_bid + (i + 1) * spacing for i in range(spec.levels)}
        open_orders = self.ex.engine.open_orders
        for ladder, wanted in ((b.bids, bids), (b.asks, asks)):
            for price, oid in list(ladder.items()):
                if price not in wanted or oid not in open_orders:
                    del ladder[price]
                    if oid in open_orders:
                        self._cancel(symbol, oid)
        if rng.random() < float(spec.refresh_probability):
            side_map = b.bids if rng.random() < 0.5 else b.asks
            if side_map:
                price = rng.choice(sorted(side_map))
                self._cancel(symbol, side_map.pop(price))
        for side, wanted, prices in ((_BUY, bids, b.bids), (_SELL, asks, b.asks)):
            for price in sorted(wanted, reverse=side is _BUY):
                if price not in prices:
                    qty = self._qty(b, price, spec.level_notional_min, spec.level_notional_max)
                    placed = self._place(symbol, side, price, qty, TimeInForce.GTC)
                    if placed is not None:
                        prices[price] = placed
        if rng.random() < float(spec.trade_probability):
            self._trade(symbol, b)

    def _trade(self, symbol: str, b: _Book) -> None:
        book = self.ex.engine.book(symbol)
        side = _BUY if self.rng.random() < 0.5 else _SELL
        price = book.best_ask() if side is _BUY else book.best_bid()
        if price is None:
            return
        qty = self._qty(b, price, self.spec.trade_notional_min, self.spec.trade_notional_max)
        self._place(symbol, side, price, qty, TimeInForce.IOC)

    def _qty(self, b: _Book, price: int, lo: int, hi: int) -> int:
        """A random quantity worth lo..hi minimum notionals, on the step."""
        notional = b.min_notional * self.rng.uniform(lo, hi)
        qty = int(Decimal(notional) * SCALE / Decimal(price))
        qty -= qty % b.step
        return max(qty, b.min_qty)

    def _place(
        self, symbol: str, side: OrderSide, price: int, qty: int, tif: TimeInForce
    ) -> int | None:
        req = NewOrder(self.account, symbol, side, OrderType.LIMIT, qty, price, time_in_force=tif)
        try:
            reports = self.ex.submit(req)
        except BinanceError as exc:
            self.errors += 1
            log.debug("market maker order refused: %r", exc)
            return None
        oid = reports[0].order_id
        return oid if oid in self.ex.engine.open_orders else None

    def _cancel(self, symbol: str, order_id: int) -> None:
        if order_id in self.ex.engine.open_orders:
            self.ex.cancel(self.account, symbol, order_id)

    # -- persistence ---------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        version, internal, gauss_next = self.rng.getstate()
        return {
            "rng": [version, list(internal), gauss_next],
            "ref_ticks": {s: b.ref_ticks for s, b in self.books.items()},
        }

    def load_state(self, data: dict[str, Any]) -> None:
        version, internal, gauss_next = data["rng"]
        self.rng.setstate((version, tuple(internal), gauss_next))
        for symbol, ref in data.get("ref_ticks", {}).items():
            if symbol in self.books:
                self.books[symbol].ref_ticks = int(ref)
        self.adopt_orders()
