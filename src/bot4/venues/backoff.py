"""Exponential backoff with jitter, seeded: reconnects that neither hammer a venue that
is down nor wait long once it is back.

Delay n (from 0) is drawn uniformly from ``[d/2, d]`` with ``d = min(cap, base * 2**n)``
("equal jitter"): many clients that lost the venue at the same instant spread out, and
no delay is shorter than half its step.  The RNG is a ``random.Random(seed)``, so a test
sees the same sequence every run.  The cap is short by default (1 s): after an outage
the first allowed order waits for the next probe, so the cap bounds recovery time;
against a real exchange one cheap probe per second is far inside any rate limit.
"""

from __future__ import annotations

import random


class Backoff:
    __slots__ = ("attempt", "base_s", "cap_s", "rng")

    def __init__(self, base_s: float = 0.05, cap_s: float = 1.0, seed: int | None = None) -> None:
        if not 0 < base_s <= cap_s:
            raise ValueError("0 < base_s <= cap_s")
        self.base_s = base_s
        self.cap_s = cap_s
        self.rng = random.Random(seed)
        self.attempt = 0

    def next_delay(self) -> float:
        """The next delay in seconds; each call moves one step up."""
        d = min(self.cap_s, self.base_s * (2.0 ** min(self.attempt, 30)))
        self.attempt += 1
        return d / 2 + self.rng.random() * d / 2

    def reset(self) -> None:
        self.attempt = 0
