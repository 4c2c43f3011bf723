"""What the venue remembers about each client's orders and trades, in Binance's shapes.

The matching engine runs with ``retain_closed=False`` (the market maker places and
cancels orders forever; keeping every closed one would grow without bound).  Clients
still need ``GET order`` on a filled order and ``myTrades`` to reconcile, so this store
keeps, per client account, every open order and a bounded window of closed orders and
trades, all folded from the engine's execution reports, the same events the user-data
stream pushes.  Internal accounts (market maker, replay) are not recorded.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

from bot4.core.enums import LiquiditySide, OrderSide, OrderType, TimeInForce
from bot4.server.formats import fmt_money, fmt_raw, ms
from bot4.sim.matching_types import (
    ExecType,
    ExecutionReport,
    NewOrder,
    SimStatus,
    binance_order_type,
)

_MAKER = LiquiditySide.MAKER
_BUY = OrderSide.BUY
_TRADE = ExecType.TRADE
_TRIGGERED = ExecType.TRIGGERED


class OrderRecord:
    """One client order as Binance's ``GET order`` shows it (raw integers inside)."""

    __slots__ = (
        "account",
        "client_order_id",
        "cum_quote",
        "executed",
        "iceberg",
        "order_id",
        "order_type",
        "orig_qty",
        "post_only",
        "price",
        "quote_qty",
        "side",
        "status",
        "stp",
        "symbol",
        "tif",
        "time_ns",
        "trigger",
        "update_ns",
        "working",
        "working_ns",
    )

    def __init__(self, r: ExecutionReport, req: NewOrder | None, stp: str) -> None:
        self.order_id = r.order_id
        self.account = r.account
        self.symbol = r.symbol
        self.client_order_id = r.client_order_id
        self.side = r.side
        self.order_type = r.order_type
        self.post_only = r.post_only
        self.tif = r.time_in_force
        self.price = r.price_raw
        self.trigger = r.trigger_raw
        self.iceberg = req.display_qty_raw if req is not None else 0
        self.quote_qty = req.quote_qty_raw if req is not None else 0
        self.stp = stp
        self.orig_qty = r.orig_qty_raw
        self.executed = r.executed_qty_raw
        self.cum_quote = r.cum_quote_money
        self.status = r.status
        self.time_ns = r.ts
        self.update_ns = r.ts
        self.working = not r.order_type.has_trigger
        self.working_ns = r.ts if self.working else -1

    def apply(self, r: ExecutionReport) -> None:
        self.orig_qty = r.orig_qty_raw
        self.executed = r.executed_qty_raw
        self.cum_quote = r.cum_quote_money
        self.status = r.status
        self.update_ns = r.ts
        if r.exec_type is _TRIGGERED:
            self.working = True
            self.working_ns = r.ts

    @property
    def type_name(self) -> str:
        return binance_order_type(self.order_type, self.post_only)

    def to_json(self) -> dict[str, Any]:
        """``GET order`` / ``openOrders`` / ``allOrders`` element."""
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": fmt_raw(self.price),
            "origQty": fmt_raw(self.orig_qty),
            "executedQty": fmt_raw(self.executed),
            "cummulativeQuoteQty": fmt_money(self.cum_quote),
            "status": self.status.value,
            "timeInForce": self.tif.value,
            "type": self.type_name,
            "side": self.side.value,
            "stopPrice": fmt_raw(self.trigger),
            "icebergQty": fmt_raw(self.iceberg),
            "time": ms(self.time_ns),
            "updateTime": ms(self.update_ns),
            "isWorking": self.working,
            "workingTime": ms(self.working_ns) if self.working_ns >= 0 else -1,
            "origQuoteOrderQty": fmt_raw(self.quote_qty),
            "selfTradePreventionMode": self.stp,
        }

    def to_state(self) -> list[Any]:
        return [
            self.order_id,
            self.account,
            self.symbol,
            self.client_order_id,
            self.side.value,
            self.order_type.value,
            self.post_only,
            self.tif.value,
            self.price,
            self.trigger,
            self.iceberg,
            self.quote_qty,
            self.stp,
            self.orig_qty,
            self.executed,
            self.cum_quote,
            self.status.value,
            self.time_ns,
            self.update_ns,
            self.working,
            self.working_ns,
        ]

    @classmethod
    def from_state(cls, v: list[Any]) -> OrderRecord:
        rec = cls.__new__(cls)
        (
            rec.order_id,
            rec.account,
            rec.symbol,
            rec.client_order_id,
            side,
            otype,
            rec.post_only,
            tif,
            rec.price,
            rec.trigger,
            rec.iceberg,
            rec.quote_qty,
            rec.stp,
            rec.orig_qty,
            rec.executed,
            rec.cum_quote,
            status,
            rec.time_ns,
            rec.update_ns,
            rec.working,
            rec.working_ns,
        ) = v
        rec.side = OrderSide(side)
        rec.order_type = OrderType(otype)
        rec.tif = TimeInForce(tif)
        rec.status = SimStatus(status)
        return rec


