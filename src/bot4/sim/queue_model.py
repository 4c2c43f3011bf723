"""Queue-position fill model for passive (resting) orders on L1 / L2 / bar data.

Historical data cannot contain our simulated order, so its fills must be inferred from
what happened to the real queue at its price.  Binance matches price-time (FIFO): an
order that joins a level waits behind everything already displayed there.

The estimate of the queue ahead of each order:

* **join**: ``queue_ahead`` = the displayed quantity at the price when the order arrives
  (we are last in line);
* **trade at our price** (taker on the other side): the traded volume first consumes
  the queue ahead; only volume *beyond* our position fills us (partial fills allowed);
* **trade through our price** (a taker traded at a worse price than ours, e.g. a sell
  below our bid): under price priority every order at our price was taken or cancelled
  first, so the queue ahead is 0 and the order fills from that volume;
* **level update** (L2 diff or L1 best-level change): a decrease not explained by the
  trades seen since the previous update is a cancellation.  Where it happened in the
  queue is unknown:

  - ``PROPORTIONAL`` (default): cancellations are spread evenly over the level, so the
    queue ahead shrinks by ``cancelled * ahead / level`` (rounded down: conservative);
  - ``PESSIMISTIC``: all cancellations are behind us; the queue ahead only shrinks when
    the level becomes smaller than it.

  An increase is new orders joining *behind* us and leaves the queue ahead unchanged.
  In both policies the queue ahead never exceeds the displayed level.

Several of our own orders at one level are served in the order they joined: the
taker's volume passes through the merged queue once, so a later order only gets what
the earlier ones and the historical queue ahead of it left.

All quantities are raw ints; the model is deterministic (no random draws).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from bot4.core.enums import OrderSide
from bot4.core.numbers import Rounding, div_round

__all__ = ["CancelPolicy", "QueueFill", "QueuePositionFillModel"]


class CancelPolicy(StrEnum):
    PROPORTIONAL = "proportional"
    PESSIMISTIC = "pessimistic"


@dataclass(frozen=True, slots=True)
class QueueFill:
    order_id: str
    side: OrderSide
    price: int  # our limit price: a passive fill is at the resting price
    qty: int
    remaining: int  # after this fill
    trade_through: bool


@dataclass(slots=True)
class _Resting:
    order_id: str
    side: OrderSide
    price: int
    remaining: int
    queue_ahead: int
    seq: int


@dataclass(slots=True)
class _LevelTrack:
    displayed: int  # displayed quantity at the last level update / join
    traded: int  # historical volume traded at this level since then


class QueuePositionFillModel:
    """Tracks the queue ahead of each of our resting orders and reports their fills.

    Feed it, in time order: ``join`` when an order starts resting, ``on_level`` for every
    displayed-quantity change at a price where we rest (or ``on_best`` with L1 data),
    ``on_trade`` for every public trade, or ``on_bar`` with bar data only.
    """

    __slots__ = ("_levels", "_orders", "_seq", "bar_touch_share", "cancel_policy")

    def __init__(
        self,
        cancel_policy: CancelPolicy = CancelPolicy.PROPORTIONAL,
        bar_touch_share: Fraction | int | str = 0,
    ) -> None:
        share = Fraction(bar_touch_share)
        if not 0 <= share <= 1:
            raise ValueError("bar_touch_share must be in [0, 1]")
        self.cancel_policy = cancel_policy
        self.bar_touch_share = share
        self._orders: dict[str, _Resting] = {}
        self._levels: dict[tuple[OrderSide, int], _LevelTrack] = {}
        self._seq = 0

    # -- orders -------------------------------------------------------------------

    def join(self, order_id: str, side: OrderSide, price: int, qty: int, level_qty: int) -> None:
        """Our order starts resting at ``price`` behind ``level_qty`` displayed."""
        if order_id in self._orders:
            raise ValueError(f"order {order_id!r} already resting")
        if qty <= 0 or price <= 0 or level_qty < 0:
            raise ValueError("qty and price must be > 0, level_qty >= 0")
        key = (side, price)
        if key in self._levels:
            self.on_level(side, price, level_qty)  # bring our earlier orders up to date
        else:
            self._levels[key] = _LevelTrack(level_qty, 0)
        self._seq += 1
        self._orders[order_id] = _Resting(order_id, side, price, qty, level_qty, self._seq)

    def remove(self, order_id: str) -> None:
        """Our order was cancelled (or filled elsewhere): stop tracking it."""
        order = self._orders.pop(order_id)
        self._drop_level_if_unused(order.side, order.price)

    def queue_ahead(self, order_id: str) -> int:
        return self._orders[order_id].queue_ahead

    def remaining(self, order_id: str) -> int:
        return self._orders[order_id].remaining

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    # -- market events ------------------------------------------------------------

    def on_trade(self, price: int, qty: int, taker_side: OrderSide) -> list[QueueFill]:
        """A public trade of ``qty`` at ``price``; ``taker_side`` SELL hits bids."""
        if qty <= 0:
            return []
        resting_side = taker_side.opposite
        track = self._levels.get((resting_side, price))
        if track is not None:
            track.traded += qty
        return self._consume(resting_side, price, qty, through_only=False)

    def on_level(self, side: OrderSide, price: int, qty: int) -> None:
        """The displayed quantity at ``(side, price)`` is now ``qty`` (0: level gone)."""
        track = self._levels.get((side, price))
        if track is None:
            return
        base = max(0, track.displayed - track.traded)  # the level after the trades
        cancelled = max(0, base - qty)
        proportional = self.cancel_policy is CancelPolicy.PROPORTIONAL
        for order in self._at_level(side, price):
            if proportional and cancelled and base:
                ahead = min(order.queue_ahead, base)
                order.queue_ahead -= div_round(cancelled * ahead, base, Rounding.DOWN)
            order.queue_ahead = min(order.queue_ahead, qty)
        track.displayed = qty
        track.traded = 0

    def on_best(self, side: OrderSide, price: int, qty: int) -> None:
        """L1 update: the best level of ``side`` is ``(price, qty)``.

        A price of ours better than the new best level must have emptied (a bid above
        the best bid): such levels are updated to 0, then the best level itself.
        """
        better = [
            p
            for (s, p) in self._levels
            if s is side and (p > price if side is OrderSide.BUY else p < price)
        ]
        for p in better:
            self.on_level(side, p, 0)
        self.on_level(side, price, qty)

    def on_bar(self, high: int, low: int, volume: int) -> list[QueueFill]:
        """A bar with no trade detail.  Prices strictly inside the range were traded
        through (fills from the bar's volume); at the exact extreme only
        ``bar_touch_share`` of the volume is assumed traded at our price (default 0:
        a touch does not fill, the conservative choice)."""
        if low > high or volume < 0:
            raise ValueError("need low <= high and volume >= 0")
        fills: list[QueueFill] = []
        touch = volume * self.bar_touch_share.numerator // self.bar_touch_share.denominator
        for side, extreme in ((OrderSide.BUY, low), (OrderSide.SELL, high)):
            if volume:
                fills += self._consume(side, extreme, volume, through_only=True)
            if touch:
                fills += self._consume(side, extreme, touch, through_only=False, at_only=True)
        return fills

    # -- internals ----------------------------------------------------------------

    def _at_level(self, side: OrderSide, price: int) -> Iterator[_Resting]:
        return (o for o in self._orders.values() if o.side is side and o.price == price)

    def _consume(
        self,
        side: OrderSide,
        price: int,
        volume: int,
        *,
        through_only: bool,
        at_only: bool = False,
    ) -> list[QueueFill]:
        """Pass a taker's ``volume`` printed at ``price`` through our orders on ``side``
        that it reached: better-priced first (trade-through), then those at ``price``."""
        buy = side is OrderSide.BUY
        reached = [
            o
            for o in self._orders.values()
            if o.side is side
            and (
                (o.price == price and not through_only)
                or (not at_only and (o.price > price if buy else o.price < price))
            )
        ]
        if not reached:
            return []
        reached.sort(key=lambda o: (-o.price if buy else o.price, o.seq))
        fills: list[QueueFill] = []
        available = volume
        for order in reached:
            through = order.price != price
            if through:
                order.queue_ahead = 0
                take = min(order.remaining, available)
            else:
                hist = min(order.queue_ahead, available)
                order.queue_ahead -= hist
                take = min(order.remaining, available - hist)
            if take > 0:
                order.remaining -= take
                available -= take
                fills.append(
                    QueueFill(order.order_id, side, order.price, take, order.remaining, through)
                )
        for fill in fills:
            if fill.remaining == 0:
                del self._orders[fill.order_id]
                self._drop_level_if_unused(fill.side, fill.price)
        return fills

    def _drop_level_if_unused(self, side: OrderSide, price: int) -> None:
        if not any(True for _ in self._at_level(side, price)):
            self._levels.pop((side, price), None)
