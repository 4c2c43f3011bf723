"""SmaCross without its stop-loss: every entry is denied by the risk engine
(STOP_LOSS_REQUIRED), which the backtest report shows -- the order path has no side
door."""

from __future__ import annotations

from bot4.examples.sma_cross import SmaCross
from bot4.strategy.base import Bar
from bot4.strategy.indicators import crossed_above, crossed_below


class SmaCrossNoStop(SmaCross):
    def on_bar(self, bar: Bar) -> None:
        if crossed_above(self.fast_ma, self.slow_ma) and self.is_flat():
            self.buy(self.qty)
        elif crossed_below(self.fast_ma, self.slow_ma) and not self.is_flat():
            self.close_position()