class TradeRecord:
    """One fill of a client order: a ``myTrades`` element."""

    __slots__ = (
        "commission",
        "commission_asset",
        "is_buyer",
        "is_maker",
        "order_id",
        "price",
        "qty",
        "quote",
        "symbol",
        "time_ns",
        "trade_id",
    )

    def __init__(self, *values: Any) -> None:
        (
            self.symbol,
            self.trade_id,
            self.order_id,
            self.price,
            self.qty,
            self.quote,
            self.commission,
            self.commission_asset,
            self.time_ns,
            self.is_buyer,
            self.is_maker,
        ) = values

    @classmethod
    def from_report(cls, r: ExecutionReport) -> TradeRecord:
        return cls(
            r.symbol,
            r.trade_id,
            r.order_id,
            r.last_price_raw,
            r.last_qty_raw,
            r.last_price_raw * r.last_qty_raw,
            r.fee_money,
            r.fee_asset,
            r.ts,
            r.side is _BUY,
            r.liquidity is _MAKER,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "id": self.trade_id,
            "orderId": self.order_id,
            "orderListId": -1,
            "price": fmt_raw(self.price),
            "qty": fmt_raw(self.qty),
            "quoteQty": fmt_money(self.quote),
            "commission": fmt_money(self.commission),
            "commissionAsset": self.commission_asset,
            "time": ms(self.time_ns),
            "isBuyer": self.is_buyer,
            "isMaker": self.is_maker,
            "isBestMatch": True,
        }

    def to_state(self) -> list[Any]:
        return [getattr(self, name) for name in _TRADE_FIELDS]


_TRADE_FIELDS = (
    "symbol",
    "trade_id",
    "order_id",
    "price",
    "qty",
    "quote",
    "commission",
    "commission_asset",
    "time_ns",
    "is_buyer",
    "is_maker",
)


class AccountHistory:
    """Open orders, recent closed orders and recent trades of one client account."""

    __slots__ = ("by_client_id", "closed", "max_closed", "open", "trades")

    def __init__(self, max_closed: int = 50_000, max_trades: int = 100_000) -> None:
        self.open: dict[int, OrderRecord] = {}
        self.closed: OrderedDict[int, OrderRecord] = OrderedDict()
        self.by_client_id: dict[str, int] = {}
        self.trades: deque[TradeRecord] = deque(maxlen=max_trades)
        self.max_closed = max_closed

    def get(self, order_id: int | None, client_order_id: str) -> OrderRecord | None:
        if order_id is None:
            order_id = self.by_client_id.get(client_order_id)
            if order_id is None:
                return None
        rec = self.open.get(order_id) or self.closed.get(order_id)
        if rec is not None and client_order_id and rec.client_order_id != client_order_id:
            return None
        return rec

    def apply(self, r: ExecutionReport, req: NewOrder | None, stp: str) -> None:
        oid = r.order_id
        rec = self.open.get(oid)
        if rec is None:
            rec = self.closed.get(oid)
            if rec is None:
                rec = OrderRecord(r, req, stp)
                self.by_client_id[rec.client_order_id] = oid
        rec.apply(r)
        if r.exec_type is _TRADE:
            self.trades.append(TradeRecord.from_report(r))
        if r.status.is_open:
            self.open[oid] = rec
        elif self.open.pop(oid, None) is not None or oid not in self.closed:
            self._close(rec)

    def _close(self, rec: OrderRecord) -> None:
        self.closed[rec.order_id] = rec
        while len(self.closed) > self.max_closed:
            _, old = self.closed.popitem(last=False)
            if self.by_client_id.get(old.client_order_id) == old.order_id:
                del self.by_client_id[old.client_order_id]

    def to_state(self) -> dict[str, Any]:
        return {
            "open": [r.to_state() for r in self.open.values()],
            "closed": [r.to_state() for r in self.closed.values()],
            "trades": [t.to_state() for t in self.trades],
        }

    def load_state(self, data: dict[str, Any]) -> None:
        for v in data.get("closed", []):
            rec = OrderRecord.from_state(v)
            self.by_client_id[rec.client_order_id] = rec.order_id
            self._close(rec)
        for v in data.get("open", []):
            rec = OrderRecord.from_state(v)
            self.open[rec.order_id] = rec
            self.by_client_id[rec.client_order_id] = rec.order_id
        for v in data.get("trades", []):
            self.trades.append(TradeRecord(*v))


def execution_report_event(
    r: ExecutionReport, rec: OrderRecord | None, now_ms: int
) -> dict[str, Any]:
    """The user-data stream's ``executionReport`` for one engine report."""
    is_trade = r.exec_type is _TRADE
    type_name = r.binance_order_type
    canceled = r.exec_type is ExecType.CANCELED
    return {
        "e": "executionReport",
        "E": now_ms,
        "s": r.symbol,
        "c": r.client_order_id,
        "S": r.side.value,
        "o": type_name,
        "f": r.time_in_force.value,
        "q": fmt_raw(r.orig_qty_raw),
        "p": fmt_raw(r.price_raw),
        "P": fmt_raw(r.trigger_raw),
        "F": fmt_raw(rec.iceberg if rec is not None else 0),
        "g": -1,
        "C": r.client_order_id if canceled else "",
        "x": r.exec_type.binance,
        "X": r.status.value,
        "r": "NONE",
        "i": r.order_id,
        "l": fmt_raw(r.last_qty_raw),
        "z": fmt_raw(r.executed_qty_raw),
        "L": fmt_raw(r.last_price_raw),
        "n": fmt_money(r.fee_money) if is_trade else "0",
        "N": r.fee_asset if is_trade else None,
        "T": ms(r.ts),
        "t": r.trade_id,
        "I": r.seq,
        "w": bool(rec is not None and rec.working and r.status.is_open and r.price_raw),
        "m": r.liquidity is _MAKER,
        "M": False,
        "O": ms(rec.time_ns) if rec is not None else ms(r.ts),
        "Z": fmt_money(r.cum_quote_money),
        "Y": fmt_money(r.last_price_raw * r.last_qty_raw),
        "Q": fmt_raw(rec.quote_qty if rec is not None else 0),
        "W": ms(rec.working_ns) if rec is not None and rec.working_ns >= 0 else ms(r.ts),
        "V": rec.stp if rec is not None else "NONE",
    }
