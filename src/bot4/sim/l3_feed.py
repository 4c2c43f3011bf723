"""Build an L3 book from Bitfinex's raw order feed (``book`` channel, ``prec=R0``).

Message shapes (Bitfinex API v2): event dicts (``info``, ``subscribed``), one snapshot
``[chanId, [[order_id, price, amount], ...]]``, then updates
``[chanId, [order_id, price, amount]]`` (and ``[chanId, "hb"]`` heartbeats).  ``price``
0 deletes the order; ``amount`` < 0 is an ask, > 0 a bid; otherwise the message adds
the order or changes it.  A change to a smaller amount at the same price keeps the
order's place (a partial fill); a new price or a larger amount sends it to the back of
its level's queue (``OrderBook.modify``).

Numbers arrive as JSON floats.  They are converted to raw integers exactly through
their shortest decimal representation (``Decimal(repr(x))``, the digits the JSON text
had) and never through float arithmetic; a value with more than 9 decimals is refused.
Conversions are cached per distinct value: a feed repeats prices and sizes a lot, and
the cache turns the costliest step of a message into a dict lookup.

The book is applied as the exchange sent it, so it can be crossed or locked for a
moment (the feed is a merge of independent updates); ``L3FeedStats`` counts those
messages instead of hiding them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot4._compiled import compiled
from bot4.core.errors import ValidationError
from bot4.core.numbers import SCALE, to_raw
from bot4.sim.book import ADDED, FLIPPED, KEPT, REQUEUED, OrderBook


def to_raw_exact(value: object) -> int:
    """A JSON number as a raw int (1e-9 units), exactly, from its decimal digits: an int
    scales; a float goes through ``repr`` (the shortest string that reads back as the
    same float, i.e. the digits the JSON text had) and ``bot4.core.numbers.to_raw``,
    which refuses more than 9 decimals, NaN and infinities."""
    if type(value) is int:
        return value * SCALE
    if type(value) is not float:
        raise ValidationError("value", "must be a JSON number", value)
    if -FAST_LIMIT < value < FAST_LIMIT:
        raw = round(value * 1e9)
        if raw / SCALE == value:
            return raw
    return to_raw(repr(value), "value")


# The shortcut in ``to_raw_exact`` gives exactly what ``repr`` gives, below this
# magnitude.  Under 1e6 a float's spacing is at most 2**-33 < 1e-9, so at most one
# multiple of 1e-9 rounds to a given float: if ``raw / 1e9`` (an int division, correctly
# rounded) reads back as the float, ``raw`` is that multiple, and the shortest repr --
# which has at most 9 decimals exactly when such a multiple exists -- names the same
# number.  ``round(value * 1e9)`` finds it: the product is off by less than 0.125
# (half a float spacing of the value times 1e9, plus the product's own rounding).  A
# value with more decimals fails the read-back and takes the slow path, which refuses
# it; NaN fails the range test.  The compiled feed loop does the same in C.
FAST_LIMIT = 1e6


@dataclass(slots=True)
class L3FeedStats:
    """What the feed did to the book.  ``crossed``/``locked`` count messages after
    which best bid > best ask / best bid == best ask; ``crossed_episodes`` counts the
    times the book went from normal to crossed-or-locked."""

    events: int = 0  # non-order messages: event dicts, heartbeats
    snapshot_orders: int = 0
    updates: int = 0  # order messages after the snapshot
    adds: int = 0
    changes: int = 0
    requeued: int = 0  # changes that lost queue priority (new price or larger amount)
    side_flips: int = 0  # an order id that reappeared on the other side
    deletes: int = 0
    deletes_hit: int = 0
    deletes_missed: int = 0
    crossed: int = 0
    locked: int = 0
    crossed_episodes: int = 0
    first_crossed_at: int = -1  # index into the message list

    @property
    def order_messages(self) -> int:
        return self.snapshot_orders + self.updates


def _fast_loop(book: OrderBook, messages: Sequence[Any]) -> Callable[..., int] | None:
    """The compiled loop if the book is the compiled one and the input a plain list."""
    if type(messages) is not list:
        return None
    fast = compiled("_fastbook")
    if fast is None or not isinstance(book, fast.BookCore):
        return None
    return fast.apply_bitfinex  # type: ignore[no-any-return]


def load_bitfinex_raw(path: str | Path) -> list[Any]:
    with Path(path).open("rb") as fh:
        data = json.load(fh)
    if not isinstance(data, list):
        raise ValidationError("path", "a raw Bitfinex capture is a JSON list", str(path))
    return data


class BitfinexL3Feed:
    """Applies raw Bitfinex R0 messages to an ``OrderBook``; keeps ``stats``."""

    __slots__ = ("_amounts", "_prices", "_was_crossed", "book", "stats")

    def __init__(self, book: OrderBook | None = None) -> None:
        self.book = book if book is not None else OrderBook("tBTCUSD")
        self.stats = L3FeedStats()
        self._prices: dict[float | int, int] = {}
        self._amounts: dict[float | int, int] = {}
        self._was_crossed = False

    def apply_all(
        self, messages: Sequence[Any], after: Callable[[int], None] | None = None
    ) -> L3FeedStats:
        """Apply every message in order; ``after(i)`` runs after message ``i`` (tests
        compare the book against an independent rebuild there)."""
        book = self.book
        fast = _fast_loop(book, messages)
        if fast is not None:
            return self._apply_compiled(fast, messages, after)
        orders = book.orders
        upsert, remove = book.upsert, book.remove_record
        bid_keys, ask_keys = book.bid_keys, book.ask_keys
        prices, amounts = self._prices, self._amounts
        stats = self.stats
        outcomes = [0, 0, 0, 0]  # ADDED, KEPT, REQUEUED, FLIPPED
        deletes = missed = 0
        crossed = locked = episodes = 0
        was = self._was_crossed
        for i, msg in enumerate(messages):
            try:
                oid, price, amount = msg[1]
            except (KeyError, ValueError, TypeError, IndexError):
                oid = None  # an event dict, a heartbeat or a snapshot
            if oid is None or type(oid) is list:
                self._other(msg)
            elif not price:  # delete
                deletes += 1
                rec = orders.get(oid)
                if rec is None:
                    missed += 1
                else:
                    remove(rec)
            else:
                p = prices.get(price)
                if p is None:
                    p = prices[price] = to_raw_exact(price)
                q = amounts.get(amount)
                if q is None:
                    q = amounts[amount] = to_raw_exact(amount)
                if q > 0:
                    outcomes[upsert(oid, True, p, q)] += 1
                else:
                    outcomes[upsert(oid, False, p, -q)] += 1
            if bid_keys and ask_keys:
                gap = bid_keys[-1] + ask_keys[-1]  # best bid - best ask
                if gap >= 0:
                    if gap:
                        crossed += 1
                    else:
                        locked += 1
                    if not was:
                        episodes += 1
                        was = True
                        if stats.first_crossed_at < 0:
                            stats.first_crossed_at = i
                else:
                    was = False
            else:
                was = False
            if after is not None:
                after(i)
        self._was_crossed = was
        self._count(outcomes)
        stats.updates += sum(outcomes) + deletes
        stats.deletes += deletes
        stats.deletes_hit += deletes - missed
        stats.deletes_missed += missed
        stats.crossed += crossed
        stats.locked += locked
        stats.crossed_episodes += episodes
        return stats

    def _apply_compiled(
        self, fast: Any, messages: Sequence[Any], after: Callable[[int], None] | None
    ) -> L3FeedStats:
        """``apply_all``'s loop in compiled code (``bot4.sim._fastbook.apply_bitfinex``):
        same rules, same counts; it converts in C and needs no cache."""
        stats = self.stats
        counters = [0, 0, 0, 0, 0, 0, 0, 0, 0, self._was_crossed]
        fast(self.book, messages, to_raw_exact, self._other, after, counters, stats)
        added, kept, requeued, flipped, deletes, missed, crossed, locked, episodes, was = counters
        self._was_crossed = bool(was)
        self._count([added, kept, requeued, flipped])
        stats.updates += added + kept + requeued + flipped + deletes
        stats.deletes += deletes
        stats.deletes_hit += deletes - missed
        stats.deletes_missed += missed
        stats.crossed += crossed
        stats.locked += locked
        stats.crossed_episodes += episodes
        return stats

    def _other(self, msg: Any) -> None:
        """A message that is not a single-order update: a snapshot or an event."""
        body = msg[1] if type(msg) is list and len(msg) > 1 else None
        if type(body) is list and body and type(body[0]) is list:
            outcomes = [0, 0, 0, 0]
            for oid, price, amount in body:
                if not price:
                    raise ValidationError("snapshot", "lists live orders only", [oid, price])
                q = to_raw_exact(amount)
                outcomes[self.book.upsert(oid, q > 0, to_raw_exact(price), abs(q))] += 1
            self._count(outcomes)
            self.stats.snapshot_orders += len(body)
        else:
            self.stats.events += 1

    def _count(self, outcomes: list[int]) -> None:
        stats = self.stats
        stats.adds += outcomes[ADDED]
        stats.changes += outcomes[KEPT] + outcomes[REQUEUED] + outcomes[FLIPPED]
        stats.requeued += outcomes[REQUEUED] + outcomes[FLIPPED]
        stats.side_flips += outcomes[FLIPPED]
