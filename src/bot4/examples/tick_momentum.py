"""Tick momentum, long only: an example for backtests on trade data.

After ``run`` consecutive trades each above the one before, buy ``qty`` at market with
a protective stop ``stop_pct`` below the fill; close after ``hold`` further trades.
Runs unchanged in paper and live, where ``on_trade`` receives the venue's trades.
"""

from __future__ import annotations

from decimal import Decimal

from bot4.strategy.base import Strategy
from bot4.strategy.market_data import Tick


class TickMomentum(Strategy):
    run: int = 5
    hold: int = 200
    qty: Decimal = Decimal("0.01")
    stop_pct: Decimal = Decimal("0.2")

    def on_start(self) -> None:
        self.last: Decimal | None = None
        self.ups = 0
        self.held = 0

    def on_trade(self, trade: Tick) -> None:
        if self.last is not None and trade.price != self.last:
            self.ups = self.ups + 1 if trade.price > self.last else 0
        self.last = trade.price
        if self.is_flat():
            if self.ups >= self.run and not self.open_orders():
                self.buy(self.qty, stop_loss_pct=self.stop_pct)
                self.ups = 0
                self.held = 0
        else:
            self.held += 1
            if self.held >= self.hold:
                self.close_position()
