"""The backtest runner: historical bars through the real order path.

Per bar, in time order across symbols:

1. the clock moves to the bar's open and the simulated venue works the bar: orders
   decided on earlier bars fill at this open, resting orders along the bar's path;
2. the clock moves to the bar's close; the risk engine gets the close as its reference
   price (equity, drawdown, kill switch); the strategy's indicators update; the
   strategy's ``on_bar`` runs, and every order it places goes strategy -> risk engine
   -> order manager -> venue, exactly as in paper and live.

The loop is lean on purpose (numbers in local variables, bars read in chunks from the
column arrays, no objects per bar), so a million bars run in seconds and memory stays
flat; see ``benchmarks/backtest.py``.  Its compiled translation,
``bot4.backtest._fastloop.BarLoop`` (Cython, built by ``pip install -e .``), runs it
where it is built; the pure-Python loop below is the reference it is tested against
(``tests/test_backtest_compiled.py``) and the fallback (not built, ``BOT4_PURE_SIM=1``,
or columns that are not float64/int64).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot4._compiled import compiled
from bot4.backtest.result import BacktestResult, DenialRecord, FillRecord, TradeRecord
from bot4.core.clock import TestClock
from bot4.core.enums import OrderSide
from bot4.core.errors import ValidationError
from bot4.core.events import Event, OrderDenied, OrderFilled
from bot4.core.instrument import Instrument
from bot4.core.numbers import SCALE, from_raw, money_from_raw, to_raw
from bot4.core.order import Order
from bot4.data.bars import BarSeries
from bot4.oms.manager import OrderManager
from bot4.risk.engine import RiskEngine
from bot4.risk.profile import RiskProfile
from bot4.sim.bar_venue import BarVenue
from bot4.strategy.base import Bar, Strategy, StrategyContext
from bot4.strategy.indicators import BatchIndicator
from bot4.strategy.positions import position_changed

GC_THRESHOLD0 = 100_000  # container allocations between young collections
CHUNK = 1 << 16


# The compiled loop if it is built and ``BOT4_PURE_SIM`` does not switch compiled code
# off (the switch of every compiled module, ``bot4._compiled``).
_fastloop = compiled("_fastloop", "bot4.backtest")


def default_instrument(symbol: str, series: BarSeries, quote: str = "USDT") -> Instrument:
    """An instrument for a symbol like ``BTC/USDT`` or ``BTCUSDT``: the tick is the
    finest decimal the data's prices use (at least 0.01, at most 1e-8), step 0.00001,
    no notional limits.  Pass ``instruments`` to a backtest for the venue's real rules."""
    base = symbol.split("/")[0] if "/" in symbol else symbol.removesuffix(quote)
    sample = np.concatenate(
        [series.open[:2000], series.high[:2000], series.low[:2000], series.close[:2000]]
    )
    decimals = 2
    while decimals < 8:
        scaled = sample * 10**decimals
        if np.allclose(scaled, np.round(scaled), rtol=0, atol=1e-6):
            break
        decimals += 1
    return Instrument.create(
        normalize_symbol(symbol, quote),
        base,
        quote,
        Decimal(1).scaleb(-decimals),
        "0.00001",
        min_qty="0.00001",
    )


def normalize_symbol(symbol: str, quote: str = "USDT") -> str:
    return symbol.replace("/", "").upper()


