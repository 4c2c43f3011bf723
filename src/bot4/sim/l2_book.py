"""Aggregated price-level (L2) book and Binance's snapshot-plus-diff synchroniser.

``L2Book`` keeps one ``dict`` per side (price raw -> quantity raw) for O(1) level
updates and a lazy heap per side for the best price: a removed level stays in the heap
until it reaches the top and is found missing from the dict.  Reading the best level is
therefore amortised O(1) and an update is O(log n) only when it creates a level; the
heap is rebuilt when stale entries outnumber live ones, so memory stays bounded.

``BinanceDepthSync`` implements Binance's documented procedure for a local book:

1. buffer the diffs of the stream;
2. load a REST snapshot (``lastUpdateId`` = L);
3. drop buffered diffs that the snapshot already contains
   (spot: ``u <= L``; USDT-M futures: ``u < L``);
4. the first applied diff must bridge the snapshot
   (spot: ``U <= L + 1 <= u``; futures: ``pu <= L <= u``, see below);
5. every later diff must continue the sequence
   (spot: ``U == previous u + 1``; futures: ``pu == previous u``);
6. on a break: record a ``SyncGap``, mark the book out of sync and buffer again until a
   new snapshot arrives (step 2).  Quantity 0 removes a level.

Futures update ids are shared by all symbols, so consecutive diffs of one symbol leave
holes between ``pu`` and ``U``.  Binance's futures guide asks for ``U <= L <= u``; we
accept ``pu <= L <= u``, which is the same when L falls inside a diff and also accepts a
snapshot taken in a hole between two diffs (all updates in the hole belong to other
symbols, so the book at L equals the book at ``pu``).  Applying a diff whose updates
the snapshot already contains is harmless: quantities are absolute.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from bot4.core.enums import OrderSide
from bot4.sim.binance_capture import DepthDiff, DepthSnapshot, Level, Market

__all__ = [
    "BinanceDepthSync",
    "DiffOutcome",
    "L2Book",
    "SyncGap",
    "SyncState",
]


class L2Book:
    """Price level -> total quantity, per side, with fast best bid/ask.

    Prices and quantities are raw ints (1e-9 units).  Setting a quantity of 0 removes
    the level; the book never stores empty levels.
    """

    __slots__ = ("_ask_heap", "_bid_heap", "asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self._bid_heap: list[int] = []  # negated prices: heapq is a min-heap
        self._ask_heap: list[int] = []

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._bid_heap.clear()
        self._ask_heap.clear()

    def load(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the whole book (e.g. with a snapshot); zero quantities are skipped."""
        self.clear()
        self.bids.update((p, q) for p, q in bids if q > 0)
        self.asks.update((p, q) for p, q in asks if q > 0)
        self._bid_heap = [-p for p in self.bids]
        self._ask_heap = list(self.asks)
        heapq.heapify(self._bid_heap)
        heapq.heapify(self._ask_heap)

    def set_bid(self, price: int, qty: int) -> None:
        bids = self.bids
        if qty > 0:
            if price not in bids:
                heapq.heappush(self._bid_heap, -price)
                if len(self._bid_heap) > 2 * len(bids) + 64:
                    self._bid_heap = [-p for p in bids]
                    self._bid_heap.append(-price)
                    heapq.heapify(self._bid_heap)
            bids[price] = qty
        else:
            bids.pop(price, None)

    def set_ask(self, price: int, qty: int) -> None:
        asks = self.asks
        if qty > 0:
            if price not in asks:
                heapq.heappush(self._ask_heap, price)
                if len(self._ask_heap) > 2 * len(asks) + 64:
                    self._ask_heap = list(asks)
                    self._ask_heap.append(price)
                    heapq.heapify(self._ask_heap)
            asks[price] = qty
        else:
            asks.pop(price, None)

    def set(self, side: OrderSide, price: int, qty: int) -> None:
        """Set one level: ``side`` BUY is the bid side, SELL the ask side."""
        if side is OrderSide.BUY:
            self.set_bid(price, qty)
        else:
            self.set_ask(price, qty)

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Apply absolute level quantities (a diff's ``b`` and ``a``)."""
        for price, qty in bids:
            self.set_bid(price, qty)
        for price, qty in asks:
            self.set_ask(price, qty)

    def best_bid(self) -> Level | None:
        heap, bids = self._bid_heap, self.bids
        while heap:
            price = -heap[0]
            qty = bids.get(price)
            if qty is not None:
                return price, qty
            heapq.heappop(heap)
        return None

    def best_ask(self) -> Level | None:
        heap, asks = self._ask_heap, self.asks
        while heap:
            price = heap[0]
            qty = asks.get(price)
            if qty is not None:
                return price, qty
            heapq.heappop(heap)
        return None

    def qty_at(self, side: OrderSide, price: int) -> int:
        return (self.bids if side is OrderSide.BUY else self.asks).get(price, 0)

    def depth(self, side: OrderSide, n: int | None = None) -> list[Level]:
        """The best ``n`` levels of a side (all if None), best first."""
        if side is OrderSide.BUY:
            prices = sorted(self.bids, reverse=True) if n is None else heapq.nlargest(n, self.bids)
            return [(p, self.bids[p]) for p in prices]
        prices = sorted(self.asks) if n is None else heapq.nsmallest(n, self.asks)
        return [(p, self.asks[p]) for p in prices]

    def is_crossed(self) -> bool:
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid[0] >= ask[0]


class SyncState(StrEnum):
    AWAITING_SNAPSHOT = "AWAITING_SNAPSHOT"  # buffering diffs, no snapshot yet
    SYNCING = "SYNCING"  # snapshot loaded, waiting for the diff that bridges it
    LIVE = "LIVE"  # every diff applied in sequence: the book is exact
    OUT_OF_SYNC = "OUT_OF_SYNC"  # a gap was seen: buffering until the next snapshot


class DiffOutcome(StrEnum):
    APPLIED = "APPLIED"
    BUFFERED = "BUFFERED"
    DROPPED = "DROPPED"  # already contained in the snapshot / book
    GAP = "GAP"


@dataclass(frozen=True, slots=True)
class SyncGap:
    """A break in the update-id sequence; the book was marked out of sync."""

    local_ns: int
    last_update_id: int  # the book's last applied (or snapshot) update id
    expected: int  # spot: the U that would have continued; futures: the pu
    first_update_id: int  # U of the offending diff
    final_update_id: int  # u of the offending diff
    prev_final_update_id: int | None
    reason: str


class BinanceDepthSync:
    """Keeps an ``L2Book`` equal to Binance's book by the snapshot-plus-diff procedure.

    Feed it every diff (``on_diff``) and every snapshot (``on_snapshot``) in receive
    order.  ``is_live`` says whether the book is currently exact; after a gap it stays
    False (fail closed) until a later snapshot is bridged.  The book keeps its last
    state while out of sync, so a caller can still show it, but must not trade on it.
    """

    __slots__ = (
        "_buffer",
        "_on_gap",
        "applied",
        "book",
        "dropped",
        "gaps",
        "last_diff",
        "last_update_id",
        "market",
        "snapshots_ignored",
        "snapshots_loaded",
        "state",
    )

    def __init__(
        self,
        market: Market,
        *,
        max_buffer: int = 100_000,
        on_gap: Callable[[SyncGap], None] | None = None,
    ) -> None:
        if max_buffer < 1:
            raise ValueError("max_buffer must be >= 1")
        self.market = market
        self.book = L2Book()
        self.state = SyncState.AWAITING_SNAPSHOT
        self.last_update_id: int | None = None
        self.last_diff: DepthDiff | None = None
        self.gaps: list[SyncGap] = []
        self.applied = 0
        self.dropped = 0
        self.snapshots_loaded = 0
        self.snapshots_ignored = 0
        self._buffer: deque[DepthDiff] = deque(maxlen=max_buffer)
        self._on_gap = on_gap

    @property
    def is_live(self) -> bool:
        return self.state is SyncState.LIVE

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def mark_out_of_sync(self) -> None:
        """Force a resync (e.g. after a reconnect): buffer until the next snapshot."""
        self.state = SyncState.OUT_OF_SYNC
        self._buffer.clear()

    def on_snapshot(self, snapshot: DepthSnapshot) -> SyncState:
        """Load a snapshot unless the book is live, then replay the buffered diffs."""
        if self.state is SyncState.LIVE:
            self.snapshots_ignored += 1
            return self.state
        self.book.load(snapshot.bids, snapshot.asks)
        self.last_update_id = snapshot.last_update_id
        self.last_diff = None
        self.snapshots_loaded += 1
        self.state = SyncState.SYNCING
        pending = list(self._buffer)
        self._buffer.clear()
        for i, diff in enumerate(pending):
            self._on_diff_syncing(diff)
            if self.state is SyncState.OUT_OF_SYNC:
                # Not bridged: the offending diff is already buffered again; keep the
                # rest after it for the next snapshot.
                self._buffer.extend(pending[i + 1 :])
                break
        return self.state

    def on_diff(self, diff: DepthDiff) -> DiffOutcome:
        state = self.state
        if state is SyncState.LIVE:
            last = self.last_update_id
            assert last is not None
            if diff.final_update_id <= last:
                self.dropped += 1
                return DiffOutcome.DROPPED
            if self.market is Market.SPOT:
                expected = last + 1
                continuous = diff.first_update_id == expected
            else:
                expected = last
                continuous = diff.prev_final_update_id == expected
            if continuous:
                self._apply(diff)
                return DiffOutcome.APPLIED
            self._gap(diff, expected, "sequence gap")
            self._buffer.append(diff)
            return DiffOutcome.GAP
        if state is SyncState.SYNCING:
            return self._on_diff_syncing(diff)
        self._buffer.append(diff)
        return DiffOutcome.BUFFERED

    def _on_diff_syncing(self, diff: DepthDiff) -> DiffOutcome:
        last = self.last_update_id
        assert last is not None
        if self.market is Market.SPOT:
            stale = diff.final_update_id <= last
            start = diff.first_update_id
            bridges = start <= last + 1 <= diff.final_update_id
            expected = last + 1
        else:
            stale = diff.final_update_id < last
            start = (
                diff.prev_final_update_id
                if diff.prev_final_update_id is not None
                else diff.first_update_id
            )
            bridges = start <= last <= diff.final_update_id
            expected = last
        if stale:
            self.dropped += 1
            return DiffOutcome.DROPPED
        if bridges:
            self._apply(diff)
            self.state = SyncState.LIVE
            return DiffOutcome.APPLIED
        self._gap(diff, expected, "snapshot older than the first diff after it")
        self._buffer.append(diff)
        return DiffOutcome.GAP

    def _apply(self, diff: DepthDiff) -> None:
        book = self.book
        for price, qty in diff.bids:
            book.set_bid(price, qty)
        for price, qty in diff.asks:
            book.set_ask(price, qty)
        self.last_update_id = diff.final_update_id
        self.last_diff = diff
        self.applied += 1

    def _gap(self, diff: DepthDiff, expected: int, reason: str) -> None:
        assert self.last_update_id is not None
        gap = SyncGap(
            local_ns=diff.local_ns,
            last_update_id=self.last_update_id,
            expected=expected,
            first_update_id=diff.first_update_id,
            final_update_id=diff.final_update_id,
            prev_final_update_id=diff.prev_final_update_id,
            reason=reason,
        )
        self.gaps.append(gap)
        self.state = SyncState.OUT_OF_SYNC
        self._buffer.clear()
        if self._on_gap is not None:
            self._on_gap(gap)
