"""ccxt's markets, orders, trades and balances as exact bot4 values.

ccxt hands numbers over as binary floats; bot4's order path is exact.  So wherever the
venue's own payload (``info``) carries the decimal strings, they are read from there:
Binance's REST shapes, its create-order ``fills`` and its user-stream
``executionReport``/``outboundAccountPosition`` events.  For any other exchange the
floats are turned back into decimals through their shortest ``repr`` -- exact for every
value with at most 15 significant digits, which covers prices, sizes and fees as
venues publish them -- the same conversion ccxt itself does (``number_to_string``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from bot4.core.enums import LiquiditySide
from bot4.core.errors import ValidationError
from bot4.core.instrument import Instrument

TICK_SIZE, DECIMAL_PLACES = 4, 2  # ccxt's precision modes


def dec(value: Any) -> Decimal | None:
    """A decimal from a venue value: strings and ints exactly, floats through ``repr``."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                return None
            return Decimal(repr(value))
        return Decimal(str(value))
    except InvalidOperation:
        return None


def bot4_symbol(market: Mapping[str, Any]) -> str:
    """bot4's symbol for a ccxt market: BASE + QUOTE (Binance's ``BTCUSDT``)."""
    return f"{market['base']}{market['quote']}".upper()


# -- markets -------------------------------------------------------------------------------
def instrument_from_market(market: Mapping[str, Any], precision_mode: int) -> Instrument:
    """An Instrument with the market's filters, exact.  Binance's ``filters`` are read as
    published; otherwise ccxt's ``precision`` and ``limits``."""
    info = market.get("info") or {}
    filters = {f.get("filterType"): f for f in info.get("filters", ()) if isinstance(f, Mapping)}
    symbol = bot4_symbol(market)
    base, quote = str(market["base"]), str(market["quote"])
    if "PRICE_FILTER" in filters and "LOT_SIZE" in filters:
        pf, lot = filters["PRICE_FILTER"], filters["LOT_SIZE"]
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
        return Instrument.create(
            symbol,
            base,
            quote,
            _norm(pf["tickSize"]),
            _norm(lot["stepSize"]),
            min_qty=_norm(lot.get("minQty", "0")),
            max_qty=_norm(lot.get("maxQty", "0")),
            min_notional=_norm(notional.get("minNotional", "0")),
            max_notional=_norm(notional.get("maxNotional", "0")),
        )
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    tick = _precision(precision.get("price"), precision_mode, "price")
    step = _precision(precision.get("amount"), precision_mode, "amount")
    amount = limits.get("amount") or {}
    cost = limits.get("cost") or {}
    return Instrument.create(
        symbol,
        base,
        quote,
        tick,
        step,
        min_qty=_limit(amount.get("min")),
        max_qty=_limit(amount.get("max")),
        min_notional=_limit(cost.get("min")),
        max_notional=_limit(cost.get("max")),
    )


def _norm(value: Any) -> Decimal:
    d = dec(value)
    if d is None:
        raise ValidationError("market", "missing filter value", value)
    return d.normalize() if d else Decimal(0)


def _limit(value: Any) -> Decimal:
    d = dec(value)
    return Decimal(0) if d is None or d < 0 else d.normalize()


def _precision(value: Any, mode: int, field: str) -> Decimal:
    d = dec(value)
    if d is None or d <= 0:
        raise ValidationError(field, "the market publishes no precision", value)
    if mode == TICK_SIZE:
        return d.normalize()
    if mode == DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(d))
    raise ValidationError(field, "significant-digits precision is not supported", value)


# -- orders and fills ------------------------------------------------------------------------
class VenueStatus(StrEnum):
    OPEN = "OPEN"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"

    @property
    def is_open(self) -> bool:
        return self is VenueStatus.OPEN


_BINANCE_STATUS = {
    "NEW": VenueStatus.OPEN,
    "PENDING_NEW": VenueStatus.OPEN,
    "PARTIALLY_FILLED": VenueStatus.OPEN,
    "PENDING_CANCEL": VenueStatus.OPEN,
    "FILLED": VenueStatus.FILLED,
    "CANCELED": VenueStatus.CANCELED,
    "EXPIRED": VenueStatus.EXPIRED,
    "EXPIRED_IN_MATCH": VenueStatus.EXPIRED,
    "REJECTED": VenueStatus.REJECTED,
}
_CCXT_STATUS = {
    "open": VenueStatus.OPEN,
    "closed": VenueStatus.FILLED,
    "canceled": VenueStatus.CANCELED,
    "cancelled": VenueStatus.CANCELED,
    "expired": VenueStatus.EXPIRED,
    "rejected": VenueStatus.REJECTED,
}


@dataclass(frozen=True, slots=True)
class VenueFill:
    trade_id: str
    venue_order_id: str
    client_order_id: str  # "" when the venue's trade does not name it
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: LiquiditySide
    ts_ms: int


