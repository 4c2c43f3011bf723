"""The backtest runner for tick data: trades, quotes and order-book depth through the
real order path (strategy -> risk engine -> order manager -> ``TickVenue``).

Per market event, in time order: commands whose latency has run out reach the venue
(each at its own arrival time); the clock moves to the event; the venue sees the event
first (fills and triggers it causes happened in the market before anyone could react);
the risk engine gets the reference price (the last trade, or the mid before the first
trade); then the strategy's handler runs -- ``on_trade(Tick)``, ``on_quote(Quote)``,
``on_book(dict)`` (ccxt's shape; only built for strategies that override ``on_book``)
-- and its orders go out through the venue's latency.

The result is a ``BacktestResult`` like a bar backtest's, so metrics, the HTML report
and ``--json`` work unchanged: ``bars`` counts market events, the price series is the
trade prices (mids where there are none), one equity point per event.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

import numpy as np

from bot4.backtest.engine import _fire_timers, start_strategy
from bot4.backtest.result import BacktestResult
from bot4.core.clock import TestClock
from bot4.core.enums import OrderSide
from bot4.core.errors import ValidationError
from bot4.core.instrument import Instrument
from bot4.core.numbers import SCALE, from_raw, money_from_raw, to_raw
from bot4.data.ticks import DepthEvent, MarketEvent, QuoteEvent, TradeEvent
from bot4.oms.manager import OrderManager
from bot4.risk.engine import RiskEngine
from bot4.risk.profile import RiskProfile
from bot4.sim.models import LatencyModel, LatencyOp
from bot4.sim.tick_venue import TickVenue
from bot4.strategy.base import Strategy
from bot4.strategy.market_data import Quote, Tick, book_dict


def instrument_from_ticks(symbol: str, events: Sequence[MarketEvent], quote: str) -> Instrument:
    """An instrument for the data: the tick and step are the largest powers of ten that
    divide every price and size seen (so every recorded price is on the grid)."""
    price_gcd = 0
    qty_gcd = 0
    for ev in events:
        if ev.symbol != symbol:
            continue
        if isinstance(ev, TradeEvent):
            price_gcd = math.gcd(price_gcd, ev.price_raw)
            qty_gcd = math.gcd(qty_gcd, ev.qty_raw)
        elif isinstance(ev, QuoteEvent):
            price_gcd = math.gcd(price_gcd, ev.bid_raw, ev.ask_raw)
            qty_gcd = math.gcd(qty_gcd, ev.bid_qty_raw, ev.ask_qty_raw)
        else:
            for price, qty in ev.bids + ev.asks:
                price_gcd = math.gcd(price_gcd, price)
                qty_gcd = math.gcd(qty_gcd, qty)
    if not price_gcd:
        raise ValidationError("data", "no prices for the symbol", symbol)

    def decade(g: int) -> int:
        unit = 1
        while unit < SCALE and g % (unit * 10) == 0:
            unit *= 10
        return unit

    tick = from_raw(decade(price_gcd))
    step = from_raw(decade(qty_gcd or 1))
    base = symbol.removesuffix(quote) if symbol.endswith(quote) else symbol
    return Instrument.create(symbol, base, quote, tick, step, min_qty=step)


class TickBacktest:
    def __init__(
        self,
        strategy: type[Strategy],
        events: Iterable[MarketEvent],
        params: dict[str, Any] | None = None,
        cash: Decimal | int | str = 10_000_000,
        quote: str = "USDT",
        fee_bps: Decimal | int | str = 10,
        maker_fee_bps: Decimal | int | str | None = None,
        latency: int | str = 0,
        seed: int = 0,
        risk_profile: RiskProfile | None = None,
        instruments: Sequence[Instrument] | None = None,
        book_levels: int = 20,
    ) -> None:
        self.events = list(events)
        if not self.events:
            raise ValidationError("data", "no market events", None)
        self.symbols = list(dict.fromkeys(ev.symbol for ev in self.events))
        insts = {i.symbol: i for i in instruments} if instruments else {}
        for sym in self.symbols:
            if sym not in insts:
                insts[sym] = instrument_from_ticks(sym, self.events, quote)
        self.instruments = insts
        self.strategy_cls = strategy
        self.params = dict(params or {})
        strategy(**self.params)  # refuse unknown or ill-typed parameters now
        self.cash = to_raw(cash, "cash")
        if self.cash <= 0:
            raise ValidationError("cash", "must be > 0", cash)
        self.cash_value = cash
        self.quote = quote
        self.fee_bps = fee_bps
        self.maker_fee_bps = maker_fee_bps
        if latency != "calibrated" and not (isinstance(latency, int) and latency >= 0):
            raise ValidationError("latency", 'ns >= 0 or "calibrated"', latency)
        self.latency = latency
        self.seed = seed
        self.risk_profile = risk_profile
        if book_levels <= 0:
            raise ValidationError("book_levels", "must be > 0", book_levels)
        self.book_levels = book_levels

    def run(self, progress: Callable[[int, int], None] | None = None) -> BacktestResult:
        """Run through every event; ``progress(done, total)`` every 16,384 events."""
        started = time.perf_counter()
        events = self.events
        clock = TestClock(events[0].ts_ns)

        def set_time(ts: int) -> None:
            clock._now = max(clock._now, ts)

        om = OrderManager(self.instruments.values(), clock=clock)
        om.deposit(self.quote, self.cash_value)
        risk = RiskEngine(om, self.risk_profile or RiskProfile.default())
        latency: Any = self.latency
        if latency == "calibrated":
            model = LatencyModel.calibrated(self.seed)
            latency = lambda: model.sample(LatencyOp.SUBMIT)  # noqa: E731
        venue = TickVenue(om, set_time, self.fee_bps, self.maker_fee_bps, latency)
        strategy, recorder, timers = start_strategy(
            self.strategy_cls(**self.params),
            om,
            risk,
            clock,
            self.instruments,
            self.symbols[0],
            venue.process,
        )

        wants_book = type(strategy).on_book is not Strategy.on_book
        pair = {s: f"{i.base}/{i.quote}" for s, i in self.instruments.items()}
        n = len(events)
        equity_ts = np.empty(n, dtype=np.int64)
        equity = np.empty(n, dtype=np.float64)
        price_ts: dict[str, list[int]] = {s: [] for s in self.symbols}
        price_px: dict[str, list[float]] = {s: [] for s in self.symbols}
        last_trade: dict[str, int] = {}
        money = float(10**18)
        last_equity = 0.0
        for k, ev in enumerate(events):
            ts = ev.ts_ns
            venue.advance(ts)
            clock._now = max(clock._now, ts)
            sym = ev.symbol
            if isinstance(ev, TradeEvent):
                venue.on_trade(ev)
                last_trade[sym] = ev.price_raw
                risk.update_price_raw(sym, ev.price_raw, ts)
                price_ts[sym].append(ts)
                price_px[sym].append(ev.price_raw / SCALE)
                side = ev.aggressor.value if ev.aggressor is not None else None
                strategy.on_trade(Tick(sym, from_raw(ev.price_raw), ts, from_raw(ev.qty_raw), side))
            elif isinstance(ev, QuoteEvent):
                venue.on_quote(ev)
                self._reference(
                    risk, sym, last_trade, ev.bid_raw, ev.ask_raw, ts, price_ts, price_px
                )
                strategy.on_quote(
                    Quote(
                        sym,
                        ts,
                        from_raw(ev.bid_raw),
                        from_raw(ev.bid_qty_raw),
                        from_raw(ev.ask_raw),
                        from_raw(ev.ask_qty_raw),
                    )
                )
            else:
                assert isinstance(ev, DepthEvent)
                venue.on_depth(ev)
                book = venue.books[sym]
                bid, ask = book.best_bid(), book.best_ask()
                if bid is not None and ask is not None:
                    self._reference(risk, sym, last_trade, bid[0], ask[0], ts, price_ts, price_px)
                if wants_book:
                    levels = self.book_levels
                    strategy.on_book(
                        book_dict(
                            pair[sym],
                            ts,
                            book.depth(OrderSide.BUY, levels),
                            book.depth(OrderSide.SELL, levels),
                        )
                    )
            if timers:
                _fire_timers(timers, clock.now_ns(), strategy)
            if progress is not None and not k & 0x3FFF:
                progress(k, n)
            value = risk.equity_money()
            if value is not None:
                last_equity = value / money
            equity_ts[k] = ts
            equity[k] = last_equity
        strategy.on_stop()
        venue.process()
        if progress is not None:
            progress(n, n)
        final = risk.equity_money() or 0
        prices = {
            s: (np.array(price_ts[s], dtype=np.int64), np.array(price_px[s], dtype=np.float64))
            for s in self.symbols
        }
        self.state = om.state
        self.risk = risk
        self.venue = venue
        self.strategy = strategy
        return BacktestResult(
            strategy=type(strategy).__name__,
            params=strategy.parameters(),
            symbols=list(self.symbols),
            quote=self.quote,
            start_ns=events[0].ts_ns,
            end_ns=events[-1].ts_ns,
            bars=n,
            initial_equity=from_raw(self.cash),
            final_equity=money_from_raw(final),
            equity_ts_ns=equity_ts,
            equity=equity,
            fills=recorder.fill_records(),
            trades=recorder.trade_records(),
            denials=recorder.denials,
            prices=prices,
            seconds=time.perf_counter() - started,
            entries=recorder.entries,
        )

    @staticmethod
    def _reference(
        risk: RiskEngine,
        sym: str,
        last_trade: dict[str, int],
        bid: int,
        ask: int,
        ts: int,
        price_ts: dict[str, list[int]],
        price_px: dict[str, list[float]],
    ) -> None:
        """Book data refreshes the reference price: the last trade once there is one
        (Binance's last price), the mid before that."""
        price = last_trade.get(sym)
        if price is None:
            price = (bid + ask) // 2
            price_ts[sym].append(ts)
            price_px[sym].append(price / SCALE)
        risk.update_price_raw(sym, price, ts)
