"""Trading fees: maker/taker rates by 30-day volume tier, exact integer arithmetic.

How Binance spot charges, and so how the simulator does:

* The fee is taken from what the order *receives*: a buy pays in the base asset
  (0.1 % of 1 BTC bought is 0.001 BTC), a sell in the quote asset.
* The rate depends on the account's VIP tier, which Binance recomputes once a day from
  the trailing 30 days of volume.  Here a trade on UTC day ``D`` is charged at the tier
  of the volume traded on days ``D-30 .. D-1``: today's trading never changes today's
  rate, so one taker sweep pays one rate throughout, and the rate lookup can be cached
  for the rest of the day.
* A per-account override (a market-maker agreement) replaces the tiers.
* Negative rates are maker rebates.  A rebate is paid in the quote asset even for a
  buy: bot4's order manager (``OrderManager.on_fill``) refuses a negative base-asset
  fee, and venues that pay rebates pay them in quote.

Rounding is explicit and always in the venue's favour: a fee is rounded *up* to the
fee unit (``fee_decimals``, 8 like Binance's commission fields), a rebate *down*.  The
fee unit is at least 1e-9, so a base-asset fee is a whole number of bot4 quantity units
(``money % 10**9 == 0``), as the order manager requires.  A fee never exceeds what the
order received.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import Final

from bot4.core.errors import ValidationError
from bot4.core.numbers import MONEY_PRECISION, NumberLike, rate_to_fraction, to_decimal

DAY_NS: Final = 86_400 * 10**9

Rates = tuple[int, int, int, int]  # maker numerator, denominator, taker numerator, denominator


@dataclass(frozen=True, slots=True)
class FeeTier:
    """One row of a fee table: from ``min_volume`` (30-day volume in the schedule's
    volume unit) upwards, these rates apply.  Rates are fractions (0.001 = 0.1 %)."""

    name: str
    min_volume: Decimal
    maker: Decimal
    taker: Decimal

    @classmethod
    def create(
        cls, name: str, min_volume: NumberLike, maker: NumberLike, taker: NumberLike
    ) -> FeeTier:
        vol = to_decimal(min_volume, "min_volume")
        mk = to_decimal(maker, "maker")
        tk = to_decimal(taker, "taker")
        if vol < 0:
            raise ValidationError("min_volume", "must be >= 0", min_volume)
        for field, rate in (("maker", mk), ("taker", tk)):
            if not -1 < rate < 1:
                raise ValidationError(field, "a fee rate must lie in (-1, 1)", rate)
        if tk < 0:
            raise ValidationError("taker", "a taker rate cannot be a rebate", taker)
        return cls(name, vol, mk, tk)


# Binance spot's regular VIP table (no BNB discount) as published in 2024, for
# realistic defaults; thresholds are 30-day spot volume in USD.  Illustrative, not
# authoritative: the live table changes and also has BNB-balance conditions.
BINANCE_VIP: Final = (
    ("VIP0", 0, "0.001", "0.001"),
    ("VIP1", 1_000_000, "0.0009", "0.001"),
    ("VIP2", 5_000_000, "0.0008", "0.001"),
    ("VIP3", 20_000_000, "0.00042", "0.0006"),
    ("VIP4", 100_000_000, "0.00042", "0.00054"),
    ("VIP5", 150_000_000, "0.00036", "0.00048"),
    ("VIP6", 400_000_000, "0.0003", "0.00042"),
    ("VIP7", 800_000_000, "0.00024", "0.00036"),
    ("VIP8", 2_000_000_000, "0.00018", "0.0003"),
    ("VIP9", 4_000_000_000, "0.00012", "0.00024"),
)


def _fraction(rate: Decimal) -> tuple[int, int]:
    return rate_to_fraction(rate, "rate")


class FeeSchedule:
    """Fee tiers, per-account overrides and each account's daily volume."""

    __slots__ = (
        "_cache",
        "_overrides",
        "_tier_rates",
        "_volume",
        "fee_decimals",
        "tiers",
        "unit",
        "volume_rates",
        "window_days",
    )

    def __init__(
        self,
        tiers: Iterable[FeeTier] | None = None,
        *,
        window_days: int = 30,
        fee_decimals: int = 8,
        volume_rates: Mapping[str, NumberLike] | None = None,
    ) -> None:
        """``volume_rates`` converts each quote asset's volume into the tier unit
        (e.g. ``{"USDT": 1, "BTC": 60000}``); None counts every quote asset 1:1, and
        with a mapping, quote assets not in it do not count."""
        table = tuple(tiers) if tiers is not None else default_tiers()
        if not table or table[0].min_volume != 0:
            raise ValidationError("tiers", "the first tier must start at volume 0", table)
        if any(a.min_volume >= b.min_volume for a, b in pairwise(table)):
            raise ValidationError("tiers", "thresholds must increase", table)
        if not 0 <= fee_decimals <= 9:
            raise ValidationError("fee_decimals", "must lie in [0, 9]", fee_decimals)
        if window_days <= 0:
            raise ValidationError("window_days", "must be > 0", window_days)
        self.tiers = table
        self.window_days = window_days
        self.fee_decimals = fee_decimals
        self.unit: int = 10 ** (MONEY_PRECISION - fee_decimals)
        self.volume_rates: dict[str, tuple[int, int]] | None = (
            None
            if volume_rates is None
            else {a: _fraction(to_decimal(r, "volume_rate")) for a, r in volume_rates.items()}
        )
        self._tier_rates: tuple[tuple[int, Rates], ...] = tuple(
            (int(t.min_volume.scaleb(MONEY_PRECISION)), (*_fraction(t.maker), *_fraction(t.taker)))
            for t in table
        )
        self._overrides: dict[str, Rates] = {}
        self._volume: dict[str, dict[int, int]] = {}
        self._cache: dict[str, tuple[int, Rates]] = {}

    @classmethod
    def flat(cls, maker: NumberLike, taker: NumberLike, fee_decimals: int = 8) -> FeeSchedule:
        """One tier for everybody."""
        return cls([FeeTier.create("flat", 0, maker, taker)], fee_decimals=fee_decimals)

    # -- configuration -------------------------------------------------------------------
    def set_override(self, account: str, maker: NumberLike, taker: NumberLike) -> None:
        """Fixed rates for one account, whatever its volume (negative maker = rebate)."""
        tier = FeeTier.create("override", 0, maker, taker)
        self._overrides[account] = (*_fraction(tier.maker), *_fraction(tier.taker))
        self._cache.pop(account, None)

    def clear_override(self, account: str) -> None:
        self._overrides.pop(account, None)
        self._cache.pop(account, None)

    # -- volume and tier -----------------------------------------------------------------
    def record(self, account: str, quote_asset: str, notional_money: int, day: int) -> None:
        """Count a trade's quote notional (money units) toward the account's volume."""
        conv = self.volume_rates
        if conv is not None:
            rate = conv.get(quote_asset)
            if rate is None:
                return
            notional_money = notional_money * rate[0] // rate[1]
        days = self._volume.get(account)
        if days is None:
            days = self._volume[account] = {}
        days[day] = days.get(day, 0) + notional_money
        cached = self._cache.get(account)
        if cached is not None and day < cached[0]:
            del self._cache[account]  # back-dated volume: today's tier may change

    def volume(self, account: str, day: int) -> int:
        """Volume (money units of the tier unit) of the ``window_days`` before ``day``."""
        days = self._volume.get(account)
        if not days:
            return 0
        first = day - self.window_days
        for old in [d for d in days if d < first]:
            del days[old]  # outside every future window too (days only move forward)
        return sum(v for d, v in days.items() if d < day)

    def tier(self, account: str, day: int) -> FeeTier:
        vol = self.volume(account, day)
        index = 0
        for i, (threshold, _) in enumerate(self._tier_rates):
            if vol >= threshold:
                index = i
        return self.tiers[index]

    def rates(self, account: str, day: int) -> Rates:
        """(maker num, maker den, taker num, taker den) for a trade on ``day``."""
        cached = self._cache.get(account)
        if cached is not None and cached[0] == day:
            return cached[1]
        rates = self._overrides.get(account)
        if rates is None:
            vol = self.volume(account, day)
            rates = self._tier_rates[0][1]
            for threshold, tier_rates in self._tier_rates:
                if vol >= threshold:
                    rates = tier_rates
        self._cache[account] = (day, rates)
        return rates

    # -- the charge ----------------------------------------------------------------------
    def charge(self, amount_money: int, num: int, den: int) -> int:
        """Fee on ``amount_money`` received at rate ``num/den``: rounded up to the fee
        unit (at most the amount itself); a rebate (negative) rounded toward zero."""
        unit = self.unit
        if num >= 0:
            fee = -(-amount_money * num // (den * unit)) * unit
            return fee if fee <= amount_money else amount_money
        return -(amount_money * -num // (den * unit)) * unit

    def snapshot(self) -> tuple[object, ...]:
        return (
            sorted(self._overrides.items()),
            sorted((a, sorted(d.items())) for a, d in self._volume.items()),
        )


def default_tiers() -> tuple[FeeTier, ...]:
    """The Binance-like VIP table above."""
    return tuple(FeeTier.create(*row) for row in BINANCE_VIP)
