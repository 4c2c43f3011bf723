"""How bot4 speaks ccxt: order arguments, request weights, which errors mean what.

Small pure helpers of the adapter (``ccxt_venue``), kept apart so that the adapter
reads as the order logic it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import ccxt

from bot4.core.enums import OrderType
from bot4.core.errors import Bot4Error
from bot4.core.instrument import Instrument
from bot4.core.numbers import from_raw
from bot4.core.order import Order
from bot4.venues.ccxt_parse import bot4_symbol, instrument_from_market

MS = 1_000_000
# Binance request weights (spot, per endpoint); other venues weigh every call 1.
BINANCE_WEIGHTS: dict[str, int] = {
    "ping": 1,
    "markets": 20,
    "create": 1,
    "cancel": 1,
    "order": 4,
    "open_orders": 6,
    "my_trades": 20,
    "balance": 20,
    "ohlcv": 2,
    "ticker": 2,
}
WRITES = frozenset({"create", "cancel"})
_TYPES: dict[OrderType, tuple[str, str | None]] = {
    OrderType.MARKET: ("market", None),
    OrderType.LIMIT: ("limit", None),
    OrderType.STOP_MARKET: ("market", "stopLossPrice"),
    OrderType.STOP_LIMIT: ("limit", "stopLossPrice"),
    OrderType.TAKE_PROFIT: ("market", "takeProfitPrice"),
    OrderType.TAKE_PROFIT_LIMIT: ("limit", "takeProfitPrice"),
}


def plain(d: Decimal) -> str:
    """A decimal as venues want it: no exponent, no trailing zeros."""
    text = format(d.normalize(), "f")
    return text if text not in ("-0", "") else "0"


def is_connect_failure(exc: BaseException) -> bool:
    """The request never left: the TCP connection could not be opened."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        name = type(cur).__name__
        if name in ("ClientConnectorError", "ConnectionRefusedError") or "Cannot connect" in str(
            cur
        ):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def is_connection_loss(exc: BaseException) -> bool:
    """An error that says the venue is unreachable, not that one request was slow or
    refused: it sends the session into reconnect + reconcile."""
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded | ccxt.OnMaintenance):
        return False
    if isinstance(exc, ccxt.RequestTimeout):
        return False
    return isinstance(exc, (ccxt.NetworkError, OSError))


async def load_instruments(
    client: Any, symbols: list[str], attempts: int = 20, delay_s: float = 0.25
) -> tuple[dict[str, Instrument], dict[str, str]]:
    """(bot4 instruments, bot4 symbol -> ccxt symbol) for ``symbols`` (ccxt style
    ``BTC/USDT`` or bot4 style ``BTCUSDT``).  Retried: this runs before the risk engine
    (and so its breaker) exists, since the engine needs the instruments."""
    for n in range(attempts):
        try:
            await client.load_markets()
            break
        except (ccxt.NetworkError, OSError):
            if n == attempts - 1:
                raise
            await asyncio.sleep(delay_s)
    mode = int(getattr(client, "precisionMode", 4))
    by_bot4 = {bot4_symbol(m): m for m in client.markets.values() if m.get("spot", True)}
    instruments: dict[str, Instrument] = {}
    ccxt_of: dict[str, str] = {}
    for wanted in symbols:
        key = wanted.replace("/", "").replace("-", "").upper()
        market = client.markets.get(wanted) or by_bot4.get(key)
        if market is None:
            raise Bot4Error(f"{client.id} lists no spot market {wanted!r}")
        inst = instrument_from_market(market, mode)
        instruments[inst.symbol] = inst
        ccxt_of[inst.symbol] = str(market["symbol"])
    return instruments, ccxt_of


def request_weights(binance: bool, buckets: Mapping[str, Any], op: str) -> dict[str, int]:
    """What one request of kind ``op`` takes from each of the venue's buckets."""
    if binance and "request_weight" in buckets:
        w = {"request_weight": BINANCE_WEIGHTS.get(op, 1)}
        if op == "create":
            w.update({k: 1 for k in ("orders", "orders_day") if k in buckets})
        return w
    write = op in WRITES
    return {n: 1 for n in buckets if write or "order" not in n} or {next(iter(buckets)): 1}


def order_args(
    order: Order, ccxt_symbol: str
) -> tuple[str, str, str, str, str | None, dict[str, Any]]:
    """``create_order``'s arguments for a bot4 order, exact decimal strings."""
    kind, trigger_key = _TYPES[order.order_type]
    params: dict[str, Any] = {"clientOrderId": order.client_order_id}
    price = plain(from_raw(order.price_raw)) if order.order_type.has_price else None
    if trigger_key is not None:
        params[trigger_key] = plain(from_raw(order.trigger_raw))
    if kind == "limit":
        if order.post_only:
            params["postOnly"] = True
        else:
            params["timeInForce"] = order.time_in_force.value
    if order.display_qty_raw:
        params["icebergQty"] = plain(from_raw(order.display_qty_raw))
    return (
        ccxt_symbol,
        kind,
        order.side.value.lower(),
        plain(from_raw(order.quantity_raw)),
        price,
        params,
    )
