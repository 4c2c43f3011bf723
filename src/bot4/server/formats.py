"""Binance's number formats, exactly.

Binance sends every price, quantity and amount as a decimal string with (at least) eight
fraction digits: ``"61837.63000000"``.  bot4 keeps prices and quantities as integers of
1e-9 and money as integers of 1e-18 (``bot4.core.numbers``), so these conversions are
pure integer/string work: no float and no Decimal context can round a balance.  A value
with more than eight significant fraction digits (a notional of 16 digits, a 1e-9 price
unit) keeps all of them, so a client that sums the strings gets the venue's balance to
the last unit.
"""

from __future__ import annotations

from typing import Final

from bot4.core.numbers import MONEY_PRECISION, PRECISION

_MIN_DIGITS: Final = 8
_QTY_DIV: Final = 10**PRECISION
_MONEY_DIV: Final = 10**MONEY_PRECISION


def _fixed(value: int, divisor: int, digits: int) -> str:
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), divisor)
    text = str(frac).rjust(digits, "0").rstrip("0")
    if len(text) < _MIN_DIGITS:
        text = text.ljust(_MIN_DIGITS, "0")
    return f"{sign}{whole}.{text}"


def fmt_raw(raw: int) -> str:
    """A raw price or quantity (1e-9 units) as Binance writes it: ``"0.00100000"``."""
    return _fixed(raw, _QTY_DIV, PRECISION)


def fmt_money(money: int) -> str:
    """A raw money amount (1e-18 units), at least eight fraction digits, never rounded."""
    return _fixed(money, _MONEY_DIV, MONEY_PRECISION)


def ms(ns: int) -> int:
    """Nanoseconds to Binance's milliseconds."""
    return ns // 1_000_000
