"""Server settings: symbols, accounts, limits, the market maker; from flags or TOML.

Everything has a Binance-like default so ``bot4 exchange --api-key K --api-secret S``
is enough.  A TOML file (``--config``) adds accounts and overrides symbol rules::

    [[accounts]]
    name = "alice"
    api_key = "alice-key"
    api_secret = "alice-secret"
    balances = { USDT = "5000", BTC = "0.5" }
    maker_fee = "0.001"            # optional: a fixed rate instead of the VIP table
    taker_fee = "0.001"

    [symbols.ETHUSDT]              # any field of SymbolSpec; unknown symbols need all
    price = "3000"
    min_qty = "0.001"

    [market_maker]                 # any field of MakerSpec
    interval_ms = 50

    [limits]                       # any field of LimitSpec
    weight_per_minute = 6000

Amounts are decimal strings (or ints): a TOML float would be a binary float, which the
order path refuses everywhere (``bot4.core.numbers``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot4.core.errors import ValidationError
from bot4.core.instrument import Instrument
from bot4.core.numbers import to_decimal

_QUOTES = ("USDT", "USDC", "FDUSD", "TUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY")
_STABLE = frozenset({"USDT", "USDC", "FDUSD", "TUSD", "BUSD", "EUR"})


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One symbol's published filters and the market maker's starting price."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal
    price: Decimal
    percent_up: Decimal = Decimal(5)
    percent_down: Decimal = Decimal("0.2")

    def instrument(self) -> Instrument:
        """The rules as published in exchangeInfo and enforced on client orders."""
        return Instrument.create(
            self.symbol,
            self.base,
            self.quote,
            self.tick_size,
            self.step_size,
            self.min_qty,
            self.max_qty,
            self.min_notional,
            self.max_notional,
            self.percent_up,
            self.percent_down,
        )

    def engine_instrument(self) -> Instrument:
        """The rules the matching engine applies to everybody.  Without the NOTIONAL
        filter: a replayed Binance book holds levels below the minimum notional (what is
        left of partly filled orders), and the book source must be able to show them.
        Client orders still pass the published NOTIONAL filter first (``rest``)."""
        return Instrument.create(
            self.symbol,
            self.base,
            self.quote,
            self.tick_size,
            self.step_size,
            self.min_qty,
            self.max_qty,
            0,
            0,
            self.percent_up,
            self.percent_down,
        )


def _spec(symbol: str, base: str, quote: str, *values: str) -> SymbolSpec:
    tick, step, min_qty, max_qty, min_notional, max_notional, price = (Decimal(v) for v in values)
    return SymbolSpec(
        symbol, base, quote, tick, step, min_qty, max_qty, min_notional, max_notional, price
    )


# Close to Binance's spot filters (2024); the prices only seed the market maker.
CATALOG: dict[str, SymbolSpec] = {
    s.symbol: s
    for s in (
        _spec(
            "BTCUSDT", "BTC", "USDT", "0.01", "0.00001", "0.00001", "9000", "5", "9000000", "60000"
        ),
        _spec("ETHUSDT", "ETH", "USDT", "0.01", "0.0001", "0.0001", "9000", "5", "9000000", "3000"),
        _spec("BNBUSDT", "BNB", "USDT", "0.01", "0.001", "0.001", "9000", "5", "9000000", "550"),
        _spec("SOLUSDT", "SOL", "USDT", "0.01", "0.001", "0.001", "9000", "5", "9000000", "150"),
        _spec("XRPUSDT", "XRP", "USDT", "0.0001", "0.1", "0.1", "9000000", "5", "9000000", "0.6"),
        _spec("DOGEUSDT", "DOGE", "USDT", "0.00001", "1", "1", "9000000", "1", "9000000", "0.12"),
        _spec(
            "BTCUSDC", "BTC", "USDC", "0.01", "0.00001", "0.00001", "9000", "5", "9000000", "60000"
        ),
        _spec(
            "ETHBTC",
            "ETH",
            "BTC",
            "0.00001",
            "0.0001",
            "0.0001",
            "100000",
            "0.0001",
            "9000",
            "0.05",
        ),
    )
}


def default_spec(symbol: str) -> SymbolSpec:
    """The catalog entry, or generic rules for a symbol ending in a known quote asset."""
    if symbol in CATALOG:
        return CATALOG[symbol]
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            base = symbol[: -len(quote)]
            min_notional = "5" if quote in _STABLE else "0.0001"
            price = "100" if quote in _STABLE else "0.01"
            return _spec(
                symbol, base, quote, "0.01", "0.001", "0.001", "900000", min_notional, "0", price
            )
    raise ValidationError("symbols", f"cannot tell base from quote in {symbol!r}", symbol)


@dataclass(frozen=True, slots=True)
class AccountSpec:
    name: str
    api_key: str
    api_secret: str
    balances: dict[str, Decimal] = field(default_factory=dict)
    maker_fee: Decimal | None = None
    taker_fee: Decimal | None = None


@dataclass(frozen=True, slots=True)
class MakerSpec:
    """The built-in market maker (``market_maker``).  Spacing and volatility are in
    basis points of the price; level sizes and taker trades in multiples of the symbol's
    minimum notional (so one setting suits BTCUSDT and ETHBTC alike)."""

    enabled: bool = True
    levels: int = 25
    interval_ms: int = 100
    spacing_bps: Decimal = Decimal(1)
    volatility_bps: Decimal = Decimal("0.5")
    trade_probability: Decimal = Decimal("0.2")
    refresh_probability: Decimal = Decimal("0.3")
    level_notional_min: int = 10
    level_notional_max: int = 1000
    trade_notional_min: int = 2
    trade_notional_max: int = 50


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """Binance's spot limits (``limits``): weights per IP, orders per account."""

    weight_per_minute: int = 6000
    orders_per_10s: int = 100
    orders_per_day: int = 200_000
    ban_after: int = 3  # 429s answered in one window before the IP is banned (418)
    ban_seconds: int = 120  # the first ban; each further ban doubles, up to 3 days
    ws_messages_per_second: int = 5
    ws_max_streams: int = 1024


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8900
    symbols: tuple[SymbolSpec, ...] = ()
    accounts: tuple[AccountSpec, ...] = ()
    seed: int = 0
    replay: tuple[Path, ...] = ()
    replay_speed: Decimal = Decimal(1)
    replay_loop: bool = True
    bars: Path | None = None  # a recorded bar series drives one symbol (bar_market)
    bars_symbol: str | None = None  # default: the first symbol
    bars_start: int = 0
    bars_count: int | None = None
    bars_warm: int = 1  # bars published as history before the first step
    bars_period_ms: int = 0  # 0: step only on POST /bot4/bars/step
    state_path: Path | None = None
    autosave_seconds: int = 60
    state_sync: str = "write"  # command log durability: "write" or "fsync" (command_log)
    test_controls: bool = False  # POST /bot4/test/* (fault injection for tests)
    stop_on_stdin_eof: bool = False  # an owner's pipe on stdin: its end closing stops us
    heartbeat_seconds: float = 20.0
    maker: MakerSpec = MakerSpec()
    limits: LimitSpec = LimitSpec()


