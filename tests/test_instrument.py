from decimal import Decimal

import pytest

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
