"""The Bitfinex raw L3 feed applied to the book, checked after every one of its
100,000 messages against an independent rebuild (a dict of orders in Decimal, best
prices by max/min), plus the feed's rules on small hand-made message lists."""

from __future__ import annotations

import functools
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot4.core.errors import ValidationError
from bot4.core.numbers import from_raw
from bot4.sim.book import OrderBook
from bot4.sim.l3_feed import BitfinexL3Feed, load_bitfinex_raw, to_raw_exact
from tests.conftest import SHARED_DATA

L3_FILE = SHARED_DATA / "orderbook" / "misc" / "bitfinex_tBTCUSD_raw_L3_book_R0.json"


@functools.cache
def _load(path: Path) -> list[Any]:
    return load_bitfinex_raw(path)


def bitfinex_messages() -> list[Any]:
    # A missing file is a failure, not a skip: the data is part of the test.
    assert L3_FILE.is_file(), f"shared data file missing: {L3_FILE}"
    return _load(L3_FILE)


class Rebuild:
    """The obvious book: order id -> (price, amount) as Decimals from the JSON text."""

    def __init__(self) -> None:
        self.orders: dict[int, tuple[Decimal, Decimal]] = {}
        self.deletes = self.deletes_hit = 0

    def apply(self, oid: int, price: float, amount: float) -> None:
        if price == 0:
            self.deletes += 1
            if self.orders.pop(oid, None) is not None:
                self.deletes_hit += 1
        else:
            self.orders[oid] = (Decimal(str(price)), Decimal(str(amount)))

    def best(self, bids: bool) -> tuple[Decimal | None, Decimal]:
        prices = [p for p, a in self.orders.values() if (a > 0) is bids]
        if not prices:
            return None, Decimal(0)
        best = max(prices) if bids else min(prices)
        size = sum(abs(a) for p, a in self.orders.values() if p == best and (a > 0) is bids)
        return best, Decimal(size)


def test_bitfinex_feed_matches_an_independent_rebuild_after_every_message() -> None:
    messages = bitfinex_messages()
    assert len(messages) == 100_001
    assert [m.get("event") for m in messages[:2]] == ["info", "subscribed"]
    feed = BitfinexL3Feed(OrderBook("tBTCUSD"))
    ref = Rebuild()
    book = feed.book
    counts = {"crossed": 0, "locked": 0}
    checked = 0

    def compare(i: int) -> None:
        nonlocal checked
        msg = messages[i]
        if isinstance(msg, list):
            body = msg[1]
            for entry in body if isinstance(body[0], list) else [body]:
                ref.apply(*entry)
        bid, bid_size = ref.best(True)
        ask, ask_size = ref.best(False)
        got_bid, got_ask = book.best_bid(), book.best_ask()
        assert (None if got_bid is None else from_raw(got_bid)) == bid, i
        assert (None if got_ask is None else from_raw(got_ask)) == ask, i
        assert from_raw(book.best_bid_qty()) == bid_size, i
        assert from_raw(book.best_ask_qty()) == ask_size, i
        assert len(book) == len(ref.orders), i
        if bid is not None and ask is not None and bid >= ask:
            counts["crossed" if bid > ask else "locked"] += 1
        checked += 1

    stats = feed.apply_all(messages, compare)
    assert checked == len(messages)
    book.check()
    # every delete hit a live order, in the feed and in the rebuild
    assert stats.deletes == ref.deletes == 37_021
    assert stats.deletes_hit == ref.deletes_hit == stats.deletes and stats.deletes_missed == 0
    assert stats.snapshot_orders == 50 and stats.updates == 99_998 and stats.events == 2
    assert stats.adds + stats.changes + stats.deletes == stats.order_messages == 100_048
    # the feed is crossed or locked now and then: counted, and the same both ways
    assert (stats.crossed, stats.locked) == (counts["crossed"], counts["locked"])
    assert (stats.crossed, stats.locked, stats.crossed_episodes) == (6, 15, 2)
    # where it ends
    assert len(book) == 38
    assert from_raw(book.best_bid()) == Decimal("61391")  # type: ignore[arg-type]
    assert from_raw(book.best_bid_qty()) == Decimal("1")
    assert from_raw(book.best_ask()) == Decimal("61405.27923706")  # type: ignore[arg-type]
    assert from_raw(book.best_ask_qty()) == Decimal("0.12227")
    assert not book.is_crossed()


def test_applying_the_feed_in_two_parts_gives_the_same_book() -> None:
    """Applying the feed in two halves gives the same book as in one go."""
    messages = bitfinex_messages()
    whole = BitfinexL3Feed()
    whole.apply_all(messages)
    halves = BitfinexL3Feed()
    halves.apply_all(messages[:50_000])
    halves.apply_all(messages[50_000:])
    assert halves.book.snapshot() == whole.book.snapshot()
    assert halves.stats == whole.stats


def test_feed_rules_on_hand_made_messages() -> None:
    chan = 7
    messages: list[Any] = [
        {"event": "info"},
        [chan, [[1, 100.5, 2], [2, 100.5, 1], [3, 101, -1.5]]],  # snapshot
        [chan, "hb"],
        [chan, [1, 100.5, 1.5]],  # 1 reduced: keeps its place before 2
        [chan, [4, 100.5, 0.25]],
        [chan, [2, 100.5, 3]],  # 2 grows: behind 4
        [chan, [4, 100.4, 0.25]],  # 4 moves price
        [chan, [9, 0, 1]],  # delete of an unknown order: counted, not applied
        [chan, [3, 0, -1]],
        [chan, [5, 100.4, -0.1]],  # an ask below the best bid: a crossed book
        [chan, [1, 100.5, -1]],  # order 1 reappears as an ask: a new order
    ]
    feed = BitfinexL3Feed()
    book = feed.book
    seen: list[list[int]] = []
    feed.apply_all(
        messages[:6], lambda i: seen.append([o.order_id for o in book.side_orders(True)])
    )
    assert seen[-1] == [1, 4, 2] and seen[3] == [1, 2]
    assert book.get(1) is not None and book.get(1).qty == to_raw_exact(1.5)  # type: ignore[union-attr]
    stats = feed.apply_all(messages[6:])
    assert [o.order_id for o in book.side_orders(True)] == [2, 4]
    assert [o.order_id for o in book.side_orders(False)] == [5, 1]
    assert (stats.events, stats.snapshot_orders) == (2, 3)
    assert (stats.deletes, stats.deletes_missed) == (2, 1)
    assert (stats.side_flips, stats.requeued, stats.changes) == (1, 3, 4)
    assert stats.crossed == 2 and stats.crossed_episodes == 1
    book.check()


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        (0.1, 100_000_000),
        (1e-05, 10_000),
        (60940.35136398, 60_940_351_363_980),
        (-0.00239148, -2_391_480),
        (61390, 61_390_000_000_000),
        (0.000000001, 1),
    ],
)
def test_exact_conversion_from_json_numbers(value: float | int, raw: int) -> None:
    assert to_raw_exact(value) == raw


@pytest.mark.parametrize(
    "value", [1e-10, 0.1234567891, True, "1", None, float("nan"), float("inf")]
)
def test_conversion_refuses_what_is_not_exact(value: object) -> None:
    with pytest.raises(ValidationError):
        to_raw_exact(value)


def test_load_refuses_a_file_that_is_not_a_list(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"event": "info"}')
    with pytest.raises(ValidationError):
        load_bitfinex_raw(path)