def parse_balances(text: str) -> dict[str, Decimal]:
    """``"USDT=1000000,BTC=10"`` -> {asset: amount}; refuses negatives and junk."""
    out: dict[str, Decimal] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        asset, sep, amount = part.partition("=")
        asset = asset.strip().upper()
        if not sep or not asset.isalnum():
            raise ValidationError("balances", "expected ASSET=AMOUNT", part)
        value = to_decimal(amount.strip(), f"balances.{asset}")
        if value < 0:
            raise ValidationError(f"balances.{asset}", "must be >= 0", amount)
        out[asset] = out.get(asset, Decimal(0)) + value
    return out


def parse_symbols(text: str) -> list[str]:
    names = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not names:
        raise ValidationError("symbols", "at least one symbol", text)
    return list(dict.fromkeys(names))


def _coerce(base: Any, table: dict[str, Any], where: str) -> Any:
    """Apply a TOML table onto a frozen dataclass instance: each value must fit the
    type of the field's current value (Decimal from a string or int, int, bool, str);
    unknown keys are errors, not ignored."""
    known = {f.name for f in fields(base)} - {"symbol"}
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ValidationError(where, "unknown setting", key)
        current = getattr(base, key)
        name = f"{where}.{key}"
        if isinstance(current, bool):
            if not isinstance(value, bool):
                raise ValidationError(name, "must be true or false", value)
        elif isinstance(current, Decimal):
            value = to_decimal(value, name)
        elif isinstance(current, int):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValidationError(name, "must be an integer", value)
        elif not isinstance(value, str):
            raise ValidationError(name, "must be a string", value)
        changes[key] = value
    return replace(base, **changes)


