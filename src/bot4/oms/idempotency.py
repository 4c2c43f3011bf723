"""A bounded store of recently seen keys (client order ids), by capacity and TTL.

Duplicates must be refused for as long as a venue could still confuse them, but a
process that runs for weeks must not grow without bound: entries leave the store when
they are older than ``ttl_ns`` or when the store is full (oldest first).  Insertion
order equals time order, so both evictions pop from the front of a queue: O(1)
amortised per operation.  (Not ``next(iter(dict))``: a dict keeps the slots of deleted
keys until it resizes, so finding its first live key after many deletions is O(n).)
"""

from __future__ import annotations

from collections import deque


class BoundedTTLSet:
    __slots__ = ("_items", "_order", "capacity", "evicted", "ttl_ns")

    def __init__(self, capacity: int = 100_000, ttl_ns: int = 24 * 3600 * 10**9) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be > 0")
        if ttl_ns <= 0:
            raise ValueError("ttl_ns must be > 0")
        self.capacity = capacity
        self.ttl_ns = ttl_ns
        self._items: dict[str, int] = {}
        self._order: deque[tuple[int, str]] = deque()  # (time added, key), oldest first
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def contains(self, key: str, now_ns: int) -> bool:
        self._expire(now_ns)
        return key in self._items

    def add(self, key: str, now_ns: int) -> bool:
        """Remember ``key``; False (and nothing changes) if it is already present."""
        self._expire(now_ns)
        if key in self._items:
            return False
        if len(self._items) >= self.capacity:
            _, oldest = self._order.popleft()
            del self._items[oldest]
            self.evicted += 1
        self._items[key] = now_ns
        self._order.append((now_ns, key))
        return True

    def _expire(self, now_ns: int) -> None:
        order = self._order
        horizon = now_ns - self.ttl_ns
        while order and order[0][0] <= horizon:
            _, key = order.popleft()
            del self._items[key]
            self.evicted += 1
