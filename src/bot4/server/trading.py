"""The signed trading endpoints' logic, free of HTTP: parse, check, execute, answer.

A new order passes, in Binance's order: the parameter rules of its type (mandatory and
forbidden parameters), the published filters (PRICE_FILTER, LOT_SIZE, NOTIONAL), then
the matching engine, which re-validates everything and checks funds.  Every check runs
before anything changes, so a refused request leaves no trace.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from bot4.core.enums import OrderSide, OrderType, TimeInForce
from bot4.core.errors import InstrumentRuleViolation
from bot4.core.numbers import SCALE
from bot4.server.exchange import Exchange
from bot4.server.formats import fmt_money, fmt_raw, ms
from bot4.server.orders import AccountHistory, OrderRecord
from bot4.server.params import Params
from bot4.sim.errors import (
    BinanceError,
    EitherParameter,
    FilterFailure,
    MandatoryParameter,
    ParameterNotRequired,
    UnsupportedOrderCombination,
    from_bot4_error,
)
from bot4.sim.matching_checks import validate
from bot4.sim.matching_types import ExecType, ExecutionReport, NewOrder, SelfTradePrevention

SIDES: Final = {"BUY": OrderSide.BUY, "SELL": OrderSide.SELL}
ORDER_TYPES: Final = {
    "LIMIT": (OrderType.LIMIT, False),
    "MARKET": (OrderType.MARKET, False),
    "STOP_LOSS": (OrderType.STOP_MARKET, False),
    "STOP_LOSS_LIMIT": (OrderType.STOP_LIMIT, False),
    "TAKE_PROFIT": (OrderType.TAKE_PROFIT, False),
    "TAKE_PROFIT_LIMIT": (OrderType.TAKE_PROFIT_LIMIT, False),
    "LIMIT_MAKER": (OrderType.LIMIT, True),
}
TIFS: Final = {t.value: t for t in TimeInForce}
STP_MODES: Final = {m.value: m for m in SelfTradePrevention}
RESP_TYPES: Final = {"ACK": "ACK", "RESULT": "RESULT", "FULL": "FULL"}
_NEEDS_TIF: Final = frozenset({"LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"})
_NEEDS_PRICE: Final = _NEEDS_TIF | {"LIMIT_MAKER"}
_NEEDS_STOP: Final = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
_UNSUPPORTED: Final = ("trailingDelta", "pegPriceType", "pegOffsetValue", "pegOffsetType")
_TRADE: Final = ExecType.TRADE


def parse_new_order(p: Params, account: str, ex: Exchange) -> tuple[NewOrder, str]:
    """A NewOrder and the response type from POST order's parameters."""
    symbol = p.symbol(ex.instruments)
    assert symbol is not None
    side = p.choice("side", SIDES, -1117, "Invalid side.")
    if side is None:
        raise MandatoryParameter("side")
    type_name = p.require("type")
    if type_name not in ORDER_TYPES:
        raise BinanceError("Invalid orderType.", -1116)
    order_type, post_only = ORDER_TYPES[type_name]
    tif = p.choice("timeInForce", TIFS, -1115, "Invalid timeInForce.")
    if type_name in _NEEDS_TIF:
        if tif is None:
            raise MandatoryParameter("timeInForce")
    elif tif is not None:
        raise ParameterNotRequired("timeInForce")
    qty = p.decimal_raw("quantity")
    quote_qty = p.decimal_raw("quoteOrderQty")
    price = p.decimal_raw("price")
    stop = p.decimal_raw("stopPrice")
    iceberg = p.decimal_raw("icebergQty")
    if type_name == "MARKET":
        if not qty and not quote_qty:
            raise EitherParameter("quantity", "quoteOrderQty")
    elif "quoteOrderQty" in p:
        raise ParameterNotRequired("quoteOrderQty")
    elif not qty:
        raise MandatoryParameter("quantity")
    if type_name in _NEEDS_PRICE:
        if not price:
            raise MandatoryParameter("price")
    elif "price" in p:
        raise ParameterNotRequired("price")
    if type_name in _NEEDS_STOP:
        if not stop:
            raise MandatoryParameter("stopPrice")
    elif "stopPrice" in p:
        raise ParameterNotRequired("stopPrice")
    cid = p.client_id("newClientOrderId")
    stp = p.choice(
        "selfTradePreventionMode", STP_MODES, -1130, "Invalid data sent for a parameter."
    )
    resp = p.choice("newOrderRespType", RESP_TYPES, -1100, "Invalid newOrderRespType.")
    p.integer("strategyId")
    p.integer("strategyType", lo=1_000_000)
    if any(p.get(name) is not None for name in _UNSUPPORTED):
        raise UnsupportedOrderCombination()
    p.finish()
    if resp is None:
        resp = "FULL" if type_name in ("LIMIT", "MARKET") else "ACK"
    req = NewOrder(
        account,
        symbol,
        side,
        order_type,
        qty,
        price,
        stop,
        tif or TimeInForce.GTC,
        post_only,
        iceberg,
        cid,
        stp,
        quote_qty,
    )
    check_filters(ex, req)
    return req, resp


