"""``--bars``: drive one symbol's market from a recorded bar series, one bar per step.

What a backtest on bars and a paper session through the server must agree on is
decided by the market, so this source makes the server's market follow the same bars
the backtest reads, with the backtest's fill model wherever a matching engine can
reproduce it:

* **Candles are the recorded bars.**  ``GET klines`` serves exactly the bars published
  so far, with their recorded open times (``BarMarket``), so a paper runner's
  ``on_bar`` sees the backtest's bars; trades on this symbol do not make candles.
* **Decisions on a bar's close meet the next bar's open.**  When bar ``k`` is published,
  the book is quoted around bar ``k+1``'s open: a deep ask *at* the open and a deep bid
  one tick below (a book cannot bid and offer at one price).  A market buy decided on
  bar ``k`` fills at the open, as in the backtest; a market sell gets the bid, one tick
  below the backtest's open.
* **The intra-bar path is walked** in the backtest's order (``bot4.sim.bar_path``: O L H C
  on an up bar, O H L C on a down bar).  At each point ``p`` the quotes are pulled, an
  internal taker sweeps every client order that ``p`` reaches (asks <= p, bids >= p; a
  touch fills, as in the backtest), each at the client's own limit price, the quotes
  come back around ``p`` and one minimum-size trade prints at ``p`` (the trade stream,
  the ticker's last price, the risk engine's reference in paper).
* A bar that *gaps* through a resting limit fills it at the open in the backtest; a
  matching engine fills a resting order at its own price.  That is the one difference
  this market cannot remove.

Stepping is explicit (``POST /bot4/bars/walk`` then ``/bot4/bars/close``, or ``step`` for
both, or a period): a test walks a bar only when the trader is idle, so every order
decided on a close is at the venue before the next bar's path is walked, and closes it
only once the trader has heard every fill the walk made -- the run is deterministic.
Bars are recorded data; nothing is persisted in the state file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bot4.core.enums import OrderSide, OrderType, TimeInForce
from bot4.core.errors import ValidationError
from bot4.core.numbers import SCALE
from bot4.server.exchange import Exchange
from bot4.server.market_data import (
    K_CLOSE,
    K_HIGH,
    K_LOW,
    K_OPEN,
    K_OPEN_MS,
    Candle,
    SymbolMarket,
)
from bot4.sim.bar_path import Bar, bar_path
from bot4.sim.errors import BinanceError
from bot4.sim.matching_types import NewOrder, Trade

log = logging.getLogger(__name__)

QUOTES: Final = "__bars__"  # the resting quotes around the price
TAKER: Final = "__bars_taker__"  # sweeps client orders the path reaches; prints trades
DEEP_POCKETS: Final = 10**12 * 10**18
_INTERNAL: Final = frozenset({QUOTES, TAKER})


@dataclass(frozen=True, slots=True)
class RawBar:
    open_ms: int
    open: int
    high: int
    low: int
    close: int
    volume: int


def load_raw_bars(path: Path, symbol: str, start: int, count: int | None) -> list[RawBar]:
    """Bars ``[start, start+count)`` of a bar file, as exact raw integers (1e-9)."""
    from bot4.data.bars import load_bars

    if start < 0:
        raise ValidationError("bars_start", "must be >= 0", start)
    if count is not None and count < 1:
        raise ValidationError("bars_count", "must be >= 1", count)
    series = load_bars(path, symbol)
    stop = len(series) if count is None else min(len(series), start + count)
    if stop - start < 2:
        raise ValidationError("bars", "fewer than two bars in the slice", [start, count])
    s = series.slice(start, stop)
    cols = [s.raw(c).tolist() for c in ("open", "high", "low", "close")]
    vol = [round(v * SCALE) for v in s.volume.tolist()]
    ts = [t // 1_000_000 for t in s.ts_ns.tolist()]
    return [
        RawBar(ts[i], cols[0][i], cols[1][i], cols[2][i], cols[3][i], vol[i])
        for i in range(len(ts))
    ]


class BarMarket(SymbolMarket):
    """A symbol whose candles are the published recorded bars, not its trades."""

    __slots__ = ("client_trades",)

    def __init__(self, symbol: str) -> None:
        super().__init__(symbol)
        self.client_trades = 0  # trades with a client on one side, ever

    def add_trade(self, t: Trade) -> None:
        self.trades.append(t)
        self.last_qty = t.qty_raw
        if t.maker_account not in _INTERNAL or t.taker_account not in _INTERNAL:
            self.client_trades += 1

    def publish(self, candle: Candle) -> None:
        self.candles.append(candle)

    def klines(
        self, interval: str, start_ms: int | None, end_ms: int | None, limit: int, now_ms: int
    ) -> list[Candle]:
        """The published bars only: "now" is the last published bar, so no candle is
        invented between the recorded times and the wall clock."""
        if not self.candles:
            return []
        return super().klines(interval, start_ms, end_ms, limit, self.candles[-1][K_OPEN_MS])

    def window(self, now_ms: int, span_ms: int = 86_400_000) -> Candle | None:
        return None  # recorded times: no rolling 24 h window (the ticker uses last price)


class BarReplayer:
    """Publishes recorded bars one step at a time and walks each bar's path."""

    def __init__(
        self,
        ex: Exchange,
        symbol: str,
        bars: Sequence[RawBar],
        warm: int = 1,
        depth_qty: int | None = None,
    ) -> None:
        if symbol not in ex.instruments:
            raise ValidationError("bars_symbol", "not a served symbol", symbol)
        if not 1 <= warm < len(bars):
            raise ValidationError("bars_warm", f"must lie in [1, {len(bars) - 1}]", warm)
        inst = ex.instruments[symbol]
        self.ex = ex
        self.symbol = symbol
        self.tick = inst.tick_raw
        self.min_qty = max(inst.min_qty_raw, inst.step_raw)
        self.depth_qty = depth_qty or 100 * SCALE
        self.sweep_qty = inst.max_qty_raw or 9000 * SCALE
        for i, b in enumerate(bars):
            Bar(b.open, b.high, b.low, b.close)  # refuses an inconsistent bar
            if any(p % self.tick for p in (b.open, b.high, b.low, b.close)):
                raise ValidationError(f"bars[{i}]", "a price off the symbol's tick", b)
        self.bars = list(bars)
        self.warm = warm
        self.next = warm  # the next bar to walk
        self.market = BarMarket(symbol)
        ex.market[symbol] = self.market
        ex.open_internal(QUOTES, (inst.base, inst.quote), DEEP_POCKETS)
        ex.open_internal(TAKER, (inst.base, inst.quote), DEEP_POCKETS)
        self.quotes: list[int] = []
        self.walked = False
        self.errors = 0

    @property
    def done(self) -> bool:
        return self.next >= len(self.bars)

    def start(self) -> None:
        """Publish the warm-up bars as history and quote around the next open."""
        last = self.bars[self.warm - 1]
        self.ex.set_last_price(self.symbol, last.close)
        for b in self.bars[: self.warm]:
            self.market.publish(_candle(b))
        self._quote(self.bars[self.warm].open)

    def step(self) -> dict[str, Any]:
        """Walk the next bar's path, then close it (both halves at once)."""
        self.walk()
        return self.close()

    def walk(self) -> dict[str, Any]:
        """The next bar's path through the book; the bar stays unpublished (its close
        is not known yet), so a test can wait until the trader has heard every fill the
        bar made before the trader sees the bar (``client_trades``)."""
        if self.done or self.walked:
            raise ValidationError("bars", "no bar left to walk", self.next)
        b = self.bars[self.next]
        for p in bar_path(Bar(b.open, b.high, b.low, b.close)):
            self._at(p)
        self.walked = True
        return {"bar": self.next, "open_ms": b.open_ms, "client_trades": self.market.client_trades}

    def close(self) -> dict[str, Any]:
        """Publish the walked bar and quote around the following bar's open."""
        if not self.walked:
            raise ValidationError("bars", "walk the bar before closing it", self.next)
        b = self.bars[self.next]
        self.market.publish(_candle(b))
        self.walked = False
        self.next += 1
        if not self.done:
            self._quote(self.bars[self.next].open)
        return {
            "bar": self.next - 1,
            "open_ms": b.open_ms,
            "client_trades": self.market.client_trades,
            "left": len(self.bars) - self.next,
        }

    # -- the book ------------------------------------------------------------------------
    def _at(self, p: int) -> None:
        """The price reaches ``p``: sweep what it touches, quote around it, print it."""
        self._pull()
        self._send(TAKER, OrderSide.BUY, p, self.sweep_qty, TimeInForce.IOC)
        self._send(TAKER, OrderSide.SELL, p, self.sweep_qty, TimeInForce.IOC)
        self._quote(p)
        self._send(TAKER, OrderSide.BUY, p, self.min_qty, TimeInForce.IOC)  # the print

    def _quote(self, p: int) -> None:
        self._pull()
        for side, price in ((OrderSide.SELL, p), (OrderSide.BUY, p - self.tick)):
            oid = self._send(QUOTES, side, price, self.depth_qty, TimeInForce.GTC)
            if oid is not None:
                self.quotes.append(oid)

    def _pull(self) -> None:
        open_orders = self.ex.engine.open_orders
        for oid in self.quotes:
            if oid in open_orders:
                self.ex.cancel(QUOTES, self.symbol, oid)
        self.quotes.clear()

    def _send(
        self, account: str, side: OrderSide, price: int, qty: int, tif: TimeInForce
    ) -> int | None:
        req = NewOrder(account, self.symbol, side, OrderType.LIMIT, qty, price, time_in_force=tif)
        try:
            reports = self.ex.submit(req)
        except BinanceError as exc:
            self.errors += 1
            log.warning("bar market order refused: %r", exc)
            return None
        oid = reports[0].order_id
        return oid if oid in self.ex.engine.open_orders else None

    async def run(self, period_s: float) -> None:
        """Step every ``period_s`` until the bars run out (``--bars-period-ms``)."""
        while not self.done:
            await asyncio.sleep(period_s)
            self.step()


def _candle(b: RawBar) -> Candle:
    c = [0] * 12
    c[K_OPEN_MS], c[K_OPEN], c[K_HIGH], c[K_LOW], c[K_CLOSE] = (
        b.open_ms,
        b.open,
        b.high,
        b.low,
        b.close,
    )
    c[5] = b.volume  # K_VOL
    c[10] = c[11] = -1  # no trade ids
    return c
