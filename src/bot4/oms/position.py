"""Netting positions: one signed quantity per symbol, equal to what the fills delivered.

Cost basis is kept as an exact money integer.  Closing part of a position removes a
pro-rata share of the cost (rounded explicitly) and the rest stays, so that at every
step ``realized + unrealized == sum(-qty * price) + qty * mark`` holds exactly: no cent
is created or lost by rounding, only moved between realized and unrealized.
"""

from __future__ import annotations

from decimal import Decimal

from bot4.core.numbers import SCALE, Rounding, div_round, from_raw, money_from_raw, to_raw


class Position:
    __slots__ = ("cost_money", "fees_money", "qty_raw", "realized_money", "symbol", "trades")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.qty_raw = 0  # signed: > 0 long, < 0 short
        self.cost_money = 0  # signed, same sign as qty_raw
        self.realized_money = 0
        self.fees_money: dict[str, int] = {}
        self.trades = 0

    def apply_fill(
        self,
        signed_qty_raw: int,
        price_raw: int,
        fee_money: int = 0,
        fee_asset: str = "",
        fee_in_base: bool = False,
    ) -> None:
        """Fold one fill (``signed_qty_raw`` > 0 buys) into the position.

        A fee paid in the base asset (``fee_in_base``; it must be a whole number of
        1e-9 units) leaves the position as base delivered for nothing -- a trade at
        price 0 -- so the position stays equal to what the account holds and the fee
        lands in the P&L."""
        self.trades += 1
        if fee_money:
            self.fees_money[fee_asset] = self.fees_money.get(fee_asset, 0) + fee_money
        self._trade(signed_qty_raw, price_raw)
        if fee_in_base and fee_money:
            self._trade(-(fee_money // SCALE), 0)

    def _trade(self, q: int, price_raw: int) -> None:
        qty = self.qty_raw
        if qty == 0 or (qty > 0) == (q > 0):
            self.qty_raw = qty + q
            self.cost_money += q * price_raw
            return
        closing = -qty if abs(q) >= abs(qty) else q  # signed like q
        # Share of the cost leaving with the closed quantity: cost * (-closing / qty).
        removed = div_round(self.cost_money * -closing, qty, Rounding.TOWARD_ZERO)
        self.realized_money += -closing * price_raw - removed
        self.cost_money -= removed
        self.qty_raw = qty + closing
        opening = q - closing  # non-zero only when the fill flips the position
        if opening:
            # ``removed`` was the whole cost (exact division), so cost is 0 here.
            self.cost_money = opening * price_raw
            self.qty_raw = opening

    # -- valuation ----------------------------------------------------------------------
    def unrealized_money(self, mark_raw: int) -> int:
        return self.qty_raw * mark_raw - self.cost_money

    @property
    def quantity(self) -> Decimal:
        return from_raw(self.qty_raw)

    @property
    def avg_entry_price(self) -> Decimal | None:
        """Average entry price, rounded half-even to 1e-9 (display; P&L uses cost)."""
        if not self.qty_raw:
            return None
        return from_raw(div_round(self.cost_money, self.qty_raw, Rounding.HALF_EVEN))

    @property
    def realized_pnl(self) -> Decimal:
        return money_from_raw(self.realized_money)

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return money_from_raw(self.unrealized_money(to_raw(mark, "mark")))

    def snapshot(self) -> tuple[object, ...]:
        return (
            self.symbol,
            self.qty_raw,
            self.cost_money,
            self.realized_money,
            sorted(self.fees_money.items()),
            self.trades,
        )
