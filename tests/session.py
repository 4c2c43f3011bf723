"""A random trading session driver for property tests.

It plays random strategy commands and venue reports -- including bad input, duplicate
and late reports, fills on OCO and bracket legs -- through a real OrderManager with a
real SQLite journal, and checks after every step that a refused step changed nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import strategies as st

from bot4.core.clock import TestClock
from bot4.core.enums import ContingencyType, OrderSide, OrderType, TimeInForce
from bot4.core.errors import Bot4Error
from bot4.core.events import Event
from bot4.core.numbers import from_raw
from bot4.core.order import Order
from bot4.oms.manager import OrderManager
from bot4.oms.requests import OrderRequest
from tests.conftest import T0, btcusdt

SYMBOL = "BTCUSDT"


@dataclass
class Session:
    om: OrderManager
    clock: TestClock
    events: list[Event] = field(default_factory=list)
    trade_no: int = 0
    refused: int = 0
    applied: int = 0
    seen_trades: list[tuple[str, str, str, str]] = field(default_factory=list)


def new_session(journal: object | None = None) -> Session:
    clock = TestClock(T0)
    om = OrderManager([btcusdt()], clock=clock, journal=journal)  # type: ignore[arg-type]
    s = Session(om, clock)
    om.listeners.append(s.events.append)
    om.deposit("USDT", "1000000")
    om.deposit("BTC", "5")
    return s


def price(draw: st.DrawFn) -> Decimal:
    return Decimal(draw(st.integers(5_000_000, 7_000_000))) / 100


def qty(draw: st.DrawFn, max_steps: int = 200_000) -> Decimal:
    return Decimal(draw(st.integers(1, max_steps))) / 100_000


def pick(draw: st.DrawFn, orders: list[Order]) -> Order | None:
    return draw(st.sampled_from(orders)) if orders else None


def step(s: Session, draw: st.DrawFn) -> None:
    """One random action; a refused action must leave the state unchanged."""
    om = s.om
    s.clock.advance(draw(st.integers(0, 2_000_000_000)))
    before = om.state.snapshot()
    action = draw(
        st.sampled_from(
            [
                "limit",
                "market",
                "stop",
                "bracket",
                "oco",
                "accept",
                "accept",
                "fill",
                "fill",
                "fill",
                "dup_fill",
                "cancel",
                "venue_cancel",
                "expire",
                "trigger",
                "bad",
            ]
        )
    )
    orders = list(om.state.orders.values())
    live = [o for o in orders if not o.is_closed]
    try:
        if action == "limit":
            side = draw(st.sampled_from(OrderSide))
            tif = draw(st.sampled_from(TimeInForce))
            om.submit(
                OrderRequest(SYMBOL, side, OrderType.LIMIT, qty(draw), price(draw), None, tif)
            )
        elif action == "market":
            om.submit(
                OrderRequest(SYMBOL, draw(st.sampled_from(OrderSide)), OrderType.MARKET, qty(draw))
            )
        elif action == "stop":
            om.submit(
                OrderRequest(
                    SYMBOL,
                    OrderSide.SELL,
                    OrderType.STOP_MARKET,
                    qty(draw),
                    trigger_price=price(draw),
                )
            )
        elif action == "bracket":
            p = price(draw)
            om.submit_bracket(
                OrderRequest(SYMBOL, OrderSide.BUY, OrderType.LIMIT, qty(draw), p),
                stop_loss=p - 500,
                take_profit=p + 500,
            )
        elif action == "oco":
            q = qty(draw, 100_000)
            p = price(draw)
            om.submit_oco(
                OrderRequest(SYMBOL, OrderSide.SELL, OrderType.LIMIT, q, p + 1000),
                OrderRequest(
                    SYMBOL, OrderSide.SELL, OrderType.STOP_LIMIT, q, p - 1000, trigger_price=p - 900
                ),
            )
        elif action == "accept" and (o := pick(draw, orders)):
            om.on_accepted(o.client_order_id, f"V{o.client_order_id}")
        elif action == "fill" and (o := pick(draw, orders)):
            leaves = o.leaves_qty_raw
            q_raw = draw(
                st.one_of(
                    st.just(leaves),  # completes the order
                    st.integers(1, max(leaves, 1)),  # a partial fill
                    st.integers(leaves + 1, leaves + 10**9),  # more than is left: refused
                ).filter(lambda v: v > 0)
            )
            s.trade_no += 1
            fee_in_base = draw(st.booleans())
            fee = (
                Decimal(draw(st.integers(0, 500))) / 10**8
                if fee_in_base
                else Decimal(draw(st.integers(0, 5000))) / 100
            )
            args = (
                o.client_order_id,
                f"T{s.trade_no}",
                str(from_raw(q_raw)),
                str(price(draw)),
                str(fee),
                "BTC" if fee_in_base else "USDT",
            )
            om.on_fill(*args)
            s.seen_trades.append(args[:4])  # type: ignore[arg-type]
        elif action == "dup_fill" and s.seen_trades:
            cid, tid, q, p = draw(st.sampled_from(s.seen_trades))
            assert om.on_fill(cid, tid, q, p) is False
        elif action == "cancel" and (o := pick(draw, live)):
            om.cancel(o.client_order_id)
        elif action == "venue_cancel" and (o := pick(draw, orders)):
            om.on_canceled(o.client_order_id)
        elif action == "expire" and (o := pick(draw, orders)):
            om.on_expired(o.client_order_id)
        elif action == "trigger" and (o := pick(draw, orders)):
            om.on_triggered(o.client_order_id)
        elif action == "bad":
            bad = draw(st.sampled_from(["0", "-1", "NaN", "Infinity", "0.000001", "1e-12"]))
            field_name = draw(st.sampled_from(["quantity", "price"]))
            req = OrderRequest(
                SYMBOL,
                OrderSide.BUY,
                OrderType.LIMIT,
                bad if field_name == "quantity" else "0.1",
                bad if field_name == "price" else "50000",
            )
            om.submit(req)
            raise AssertionError(f"bad {field_name}={bad} was accepted")
        else:
            return
        s.applied += 1
    except Bot4Error:
        s.refused += 1
        assert om.state.snapshot() == before, f"refused {action} changed the state"


def oco_groups(om: OrderManager) -> list[tuple[int, list[Order]]]:
    """(cap, legs) for every OCO group: a plain OCO's cap is its quantity, a bracket's
    exits are capped by the entry's filled quantity."""
    groups: dict[str, list[Order]] = {}
    for o in om.state.orders.values():
        if o.contingency is ContingencyType.OCO:
            groups.setdefault(o.list_id, []).append(o)
    out = []
    for legs in groups.values():
        if legs[0].parent_id:
            cap = om.state.orders[legs[0].parent_id].filled_qty_raw
        else:
            cap = legs[0].initial_qty_raw
        out.append((cap, legs))
    return out
