"""Position sizing: how much to buy given what one is willing to lose.

Both return an exact quantity rounded down to the instrument's step (never more than
the rule allows).
"""

from __future__ import annotations

from decimal import Decimal

from bot4.core.errors import ValidationError
from bot4.core.instrument import Instrument
from bot4.core.numbers import NumberLike, Rounding, div_round, from_raw, to_decimal, to_raw

MAX_KELLY = Decimal("0.25")


def fixed_fractional_qty(
    instrument: Instrument,
    equity: NumberLike,
    risk_fraction: NumberLike,
    entry_price: NumberLike,
    stop_price: NumberLike,
) -> Decimal:
    """Size so that a stop-out loses ``risk_fraction`` of ``equity``:
    qty = equity x risk_fraction / |entry - stop|, rounded down to the step."""
    eq = to_decimal(equity, "equity")
    frac = to_decimal(risk_fraction, "risk_fraction")
    if eq <= 0:
        raise ValidationError("equity", "must be > 0", equity)
    if not 0 < frac <= 1:
        raise ValidationError("risk_fraction", "must be in (0, 1]", risk_fraction)
    entry = to_raw(entry_price, "entry_price")
    stop = to_raw(stop_price, "stop_price")
    if entry <= 0 or stop <= 0:
        raise ValidationError("stop_price", "prices must be > 0", (entry_price, stop_price))
    distance = abs(entry - stop)
    if distance == 0:
        raise ValidationError("stop_price", "must differ from the entry price", stop_price)
    num, den = (eq * frac).as_integer_ratio()
    # qty_raw = risk_money / distance: risk in 1e-18 units, distance in 1e-9 units.
    qty_raw = div_round(num * 10**18, den * distance, Rounding.DOWN)
    return from_raw(instrument.round_qty(qty_raw))


def kelly_fraction(
    win_rate: NumberLike, payoff_ratio: NumberLike, multiplier: NumberLike = "0.25"
) -> Decimal:
    """Fractional Kelly: f* = p - (1 - p) / b, times ``multiplier`` (quarter-Kelly by
    default), never below 0 and never above 25 % of equity."""
    p = to_decimal(win_rate, "win_rate")
    b = to_decimal(payoff_ratio, "payoff_ratio")
    m = to_decimal(multiplier, "multiplier")
    if not 0 <= p <= 1:
        raise ValidationError("win_rate", "must be in [0, 1]", win_rate)
    if b <= 0:
        raise ValidationError("payoff_ratio", "must be > 0", payoff_ratio)
    if not 0 < m <= 1:
        raise ValidationError("multiplier", "must be in (0, 1]", multiplier)
    full = p - (1 - p) / b
    return min(max(full * m, Decimal(0)), MAX_KELLY)