class Backtest:
    def __init__(
        self,
        strategy: type[Strategy],
        data: BarSeries | Sequence[BarSeries],
        params: dict[str, Any] | None = None,
        cash: Decimal | int | str = 10_000_000,
        quote: str = "USDT",
        fee_bps: Decimal | int | str = 10,
        maker_fee_bps: Decimal | int | str | None = None,
        risk_profile: RiskProfile | None = None,
        instruments: Sequence[Instrument] | None = None,
        journal_url: str | None = None,
    ) -> None:
        self.series = [data] if isinstance(data, BarSeries) else list(data)
        if not self.series:
            raise ValidationError("data", "no bar series", data)
        self.quote = quote
        insts = {i.symbol: i for i in instruments} if instruments else {}
        for s in self.series:
            if s.symbol not in insts:
                insts[s.symbol] = default_instrument(s.symbol, s, quote)
        self.instruments = insts
        self.strategy_cls = strategy
        self.params = dict(params or {})
        strategy(**self.params)  # refuse unknown or ill-typed parameters now
        self.cash = to_raw(cash, "cash")  # validates: Decimal/int/str only
        if self.cash <= 0:
            raise ValidationError("cash", "must be > 0", cash)
        self.cash_value = cash
        self.fee_bps = fee_bps
        self.maker_fee_bps = maker_fee_bps
        self.risk_profile = risk_profile
        self.journal_url = journal_url

    def run(self, progress: Callable[[int, int], None] | None = None) -> BacktestResult:
        # Young garbage collections every GC_THRESHOLD0 allocations instead of 700 for
        # the run (restored after): the run keeps every order it made, and frequent
        # collections walking them cost ~4 % of a 1M-bar run at 10,000 and ~2 % more at
        # 100,000 (measured; with the collector off the run is no faster still, and
        # peak memory is the same); almost all of the order path is freed by
        # reference counting, not by the collector.
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], GC_THRESHOLD0), thresholds[1], thresholds[2])
        try:
            return self._run(progress)
        finally:
            gc.set_threshold(*thresholds)

    def _run(self, progress: Callable[[int, int], None] | None) -> BacktestResult:
        started = time.perf_counter()
        series = self.series
        first_ts = min(int(s.ts_ns[0]) for s in series)
        clock = TestClock(first_ts)
        journal = None
        if self.journal_url:
            from bot4.oms.journal import SqlJournal  # SQLAlchemy only when journaling

            journal = SqlJournal(self.journal_url)
        om = OrderManager(self.instruments.values(), clock=clock, journal=journal)
        om.deposit(self.quote, self.cash_value)
        risk = RiskEngine(om, self.risk_profile or RiskProfile.default())
        venue = BarVenue(om, self.fee_bps, self.maker_fee_bps)
        strategy, recorder, timers = start_strategy(
            self.strategy_cls(**self.params),
            om,
            risk,
            clock,
            self.instruments,
            series[0].symbol,
            venue.process,
        )

        n_total = sum(len(s) for s in series)
        equity_ts = np.empty(n_total, dtype=np.int64)
        equity = np.empty(n_total, dtype=np.float64)
        # Item assignment through a memoryview skips numpy's scalar conversion (~40 %);
        # typed as Any: numpy arrays are buffers, which the stubs do not say.  (The
        # timestamps are known in advance: written a chunk at a time.)
        equity_points: Any = memoryview(equity)  # type: ignore[arg-type]
        single = len(series) == 1
        order = None if single else _merged_order(series)
        done = 0
        bars = {s.symbol: Bar(s.symbol, 0, 0.0, 0.0, 0.0, 0.0, 0.0) for s in series}
        # Per symbol: indicators fed by update() each bar, and indicators whose values
        # were computed for the whole series at once (``Indicator.batch``, the same
        # numbers): those only advance, value by value.
        indicators: dict[str, list[Any]] = {s.symbol: [] for s in series}
        precomputed: dict[str, list[BatchIndicator]] = {s.symbol: [] for s in series}
        by_symbol = {s.symbol: s for s in series}
        for sym, ind in strategy._indicators:
            if sym not in indicators:
                raise ValidationError("symbol", "an indicator's symbol has no data", sym)
            if isinstance(ind, BatchIndicator) and ind.can_batch(by_symbol[sym].close):
                precomputed[sym].append(ind)
            else:
                indicators[sym].append(ind.update)
        on_bar = strategy.on_bar
        state = om.state
        update_price = risk.update_price_raw
        reach = venue.reach
        venue_bar = venue.on_bar
        money = float(10**18)
        last_equity = 0.0
        fast = _fastloop if all(_typed_columns(s) for s in series) else None
        loop: Any = None
        if fast is not None:
            loop = fast.BarLoop(
                clock,
                reach,
                venue_bar,
                update_price,
                on_bar,
                risk,
                strategy,
                timers,
                _fire_timers,
                equity,
                equity_ts,
            )
        for chunk_start in range(0, n_total, CHUNK):
            if order is None:  # one series: the chunk is a run of its bars
                runs = [(0, chunk_start, min(chunk_start + CHUNK, n_total))]
            else:
                runs = _runs(order[chunk_start : chunk_start + CHUNK])
            chunks = None
            if fast is not None:
                chunks = _chunks(fast, runs, series, bars, indicators, precomputed)
            if chunks is not None:  # the same loop, compiled (bot4.backtest._fastloop)
                loop.last_equity = last_equity
                done = loop.run(runs, chunks, done)
                last_equity = loop.last_equity
                if progress is not None:
                    progress(done, n_total)
                continue
            for sidx, i0, i1 in runs:
                s = series[sidx]
                sym = s.symbol
                interval = s.interval_ns
                bar = bars[sym]
                updates = indicators[sym]
                advances = [(ind, _batch_values(ind, s.close, i0, i1)) for ind in precomputed[sym]]
                ts_l = s.ts_ns[i0:i1].tolist()
                o_l = s.open[i0:i1].tolist()
                h_l = s.high[i0:i1].tolist()
                lo_l = s.low[i0:i1].tolist()
                c_l = s.close[i0:i1].tolist()
                v_l = s.volume[i0:i1].tolist()
                c_raw = np.rint(s.close[i0:i1] * SCALE).astype(np.int64).tolist()
                closes_ts = s.ts_ns[i0:i1] + interval  # each point is stamped at its close
                equity_ts[done : done + i1 - i0] = closes_ts
                close_l = closes_ts.tolist()
                for k in range(i1 - i0):
                    ts = ts_l[k]
                    clock._now = ts  # the bar's open (monotonic: bars are time-ordered)
                    working = reach.get(sym)
                    if working is not None:
                        h_raw = round(h_l[k] * SCALE)
                        lo_raw = round(lo_l[k] * SCALE)
                        if working[2] or lo_raw <= working[0] or h_raw >= working[1]:
                            venue_bar(sym, round(o_l[k] * SCALE), h_raw, lo_raw, c_raw[k])
                    close_ts = close_l[k]
                    clock._now = close_ts
                    update_price(sym, c_raw[k], close_ts)
                    c = c_l[k]
                    for update in updates:
                        update(c)
                    for ind, values in advances:
                        ind.previous = ind.value
                        ind.value = values[k]
                        ind.count += 1
                    bar.ts_ns = ts
                    bar.open = o_l[k]
                    bar.high = h_l[k]
                    bar.low = lo_l[k]
                    bar.close = c
                    bar.volume = v_l[k]
                    on_bar(bar)
                    if timers:
                        _fire_timers(timers, close_ts, strategy)
                    eq = risk._equity
                    if eq is None or not risk._equity_ok:
                        value = risk.equity_money()
                        last_equity = value / money if value is not None else last_equity
                    else:
                        last_equity = eq / money
                    equity_points[done] = last_equity
                    done += 1
            if progress is not None:
                progress(done, n_total)
        strategy.on_stop()
        venue.process()
        if journal is not None:
            journal.close()
        final = risk.equity_money() or 0
        prices = {s.symbol: (s.ts_ns, s.close) for s in series}
        result = BacktestResult(
            strategy=type(strategy).__name__,
            params=strategy.parameters(),
            symbols=[s.symbol for s in series],
            quote=self.quote,
            start_ns=first_ts,
            end_ns=int(equity_ts[done - 1]) if done else first_ts,
            bars=done,
            initial_equity=from_raw(self.cash),
            final_equity=money_from_raw(final),
            equity_ts_ns=equity_ts[:done],
            equity=equity[:done],
            fills=recorder.fill_records(),
            trades=recorder.trade_records(),
            denials=recorder.denials,
            prices=prices,
            seconds=time.perf_counter() - started,
            entries=recorder.entries,
        )
        self.state = state
        self.risk = risk
        self.strategy = strategy
        return result


