from decimal import Context, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot4.core.errors import ValidationError
from bot4.core.numbers import (
    MONEY_SCALE,
    SCALE,
    Rounding,
    div_round,
    from_raw,
    money_from_raw,
    money_to_raw,
    to_raw,
)

nine_places = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=9, allow_nan=False
)


@given(nine_places)
def test_raw_round_trip_is_exact(value: Decimal) -> None:
    raw = to_raw(value, "price")
    assert from_raw(raw) == value
    assert raw == int(value * SCALE)


@given(st.integers(min_value=-(10**40), max_value=10**40))
def test_decimals_from_raw_are_plain_and_exact(raw: int) -> None:
    """What users see (reports, messages, ``Order.price``): the exact value, with no
    trailing zeros and no positive exponent, for prices and for money."""
    for convert, scale in ((from_raw, SCALE), (money_from_raw, MONEY_SCALE)):
        value = convert(raw)
        assert Context(prec=100).multiply(value, scale) == raw
        _sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int) and exponent <= 0  # 100000, never 1E+5
        assert exponent == 0 or digits[-1] != 0  # 105345.67, never 105345.670000000
        assert Decimal(str(value)) == value


@given(nine_places, nine_places)
def test_price_times_quantity_lands_exactly_on_money_scale(p: Decimal, q: Decimal) -> None:
    exact = Context(prec=100).multiply(p, q)  # the default context would round at 28 digits
    assert money_from_raw(to_raw(p, "p") * to_raw(q, "q")) == exact


@pytest.mark.parametrize(
    "value, rule",
    [
        (0.1, "not a binary float"),
        (True, "not a binary float"),
        (Decimal("NaN"), "finite"),
        (Decimal("Infinity"), "finite"),
        ("-inf", "finite"),
        ("abc", "not a number"),
        ("0.0000000001", "decimal places"),
        (None, "must be Decimal, int or str"),
    ],
)
def test_bad_numbers_name_field_and_rule(value: object, rule: str) -> None:
    with pytest.raises(ValidationError) as err:
        to_raw(value, "quantity")
    assert err.value.field == "quantity"
    assert rule in err.value.rule


def test_strings_and_ints_are_accepted() -> None:
    assert to_raw("1.5", "q") == 1_500_000_000
    assert to_raw(2, "q") == 2 * SCALE
    assert money_to_raw("0.000000000000000001", "fee") == 1
    assert money_from_raw(MONEY_SCALE * 100_000) == Decimal(100000)
    assert str(from_raw(100_000 * SCALE)) == "100000"  # no exponent notation


@pytest.mark.parametrize(
    "n, d, mode, expected",
    [
        (7, 2, Rounding.DOWN, 3),
        (7, 2, Rounding.UP, 4),
        (-7, 2, Rounding.DOWN, -4),
        (-7, 2, Rounding.UP, -3),
        (-7, 2, Rounding.TOWARD_ZERO, -3),
        (7, 2, Rounding.TOWARD_ZERO, 3),
        (5, 2, Rounding.HALF_EVEN, 2),
        (7, 2, Rounding.HALF_EVEN, 4),
        (7, -2, Rounding.DOWN, -4),
        (6, 3, Rounding.UP, 2),
    ],
)
def test_div_round_modes(n: int, d: int, mode: Rounding, expected: int) -> None:
    assert div_round(n, d, mode) == expected


@given(st.integers(-(10**30), 10**30), st.integers(1, 10**20))
def test_div_round_brackets_true_quotient(n: int, d: int) -> None:
    down = div_round(n, d, Rounding.DOWN)
    up = div_round(n, d, Rounding.UP)
    assert down * d <= n <= up * d
    assert up - down == (0 if n % d == 0 else 1)


def test_huge_values_stay_exact_beyond_28_digits() -> None:
    # Decimal's default context would round these (28 significant digits).
    assert to_raw("12345678901234567890.123456789", "q") == 12345678901234567890123456789
    assert from_raw(12345678901234567890123456789) == Decimal("12345678901234567890.123456789")
    assert money_from_raw(12345678901234567890123456789) == Decimal(
        "12345678901.234567890123456789"
    )
    assert to_raw("99999999999999999999.999999999", "q") == 10**29 - 1
