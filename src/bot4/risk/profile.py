"""The risk profile: a TOML file the user can read and change, seeded with defaults.

Values are kept exact: percentages and amounts are parsed as Decimal (a TOML float is
read through its decimal text, so ``0.02`` means 2/100 exactly) and turned into the
integer fractions the checks compare with.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from bot4.core.errors import ValidationError
from bot4.core.numbers import to_decimal

DEFAULT_PROFILE_TEXT = (
    resources.files("bot4.risk").joinpath("default_profile.toml").read_text(encoding="utf-8")
)

TRADING_STATES = ("ACTIVE", "REDUCING", "HALTED")
DEFAULT_STAGES: tuple[tuple[int, Decimal], ...] = (
    (0, Decimal("0.25")),
    (3600, Decimal("0.5")),
    (7200, Decimal(1)),
)


@dataclass(frozen=True, slots=True)
class Limits:
    require_stop_loss: bool = True
    max_position_pct_equity: Decimal = Decimal("0.02")
    max_order_notional: Decimal = Decimal(1000000)
    max_open_orders: int = 50
    max_orders_per_window: int = 20
    submit_window_seconds: int = 1
    price_band_pct: Decimal = Decimal("0.05")
    max_leverage: Decimal = Decimal(1)
    daily_loss_limit_pct: Decimal = Decimal("0.05")
    correlation_limit: Decimal = Decimal("0.7")
    correlation_window: int = 60
    correlation_min_samples: int = 20
    sample_interval_seconds: int = 60
    max_var_pct_equity: Decimal = Decimal("0.05")
    max_data_age_seconds: int = 120


@dataclass(frozen=True, slots=True)
class KillSwitchConfig:
    max_drawdown_pct: Decimal = Decimal("0.15")
    daily_loss_pct: Decimal = Decimal("0.08")
    max_error_rate: Decimal = Decimal("0.5")
    error_window_seconds: int = 60
    error_min_calls: int = 10
    stale_data_seconds: int = 300
    on_trip: str = "HALTED"
    flatten_on_trip: bool = False


@dataclass(frozen=True, slots=True)
class RiskProfile:
    quote_currency: str = "USDT"
    limits: Limits = field(default_factory=Limits)
    kill_switch: KillSwitchConfig = field(default_factory=KillSwitchConfig)
    stages: tuple[tuple[int, Decimal], ...] = field(default_factory=lambda: DEFAULT_STAGES)

    @classmethod
    def default(cls) -> RiskProfile:
        return cls.from_toml(DEFAULT_PROFILE_TEXT)

    @classmethod
    def load(cls, path: str | Path) -> RiskProfile:
        return cls.from_toml(Path(path).read_text(encoding="utf-8"))

    @classmethod
    def from_toml(cls, text: str) -> RiskProfile:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValidationError("risk_profile", "not valid TOML", str(exc)) from None
        known = {"quote_currency", "limits", "kill_switch", "recovery"}
        for key in data:
            if key not in known:
                raise ValidationError(key, "unknown risk profile section or key", data[key])
        limits = _section(Limits, data.get("limits", {}), "limits")
        kill = _section(KillSwitchConfig, data.get("kill_switch", {}), "kill_switch")
        if kill.on_trip not in ("HALTED", "REDUCING"):
            raise ValidationError("kill_switch.on_trip", "HALTED or REDUCING", kill.on_trip)
        stages = DEFAULT_STAGES
        recovery = data.get("recovery", {})
        if "stages" in recovery:
            stages = tuple(
                (int(after), _decimal(share, "recovery.stages"))
                for after, share in recovery["stages"]
            )
        if not stages or stages[0][0] != 0 or stages[-1][1] != 1:
            raise ValidationError("recovery.stages", "start at 0 s and end at a share of 1", stages)
        quote = data.get("quote_currency", "USDT")
        return cls(quote_currency=quote, limits=limits, kill_switch=kill, stages=stages)

    def with_limits(self, **changes: Any) -> RiskProfile:
        """A copy with some limits changed (validated like the file)."""
        current = {f.name: getattr(self.limits, f.name) for f in fields(Limits)}
        current.update(changes)
        limits = _section(Limits, current, "limits")
        return RiskProfile(self.quote_currency, limits, self.kill_switch, self.stages)

    def with_kill_switch(self, **changes: Any) -> RiskProfile:
        current = {f.name: getattr(self.kill_switch, f.name) for f in fields(KillSwitchConfig)}
        current.update(changes)
        kill = _section(KillSwitchConfig, current, "kill_switch")
        return RiskProfile(self.quote_currency, self.limits, kill, self.stages)


def _decimal(value: object, name: str) -> Decimal:
    if isinstance(value, float):
        value = repr(value)  # the decimal text TOML held, not the binary value
    dec = to_decimal(value, name)
    if dec < 0:
        raise ValidationError(name, "must be >= 0", value)
    return dec


def _section(cls: type[Any], values: dict[str, Any], prefix: str) -> Any:
    names = {f.name: f for f in fields(cls)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            raise ValidationError(f"{prefix}.{key}", "unknown setting", value)
        default = getattr(cls(), key)
        name = f"{prefix}.{key}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValidationError(name, "must be true or false", value)
            out[key] = value
        elif isinstance(default, Decimal):
            out[key] = _decimal(value, name)
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValidationError(name, "must be a positive integer", value)
            out[key] = value
        else:
            out[key] = value
    return cls(**out)
