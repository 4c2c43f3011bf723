"""What a strategy's data handlers receive, the same in backtests, paper and live.

``on_trade(Tick)``: one public trade.  ``on_quote(Quote)``: the best bid and ask.
``on_book(dict)``: an order book in ccxt's shape (``symbol`` as ``BASE/QUOTE``,
``bids``/``asks`` as ``[price, amount]`` lists of floats, best first, ``timestamp`` in
ms), because that is what ccxt.pro's ``watch_order_book`` gives live, so one strategy
reads both.  Prices in ticks and quotes are exact Decimals, as everywhere an order may
be priced from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot4.core.frozen import fast_frozen_init


@fast_frozen_init  # one per trade, in live and in tick backtests
@dataclass(frozen=True, slots=True)
class Tick:
    """One market trade.  ``qty`` and ``side`` (the taker's, ``"BUY"``/``"SELL"``) are
    None where the source does not carry them."""

    symbol: str
    price: Decimal
    ts_ns: int
    qty: Decimal | None = None
    side: str | None = None


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Quote:
    """The best bid and ask."""

    symbol: str
    ts_ns: int
    bid: Decimal
    bid_qty: Decimal
    ask: Decimal
    ask_qty: Decimal


def book_dict(
    symbol: str, ts_ns: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]]
) -> dict[str, Any]:
    """A book of raw levels (1e-9 units) in ccxt's ``watch_order_book`` shape."""
    scale = 1e9
    return {
        "symbol": symbol,
        "bids": [[p / scale, q / scale] for p, q in bids],
        "asks": [[p / scale, q / scale] for p, q in asks],
        "timestamp": ts_ns // 1_000_000,
        "datetime": None,
        "nonce": None,
    }
