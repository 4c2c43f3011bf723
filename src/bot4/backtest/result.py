"""What a backtest produces: the equity curve, the fills, the round-trip trades and the
denials, all plain data so that metrics and reports need nothing else.

Money figures are exact Decimals where they come from the order path (fills, fees,
final equity); the equity curve is float64 (analytics).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from bot4.core.frozen import fast_frozen_init


@fast_frozen_init  # one per fill / trade of a run
@dataclass(frozen=True, slots=True)
class FillRecord:
    ts_ns: int
    symbol: str
    side: str  # "BUY" / "SELL"
    qty: Decimal
    price: Decimal
    fee: Decimal  # in fee_asset
    fee_asset: str
    client_order_id: str
    liquidity: str  # "MAKER" / "TAKER"


@fast_frozen_init  # one per fill / trade of a run
@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One round trip: a position opened from flat and closed back to flat."""

    symbol: str
    side: str  # "LONG" / "SHORT"
    entry_ts_ns: int
    exit_ts_ns: int
    qty: Decimal
    entry_price: Decimal  # volume-weighted
    exit_price: Decimal
    pnl: Decimal  # net of the fees of its fills, in the quote currency
    fees: Decimal
    return_pct: float  # pnl / entry notional


@dataclass(frozen=True, slots=True)
class DenialRecord:
    ts_ns: int
    symbol: str
    side: str
    reason: str
    message: str


@dataclass
class BacktestResult:
    strategy: str
    params: dict[str, object]
    symbols: list[str]
    quote: str
    start_ns: int
    end_ns: int
    bars: int
    initial_equity: Decimal
    final_equity: Decimal
    equity_ts_ns: NDArray[np.int64]  # one point per bar (at the bar's close)
    equity: NDArray[np.float64]
    fills: list[FillRecord] = field(default_factory=list)
    trades: list[TradeRecord] = field(default_factory=list)
    denials: list[DenialRecord] = field(default_factory=list)
    # Price series for the report's price chart: symbol -> (ts_ns, close).
    prices: dict[str, tuple[NDArray[np.int64], NDArray[np.float64]]] = field(default_factory=dict)
    seconds: float = 0.0
    entries: int = 0  # orders that opened or increased a position (and filled)
