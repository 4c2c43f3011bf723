"""Backtest vs paper: the same strategy on the same recorded bars gives the same orders
and the same fills (prices, quantities, fees) -- where a fill model can be the same.

The market is a real slice of Binance BTC/USDT one-minute bars (``../shared/data``).  The
backtest reads it through ``Backtest``; the paper session trades on ``bot4 exchange
--bars`` (``bot4.server.bar_market``), which serves the same bars as its candles and
walks each bar's intra-bar path (O L H C / O H L C, the backtest's) through its
matching engine, through ccxt, the journal and the venue adapter -- the whole paper
path.  The test steps one bar at a time, only when the trader is idle, so every
decision made on a close is at the venue before the next bar moves: deterministic.

Identical by construction and checked exactly: the bars the strategy sees, every order
(side, type, quantity, limit price), market buys (at the next open), resting limits
reached inside a bar (at their limit), every quantity, and every fee as a value.

Different by construction, and each case checked to be exactly what the reason says:

* a market *sell* fills one tick below the backtest's open: the server's book offers
  at the open and bids one tick below -- one book cannot bid and offer at one price,
  and a bar records trades, not which side of the book they hit;
* a resting limit that the next open *gapped* through fills at the open in the
  backtest, at its own limit price on an exchange (a resting order trades at its price);
* Binance takes a buy's fee in the base asset (0.1 % of the BTC bought); the backtest
  charges every fee in the quote asset.  Valued at the fill price the two are equal.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot4.backtest.engine import Backtest
from bot4.core.enums import OrderSide, OrderType
from bot4.core.events import OrderFilled
from bot4.core.numbers import from_raw, money_from_raw
from bot4.data.bars import load_bars
from bot4.live.runner import LiveRunner, RunnerConfig
from bot4.oms.journal import SqlJournal
from bot4.risk.profile import RiskProfile
from bot4.server.config import CATALOG
from bot4.server.process import ServerProcess
from bot4.strategy.base import Bar, Strategy
from bot4.venues.ccxt_config import Credentials, VenueConfig
from tests.live_support import KEY, REPO, SECRET, async_wait_until, no_stop_profile

BARS = REPO.parent / "shared/data/ohlcv_1m/binance_spot_BTC_USDT-1m_2025-05-20_2025-08-18.feather"
START, COUNT, WARM = 20_000, 400, 1  # 2025-06-02 21:20 UTC onwards, 399 bars traded
FEE = Decimal("0.001")  # 10 bps, maker and taker, on both sides
CASH = Decimal(100_000)
TICK = CATALOG["BTCUSDT"].tick_size


class TrendTakeProfit(Strategy):
    """Long while the fast SMA is above the slow one, with a resting take-profit.

    Decisions depend only on the bars and on the position, never on the clock or on
    trades, so a paper session that sees the same bars decides the same.  It trades
    its entry quantity, not its position: Binance takes a buy's fee from the coins
    bought, so after a buy paper holds 0.1 % less BTC than the backtest (which charges
    the fee in USDT), and "sell the position" would differ by that fee."""

    fast: int = 3
    slow: int = 8
    qty: Decimal = Decimal("0.001")
    tp_bps: Decimal = Decimal(4)

    def on_start(self) -> None:
        self.f = self.sma(self.fast)
        self.s = self.sma(self.slow)
        self.seen: list[tuple[int, float, float, float, float]] = []

    def on_bar(self, bar: Bar) -> None:
        self.seen.append((bar.ts_ns, bar.open, bar.high, bar.low, bar.close))
        if not self.s.ready:
            return
        up = self.f.value > self.s.value
        long = self.position() >= self.qty / 2
        working = self.open_orders()
        if not long and up and not working:
            self.buy(self.qty)
        elif long and not up:
            for order in working:
                self.cancel(order)
            self.sell(self.qty)
        elif long and not working:
            self.sell(self.qty, limit=Decimal(repr(bar.close)) * (1 + self.tp_bps / 10_000))


def _profile() -> RiskProfile:
    """No stop-loss required; the submit-rate limit (20 orders a wall-clock second) off:
    paper here runs some 1,000 times faster than the bars' own time, the backtest not."""
    return no_stop_profile().with_limits(max_orders_per_window=1_000_000)


