"""Instruments and their exchange rules (Binance's filters, in exact integers).

Rounding is explicit and always toward the safe side: a buy price rounds down to the
tick (never pay more than asked), a sell price rounds up (never sell for less), and a
quantity rounds down to the step (never trade more than asked or owned).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from bot4.core.enums import OrderSide
from bot4.core.errors import InstrumentRuleViolation, ValidationError
from bot4.core.numbers import (
    SCALE,
    NumberLike,
    Rounding,
    div_round,
    from_raw,
    to_decimal,
    to_raw,
    to_raw_rounded,
)


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable symbol and its filters, all as raw fixed-point integers.

    Build one with ``Instrument.create`` from Decimal/str values; ``max_*`` of 0 means
    "no limit", as in Binance's exchangeInfo.
    """

    symbol: str
    base: str
    quote: str
    tick_raw: int
    step_raw: int
    min_qty_raw: int
    max_qty_raw: int
    min_notional_raw: int  # money units (1e-18)
    max_notional_raw: int
    percent_up: Decimal = field(default=Decimal(5))
    percent_down: Decimal = field(default=Decimal("0.2"))
    # The PERCENT_PRICE multipliers as exact fractions, for the per-order check.
    _up: tuple[int, int] = field(init=False, repr=False, compare=False)
    _down: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_up", self.percent_up.as_integer_ratio())
        object.__setattr__(self, "_down", self.percent_down.as_integer_ratio())

    @classmethod
    def create(
        cls,
        symbol: str,
        base: str,
        quote: str,
        tick_size: NumberLike,
        step_size: NumberLike,
        min_qty: NumberLike = 0,
        max_qty: NumberLike = 0,
        min_notional: NumberLike = 0,
        max_notional: NumberLike = 0,
        percent_up: NumberLike = 5,
        percent_down: NumberLike = "0.2",
    ) -> Instrument:
        """Validate the rules and build the instrument (PERCENT_PRICE: a limit price
        must lie within [reference * percent_down, reference * percent_up])."""
        if not symbol or not isinstance(symbol, str):
            raise ValidationError("symbol", "must be a non-empty string", symbol)
        tick = to_raw(tick_size, "tick_size")
        step = to_raw(step_size, "step_size")
        if tick <= 0:
            raise ValidationError("tick_size", "must be > 0", tick_size)
        if step <= 0:
            raise ValidationError("step_size", "must be > 0", step_size)
        mn, mx = to_raw(min_qty, "min_qty"), to_raw(max_qty, "max_qty")
        if mn < 0 or mx < 0 or (mx and mn > mx):
            raise ValidationError("min_qty", "0 <= min_qty <= max_qty", (min_qty, max_qty))
        mnn = to_raw(min_notional, "min_notional") * SCALE
        mxn = to_raw(max_notional, "max_notional") * SCALE
        if mnn < 0 or mxn < 0 or (mxn and mnn > mxn):
            raise ValidationError(
                "min_notional", "0 <= min_notional <= max_notional", (min_notional, max_notional)
            )
        up = to_decimal(percent_up, "percent_price")
        down = to_decimal(percent_down, "percent_price")
        if not 0 <= down <= 1 <= up:
            raise ValidationError(
                "percent_price", "0 <= down <= 1 <= up", (percent_down, percent_up)
            )
        return cls(symbol, base, quote, tick, step, mn, mx, mnn, mxn, up, down)

    # -- rounding -------------------------------------------------------------------
    def round_price(self, price_raw: int, side: OrderSide) -> int:
        """Round to the tick on the safe side for ``side`` (buy down, sell up)."""
        mode = Rounding.DOWN if side is OrderSide.BUY else Rounding.UP
        return div_round(price_raw, self.tick_raw, mode) * self.tick_raw

    def round_qty(self, qty_raw: int) -> int:
        """Round a quantity down to the step: never more than asked or owned."""
        return div_round(qty_raw, self.step_raw, Rounding.DOWN) * self.step_raw

    def make_price(self, value: NumberLike, side: OrderSide) -> Decimal:
        """Decimal price (any precision) rounded to the tick toward the safe side for
        ``side``: a buy never pays more, a sell never takes less than asked."""
        mode = Rounding.DOWN if side is OrderSide.BUY else Rounding.UP
        return from_raw(self.round_price(to_raw_rounded(value, "price", mode), side))

    def make_qty(self, value: NumberLike) -> Decimal:
        """Decimal quantity (any precision) rounded down to the step."""
        return from_raw(self.round_qty(to_raw_rounded(value, "quantity", Rounding.DOWN)))

    # -- validation -----------------------------------------------------------------
    def check_price(self, price_raw: int, field_name: str = "price") -> None:
        """PRICE_FILTER: positive and on the tick."""
        if price_raw <= 0:
            raise ValidationError(field_name, "must be > 0", from_raw(price_raw))
        if price_raw % self.tick_raw:
            raise InstrumentRuleViolation(
                field_name,
                "PRICE_FILTER",
                from_raw(price_raw),
                f"not a multiple of tick size {from_raw(self.tick_raw)}",
            )

    def check_qty(self, qty_raw: int, field_name: str = "quantity") -> None:
        """LOT_SIZE: positive, on the step, within [min_qty, max_qty]."""
        if qty_raw <= 0:
            raise ValidationError(field_name, "must be > 0", from_raw(qty_raw))
        if qty_raw % self.step_raw:
            raise InstrumentRuleViolation(
                field_name,
                "LOT_SIZE",
                from_raw(qty_raw),
                f"not a multiple of step size {from_raw(self.step_raw)}",
            )
        if qty_raw < self.min_qty_raw:
            raise InstrumentRuleViolation(
                field_name,
                "LOT_SIZE",
                from_raw(qty_raw),
                f"below min_qty {from_raw(self.min_qty_raw)}",
            )
        if self.max_qty_raw and qty_raw > self.max_qty_raw:
            raise InstrumentRuleViolation(
                field_name,
                "LOT_SIZE",
                from_raw(qty_raw),
                f"above max_qty {from_raw(self.max_qty_raw)}",
            )

    def check_notional(self, price_raw: int, qty_raw: int) -> None:
        """NOTIONAL: price x quantity within [min_notional, max_notional]."""
        notional = price_raw * qty_raw
        if notional < self.min_notional_raw:
            raise InstrumentRuleViolation(
                "notional",
                "NOTIONAL",
                from_raw(price_raw) * from_raw(qty_raw),
                f"below min_notional {from_raw(self.min_notional_raw // SCALE)}",
            )
        if self.max_notional_raw and notional > self.max_notional_raw:
            raise InstrumentRuleViolation(
                "notional",
                "NOTIONAL",
                from_raw(price_raw) * from_raw(qty_raw),
                f"above max_notional {from_raw(self.max_notional_raw // SCALE)}",
            )

    def check_percent_price(self, price_raw: int, reference_raw: int) -> None:
        """PERCENT_PRICE: a price within the band around the reference (fat-finger).
        Exact integer comparisons with the multipliers as fractions (every limit order
        passes here); Decimals only for the message."""
        if reference_raw <= 0:
            return
        up_num, up_den = self._up
        down_num, down_den = self._down
        if price_raw * up_den > reference_raw * up_num or (
            price_raw * down_den < reference_raw * down_num
        ):
            price = from_raw(price_raw)
            ref = from_raw(reference_raw)
            raise InstrumentRuleViolation(
                "price",
                "PERCENT_PRICE",
                price,
                f"outside [{ref * self.percent_down}, {ref * self.percent_up}] around {ref}",
            )
