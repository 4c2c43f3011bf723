from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot4.core.enums import OrderSide
from bot4.core.errors import InstrumentRuleViolation, ValidationError
from bot4.core.instrument import Instrument
from bot4.core.numbers import to_raw
from tests.conftest import btcusdt


def test_rounding_is_toward_the_safe_side() -> None:
    inst = btcusdt()
    assert inst.make_price("100.009", OrderSide.BUY) == Decimal("100.00")
    assert inst.make_price("100.001", OrderSide.SELL) == Decimal("100.01")
    assert inst.make_price("100.01", OrderSide.SELL) == Decimal("100.01")
    assert inst.make_qty("0.123456789") == Decimal("0.12345")


@pytest.mark.parametrize(
    "check, args, rule",
    [
        ("check_price", (to_raw("100.001", "p"),), "PRICE_FILTER"),
        ("check_qty", (to_raw("0.000015", "q"),), "LOT_SIZE"),
        ("check_qty", (to_raw("9000.00001", "q"),), "LOT_SIZE"),
        ("check_notional", (to_raw("100", "p"), to_raw("0.01", "q")), "NOTIONAL"),
        ("check_notional", (to_raw("100000", "p"), to_raw("91", "q")), "NOTIONAL"),
        ("check_percent_price", (to_raw("600", "p"), to_raw("100", "r")), "PERCENT_PRICE"),
        ("check_percent_price", (to_raw("19.99", "p"), to_raw("100", "r")), "PERCENT_PRICE"),
    ],
)
def test_filters_reject_with_binance_style_rule(
    check: str, args: tuple[int, ...], rule: str
) -> None:
    with pytest.raises(InstrumentRuleViolation) as err:
        getattr(btcusdt(), check)(*args)
    assert err.value.rule == rule
    assert err.value.message.startswith(f"Filter failure: {rule}")


@pytest.mark.parametrize(
    "check, args",
    [
        ("check_price", (to_raw("100.01", "p"),)),
        ("check_qty", (to_raw("0.00001", "q"),)),
        ("check_qty", (to_raw("9000", "q"),)),
        ("check_notional", (to_raw("500", "p"), to_raw("0.01", "q"))),  # exactly 5: min
        ("check_notional", (to_raw("100000", "p"), to_raw("90", "q"))),  # exactly max
        ("check_percent_price", (to_raw("500", "p"), to_raw("100", "r"))),  # 5x: edge
        ("check_percent_price", (to_raw("20", "p"), to_raw("100", "r"))),  # 0.2x: edge
    ],
)
def test_filter_boundaries_pass(check: str, args: tuple[int, ...]) -> None:
    getattr(btcusdt(), check)(*args)


@pytest.mark.parametrize("price", ["0", "-1"])
def test_non_positive_price_is_invalid(price: str) -> None:
    with pytest.raises(ValidationError) as err:
        btcusdt().check_price(to_raw(price, "price"))
    assert err.value.field == "price" and err.value.rule == "must be > 0"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"tick_size": "0"}, "tick_size"),
        ({"step_size": "-1"}, "step_size"),
        ({"min_qty": "2", "max_qty": "1"}, "min_qty"),
        ({"min_notional": "10", "max_notional": "5"}, "min_notional"),
        ({"percent_up": "0.5"}, "percent_price"),
        ({"tick_size": 0.01}, "tick_size"),
    ],
)
def test_bad_instrument_definitions(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"tick_size": "0.01", "step_size": "0.001"}
    base.update(kwargs)
    with pytest.raises(ValidationError) as err:
        Instrument.create("X", "A", "B", **base)  # type: ignore[arg-type]
    assert err.value.field == field


@given(
    st.integers(min_value=1, max_value=10**16),
    st.integers(min_value=1, max_value=10**16),
    st.sampled_from(["5", "1.5", "1", "10.25"]),
    st.sampled_from(["0.2", "0.95", "1", "0"]),
)
def test_percent_price_band_is_exact(price: int, ref: int, up: str, down: str) -> None:
    """The integer band check agrees with the Decimal definition at every price."""
    inst = Instrument.create("X", "A", "B", "0.000000001", "1", percent_up=up, percent_down=down)
    p, r = Decimal(price), Decimal(ref)
    inside = r * Decimal(down) <= p <= r * Decimal(up)
    try:
        inst.check_percent_price(price, ref)
        passed = True
    except InstrumentRuleViolation:
        passed = False
    assert passed == inside
