"""The issue's yardstick for the L3 figure: a plain dict-of-levels book, no queue priority.

#3 puts bot4's L3 target next to three numbers measured on this kind of machine:
NautilusTrader's Rust book (about 1.25 M msgs/s from parsed JSON), its apply loop alone
(5.5 M/s) and "a plain dict-of-levels book without queue priority" (about 3 M/s).  The
machines here vary by +-20 % from run to run (../shared/docs/peers.md), so an absolute
rate alone says little; this book, run on the same parsed messages in the same process
and alternated with bot4's feed, turns each run's L3 rate into a ratio that holds.

What it does, and deliberately no more: per order id the price and the signed amount as
the JSON gave them (floats, unconverted); per side a dict ``price -> [amount, count]``.
A change removes the old entry and adds the new one; a level goes when its last order
does (its count reaches zero -- the float sums themselves never return exactly to 0).
It keeps no queue, no sorted prices, no exact numbers, no statistics: everything bot4's
book adds to this is what the ratio prices.  It ends in the same book as bot4's
(``final_book`` is compared by the benchmark), so it cannot be fast by being wrong.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

Levels = dict[Any, list[Any]]


def apply_plain(messages: list[Any]) -> tuple[dict[Any, tuple[Any, Any]], Levels, Levels]:
    """Every message of a raw Bitfinex R0 capture, applied; returns (orders, bids, asks)."""
    orders: dict[Any, tuple[Any, Any]] = {}
    bids: Levels = {}
    asks: Levels = {}
    for msg in messages:
        if type(msg) is not list:
            continue  # an event dict
        body = msg[1]
        if type(body) is not list:
            continue  # a heartbeat
        for oid, price, amount in body if type(body[0]) is list else (body,):
            old = orders.pop(oid, None)
            if old is not None:
                levels = bids if old[1] > 0 else asks
                level = levels[old[0]]
                if level[1] == 1:
                    del levels[old[0]]
                else:
                    level[0] -= old[1]
                    level[1] -= 1
            if price:
                orders[oid] = (price, amount)
                levels = bids if amount > 0 else asks
                level = levels.get(price)
                if level is None:
                    levels[price] = [amount, 1]
                else:
                    level[0] += amount
                    level[1] += 1
    return orders, bids, asks


def final_book(messages: list[Any]) -> tuple[int, Decimal, Decimal]:
    """(orders, best bid, best ask) after the whole capture, prices as exact decimals."""
    orders, bids, asks = apply_plain(messages)
    return len(orders), Decimal(repr(max(bids))), Decimal(repr(min(asks)))