def check_filters(ex: Exchange, req: NewOrder) -> None:
    """The published filters, in Binance's order; NOTIONAL is checked here because the
    engine's copy of the instrument has none (see ``SymbolSpec.engine_instrument``)."""
    st = ex.engine.symbols[req.symbol]
    inst = ex.instruments[req.symbol]
    if req.price_raw:
        st.check_price(req.price_raw)
    if req.trigger_raw:
        st.check_price(req.trigger_raw, "stopPrice")
    if req.quantity_raw:
        st.check_qty(req.quantity_raw)
        ref = req.price_raw or req.trigger_raw or st.last_price
        if ref:
            try:
                inst.check_notional(ref, req.quantity_raw)
            except InstrumentRuleViolation as exc:
                raise from_bot4_error(exc) from None
    elif req.quote_qty_raw:
        money = req.quote_qty_raw * SCALE
        if money < inst.min_notional_raw or (
            inst.max_notional_raw and money > inst.max_notional_raw
        ):
            raise FilterFailure("NOTIONAL")


def check_only(ex: Exchange, req: NewOrder) -> None:
    """POST order/test: every check the real order would pass, nothing executed."""
    eng = ex.engine
    acct = eng.accounts.get(req.account)
    if acct is None:
        raise BinanceError("Invalid API-key, IP, or permissions for action.", -2015)
    validate(eng, eng.symbols[req.symbol], acct.account, acct.open, acct.stp, req)


def new_order_response(req: NewOrder, reports: list[ExecutionReport], resp: str) -> dict[str, Any]:
    first = reports[0]
    oid = first.order_id
    mine = [r for r in reports if r.order_id == oid]
    last = mine[-1]
    out: dict[str, Any] = {
        "symbol": req.symbol,
        "orderId": oid,
        "orderListId": -1,
        "clientOrderId": first.client_order_id,
        "transactTime": ms(first.ts),
    }
    if resp == "ACK":
        return out
    out.update(
        price=fmt_raw(req.price_raw),
        origQty=fmt_raw(last.orig_qty_raw),
        executedQty=fmt_raw(last.executed_qty_raw),
        origQuoteOrderQty=fmt_raw(req.quote_qty_raw),
        cummulativeQuoteQty=fmt_money(last.cum_quote_money),
        status=last.status.value,
        timeInForce=req.time_in_force.value,
        type=last.binance_order_type,
        side=req.side.value,
        workingTime=ms(first.ts) if not req.order_type.has_trigger else -1,
        selfTradePreventionMode=(req.stp or SelfTradePrevention.NONE).value,
    )
    if req.trigger_raw:
        out["stopPrice"] = fmt_raw(req.trigger_raw)
    if req.display_qty_raw:
        out["icebergQty"] = fmt_raw(req.display_qty_raw)
    if resp == "FULL":
        out["fills"] = [
            {
                "price": fmt_raw(r.last_price_raw),
                "qty": fmt_raw(r.last_qty_raw),
                "commission": fmt_money(r.fee_money),
                "commissionAsset": r.fee_asset,
                "tradeId": r.trade_id,
            }
            for r in mine
            if r.exec_type is _TRADE
        ]
    return out