def _backtest() -> tuple[TrendTakeProfit, Backtest, Any]:
    series = load_bars(BARS, "BTCUSDT").slice(START, START + COUNT)
    bt = Backtest(
        TrendTakeProfit,
        series,
        cash=CASH,
        fee_bps=10,
        maker_fee_bps=10,
        risk_profile=_profile(),
        instruments=[CATALOG["BTCUSDT"].instrument()],
    )
    seen: list[TrendTakeProfit] = []
    original = TrendTakeProfit.on_start

    def capture(self: TrendTakeProfit) -> None:
        seen.append(self)
        original(self)

    TrendTakeProfit.on_start = capture  # type: ignore[method-assign]
    try:
        result = bt.run()
    finally:
        TrendTakeProfit.on_start = original  # type: ignore[method-assign]
    return seen[0], bt, result


def _server(tmp: Path) -> ServerProcess:
    cfg = tmp / "exchange.toml"
    cfg.write_text(
        "[[accounts]]\n"
        f'name = "main"\napi_key = "{KEY}"\napi_secret = "{SECRET}"\n'
        f'balances = {{ USDT = "{CASH}", BTC = "0.01" }}\n'
        f'maker_fee = "{FEE}"\ntaker_fee = "{FEE}"\n',
        encoding="utf-8",
    )
    args = ["--symbols", "BTCUSDT", "--no-market-maker", "--config", str(cfg)]
    args += ["--bars", str(BARS), "--bars-slice", f"{START}:{COUNT}", "--bars-warm", str(WARM)]
    args += ["--weight-limit", "1000000", "--orders-per-10s", "100000"]
    return ServerProcess(args).start()


def _idle(runner: LiveRunner, bar_ms: int) -> bool:
    """The trader has seen bar ``bar_ms`` and nothing of its is on the way."""
    if runner.last_bar_ms.get("BTCUSDT") != bar_ms:
        return False
    om, venue = runner.om, runner.venue
    if om.outbox or venue.inflight or venue.resolvers or venue.deferred:
        return False
    return all(
        o.status.value not in ("SUBMITTED", "PENDING_CANCEL") for o in om.state.orders.values()
    )


def _post(url: str) -> dict[str, Any]:
    req = urllib.request.Request(url, method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=5) as resp:
        out: dict[str, Any] = json.loads(resp.read())
    return out


async def _paper(tmp: Path, srv: ServerProcess, bar_ms: list[int]) -> tuple[LiveRunner, float]:
    cfg = RunnerConfig(
        VenueConfig.local(srv.http, Credentials(KEY, SECRET)),
        ["BTC/USDT"],
        TrendTakeProfit,
        journal_url=f"sqlite:///{tmp / 'paper.db'}",
        risk_profile=_profile(),
        status=False,
        bar_poll_s=0.01,
        seed=1,
    )
    runner = LiveRunner(cfg)
    stop = asyncio.Event()
    task = asyncio.ensure_future(runner.run(stop))
    t0 = time.perf_counter()
    try:
        assert await async_wait_until(lambda: _idle(runner, bar_ms[WARM - 1]), 20)
        loop = asyncio.get_running_loop()
        for k in range(WARM, COUNT):
            walked = await loop.run_in_executor(None, _post, srv.http + "/bot4/bars/walk")
            assert walked["bar"] == k and walked["open_ms"] == bar_ms[k], walked
            # every fill the bar made is in the journal before the trader sees its close
            trades = walked["client_trades"]
            assert await async_wait_until(lambda n=trades: runner.venue.stats["fills"] >= n, 5)
            await loop.run_in_executor(None, _post, srv.http + "/bot4/bars/close")
            assert await async_wait_until(lambda k=k: _idle(runner, bar_ms[k]), 5, 0.002), k
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return runner, time.perf_counter() - t0