def start_strategy(
    strategy: Strategy,
    om: OrderManager,
    risk: RiskEngine,
    clock: TestClock,
    instruments: dict[str, Instrument],
    default_symbol: str,
    after_action: Callable[[], None],
) -> tuple[Strategy, _Recorder, list[list[Any]]]:
    """Bind a strategy to a backtest's order path (its context, timers on the simulated
    clock, the recorder of fills and trades), start it and send what it ordered."""
    timers: list[list[Any]] = []

    def set_timer(name: str, interval_ns: int) -> None:
        if interval_ns <= 0:
            raise ValidationError("interval_ns", "must be > 0", interval_ns)
        timers.append([clock.now_ns() + interval_ns, interval_ns, name])

    ctx = StrategyContext(risk, clock, instruments, default_symbol, after_action, set_timer)
    strategy._bind(ctx)
    recorder = _Recorder(om, strategy, ctx)
    om.subscribe(recorder.on_event, recorder.kinds)
    strategy.on_start()
    after_action()
    return strategy, recorder, timers


def _merged_order(series: list[BarSeries]) -> np.ndarray:
    """Rows (series index, bar index) of all bars in time order (ties: series order)."""
    ts = np.concatenate([s.ts_ns for s in series])
    sidx = np.concatenate([np.full(len(s), k, dtype=np.int64) for k, s in enumerate(series)])
    bidx = np.concatenate([np.arange(len(s), dtype=np.int64) for s in series])
    perm = np.lexsort((sidx, ts))
    return np.stack([sidx[perm], bidx[perm]], axis=1)


