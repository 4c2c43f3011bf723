"""SMA crossover, long only: the classic first strategy, and bot4's parity benchmark.

When the fast SMA of closes crosses above the slow one, buy ``qty`` at market with a
protective stop ``stop_pct`` percent below the fill price; when it crosses below, close
the position (the stop is cancelled first).
"""

from __future__ import annotations

from decimal import Decimal

from bot4.strategy.base import Bar, Strategy
from bot4.strategy.indicators import crossed_above, crossed_below


class SmaCross(Strategy):
    fast: int = 10
    slow: int = 30
    qty: Decimal = Decimal(1)
    stop_pct: Decimal = Decimal("0.5")

    def on_start(self) -> None:
        if not 0 < self.fast < self.slow:
            from bot4.core.errors import ValidationError

            raise ValidationError("fast", "0 < fast < slow", (self.fast, self.slow))
        self.fast_ma = self.sma(self.fast)
        self.slow_ma = self.sma(self.slow)

    def on_bar(self, bar: Bar) -> None:
        fast, slow = self.fast_ma, self.slow_ma
        if crossed_above(fast, slow):
            if self.is_flat() and not self.open_orders():
                self.buy(self.qty, stop_loss_pct=self.stop_pct)
        elif crossed_below(fast, slow) and not self.is_flat():
            self.close_position()
