"""Request parameters under Binance's rules, so a bad value gets Binance's exact error.

Binance checks each parameter against a published pattern before anything else: a
decimal is ``^([0-9]{1,20})(\\.[0-9]{1,20})?$`` (so no exponent, no sign, no unicode
digit and no 10**400 reaches the number parser), ids and times are unsigned integers,
client order ids are ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$``.  A parameter sent twice is
refused (-1101), one sent empty is refused (-1105), and a parameter the endpoint does
not read is refused (-1104): silently ignoring a misspelt ``timeInForce`` could place an
order the client did not mean.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, TypeVar
from urllib.parse import parse_qsl

from bot4.core.numbers import PRECISION
from bot4.sim.errors import BinanceError, MandatoryParameter

DECIMAL_RE: Final = re.compile(r"([0-9]{1,20})(?:\.([0-9]{1,20}))?", re.ASCII)
INT_RE: Final = re.compile(r"-?[0-9]{1,20}", re.ASCII)
CLIENT_ID_RE: Final = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}", re.ASCII)
SYMBOL_RE: Final = re.compile(r"[A-Z0-9_.-]{1,20}", re.ASCII)
DECIMAL_RANGE: Final = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
INT_RANGE: Final = r"^[0-9]{1,20}$"
CLIENT_ID_RANGE: Final = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
SYMBOL_RANGE: Final = r"^[A-Z0-9-_.]{1,20}$"
MAX_PARAMS: Final = 64
_I64: Final = 2**63 - 1
_MAX_DECIMALS: Final = 8  # Binance's asset precision

T = TypeVar("T")


def illegal(name: str, pattern: str) -> BinanceError:
    return BinanceError(
        f"Illegal characters found in parameter '{name}'; legal range is '{pattern}'.", -1100
    )


def parse_pairs(raw: bytes) -> list[tuple[str, str]]:
    """Form/query pairs of a raw (url-encoded) string; -1100 for undecodable bytes,
    -1101 for too many parameters."""
    if not raw:
        return []
    try:
        text = raw.decode("ascii")
        return parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_PARAMS,
        )
    except UnicodeError:
        raise BinanceError("Illegal characters found in a parameter.", -1100) from None
    except ValueError:
        raise BinanceError("Too many parameters sent for this endpoint.", -1101) from None


class Params:
    """Typed access to a request's parameters that remembers what was read."""

    __slots__ = ("_read", "_values")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        values: dict[str, str] = {}
        for key, value in pairs:
            if key in values:
                raise BinanceError("Duplicate values for a parameter detected.", -1101)
            values[key] = value
        self._values = values
        self._read: set[str] = set()

    @classmethod
    def of(cls, mapping: Mapping[str, str]) -> Params:
        return cls(list(mapping.items()))

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def names(self) -> list[str]:
        return list(self._values)

    def mark_read(self, *names: str) -> None:
        self._read.update(n for n in names if n in self._values)

    def get(self, name: str) -> str | None:
        """The raw value, None if absent; -1105 if sent empty."""
        self._read.add(name)
        value = self._values.get(name)
        if value == "":
            raise BinanceError(f"Parameter '{name}' was empty.", -1105)
        return value

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise MandatoryParameter(name)
        return value

    def symbol(self, known: Mapping[str, object], required: bool = True) -> str | None:
        """A listed symbol; -1100 if malformed, -1121 if not listed."""
        value = self.require("symbol") if required else self.get("symbol")
        if value is None:
            return None
        if not SYMBOL_RE.fullmatch(value):
            raise illegal("symbol", SYMBOL_RANGE)
        if value not in known:
            raise BinanceError("Invalid symbol.", -1121)
        return value

    def decimal_raw(self, name: str, required: bool = False) -> int:
        """A decimal as raw 1e-9 units; 0 if absent.  -1100 if not a plain decimal, -1111
        if it has more fraction digits than the asset precision."""
        value = self.require(name) if required else self.get(name)
        if value is None:
            return 0
        m = DECIMAL_RE.fullmatch(value)
        if m is None:
            raise illegal(name, DECIMAL_RANGE)
        whole, frac = m.group(1), (m.group(2) or "").rstrip("0")
        if len(frac) > _MAX_DECIMALS:
            raise BinanceError("Precision is over the maximum defined for this asset.", -1111)
        return int(whole) * 10**PRECISION + int(frac.ljust(PRECISION, "0") or "0")

    def integer(
        self, name: str, default: int | None = None, lo: int = 0, hi: int = _I64
    ) -> int | None:
        """An integer within [lo, hi]; ``default`` if absent; -1100 otherwise."""
        value = self.get(name)
        if value is None:
            return default
        if not INT_RE.fullmatch(value):
            raise illegal(name, INT_RANGE)
        n = int(value)
        if not lo <= n <= hi:
            raise illegal(name, INT_RANGE)
        return n

    def limit(self, default: int, maximum: int) -> int:
        """``limit``: 1 or more, clamped to the endpoint's maximum (as Binance does)."""
        n = self.integer("limit", default, lo=1)
        assert n is not None
        return min(n, maximum)

    def choice(self, name: str, options: Mapping[str, T], code: int, msg: str) -> T | None:
        """One of ``options`` (Binance's enum parameters); None if absent."""
        value = self.get(name)
        if value is None:
            return None
        try:
            return options[value]
        except KeyError:
            raise BinanceError(msg, code) from None

    def client_id(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            return ""
        if not CLIENT_ID_RE.fullmatch(value):
            raise illegal(name, CLIENT_ID_RANGE)
        return value

    def boolean(self, name: str) -> bool:
        value = self.get(name)
        if value is None:
            return False
        if value not in ("true", "false", "TRUE", "FALSE"):
            raise illegal(name, "^(true|false)$")
        return value.lower() == "true"

    def finish(self) -> None:
        """-1104 if a parameter was sent that the endpoint did not read."""
        extra = [k for k in self._values if k not in self._read]
        if extra:
            n = len(self._values)
            raise BinanceError(
                f"Not all sent parameters were read; read '{n - len(extra)}' parameter(s) "
                f"but was sent '{n}'.",
                -1104,
            )
