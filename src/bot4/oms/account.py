"""Cash balances per asset, free and locked, in exact money units (1e-18).

Funds move between free and locked when orders are accepted, filled, reduced or
cancelled (see ``bot4.oms.state``).  ``pending`` holds what orders that were sent but
not yet acknowledged will lock, so that a balance check before sending cannot
promise the same funds twice.
"""

from __future__ import annotations

from decimal import Decimal

from bot4.core.numbers import money_from_raw


class Balance:
    __slots__ = ("free", "locked")

    def __init__(self, free: int = 0, locked: int = 0) -> None:
        self.free = free
        self.locked = locked

    @property
    def total(self) -> int:
        return self.free + self.locked

    def __repr__(self) -> str:
        return f"Balance(free={money_from_raw(self.free)}, locked={money_from_raw(self.locked)})"


class Account:
    __slots__ = ("balances", "pending")

    def __init__(self) -> None:
        self.balances: dict[str, Balance] = {}
        self.pending: dict[str, int] = {}

    def balance(self, asset: str) -> Balance:
        bal = self.balances.get(asset)
        if bal is None:
            bal = self.balances[asset] = Balance()
        return bal

    def available(self, asset: str) -> int:
        """Free funds not yet promised to an order awaiting acknowledgement."""
        bal = self.balances.get(asset)
        return (bal.free if bal else 0) - self.pending.get(asset, 0)

    def add_free(self, asset: str, amount: int) -> None:
        self.balance(asset).free += amount

    def lock(self, asset: str, amount: int) -> None:
        bal = self.balance(asset)
        bal.free -= amount
        bal.locked += amount

    def unlock(self, asset: str, amount: int) -> None:
        self.lock(asset, -amount)

    def add_pending(self, asset: str, amount: int) -> None:
        left = self.pending.get(asset, 0) + amount
        if left:
            self.pending[asset] = left
        else:
            self.pending.pop(asset, None)

    # -- views --------------------------------------------------------------------------
    def free(self, asset: str) -> Decimal:
        bal = self.balances.get(asset)
        return money_from_raw(bal.free) if bal else Decimal(0)

    def locked(self, asset: str) -> Decimal:
        bal = self.balances.get(asset)
        return money_from_raw(bal.locked) if bal else Decimal(0)

    def total(self, asset: str) -> Decimal:
        bal = self.balances.get(asset)
        return money_from_raw(bal.total) if bal else Decimal(0)

    def snapshot(self) -> tuple[object, ...]:
        return (
            sorted((a, b.free, b.locked) for a, b in self.balances.items()),
            sorted(self.pending.items()),
        )