def _runs(rows: np.ndarray) -> list[tuple[int, int, int]]:
    """Split rows into runs of consecutive bars of one series: (series, start, stop)."""
    if len(rows) == 0:
        return []
    s = rows[:, 0]
    b = rows[:, 1]
    breaks = np.flatnonzero((s[1:] != s[:-1]) | (b[1:] != b[:-1] + 1)) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(rows)]])
    return [(int(s[a]), int(b[a]), int(b[z - 1]) + 1) for a, z in zip(starts, stops, strict=True)]


def _batch_values(
    ind: BatchIndicator, closes: NDArray[np.float64], i0: int, i1: int
) -> list[float]:
    return _batch_array(ind, closes, i0, i1).tolist()  # type: ignore[no-any-return]


def _batch_array(
    ind: BatchIndicator, closes: NDArray[np.float64], i0: int, i1: int
) -> NDArray[np.float64]:
    """The indicator's values for bars i0..i1-1, from the chunk and the inputs before it
    that its values still depend on (chunk by chunk: no series-long temporaries)."""
    start = max(0, i0 - ind.lookback)
    return ind.batch(closes[start:i1])[i0 - start :]


def _chunks(
    fastloop: ModuleType,
    runs: list[tuple[int, int, int]],
    series: list[BarSeries],
    bars: dict[str, Bar],
    indicators: dict[str, list[Any]],
    precomputed: dict[str, list[BatchIndicator]],
) -> list[Any] | None:
    """The compiled loop's input for one chunk: per series, its columns over the span
    of bars the chunk's runs cover, with the raw closes, close times and batch values
    the pure loop computes run by run (the same numbers: a batch value depends only on
    the ``lookback`` inputs before it).  None where a batch indicator gives anything but
    float64 values (the pure loop converts them with ``tolist``): the chunk runs pure."""
    spans: dict[int, tuple[int, int]] = {}
    for sidx, i0, i1 in runs:
        a, b = spans.get(sidx, (i0, i1))
        spans[sidx] = (min(a, i0), max(b, i1))
    chunks: list[Any] = [None] * len(series)
    for sidx, (a, b) in spans.items():
        s = series[sidx]
        batch = [(ind, _batch_array(ind, s.close, a, b)) for ind in precomputed[s.symbol]]
        if not all(values.dtype == np.float64 for _, values in batch):
            return None
        chunks[sidx] = fastloop.Chunk(
            s.symbol,
            bars[s.symbol],
            indicators[s.symbol],
            batch,
            a,
            s.ts_ns[a:b],
            s.open[a:b],
            s.high[a:b],
            s.low[a:b],
            s.close[a:b],
            s.volume[a:b],
            np.rint(s.close[a:b] * SCALE).astype(np.int64),
            s.ts_ns[a:b] + s.interval_ns,
        )
    return chunks