def test_backtest_and_paper_agree_on_recorded_bars(tmp_path: Path) -> None:
    assert BARS.exists(), f"market data not found: {BARS}"
    bt_strategy, bt, result = _backtest()
    bar_ms = [ts // 1_000_000 for ts, *_ in bt_strategy.seen]
    assert len(bar_ms) == COUNT
    srv = _server(tmp_path)
    try:
        runner, seconds = asyncio.run(asyncio.wait_for(_paper(tmp_path, srv, bar_ms), 50))
    finally:
        srv.stop()
        srv.close()
    paper = runner.strategy
    assert isinstance(paper, TrendTakeProfit)

    # 1. the same bars (paper's first bar only warms the indicators, as in live)
    assert paper.seen == bt_strategy.seen[WARM:]

    # 2. the same orders, in the same order (keep_orders off: the paper session also
    # cancels what is open at its stop, the backtest leaves it)
    bt_orders = sorted(bt.state.orders.values(), key=lambda o: (o.ts_init, _seq(o.client_order_id)))
    pp_orders = sorted(
        runner.om.state.orders.values(), key=lambda o: (o.ts_init, _seq(o.client_order_id))
    )
    shape = [(o.side, o.order_type, o.quantity_raw, o.price_raw) for o in bt_orders]
    assert [(o.side, o.order_type, o.quantity_raw, o.price_raw) for o in pp_orders] == shape
    assert len(shape) >= 10, "the slice should trade"
    assert runner.risk.denied == 0 and not result.denials and runner.errors == []
    # the same outcomes: filled or cancelled alike; what the backtest leaves working at
    # its end, the paper session cancelled at its stop (keep_orders off)
    for bo, po in zip(bt_orders, pp_orders, strict=True):
        want = "CANCELED" if bo.status.is_open else bo.status.value
        assert po.status.value == want, (bo, po)

    # 3. the same fills, order by order, with the stated differences only
    with SqlJournal(runner.cfg.journal_url) as journal:
        pp_fills = [e for e in journal.read() if isinstance(e, OrderFilled)]
    pp_by_cid: dict[str, list[OrderFilled]] = {}
    for e in pp_fills:
        pp_by_cid.setdefault(e.client_order_id, []).append(e)
    bt_by_cid: dict[str, list[Any]] = {}
    for f in result.fills:
        bt_by_cid.setdefault(f.client_order_id, []).append(f)
    opens = {ts: o for ts, o, *_ in bt_strategy.seen}
    kinds: dict[str, int] = {}
    for bo, po in zip(bt_orders, pp_orders, strict=True):
        bfs, pfs = bt_by_cid.get(bo.client_order_id, []), pp_by_cid.get(po.client_order_id, [])
        assert len(bfs) == len(pfs) <= 1, (bo, bfs, pfs)
        if not bfs:
            continue
        bf, pf = bfs[0], pfs[0]
        qty, price = from_raw(pf.qty_raw), from_raw(pf.price_raw)
        assert qty == bf.qty
        at_open = Decimal(repr(opens[bf.ts_ns])) == bf.price
        limit = from_raw(bo.price_raw) if bo.price_raw else None
        if bo.order_type is OrderType.MARKET and bo.side is OrderSide.SELL:
            kind, expected = "market sell: the bid, a tick under the open", bf.price - TICK
        elif bo.order_type is OrderType.MARKET:
            kind, expected = "market buy: the open", bf.price
        elif limit == bf.price:
            kind, expected = "limit reached in the bar: the limit", bf.price
        else:
            assert at_open and limit is not None, (bo, bf)
            kind, expected = "limit gapped through at the open: the limit", limit
        assert price == expected, (kind, bo, bf, pf)
        kinds[kind] = kinds.get(kind, 0) + 1
        # fees: 10 bps of the notional; a buy's in BTC at Binance, in USDT in the backtest
        fee = money_from_raw(pf.fee_money)
        assert bf.fee == bf.qty * bf.price * FEE and bf.fee_asset == "USDT"
        if bo.side is OrderSide.BUY:
            assert pf.fee_asset == "BTC" and fee == qty * FEE
            assert fee * price == bf.fee  # equal in value: the same price here
        else:
            assert pf.fee_asset == "USDT" and fee == qty * price * FEE
    assert kinds.get("market buy: the open", 0) >= 3
    assert kinds.get("limit reached in the bar: the limit", 0) >= 1
    print(
        f"\nparity: {len(shape)} orders, {sum(kinds.values())} fills {kinds}; "
        f"{COUNT - WARM} bars stepped through the server in {seconds:.1f} s"
    )


def _seq(cid: str) -> int:
    return int(cid.rsplit("-", 1)[1])
