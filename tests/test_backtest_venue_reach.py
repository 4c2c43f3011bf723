"""The bar venue tells the runner which price levels its resting orders wait for, so a
bar that reaches none of them skips the venue.  That shortcut must change nothing:
with it forced off (the venue looks at every bar), every fill is the same."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot4.backtest.engine import Backtest
from bot4.core.enums import TimeInForce
from bot4.data.bars import load_bars
from bot4.examples.sma_cross import SmaCross
from bot4.sim.bar_venue import BarVenue
from bot4.strategy.base import Bar, Strategy
from tests.conftest import SHARED_DATA

BTC = SHARED_DATA / "ohlcv_1m" / "binance_spot_BTC_USDT-1m_2025-05-20_2025-08-18.feather"


class RestingMix(Strategy):
    """Limit entries below the close with stop + take-profit brackets, stop entries
    above it, IOC probes, and cancels of what did not fill: every kind of resting
    order the bar venue works."""

    def on_start(self) -> None:
        self.n = 0

    def on_bar(self, bar: Bar) -> None:
        self.n += 1
        close = Decimal(repr(bar.close))
        if self.n % 7 == 0:
            for order in self.open_orders():
                if not order.reduce_only:
                    self.cancel(order)
        if not self.is_flat():
            if self.n % 11 == 0:
                self.close_position()
            return
        if self.open_orders():
            return
        kind = self.n % 4
        if kind == 0:
            self.buy(
                Decimal("0.5"),
                limit=close * Decimal("0.999"),
                stop_loss_pct=Decimal("0.4"),
                take_profit_pct=Decimal("0.3"),
            )
        elif kind == 1:
            self.buy(
                Decimal("0.5"), stop=close * Decimal("1.001"), stop_loss=close * Decimal("0.99")
            )
        elif kind == 2:
            self.buy(
                Decimal("0.5"),
                limit=close * Decimal("0.9995"),
                time_in_force=TimeInForce.IOC,
                stop_loss_pct=Decimal("0.5"),
            )
        else:
            self.buy(Decimal("0.5"), stop_loss_pct=Decimal("0.2"), take_profit_pct=Decimal("0.2"))


@pytest.mark.parametrize("strategy", [SmaCross, RestingMix])
def test_skipping_unreached_bars_changes_no_fill(
    strategy: type[Strategy], monkeypatch: pytest.MonkeyPatch
) -> None:
    series = load_bars(BTC, "BTCUSDT").slice(0, 20_000)
    params = {"fast": 10, "slow": 30, "qty": 1, "stop_pct": "0.5"} if strategy is SmaCross else {}
    fast = Backtest(strategy, series, params=params).run()

    original = BarVenue._update_reach

    def always(self: BarVenue, symbol: str) -> None:
        original(self, symbol)
        if symbol in self.reach:
            fall, rise, _ = self.reach[symbol]
            self.reach[symbol] = (fall, rise, True)  # look at every bar

    monkeypatch.setattr(BarVenue, "_update_reach", always)
    every_bar = Backtest(strategy, series, params=params).run()
    assert len(fast.fills) > 100
    assert fast.fills == every_bar.fills
    assert fast.trades == every_bar.trades
    assert fast.final_equity == every_bar.final_equity