@dataclass(frozen=True, slots=True)
class VenueOrder:
    venue_order_id: str
    client_order_id: str
    status: VenueStatus
    filled: Decimal
    fills: tuple[VenueFill, ...] = ()  # fills the payload itself carries (create response)
    reason: str = ""


def parse_order(order: Mapping[str, Any]) -> VenueOrder:
    """A ccxt order (REST or websocket) as a VenueOrder."""
    info = order.get("info") or {}
    if "e" in info and info.get("e") == "executionReport":
        status = _BINANCE_STATUS.get(str(info.get("X")), VenueStatus.OPEN)
        cid = str(info.get("C") or info.get("c") or "")
        return VenueOrder(
            str(info.get("i")),
            cid,
            status,
            dec(info.get("z")) or Decimal(0),
            reason=str(info.get("r") or "") if status is VenueStatus.REJECTED else "",
        )
    if "orderId" in info and "status" in info:
        oid = str(info["orderId"])
        fills = tuple(
            VenueFill(
                str(f.get("tradeId")),
                oid,
                str(info.get("origClientOrderId") or info.get("clientOrderId") or ""),
                dec(f.get("qty")) or Decimal(0),
                dec(f.get("price")) or Decimal(0),
                dec(f.get("commission")) or Decimal(0),
                str(f.get("commissionAsset") or ""),
                LiquiditySide.TAKER,
                int(info.get("transactTime") or info.get("updateTime") or 0),
            )
            for f in info.get("fills") or ()
            if isinstance(f, Mapping)
        )
        return VenueOrder(
            oid,
            str(info.get("origClientOrderId") or info.get("clientOrderId") or ""),
            _BINANCE_STATUS.get(str(info["status"]), VenueStatus.OPEN),
            dec(info.get("executedQty")) or Decimal(0),
            fills,
        )
    status = _CCXT_STATUS.get(str(order.get("status") or "open"), VenueStatus.OPEN)
    filled = dec(order.get("filled")) or Decimal(0)
    return VenueOrder(str(order.get("id")), str(order.get("clientOrderId") or ""), status, filled)


def parse_fill(trade: Mapping[str, Any]) -> VenueFill:
    """A ccxt trade of our own (``fetch_my_trades``/``watch_my_trades``) as a VenueFill."""
    info = trade.get("info") or {}
    if info.get("e") == "executionReport":
        return VenueFill(
            str(info.get("t")),
            str(info.get("i")),
            str(info.get("c") or ""),
            dec(info.get("l")) or Decimal(0),
            dec(info.get("L")) or Decimal(0),
            dec(info.get("n")) or Decimal(0),
            str(info.get("N") or ""),
            LiquiditySide.MAKER if info.get("m") else LiquiditySide.TAKER,
            int(info.get("T") or 0),
        )
    if "commissionAsset" in info and "qty" in info and "orderId" in info:
        return VenueFill(
            str(info.get("id")),
            str(info.get("orderId")),
            "",
            dec(info.get("qty")) or Decimal(0),
            dec(info.get("price")) or Decimal(0),
            dec(info.get("commission")) or Decimal(0),
            str(info.get("commissionAsset") or ""),
            LiquiditySide.MAKER if info.get("isMaker") else LiquiditySide.TAKER,
            int(info.get("time") or 0),
        )
    fee = trade.get("fee") or {}
    return VenueFill(
        str(trade.get("id")),
        str(trade.get("order") or ""),
        str(trade.get("clientOrderId") or ""),
        dec(trade.get("amount")) or Decimal(0),
        dec(trade.get("price")) or Decimal(0),
        dec(fee.get("cost")) or Decimal(0),
        str(fee.get("currency") or ""),
        LiquiditySide.MAKER if trade.get("takerOrMaker") == "maker" else LiquiditySide.TAKER,
        int(trade.get("timestamp") or 0),
    )


def trade_price(trade: Mapping[str, Any]) -> Decimal | None:
    """A public trade's price, exact (Binance's ``p`` / ``price`` strings)."""
    info = trade.get("info") or {}
    return dec(info.get("p") or info.get("price")) if info else dec(trade.get("price"))


def parse_balances(balance: Mapping[str, Any]) -> dict[str, tuple[Decimal, Decimal]]:
    """(free, locked) per asset."""
    info = balance.get("info") or {}
    rows = info.get("balances") if isinstance(info, Mapping) else None
    if isinstance(rows, list):
        return {
            str(b["asset"]): (dec(b.get("free")) or Decimal(0), dec(b.get("locked")) or Decimal(0))
            for b in rows
            if isinstance(b, Mapping) and "asset" in b
        }
    out: dict[str, tuple[Decimal, Decimal]] = {}
    for asset, row in balance.items():
        if asset in ("info", "free", "used", "total", "timestamp", "datetime"):
            continue
        if isinstance(row, Mapping):
            out[str(asset)] = (
                dec(row.get("free")) or Decimal(0),
                dec(row.get("used")) or Decimal(0),
            )
    return out