def load_config_file(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def build_config(
    base: ServerConfig,
    symbols: list[str],
    primary: AccountSpec | None,
    file_data: dict[str, Any] | None,
) -> ServerConfig:
    """Merge flags and the config file into one validated ServerConfig."""
    data = file_data or {}
    unknown = set(data) - {"accounts", "symbols", "market_maker", "limits"}
    if unknown:
        raise ValidationError("config", "unknown sections", sorted(unknown))
    sym_tables: dict[str, Any] = data.get("symbols", {})
    specs: list[SymbolSpec] = []
    for name in list(dict.fromkeys([*symbols, *sym_tables])):
        table = sym_tables.get(name, {})
        try:
            spec = default_spec(name)
        except ValidationError:
            if not {"base", "quote"} <= set(table):
                raise
            spec = _spec(
                name,
                table["base"],
                table["quote"],
                "0.01",
                "0.001",
                "0.001",
                "900000",
                "0",
                "0",
                "100",
            )
        spec = _coerce(spec, table, f"symbols.{name}")
        spec.instrument()  # validates the rules now, not at the first order
        specs.append(spec)
    accounts: list[AccountSpec] = [primary] if primary is not None else []
    for i, table in enumerate(data.get("accounts", [])):
        where = f"accounts[{i}]"
        try:
            name, key, secret = str(table["name"]), str(table["api_key"]), str(table["api_secret"])
        except KeyError as exc:
            raise ValidationError(
                where, "needs name, api_key and api_secret", exc.args[0]
            ) from None
        balances = {
            str(a).upper(): to_decimal(v, f"{where}.balances.{a}")
            for a, v in table.get("balances", {}).items()
        }
        maker = table.get("maker_fee")
        taker = table.get("taker_fee")
        accounts.append(
            AccountSpec(
                name,
                key,
                secret,
                balances,
                None if maker is None else to_decimal(maker, f"{where}.maker_fee"),
                None if taker is None else to_decimal(taker, f"{where}.taker_fee"),
            )
        )
    names = [a.name for a in accounts]
    keys = [a.api_key for a in accounts]
    if len(set(names)) != len(names) or len(set(keys)) != len(keys):
        raise ValidationError("accounts", "names and api keys must be unique", names)
    if any(n.startswith("__") for n in names):
        raise ValidationError("accounts", "names starting with __ are reserved", names)
    maker = _coerce(base.maker, data.get("market_maker", {}), "market_maker")
    limits = _coerce(base.limits, data.get("limits", {}), "limits")
    if maker.levels < 20 or maker.interval_ms <= 0:
        raise ValidationError("market_maker", "levels >= 20 and interval_ms > 0", maker)
    return replace(base, symbols=tuple(specs), accounts=tuple(accounts), maker=maker, limits=limits)
