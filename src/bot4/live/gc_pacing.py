"""Garbage collection for a trading session: small, frequent and at idle moments.

CPython collects when allocations pass a threshold, wherever that happens -- usually in
the middle of the order path -- and each collection walks every tracked object of its
generations.  A trading session keeps what it builds (every order and its events stay
in ``TradingState``), so those generations only grow: measured with
``benchmarks/live_loop.py``'s loop, after 100,000 orders a single middle-generation
collection took **52 ms**, and the oldest generation's, when it comes, walks the whole
session.  That is a tick left waiting for tens of milliseconds, at a random moment.

Two pieces take that out of the order path:

* ``tune_gc`` (once the venue is ready): collect, then ``gc.freeze()`` everything built
  at start-up (markets, the journal's replay, ccxt, the imports) into the permanent
  generation that no collection walks, and raise the young threshold (700 -> 20,000
  container allocations) so a tick rarely pays for a young collection.
* ``GcPacer`` (a task on the event loop, so it runs between callbacks, when the loop
  has nothing else to do): every ``interval_s`` (50 ms) a young collection -- the
  garbage cycles made since the last step are freed -- then ``gc.freeze()`` of what
  survived, which is O(1) (a list splice).  The young generation stays small (a step
  costs what 50 ms of activity allocated: ~1.3 ms after 3,500 back-to-back orders, far
  less at a market's pace) and the older generations stay empty, so no large
  collection is ever due.

The price: an object frozen while alive that later becomes part of unreachable cycle
is not collected (reference counting still frees everything else).  In the order path
measured there was none (a full collection over the frozen objects found 0, every 10
steps), but network code can make such cycles; so every ``deep_every_s`` (1 hour) the
pacer unfreezes, collects everything and freezes again -- one full walk of the heap at
a scheduled idle moment instead of CPython's at random ones -- and logs what it found
and how long it took.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass

from bot4.core.errors import ValidationError

log = logging.getLogger(__name__)

GC_THRESHOLD0 = 20_000  # container allocations between young collections (CPython: 700)


def tune_gc(threshold0: int = GC_THRESHOLD0) -> tuple[int, int, int]:
    """Freeze everything built so far and make young collections rarer (see above).
    Measured (``benchmarks/live_loop.py``): the tick-to-order p99 drops ~15-20 µs.
    Returns the previous thresholds (``restore_gc``)."""
    gc.collect()
    gc.freeze()
    before = gc.get_threshold()
    gc.set_threshold(threshold0, before[1], before[2])
    return before


def restore_gc(thresholds: tuple[int, int, int]) -> None:
    """Undo ``tune_gc`` (a session that ends inside a longer-lived process, e.g. tests)."""
    gc.set_threshold(*thresholds)
    gc.unfreeze()


@dataclass(slots=True)
class GcStats:
    steps: int = 0
    step_max_ms: float = 0.0
    deep: int = 0
    deep_max_ms: float = 0.0
    deep_found: int = 0  # garbage the deep collections found among frozen objects

    def as_dict(self) -> dict[str, float]:
        return {
            "steps": self.steps,
            "step_max_ms": round(self.step_max_ms, 3),
            "deep": self.deep,
            "deep_max_ms": round(self.deep_max_ms, 3),
            "deep_found": self.deep_found,
        }


class GcPacer:
    """Young collection + freeze every ``interval_s``; a full one every ``deep_every_s``."""

    def __init__(self, interval_s: float = 0.05, deep_every_s: float = 3600.0) -> None:
        for field, value in (("interval_s", interval_s), ("deep_every_s", deep_every_s)):
            if not value > 0:  # (NaN too)
                raise ValidationError(field, "must be > 0 seconds", value)
        self.interval_s = interval_s
        self.deep_every_s = deep_every_s
        self.stats = GcStats()
        self._next_deep = time.monotonic() + deep_every_s

    def step(self) -> None:
        """One young collection, then everything that survived into the permanent
        generation (a full collection instead, when one is due)."""
        if not gc.isenabled():
            return  # the process switched collection off: not ours to run
        now = time.monotonic()
        if now >= self._next_deep:
            self._next_deep = now + self.deep_every_s
            self.deep()
            return
        t0 = time.perf_counter()
        gc.collect(0)
        gc.freeze()
        ms = (time.perf_counter() - t0) * 1000
        stats = self.stats
        stats.steps += 1
        if ms > stats.step_max_ms:
            stats.step_max_ms = ms

    def deep(self) -> int:
        """Collect everything, the frozen objects included, and freeze the survivors;
        returns how many unreachable objects were found."""
        t0 = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        ms = (time.perf_counter() - t0) * 1000
        stats = self.stats
        stats.deep += 1
        stats.deep_found += found
        stats.deep_max_ms = max(stats.deep_max_ms, ms)
        log.info("deep garbage collection: %d unreachable objects, %.1f ms", found, ms)
        return found

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.step()
