"""Backtests on tick data (real trades, quotes and Binance depth from ../shared/data):
the fills are checked against the recorded market, recomputed independently here."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bot4.backtest.ticks import TickBacktest
from bot4.core.errors import ValidationError
from bot4.core.numbers import from_raw
from bot4.data.ticks import (
    DepthEvent,
    MarketEvent,
    QuoteEvent,
    TradeEvent,
    capture_events,
    load_tardis_quotes,
    load_tardis_trades,
    merge_events,
)
from bot4.examples.tick_momentum import TickMomentum
from bot4.sim.binance_capture import DepthDiff, DepthSnapshot, Trade, detect_market, read_capture
from bot4.sim.l2_book import BinanceDepthSync, L2Book
from bot4.strategy.base import Strategy
from bot4.strategy.market_data import Quote, Tick
from tests.conftest import SHARED_DATA

TRADES = SHARED_DATA / "trades_quotes" / "tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv"
QUOTES = SHARED_DATA / "trades_quotes" / "tardis_binance-futures_BTCUSDT_quotes_2020-02-22.csv"
CAPTURE = SHARED_DATA / "orderbook" / "hftbacktest_binance_raw" / "spot_btcusdt_20240808.gz"
MS = 1_000_000


@pytest.fixture(scope="module")
def trades() -> list[TradeEvent]:
    return load_tardis_trades(TRADES)


@pytest.fixture(scope="module")
def capture() -> list[MarketEvent]:
    return list(capture_events(CAPTURE))


# -- data --------------------------------------------------------------------------------
def test_tardis_trades_are_exact_and_ordered(trades: list[TradeEvent]) -> None:
    rows = TRADES.read_text().splitlines()[1:]
    assert len(trades) == len(rows) == 9_999
    for ev, row in zip(trades, rows, strict=True):
        _, symbol, ts_us, _, _, side, price, amount = row.split(",")
        assert ev.symbol == symbol
        assert ev.ts_ns == int(ts_us) * 1000
        assert from_raw(ev.price_raw) == Decimal(price)
        assert from_raw(ev.qty_raw) == Decimal(amount)
        assert ev.aggressor is not None and ev.aggressor.value == side.upper()


def test_bad_tick_files_are_refused(tmp_path: Path) -> None:
    missing = tmp_path / "t.csv"
    missing.write_text("exchange,symbol,timestamp,price\nx,BTCUSDT,1,2\n")
    with pytest.raises(ValidationError) as info:
        load_tardis_trades(missing)
    assert info.value.field == "data"
    backwards = tmp_path / "b.csv"
    backwards.write_text(
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "x,BTCUSDT,2000,0,1,buy,1,1\nx,BTCUSDT,1000,0,2,buy,1,1\n"
    )
    with pytest.raises(ValidationError) as info:
        load_tardis_trades(backwards)
    assert info.value.field == "timestamp"
    crossed = tmp_path / "q.csv"
    crossed.write_text(
        "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n"
        "x,BTCUSDT,1000,0,1,100,101,1\n"
    )
    with pytest.raises(ValidationError):
        load_tardis_quotes(crossed)


def test_capture_depth_events_rebuild_the_synced_book(capture: list[MarketEvent]) -> None:
    """Applying the emitted depth events to an empty book ends in exactly the book that
    Binance's snapshot + diff procedure builds from the raw capture, never crossed on
    the way; every trade of the capture is emitted, in order."""
    book = L2Book()
    snapshots = diffs = 0
    for ev in capture:
        if isinstance(ev, DepthEvent):
            if ev.snapshot:
                snapshots += 1
                book.load(ev.bids, ev.asks)
            else:
                diffs += 1
                book.apply(ev.bids, ev.asks)
            assert not book.is_crossed()
    sync = BinanceDepthSync(detect_market(CAPTURE))
    raw_trades = []
    for msg in read_capture(CAPTURE, (DepthSnapshot, DepthDiff, Trade)):
        if isinstance(msg, DepthSnapshot):
            sync.on_snapshot(msg)
        elif isinstance(msg, DepthDiff):
            sync.on_diff(msg)
        else:
            raw_trades.append((msg.local_ns, msg.price, msg.qty))
    assert snapshots == 1 and diffs > 3_000 and not sync.gaps
    assert book.bids == sync.book.bids and book.asks == sync.book.asks
    emitted = [(e.ts_ns, e.price_raw, e.qty_raw) for e in capture if isinstance(e, TradeEvent)]
    assert emitted == raw_trades


def test_merge_keeps_time_order_and_stream_order_on_ties() -> None:
    a = [TradeEvent(1, "X", 1, 1, None), TradeEvent(3, "X", 1, 1, None)]
    b = [QuoteEvent(1, "X", 1, 1, 2, 1), QuoteEvent(2, "X", 1, 1, 2, 1)]
    merged = list(merge_events(a, b))
    assert [(e.ts_ns, type(e).__name__) for e in merged] == [
        (1, "TradeEvent"),
        (1, "QuoteEvent"),
        (2, "QuoteEvent"),
        (3, "TradeEvent"),
    ]


# -- strategies used below -----------------------------------------------------------------
class BuyThenSell(Strategy):
    """Buys ``qty`` at market every ``every`` trades, sells it ``every // 2`` trades later;
    remembers on which trade (its count, from 1) each decision was made."""

    every: int = 400
    qty: Decimal = Decimal("0.05")

    def on_start(self) -> None:
        self.n = 0
        self.decisions: list[tuple[int, str]] = []

    def on_trade(self, trade: Tick) -> None:
        self.n += 1
        if self.n % self.every == 0 and self.is_flat() and not self.open_orders():
            if self.buy(self.qty, stop_loss_pct=Decimal("5")):
                self.decisions.append((self.n, "BUY"))
        elif (
            self.n % self.every == self.every // 2 and not self.is_flat() and self.close_position()
        ):
            self.decisions.append((self.n, "SELL"))


class BidAtBest(Strategy):
    """Joins the best bid with a passive limit (and a stop), then closes at market once
    filled; on depth or quote data."""

    qty: Decimal = Decimal("0.01")

    def on_start(self) -> None:
        self.best_bid: Decimal | None = None
        self.placed_at: list[tuple[int, Decimal]] = []
        self.closing = False

    def on_quote(self, quote: Quote) -> None:
        self.best_bid = quote.bid
        self._act(quote.ts_ns)

    def on_book(self, book: dict[str, object]) -> None:
        bids = book["bids"]
        assert isinstance(bids, list) and bids
        self.best_bid = Decimal(repr(bids[0][0]))
        self._act(self.now_ns)

    def _act(self, ts: int) -> None:
        if self.best_bid is None:
            return
        if not self.is_flat():
            if not self.closing:
                self.closing = True
                self.close_position()
        elif not self.open_orders():
            self.closing = False
            self.buy(self.qty, limit=self.best_bid, stop_loss_pct=Decimal("5"))
            self.placed_at.append((ts, self.best_bid))


def _trade_after(trades: list[TradeEvent], ts: int) -> TradeEvent:
    return next(t for t in trades if t.ts_ns > ts)


# -- fills on trades only ------------------------------------------------------------------
def test_market_orders_on_trades_fill_at_the_next_trade(trades: list[TradeEvent]) -> None:
    bt = TickBacktest(BuyThenSell, trades, cash=1_000_000)
    result = bt.run()
    strategy = bt.strategy
    assert isinstance(strategy, BuyThenSell)
    assert len(strategy.decisions) >= 20
    fills = sorted(result.fills, key=lambda f: int(f.client_order_id.split("-")[1]))
    assert len(fills) == len(strategy.decisions)  # no book: one fill per order
    for fill, (n, side) in zip(fills, strategy.decisions, strict=True):
        # decided on trade n (1-based): filled in full at trade n + 1, as a taker
        assert fill.side == side and fill.liquidity == "TAKER"
        assert fill.ts_ns == trades[n].ts_ns and fill.price == from_raw(trades[n].price_raw)
        assert fill.fee == fill.qty * fill.price * Decimal("0.001")


def test_latency_delays_the_fill(trades: list[TradeEvent]) -> None:
    fast = TickBacktest(BuyThenSell, trades, cash=1_000_000).run()
    slow = TickBacktest(BuyThenSell, trades, cash=1_000_000, latency=250 * MS).run()
    assert len(slow.fills) >= 20
    pairs = list(zip(fast.fills, slow.fills, strict=False))
    later = 0
    for a, b in pairs:
        assert b.ts_ns >= a.ts_ns
        later += b.ts_ns > a.ts_ns
        # the slow fill is the first trade at or after decision + 250 ms
        assert from_raw(_trade_after(trades, b.ts_ns - 1).price_raw) == b.price
    assert later >= len(pairs) // 2


def test_stop_triggers_on_the_first_trade_through_it(trades: list[TradeEvent]) -> None:
    class BuyWithTightStop(Strategy):
        def on_start(self) -> None:
            self.done = False

        def on_trade(self, trade: Tick) -> None:
            if not self.done:
                self.done = bool(self.buy(Decimal("0.01"), stop_loss_pct=Decimal("0.1")))

    bt = TickBacktest(BuyWithTightStop, trades, cash=1_000_000)
    result = bt.run()
    entry, stop_fill = result.fills[0], result.fills[1]
    trigger = bt.state.orders[stop_fill.client_order_id].trigger_raw
    assert trigger < int(entry.price * 10**9)
    first_through = next(t for t in trades if t.ts_ns > entry.ts_ns and t.price_raw <= trigger)
    # triggered on that trade, then a market sell filled at the next trade
    nxt = _trade_after(trades, first_through.ts_ns)
    assert stop_fill.ts_ns == nxt.ts_ns and stop_fill.price == from_raw(nxt.price_raw)


# -- fills on a book -------------------------------------------------------------------------
def test_market_order_walks_the_recorded_book(capture: list[MarketEvent]) -> None:
    """A market buy bigger than the best level: its fills equal the book's best levels
    at that moment, rebuilt here from the same events."""

    class BigBuy(Strategy):
        def on_start(self) -> None:
            self.at: int | None = None

        def on_book(self, book: dict[str, object]) -> None:
            if self.at is None and self.now_ns > self.start + 60 * 10**9:
                self.buy(Decimal("3"), stop_loss_pct=Decimal("5"))
                self.at = self.now_ns

    BigBuy.start = capture[0].ts_ns  # type: ignore[attr-defined]
    bt = TickBacktest(BigBuy, capture, cash=10_000_000)
    result = bt.run()
    entry_fills = [f for f in result.fills if f.side == "BUY"]
    assert len(entry_fills) >= 2  # it walked more than one level
    decided = bt.state.orders[entry_fills[0].client_order_id].ts_init
    book = L2Book()
    for ev in capture:
        if ev.ts_ns > decided:
            break
        if isinstance(ev, DepthEvent):
            if ev.snapshot:
                book.load(ev.bids, ev.asks)
            else:
                book.apply(ev.bids, ev.asks)
    want = []
    left = 3 * 10**9
    for price, qty in sorted(book.asks.items()):
        take = min(qty, left)
        want.append((from_raw(price), from_raw(take)))
        left -= take
        if not left:
            break
    assert [(f.price, f.qty) for f in entry_fills] == want
    assert all(f.ts_ns == decided for f in entry_fills)


def test_passive_bid_fills_only_when_the_market_reaches_it(capture: list[MarketEvent]) -> None:
    bt = TickBacktest(BidAtBest, capture, cash=10_000_000, maker_fee_bps=-1)
    result = bt.run()
    makers = [f for f in result.fills if f.liquidity == "MAKER"]
    assert len(makers) >= 3
    for fill in makers:
        assert fill.side == "BUY"
        assert fill.fee < 0  # the rebate
        # some seller reached the bid at that moment: a trade at or below it, or the
        # book's best ask at or below it
        reached = [
            ev
            for ev in capture
            if ev.ts_ns == fill.ts_ns
            and (
                (isinstance(ev, TradeEvent) and from_raw(ev.price_raw) <= fill.price)
                or (
                    isinstance(ev, DepthEvent)
                    and any(from_raw(p) <= fill.price for p, q in ev.asks if q)
                )
            )
        ]
        assert reached, fill
    # and never before: sell volume at or through the price is needed first
    first = makers[0]
    placed = bt.state.orders[first.client_order_id].ts_init
    sold_at_or_below = sum(
        ev.qty_raw
        for ev in capture
        if isinstance(ev, TradeEvent)
        and placed < ev.ts_ns <= first.ts_ns
        and from_raw(ev.price_raw) <= first.price
    )
    assert sold_at_or_below > 0 or any(
        isinstance(ev, DepthEvent) and placed < ev.ts_ns <= first.ts_ns for ev in capture
    )


def test_quotes_and_trades_together(trades: list[TradeEvent]) -> None:
    quotes = load_tardis_quotes(QUOTES)
    end = quotes[-1].ts_ns
    events = list(merge_events([t for t in trades if t.ts_ns <= end], quotes))
    result = TickBacktest(BidAtBest, events, cash=1_000_000).run()
    assert result.entries >= 1
    assert {f.liquidity for f in result.fills} == {"MAKER", "TAKER"}


# -- the whole run -----------------------------------------------------------------------------
def test_deterministic_and_money_is_conserved(capture: list[MarketEvent]) -> None:
    a = TickBacktest(TickMomentum, capture, cash=1_000_000, latency="calibrated", seed=7)
    ra = a.run()
    rb = TickBacktest(TickMomentum, capture, cash=1_000_000, latency="calibrated", seed=7).run()
    assert ra.fills == rb.fills and ra.final_equity == rb.final_equity
    assert len(ra.fills) >= 10
    usdt = Decimal(1_000_000)
    btc = Decimal(0)
    for f in ra.fills:
        sign = 1 if f.side == "BUY" else -1
        usdt -= sign * f.qty * f.price + f.fee
        btc += sign * f.qty
    balances = a.state.account.balances
    assert from_raw(balances["USDT"].total // 10**9) == usdt.quantize(Decimal("1e-9"))
    assert btc == a.state.positions["BTCUSDT"].qty_raw / Decimal(10**9)


def test_the_risk_engine_is_in_the_path(trades: list[TradeEvent]) -> None:
    class NoStop(Strategy):
        def on_trade(self, trade: Tick) -> None:
            if self.is_flat() and not self.open_orders():
                self.buy(Decimal("0.01"))

    result = TickBacktest(NoStop, trades[:500], cash=1_000_000).run()
    assert not result.fills
    assert len(result.denials) == 500
    assert {d.reason for d in result.denials} == {"STOP_LOSS_REQUIRED"}


def test_bad_arguments_are_refused(trades: list[TradeEvent]) -> None:
    with pytest.raises(ValidationError) as info:
        TickBacktest(TickMomentum, [], cash=1)
    assert info.value.field == "data"
    with pytest.raises(ValidationError) as info:
        TickBacktest(TickMomentum, trades, latency=-1)
    assert info.value.field == "latency"
    with pytest.raises(ValidationError):
        TickBacktest(TickMomentum, trades, cash=0)


def test_cli_runs_a_tick_backtest(tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot4.cli",
            "backtest",
            "--strategy",
            "bot4.examples.tick_momentum:TickMomentum",
            "--data",
            str(CAPTURE),
            "--cash",
            "1000000",
            "--report",
            str(report),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["bars"] > 10_000 and figures["trades"] >= 10
    assert report.stat().st_size > 10_000


def test_progress_is_reported_up_to_every_event(trades: list[TradeEvent]) -> None:
    seen: list[tuple[int, int]] = []
    TickBacktest(TickMomentum, trades, cash=1_000_000).run(lambda d, t: seen.append((d, t)))
    done = [d for d, _ in seen]
    assert done == sorted(done) and seen[-1] == (len(trades), len(trades))
    assert len(seen) >= 2 and {t for _, t in seen} == {len(trades)}


def test_fok_counts_liquidity_beyond_the_first_levels() -> None:
    """A fill-or-kill that needs more than the first 50 levels still fills when the book
    holds enough within its limit, and expires when it does not."""
    from bot4.core.enums import TimeInForce

    asks = tuple((100_000 * 10**9 + i * 10**7, 10**6) for i in range(200))  # 200 x 0.001
    bids = ((99_000 * 10**9, 10**9),)
    book = DepthEvent(1_000, "BTCUSDT", bids, asks, snapshot=True)
    trade = TradeEvent(2_000, "BTCUSDT", 100_000 * 10**9, 10**6, None)

    class Fok(Strategy):
        qty: Decimal = Decimal("0.15")

        def on_start(self) -> None:
            self.sent = False

        def on_trade(self, t: Tick) -> None:
            if not self.sent:
                self.sent = True
                self.buy(
                    self.qty,
                    limit=Decimal(100_002),
                    time_in_force=TimeInForce.FOK,
                    stop_loss_pct=Decimal("5"),
                )

    filled = TickBacktest(Fok, [book, trade], cash=10**8).run()
    assert sum(f.qty for f in filled.fills) == Decimal("0.15")  # 150 levels walked
    assert len(filled.fills) == 150
    too_big = TickBacktest(Fok, [book, trade], params={"qty": "0.25"}, cash=10**8)
    result = too_big.run()
    assert not result.fills  # 200 levels hold only 0.2 within the limit
    assert {o.status.value for o in too_big.state.orders.values()} == {"EXPIRED", "CANCELED"}
