"""``Strategy.on_position``: one call per fill that changed a position, with the
position as the fills made it (checked against the fills themselves)."""

from __future__ import annotations

from decimal import Decimal

from bot4.backtest.engine import Backtest
from bot4.data.bars import load_bars
from bot4.examples.sma_cross import SmaCross
from bot4.oms.position import Position
from bot4.strategy.base import Bar, Strategy
from bot4.strategy.positions import PositionChanged, position_changed
from tests.conftest import SHARED_DATA

BTC = SHARED_DATA / "ohlcv_1m" / "binance_spot_BTC_USDT-1m_2025-05-20_2025-08-18.feather"


class WatchedSmaCross(SmaCross):
    def on_start(self) -> None:
        super().on_start()
        self.changes: list[PositionChanged] = []

    def on_position(self, change: PositionChanged) -> None:
        self.changes.append(change)


def test_open_and_close_events_follow_the_fills() -> None:
    series = load_bars(BTC, "BTCUSDT").slice(0, 20_000)
    params = {"fast": 10, "slow": 30, "qty": 1, "stop_pct": "0.5"}
    bt = Backtest(WatchedSmaCross, series, params=params)
    result = bt.run()
    strategy = bt.strategy
    assert isinstance(strategy, WatchedSmaCross)
    changes = strategy.changes
    assert len(result.trades) > 50
    assert len(changes) == len(result.fills)  # every fill here changes the position
    qty = Decimal(0)
    for change, fill in zip(changes, result.fills, strict=True):
        assert change.ts_ns == fill.ts_ns and change.previous_qty == qty
        qty += fill.qty if fill.side == "BUY" else -fill.qty
        assert change.qty == qty
        if change.change == "OPENED":
            assert change.avg_price == fill.price
        else:
            assert change.change == "CLOSED" and change.avg_price is None
    closes = [c for c in changes if c.change == "CLOSED"]
    assert len(closes) == len(result.trades)
    realized_before = Decimal(0)
    for close, trade in zip(closes, result.trades, strict=True):
        # realised P&L before fees grows by the trade's P&L plus its fees
        assert close.realized_pnl - realized_before == trade.pnl + trade.fees
        realized_before = close.realized_pnl


def test_increase_reduce_close() -> None:
    class Steps(Strategy):
        def on_start(self) -> None:
            self.n = 0
            self.changes: list[str] = []

        def on_position(self, change: PositionChanged) -> None:
            self.changes.append(change.change)

        def on_bar(self, bar: Bar) -> None:
            self.n += 1
            plan = {2: ("BUY", "0.1"), 4: ("BUY", "0.1"), 6: ("SELL", "0.1"), 8: ("SELL", "0.1")}
            if self.n in plan:
                side, qty = plan[self.n]
                if side == "BUY":
                    self.buy(Decimal(qty), stop_loss_pct=Decimal("50"))
                else:
                    for order in self.open_orders():
                        self.cancel(order)
                    self.sell(Decimal(qty), reduce_only=True)

    series = load_bars(BTC, "BTCUSDT").slice(0, 20)
    bt = Backtest(Steps, series)
    bt.run()
    assert bt.strategy.changes == ["OPENED", "INCREASED", "REDUCED", "CLOSED"]  # type: ignore[attr-defined]


def test_a_fill_through_zero_is_a_flip() -> None:
    position = Position("BTCUSDT")
    position.apply_fill(10**9, 100 * 10**9)  # long 1 at 100
    before = position.qty_raw
    position.apply_fill(-3 * 10**9, 110 * 10**9)  # sell 3 at 110: short 2
    change = position_changed(position, before, 7)
    assert change.change == "FLIPPED"
    assert (change.qty, change.previous_qty) == (Decimal(-2), Decimal(1))
    assert change.avg_price == Decimal(110) and change.realized_pnl == Decimal(10)