def _typed_columns(s: BarSeries) -> bool:
    """Whether the compiled loop reads this series exactly as the pure loop's
    ``tolist()`` does: int64 times, float64 prices and volumes (anything else -- a
    column of Python-int-valued dtype, float32 -- runs the pure loop)."""
    floats = (s.open, s.high, s.low, s.close, s.volume)
    return s.ts_ns.dtype == np.int64 and all(a.dtype == np.float64 for a in floats)


def _fire_timers(timers: list[list[Any]], now: int, strategy: Strategy) -> None:
    for timer in timers:
        while timer[0] <= now:
            timer[0] += timer[1]
            strategy.on_timer(timer[2])


class _Recorder:
    """Listens to the order path: fills, denials, round-trip trades, strategy callbacks.

    Fills and trades are kept as raw integers while the run goes and turned into exact
    Decimal records once at the end: the conversions cost more than the bookkeeping."""

    def __init__(self, om: OrderManager, strategy: Strategy, ctx: StrategyContext) -> None:
        self.om = om
        self.strategy = strategy
        self.ctx = ctx
        # (ts, symbol, side, qty_raw, price_raw, fee_money, fee_asset, cid, liquidity)
        self.fills: list[tuple[int, str, str, int, int, int, str, str, str]] = []
        self.denials: list[DenialRecord] = []
        self.trades: list[tuple[str, dict[str, Any], int, int]] = []  # (sym, trade, ts, pnl)
        self.entries = 0
        self._open: dict[str, dict[str, Any]] = {}
        # Most strategies do not override on_order/on_position: then nothing is called.
        overridden = type(strategy).on_order is not Strategy.on_order
        self._on_order: Callable[[Order], None] | None = strategy.on_order if overridden else None
        self._on_position = type(strategy).on_position is not Strategy.on_position
        # The events it reads: all of them only for a strategy's ``on_order``.
        self.kinds = None if overridden else ("OrderFilled", "OrderDenied", "OrderCanceled")
        self._last_qty: dict[str, int] = {}

    def on_event(self, event: Event) -> None:
        kind = event.kind
        if kind == "OrderFilled":
            assert isinstance(event, OrderFilled)
            self._fill(event)
        elif kind == "OrderDenied":
            assert isinstance(event, OrderDenied)
            self.denials.append(
                DenialRecord(
                    event.ts_event, event.symbol, event.side.value, event.reason, event.message
                )
            )
            return
        if kind == "OrderInitialized":
            return
        if self._on_order is not None:
            cid = getattr(event, "client_order_id", None)
            order = self.om.state.orders.get(cid) if cid is not None else None
            if order is not None:
                self._on_order(order)
        if kind == "OrderCanceled" and self.ctx.pending_close:
            for sym in list(self.ctx.pending_close):
                self.ctx.pending_close.discard(sym)
                self.strategy.close_position(sym)

    def _fill(self, ev: OrderFilled) -> None:
        state = self.om.state
        order = state.orders[ev.client_order_id]
        inst = state.instruments[order.symbol]
        self.fills.append(
            (
                ev.ts_event,
                order.symbol,
                order.side._value_,  # the enum's text: a plain attribute read
                ev.qty_raw,
                ev.price_raw,
                ev.fee_money,
                ev.fee_asset,
                ev.client_order_id,
                ev.liquidity._value_,
            )
        )
        pos = state.positions[order.symbol]
        sym = order.symbol
        fee_quote = ev.fee_money if ev.fee_asset == inst.quote else 0
        trade = self._open.get(sym)
        signed = ev.qty_raw if order.side is OrderSide.BUY else -ev.qty_raw
        if trade is None and pos.qty_raw != 0:
            self.entries += 1
            self._open[sym] = {
                "side": "LONG" if pos.qty_raw > 0 else "SHORT",
                "entry_ts": ev.ts_event,
                "realized0": pos.realized_money - 0,
                "fees": fee_quote,
                "in_qty": abs(signed),
                "in_notional": abs(signed) * ev.price_raw,
                "out_qty": 0,
                "out_notional": 0,
                "max_qty": abs(pos.qty_raw),
                "realized_before": pos.realized_money,
            }
        elif trade is not None:
            trade["fees"] += fee_quote
            increases = (signed > 0) == (trade["side"] == "LONG")
            if increases:
                trade["in_qty"] += abs(signed)
                trade["in_notional"] += abs(signed) * ev.price_raw
                trade["max_qty"] = max(trade["max_qty"], abs(pos.qty_raw))
            else:
                trade["out_qty"] += abs(signed)
                trade["out_notional"] += abs(signed) * ev.price_raw
            if pos.qty_raw == 0 or (pos.qty_raw > 0) != (trade["side"] == "LONG"):
                self._close(sym, trade, ev.ts_event, pos.realized_money)
                if pos.qty_raw != 0:  # flipped: the rest opens a new trade
                    self.entries += 1
                    self._open[sym] = {
                        "side": "LONG" if pos.qty_raw > 0 else "SHORT",
                        "entry_ts": ev.ts_event,
                        "fees": 0,
                        "in_qty": abs(pos.qty_raw),
                        "in_notional": abs(pos.qty_raw) * ev.price_raw,
                        "out_qty": 0,
                        "out_notional": 0,
                        "max_qty": abs(pos.qty_raw),
                        "realized_before": pos.realized_money,
                    }
        self.strategy.on_fill(order, ev)
        if self._on_position:
            before = self._last_qty.get(sym, 0)
            if pos.qty_raw != before:
                self._last_qty[sym] = pos.qty_raw
                self.strategy.on_position(position_changed(pos, before, ev.ts_event))

    def _close(self, sym: str, t: dict[str, Any], ts: int, realized: int) -> None:
        del self._open[sym]
        self.trades.append((sym, t, ts, realized - t["realized_before"] - t["fees"]))

    def fill_records(self) -> list[FillRecord]:
        """The fills as records, consuming the raw list from its end, so that the two
        forms never both exist in full (peak memory)."""
        raw = self.fills
        records = []
        while raw:
            ts, sym, side, qty, price, fee, asset, cid, liq = raw.pop()
            records.append(
                FillRecord(
                    ts,
                    sym,
                    side,
                    from_raw(qty),
                    from_raw(price),
                    money_from_raw(fee),
                    asset,
                    cid,
                    liq,
                )
            )
        records.reverse()
        return records

    def trade_records(self) -> list[TradeRecord]:
        records = []
        raw = self.trades
        raw.reverse()
        while raw:
            sym, t, ts, pnl_money = raw.pop()
            in_qty = t["in_qty"] or 1
            out_qty = t["out_qty"] or 1
            entry_price = Decimal(t["in_notional"]) / in_qty / SCALE
            exit_price = Decimal(t["out_notional"]) / out_qty / SCALE
            entry_notional = t["in_notional"]
            records.append(
                TradeRecord(
                    symbol=sym,
                    side=t["side"],
                    entry_ts_ns=t["entry_ts"],
                    exit_ts_ns=ts,
                    qty=from_raw(t["max_qty"]),
                    entry_price=entry_price.quantize(Decimal("1e-9")),
                    exit_price=exit_price.quantize(Decimal("1e-9")),
                    pnl=money_from_raw(pnl_money),
                    fees=money_from_raw(t["fees"]),
                    return_pct=(pnl_money / entry_notional) if entry_notional else 0.0,
                )
            )
        return records
