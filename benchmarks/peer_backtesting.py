"""backtesting.py's run equivalent to bot4's SmaCross, for parity tests and benchmarks.

Same rules: SMA(fast) / SMA(slow) of closes (pandas rolling means), long only; on a
cross above, buy ``qty`` at the next open with a stop ``stop_pct`` % below that fill
price, rounded up to the tick (a sell stop's safe side, as bot4 rounds it); on a cross
below, drop the stop and close at the next open; commission on both legs.  The stop
needs the next bar's open, which backtesting.py's ``next()`` cannot see, so the
equivalent run is given the open prices up front -- the same stop price bot4 sets when
the entry fills.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Any

import numpy as np
import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover


def sma(values: Any, n: int) -> np.ndarray:
    return pd.Series(values).rolling(n).mean().to_numpy()


def make_peer(
    next_open: np.ndarray, fast: int, slow: int, qty: int, stop_pct: str, tick: str = "0.01"
) -> type[Strategy]:
    tick_d = Decimal(tick)
    factor = 1 - Decimal(stop_pct) / 100

    class PeerSmaCross(Strategy):
        def init(self) -> None:
            self.a = self.I(sma, self.data.Close, fast)
            self.b = self.I(sma, self.data.Close, slow)

        def next(self) -> None:
            i = len(self.data) - 1
            if crossover(self.a, self.b):
                if not self.position and not self.orders and i + 1 < len(next_open):
                    fill = Decimal(repr(float(next_open[i + 1])))
                    stop = (fill * factor / tick_d).to_integral_value(ROUND_CEILING) * tick_d
                    self.buy(size=qty, sl=float(stop))
            elif crossover(self.b, self.a) and self.position:
                for trade in self.trades:
                    trade.sl = None
                self.position.close()

    return PeerSmaCross


def run_peer(
    frame: pd.DataFrame,
    fast: int = 10,
    slow: int = 30,
    qty: int = 1,
    stop_pct: str = "0.5",
    cash: int = 10_000_000,
    commission: float = 0.001,
) -> Any:
    """Run on a frame with columns date, open, high, low, close, volume."""
    data = frame.rename(columns=str.capitalize).set_index("Date")
    peer = make_peer(data["Open"].to_numpy(), fast, slow, qty, stop_pct)
    bt = Backtest(
        data,
        peer,
        cash=cash,
        commission=commission,
        exclusive_orders=False,
        finalize_trades=False,
    )
    return bt.run()
