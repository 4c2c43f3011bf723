"""Exact fixed-point numbers for the order path.

Prices and quantities are Python ints scaled by ``SCALE`` (nine decimal places: finer
than any crypto venue's tick or step).  Their product, a notional, lands exactly on
``MONEY_SCALE`` (18 places), which is the unit of every balance, fee and P&L figure.
Addition, subtraction and price x quantity are therefore exact with no rounding at all;
the only divisions (average prices, fee rates, pro-rata cost) round explicitly through
``div_round`` with a named mode.

Decimal is the type at the API edges: ``to_raw`` takes Decimal, int or str and refuses
binary floats, NaN and infinities with a ``ValidationError`` naming the field.
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from enum import Enum
from typing import Final

PRECISION: Final = 9
SCALE: Final = 10**PRECISION
MONEY_PRECISION: Final = 2 * PRECISION
MONEY_SCALE: Final = SCALE * SCALE

NumberLike = Decimal | int | str

# Decimal's default context rounds at 28 significant digits.  Every Decimal operation
# here runs in this one instead: wide enough for any amount bot4 handles, and trapping
# Inexact so that a value that would have to round raises instead of changing.
_EXACT = Context(prec=120, Emax=10**6, Emin=-(10**6), traps=[InvalidOperation, Inexact, Overflow])


class Rounding(Enum):
    """Explicit rounding modes; ``DOWN``/``UP`` are toward -inf/+inf."""

    DOWN = "down"
    UP = "up"
    TOWARD_ZERO = "toward_zero"
    HALF_EVEN = "half_even"


def _validation_error(field: str, rule: str, value: object) -> Exception:
    from bot4.core.errors import ValidationError

    return ValidationError(field, rule, value)


def to_decimal(value: object, field: str) -> Decimal:
    """Parse an API-edge value into a finite Decimal, refusing floats and bools."""
    if isinstance(value, bool | float):
        raise _validation_error(field, "must be Decimal, int or str, not a binary float", value)
    if isinstance(value, Decimal):
        dec = value
    elif isinstance(value, int):
        dec = Decimal(value)
    elif isinstance(value, str):
        try:
            dec = Decimal(value.strip())
        except InvalidOperation:
            raise _validation_error(field, "not a number", value) from None
    else:
        raise _validation_error(field, "must be Decimal, int or str", value)
    if not dec.is_finite():
        raise _validation_error(field, "must be finite", value)
    return dec


def _scale(dec: Decimal, places: int, field: str, value: object) -> Decimal:
    try:
        return dec.scaleb(places, _EXACT)
    except (Inexact, Overflow):
        raise _validation_error(field, "too many significant digits", value) from None


def to_raw(value: object, field: str) -> int:
    """Exact raw integer (units of 1e-9) for a price or quantity given at the edge."""
    if isinstance(value, str):
        try:
            dec = Decimal(value)
        except InvalidOperation:
            raise _validation_error(field, "not a number", value) from None
    elif isinstance(value, Decimal):
        dec = value
    elif isinstance(value, int) and not isinstance(value, bool):
        return value * SCALE
    else:
        dec = to_decimal(value, field)  # refuses floats, bools and the rest
    if not dec.is_finite():
        raise _validation_error(field, "must be finite", value)
    scaled = _scale(dec, PRECISION, field, value)
    n = int(scaled)
    if n != scaled:
        raise _validation_error(field, f"more than {PRECISION} decimal places", value)
    return n


def _plain(value: Decimal) -> Decimal:
    """Strip trailing zeros without switching to exponent notation (1E+5 -> 100000)."""
    value = value.normalize(_EXACT)
    if value.as_tuple().exponent > 0:  # type: ignore[operator]
        return value.quantize(_ONE, context=_EXACT)
    return value


_ONE = Decimal(1)
_SCALE_DEC = Decimal(SCALE)
_MONEY_SCALE_DEC = Decimal(MONEY_SCALE)
_divide = _EXACT.divide


def to_raw_rounded(value: object, field: str, mode: Rounding) -> int:
    """Raw integer for a value with any number of decimals, rounded explicitly (for
    sizes computed from ratios, e.g. cash / price); still refuses floats and NaN."""
    scaled = _scale(to_decimal(value, field), PRECISION, field, value)
    num, den = scaled.as_integer_ratio()
    return div_round(num, den, mode)


def from_raw(raw: int) -> Decimal:
    """Decimal value of a raw price or quantity; exact, without trailing zeros or an
    exponent (``105345.67``, ``2``).  An exact division lands on the shortest
    coefficient by the decimal standard's ideal-exponent rule, which is what
    ``_plain`` would make of it, at a third of the cost (it is on every order's path)."""
    q, r = divmod(raw, SCALE)
    return Decimal(q) if not r else _divide(Decimal(raw), _SCALE_DEC)


def money_from_raw(raw: int) -> Decimal:
    """Decimal value of a raw money amount (units of 1e-18); exact, as ``from_raw``."""
    q, r = divmod(raw, MONEY_SCALE)
    return Decimal(q) if not r else _divide(Decimal(raw), _MONEY_SCALE_DEC)


def money_to_raw(value: object, field: str) -> int:
    """Exact raw money integer (units of 1e-18) for an amount given at the edge."""
    scaled = _scale(to_decimal(value, field), MONEY_PRECISION, field, value)
    if scaled != scaled.to_integral_value():
        raise _validation_error(field, f"more than {MONEY_PRECISION} decimal places", value)
    return int(scaled)


def div_round(numerator: int, denominator: int, mode: Rounding) -> int:
    """Integer division with an explicit rounding mode (denominator may be negative)."""
    if denominator == 0:
        raise ZeroDivisionError("div_round by zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    q, r = divmod(numerator, denominator)  # floor division
    if r == 0 or mode is Rounding.DOWN:
        return q
    if mode is Rounding.UP:
        return q + 1
    if mode is Rounding.TOWARD_ZERO:
        return q + 1 if q < 0 else q
    twice = 2 * r
    if twice > denominator or (twice == denominator and q % 2 == 1):
        return q + 1
    return q


def qty_to_money(qty_raw: int) -> int:
    """A quantity of an asset (1e-9 units) as a balance amount (1e-18 units)."""
    return qty_raw * SCALE


def rate_to_fraction(rate: object, field: str) -> tuple[int, int]:
    """A fee rate (Decimal/str/int, may be negative for rebates) as an exact fraction."""
    num, den = to_decimal(rate, field).as_integer_ratio()
    return num, den