def order_ref(p: Params) -> tuple[int | None, str]:
    """(orderId, origClientOrderId) of GET/DELETE order; -1102 if neither is sent."""
    oid = p.integer("orderId")
    cid = p.client_id("origClientOrderId")
    if oid is None and not cid:
        raise EitherParameter("origClientOrderId", "orderId")
    return oid, cid


def query_order(hist: AccountHistory, symbol: str, p: Params) -> OrderRecord:
    oid, cid = order_ref(p)
    p.finish()
    rec = hist.get(oid, cid)
    if rec is None or rec.symbol != symbol:
        raise BinanceError("Order does not exist.", -2013)
    return rec


def cancel_response(rec: OrderRecord | None, r: ExecutionReport, cancel_id: str) -> dict[str, Any]:
    return {
        "symbol": r.symbol,
        "origClientOrderId": r.client_order_id,
        "orderId": r.order_id,
        "orderListId": -1,
        "clientOrderId": cancel_id or f"cancel-{r.order_id}",
        "transactTime": ms(r.ts),
        "price": fmt_raw(r.price_raw),
        "origQty": fmt_raw(r.orig_qty_raw),
        "executedQty": fmt_raw(r.executed_qty_raw),
        "origQuoteOrderQty": fmt_raw(rec.quote_qty if rec is not None else 0),
        "cummulativeQuoteQty": fmt_money(r.cum_quote_money),
        "status": r.status.value,
        "timeInForce": r.time_in_force.value,
        "type": r.binance_order_type,
        "side": r.side.value,
        "stopPrice": fmt_raw(r.trigger_raw),
        "icebergQty": fmt_raw(rec.iceberg if rec is not None else 0),
        "selfTradePreventionMode": rec.stp if rec is not None else "NONE",
    }


def cancel_order(ex: Exchange, account: str, symbol: str, p: Params) -> dict[str, Any]:
    oid, cid = order_ref(p)
    cancel_id = p.client_id("newClientOrderId")
    restriction = p.choice(
        "cancelRestrictions",
        {"ONLY_NEW": "NEW", "ONLY_PARTIALLY_FILLED": "PARTIALLY_FILLED"},
        -1145,
        "Invalid cancelRestrictions",
    )
    p.finish()
    hist = ex.history.get(account)
    rec = hist.get(oid, cid) if hist is not None else None
    if restriction is not None and rec is not None and rec.status.value != restriction:
        raise BinanceError("Order was not canceled due to cancel restrictions.", -2011)
    reports = ex.cancel(account, symbol, oid, cid)
    return cancel_response(rec, reports[-1], cancel_id)


def balances_json(ex: Exchange, account: str, omit_zero: bool) -> list[dict[str, str]]:
    acct = ex.engine.account(account)
    out = []
    for asset in sorted(acct.balances):
        bal = acct.balances[asset]
        if omit_zero and not bal.free and not bal.locked:
            continue
        out.append({"asset": asset, "free": fmt_money(bal.free), "locked": fmt_money(bal.locked)})
    return out


def account_json(ex: Exchange, account: str, omit_zero: bool, uid: int) -> dict[str, Any]:
    rates = ex.engine.fees.rates(account, ex.clock.now_ns() // 86_400_000_000_000)
    maker = Decimal(rates[0]) / Decimal(rates[1])
    taker = Decimal(rates[2]) / Decimal(rates[3])
    return {
        "makerCommission": int(maker * 10_000),
        "takerCommission": int(taker * 10_000),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": f"{maker:.8f}",
            "taker": f"{taker:.8f}",
            "buyer": "0.00000000",
            "seller": "0.00000000",
        },
        "canTrade": True,
        "canWithdraw": False,
        "canDeposit": False,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": ex.update_ms.get(account, 0),
        "accountType": "SPOT",
        "balances": balances_json(ex, account, omit_zero),
        "permissions": ["SPOT"],
        "uid": uid,
    }
