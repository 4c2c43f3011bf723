"""How the strategy API turns the numbers users type into exact order values.

A float means the decimal it prints as (``0.3`` is 3/10), rounded to the instrument's
grid on the safe side; ``_on_grid`` has a fast path for floats that must agree with the
slow, obviously-right one (``Decimal(repr(x))``) everywhere.
"""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot4.core.enums import OrderSide, OrderType
from bot4.core.errors import ValidationError
from bot4.core.numbers import SCALE
from bot4.oms.requests import OrderRequest, RawOrderRequest
from bot4.strategy.base import _on_grid

GRIDS = [1, 10, 1_000, 10_000_000, 1_000_000_000, 2_500_000]  # raw units: 1e-9 .. 1


def reference(value: object, grid: int, up: bool) -> int:
    dec = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    num, den = dec.as_integer_ratio()
    q, r = divmod(num * SCALE, den * grid)
    return (q + (1 if up and r else 0)) * grid


@given(
    st.floats(min_value=-1e7, max_value=1e7, allow_nan=False, allow_infinity=False),
    st.sampled_from(GRIDS),
    st.booleans(),
)
def test_floats_land_on_the_grid_as_their_printed_decimal(x: float, grid: int, up: bool) -> None:
    assert _on_grid(x, "qty", grid, up) == reference(x, grid, up)


@given(
    st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, places=12),
    st.sampled_from(GRIDS),
    st.booleans(),
)
def test_decimals_land_on_the_grid_exactly(x: Decimal, grid: int, up: bool) -> None:
    assert _on_grid(x, "limit", grid, up) == reference(x, grid, up)
    assert _on_grid(str(x), "limit", grid, up) == reference(x, grid, up)


def test_well_known_floats() -> None:
    # 0.3 is 0.29999999999999998889... in binary: its printed decimal is what counts.
    assert _on_grid(0.3, "qty", 1_000, False) == 300_000_000
    assert _on_grid(0.1 + 0.2, "qty", 1, False) == 300_000_000  # prints 0.30000000000000004
    assert _on_grid(0.1 + 0.2, "qty", 1, True) == 300_000_001
    assert _on_grid(105_345.67, "limit", 10_000_000, False) == 105_345_670_000_000
    assert _on_grid(105_345.675, "limit", 10_000_000, True) == 105_345_680_000_000
    assert _on_grid(2, "qty", 1_000, False) == 2 * SCALE
    assert _on_grid(1e300, "qty", 1, False) == 10**300 * SCALE  # beyond the fast path

    # Exact str and Decimal (their fast branch) and their subclasses (the general one)
    # give the same grid values.
    class Text(str):
        pass

    class Dec(Decimal):
        pass

    for value in ("105345.675", " 105345.675 ", "1.05345675E5"):
        want = _on_grid(Decimal(value), "limit", 10_000_000, True)
        assert want == 105_345_680_000_000
        assert _on_grid(value, "limit", 10_000_000, True) == want
        assert _on_grid(Text(value), "limit", 10_000_000, True) == want
        assert _on_grid(Dec(value), "limit", 10_000_000, True) == want


@pytest.mark.parametrize(
    "value, rule",
    [
        (math.nan, "must be finite"),
        (math.inf, "must be finite"),
        (Decimal("NaN"), "must be finite"),
        ("abc", "not a number"),
        ("NaN", "must be finite"),
        ("-Infinity", "must be finite"),
        (True, "must be a number"),
    ],
)
def test_bad_numbers_are_refused_naming_the_field(value: object, rule: str) -> None:
    with pytest.raises(ValidationError) as err:
        _on_grid(value, "stop_loss", 10, False)  # type: ignore[arg-type]
    assert err.value.field == "stop_loss" and rule in str(err.value)


def test_order_request_converts_once_and_refuses_floats() -> None:
    req = OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "0.5", Decimal("100.25"))
    raw = req.raw()
    assert raw == RawOrderRequest(
        "BTCUSDT", OrderSide.BUY, OrderType.LIMIT, 500_000_000, 100_250_000_000
    )
    assert raw.raw() is raw
    with pytest.raises(ValidationError) as err:
        OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "1", 0.1).raw()  # type: ignore[arg-type]
    assert err.value.field == "price"
    with pytest.raises(ValidationError) as err:
        OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.MARKET, "1.0000000001").raw()
    assert err.value.field == "quantity"
