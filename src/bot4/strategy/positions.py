"""Position events for strategies: what ``Strategy.on_position`` receives after a fill
changed a position -- the same in backtests, paper and live."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot4.core.numbers import from_raw
from bot4.oms.position import Position


@dataclass(frozen=True, slots=True)
class PositionChanged:
    """A position after a fill.  ``change`` is ``OPENED`` (from flat), ``INCREASED``,
    ``REDUCED``, ``CLOSED`` (to flat) or ``FLIPPED`` (long to short or back in one
    fill); quantities are signed (short < 0); ``realized_pnl`` is the position's
    cumulative realised P&L in the quote currency, before fees."""

    symbol: str
    ts_ns: int
    change: str
    qty: Decimal
    previous_qty: Decimal
    avg_price: Decimal | None
    realized_pnl: Decimal


def position_changed(position: Position, previous_qty_raw: int, ts_ns: int) -> PositionChanged:
    now = position.qty_raw
    if previous_qty_raw == 0:
        change = "OPENED"
    elif now == 0:
        change = "CLOSED"
    elif (now > 0) != (previous_qty_raw > 0):
        change = "FLIPPED"
    elif abs(now) > abs(previous_qty_raw):
        change = "INCREASED"
    else:
        change = "REDUCED"
    return PositionChanged(
        position.symbol,
        ts_ns,
        change,
        from_raw(now),
        from_raw(previous_qty_raw),
        position.avg_entry_price,
        position.realized_pnl,
    )
