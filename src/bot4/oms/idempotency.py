"""A bounded store of recently seen keys (client order ids), by capacity and TTL.

Duplicates must be refused for as long as a venue could still confuse them, but a
process that runs for weeks must not grow without bound: entries leave the store when
they are older than ``ttl_ns`` or when the store is full (oldest first).  Insertion
order equals time order, so both evictions pop from the front of one dict: O(1)
amortised per operation.
"""

from __future__ import annotations


class BoundedTTLSet:
    __slots__ = ("_items", "capacity", "evicted", "ttl_ns")

    def __init__(self, capacity: int = 100_000, ttl_ns: int = 24 * 3600 * 10**9) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be > 0")
        if ttl_ns <= 0:
            raise ValueError("ttl_ns must be > 0")
        self.capacity = capacity
        self.ttl_ns = ttl_ns
        self._items: dict[str, int] = {}
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
            del self._items[next(iter(self._items))]
            self.evicted += 1
        self._items[key] = now_ns
        return True

    def _expire(self, now_ns: int) -> None:
        items = self._items
        horizon = now_ns - self.ttl_ns
        while items:
            first = next(iter(items))
            if items[first] > horizon:
                break
            del items[first]
            self.evicted += 1
