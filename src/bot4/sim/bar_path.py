"""Intra-bar price path for backtests on bar (OHLC) data only.

A bar tells the four prices but not their order.  The model fixes one path, the usual
convention (backtrader, Zipline-style simulators):

* up bar (close >= open):   open -> low  -> high -> close
* down bar (close < open):  open -> high -> low  -> close

i.e. the price first moves *against* the bar's direction.  It is the conservative
choice for the common cases: on an up bar a buy stop above the open and a sell limit
above it are reached after the low, so a stop-loss below the entry is hit before the
take-profit when both are inside the bar.

Between the four points the price moves continuously through every tick, so a level
inside a segment is reached exactly at that level.  The exception is the open: a bar
can *gap* away from the previous close, and an order whose level the open has already
passed executes at the open (a stop gets the worse open price; a limit the better one).

``path distance`` (sum of absolute price moves from the open) orders two events of one
bar: the smaller distance happened first.  That is how an OCO pair (stop + target in
the same bar) is resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

from bot4.core.enums import OrderSide, OrderType

__all__ = ["Bar", "BarOutcome", "Trigger", "bar_path", "order_in_bar", "touch_in_bar"]


@dataclass(frozen=True, slots=True)
class Bar:
    open: int
    high: int
    low: int
    close: int

    def __post_init__(self) -> None:
        if not self.low <= min(self.open, self.close) <= max(self.open, self.close) <= self.high:
            raise ValueError(f"inconsistent bar {self}")


def bar_path(bar: Bar) -> tuple[int, int, int, int]:
    """The four path points: O L H C on an up bar (close >= open), O H L C otherwise."""
    if bar.close >= bar.open:
        return bar.open, bar.low, bar.high, bar.close
    return bar.open, bar.high, bar.low, bar.close


class Trigger(StrEnum):
    AT_OR_BELOW = "AT_OR_BELOW"  # the price falls to the level (buy limit, sell stop)
    AT_OR_ABOVE = "AT_OR_ABOVE"  # the price rises to the level (sell limit, buy stop)


def _reached(price: int, level: int, trigger: Trigger, strict: bool) -> bool:
    if trigger is Trigger.AT_OR_BELOW:
        return price < level if strict else price <= level
    return price > level if strict else price >= level


def touch_in_bar(
    bar: Bar, level: int, trigger: Trigger, *, strict: bool = False, start: int = 0
) -> tuple[int, int] | None:
    """First point at path distance >= ``start`` where the price reaches ``level``.

    Returns ``(price, distance)``: the price is the path price there if the level was
    already passed at that point (a gap at the open, or at ``start``), else the level
    itself.  ``strict`` requires trading *through* the level (a touch is not enough).
    """
    points = bar_path(bar)
    travelled = 0
    for a, b in pairwise(points):
        seg = abs(b - a)
        if travelled + seg < start:
            travelled += seg
            continue
        # Enter the segment at distance max(start, travelled).
        offset = max(0, start - travelled)
        entry = a + offset if b >= a else a - offset
        if _reached(entry, level, trigger, strict):
            return entry, travelled + offset
        lo, hi = min(entry, b), max(entry, b)
        if trigger is Trigger.AT_OR_BELOW:
            crosses = lo < level if strict else lo <= level
        else:
            crosses = hi > level if strict else hi >= level
        if crosses:
            # Continuous path: the level is met exactly (with ``strict`` the price goes a
            # tick beyond it, but a resting limit still fills at its own price).
            return level, travelled + offset + abs(level - entry)
        travelled += seg
    return None


@dataclass(frozen=True, slots=True)
class BarOutcome:
    """What happened to one order in one bar (the order rests from the bar's open)."""

    triggered: bool  # always True for MARKET/LIMIT; for stops: the trigger was reached
    fill_price: int | None
    trigger_distance: int | None
    fill_distance: int | None
    gapped: bool  # executed at the open because the open had already passed the level

    @property
    def filled(self) -> bool:
        return self.fill_price is not None


_NOT_TRIGGERED = BarOutcome(False, None, None, None, False)


def _limit_trigger(side: OrderSide) -> Trigger:
    return Trigger.AT_OR_BELOW if side is OrderSide.BUY else Trigger.AT_OR_ABOVE


def _stop_trigger(order_type: OrderType, side: OrderSide) -> Trigger:
    stop_like = order_type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)
    # Binance: STOP_LOSS buy triggers when the price rises to the stop, TAKE_PROFIT buy
    # when it falls to it; sells are the mirror image.
    if stop_like:
        return Trigger.AT_OR_ABOVE if side is OrderSide.BUY else Trigger.AT_OR_BELOW
    return Trigger.AT_OR_BELOW if side is OrderSide.BUY else Trigger.AT_OR_ABOVE


def order_in_bar(
    bar: Bar,
    side: OrderSide,
    order_type: OrderType,
    *,
    price: int | None = None,
    trigger_price: int | None = None,
    limit_through: bool = False,
) -> BarOutcome:
    """Whether and at which price an order resting from the open fills in ``bar``.

    * MARKET: at the open.
    * LIMIT at ``price``: when the path reaches it; at the open if the open is already
      at or beyond it (a better price).  ``limit_through`` requires the price to trade
      strictly through the limit (a touch is not a fill), the pessimistic variant.
    * STOP_MARKET / TAKE_PROFIT at ``trigger_price``: fills at the trigger price when
      the path reaches it, or at the open if the bar gapped through it.
    * STOP_LIMIT / TAKE_PROFIT_LIMIT: triggered as above; then a limit at ``price`` that
      may fill on the rest of the path (at the trigger point's price if that is already
      marketable).  Triggered-but-unfilled is reported with ``triggered=True``.

    Fills are assumed to have all the size they need (bar data has no depth).
    """
    if order_type is OrderType.MARKET:
        return BarOutcome(True, bar.open, 0, 0, False)
    if order_type is OrderType.LIMIT:
        if price is None:
            raise ValueError("LIMIT needs price")
        hit = touch_in_bar(bar, price, _limit_trigger(side), strict=limit_through)
        if hit is None:
            return BarOutcome(True, None, 0, None, False)
        return BarOutcome(True, hit[0], 0, hit[1], hit[1] == 0 and hit[0] != price)
    if trigger_price is None:
        raise ValueError(f"{order_type} needs trigger_price")
    trig = touch_in_bar(bar, trigger_price, _stop_trigger(order_type, side))
    if trig is None:
        return _NOT_TRIGGERED
    trig_price, trig_dist = trig
    gapped = trig_dist == 0 and trig_price != trigger_price
    if order_type in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT):
        return BarOutcome(True, trig_price, trig_dist, trig_dist, gapped)
    if price is None:
        raise ValueError(f"{order_type} needs price")
    limit_trigger = _limit_trigger(side)
    if _reached(trig_price, price, limit_trigger, limit_through):
        # Marketable at the trigger point: fills there, never worse than the limit.
        return BarOutcome(True, trig_price, trig_dist, trig_dist, gapped)
    hit = touch_in_bar(bar, price, limit_trigger, strict=limit_through, start=trig_dist)
    if hit is None:
        return BarOutcome(True, None, trig_dist, None, gapped)
    return BarOutcome(True, hit[0], trig_dist, hit[1], gapped)
