"""Position sizing and value at risk."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot4.core.errors import ValidationError
from bot4.risk.sizing import MAX_KELLY, fixed_fractional_qty, kelly_fraction
from bot4.risk.var import book_var, historical_var, parametric_var
from tests.conftest import btcusdt


def test_fixed_fractional_sizes_from_the_stop_distance() -> None:
    # Risk 1 % of 100,000 = 1,000 with a 2,000 stop distance: 0.5 BTC.
    assert fixed_fractional_qty(btcusdt(), "100000", "0.01", "60000", "58000") == Decimal("0.5")
    # 1,000 / 3,000 = 0.3333...: rounded down to the 0.00001 step.
    assert fixed_fractional_qty(btcusdt(), "100000", "0.01", "60000", "63000") == Decimal("0.33333")


@given(
    st.integers(1_000, 10**8),
    st.integers(1, 500),
    st.integers(100_000, 10_000_000),
    st.integers(1, 99_999),
)
def test_fixed_fractional_never_risks_more_than_asked(
    equity: int, risk_bp: int, entry_cents: int, distance_cents: int
) -> None:
    entry = Decimal(entry_cents) / 100
    stop = entry - Decimal(distance_cents) / 100
    risk = Decimal(risk_bp) / 10_000
    qty = fixed_fractional_qty(btcusdt(), equity, risk, entry, stop)
    loss = qty * (entry - stop)
    assert loss <= equity * risk
    # and one more step would risk more than asked
    assert (qty + Decimal("0.00001")) * (entry - stop) > equity * risk


@pytest.mark.parametrize(
    "p, b, expected",
    [
        ("0.6", "1", Decimal("0.05")),  # full Kelly 0.2, quarter = 0.05
        ("0.4", "1", Decimal(0)),  # negative edge: never bet
        ("0.99", "10", Decimal("0.24725")),  # quarter of 0.989
    ],
)
def test_kelly_is_quartered_and_capped(p: str, b: str, expected: Decimal) -> None:
    assert kelly_fraction(p, b) == expected
    assert kelly_fraction(p, b, multiplier="1") <= MAX_KELLY
    assert kelly_fraction("0.99", "10", multiplier="1") == MAX_KELLY  # 0.989 capped at 25 %


@pytest.mark.parametrize(
    "args, field",
    [
        (("0", "0.01", "100", "90"), "equity"),
        (("1000", "1.5", "100", "90"), "risk_fraction"),
        (("1000", "0.01", "100", "100"), "stop_price"),
        (("1000", "0.01", "100", 90.5), "stop_price"),
    ],
)
def test_sizing_bad_input(args: tuple[object, ...], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        fixed_fractional_qty(btcusdt(), *args)  # type: ignore[arg-type]
    assert err.value.field == field


def test_var_matches_closed_forms() -> None:
    rng = np.random.default_rng(1)
    pnl = rng.normal(0, 100, 200_000)
    hist = historical_var(pnl)
    param = parametric_var(0.0, 100.0)
    assert param == pytest.approx(164.485, abs=1e-3)
    assert hist == pytest.approx(param, rel=0.02)
    assert historical_var([-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5], 0.9) == pytest.approx(4.0)
    returns = np.log1p(rng.normal(0, 0.01, (2, 5000)))
    h, p = book_var([1000.0, -1000.0], returns)
    # Two independent 1 % assets, long one and short the other: sigma = sqrt(2) x 10.
    assert p == pytest.approx(1.6449 * np.sqrt(2) * 10, rel=0.05)
    assert h == pytest.approx(p, rel=0.1)
