"""A deliberately reckless strategy on real BTC/USDT minutes is halted by the kill
switch at the 15 % drawdown, and the equity curve does not run much past it.

The venue here is a minimal, honest bar venue (market orders fill at the next bar's
open, stops when the bar's low reaches them, 0.1 % taker fee in USDT); the full
backtest engine builds on the same order path.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from bot4.core.clock import TestClock
from bot4.core.enums import OrderSide, OrderStatus, OrderType
from bot4.core.events import Event, OrderDenied, OrderInitialized, TradingStateChanged
from bot4.core.numbers import money_from_raw, to_raw
from bot4.oms.manager import OrderManager
from bot4.oms.requests import CancelOrder, OrderRequest, SubmitOrder
from bot4.risk.denials import RiskDenied
from bot4.risk.engine import RiskEngine
from bot4.risk.profile import RiskProfile
from tests.conftest import SHARED_DATA, btcusdt

BARS = SHARED_DATA / "ohlcv_1m" / "binance_spot_BTC_USDT-1m_2025-05-20_2025-08-18.feather"
MINUTE = 60 * 10**9


def test_reckless_strategy_is_halted_at_15_percent_drawdown() -> None:
    bars = pd.read_feather(BARS).iloc[:5000]
    times = bars["date"].astype("int64").to_numpy()
    opens, lows, closes = (
        bars[c].map(lambda v: Decimal(repr(v))).to_list() for c in ("open", "low", "close")
    )
    clock = TestClock(int(times[0]))
    om = OrderManager([btcusdt()], clock=clock)
    events: list[Event] = []
    om.listeners.append(events.append)
    om.deposit("USDT", "100000")
    profile = (
        RiskProfile.default()
        .with_limits(
            max_position_pct_equity="1",
            max_order_notional="10000000",
            daily_loss_limit_pct="1",
            max_var_pct_equity="0",
        )
        .with_kill_switch(daily_loss_pct="1", flatten_on_trip=True)
    )
    risk = RiskEngine(om, profile)
    inst = btcusdt()
    working_stops: dict[str, Decimal] = {}
    trade = 0
    curve: list[int] = []
    tripped_at: int | None = None
    stop_id = ""

    def venue(i: int) -> None:
        """Work the outbox at bar i's open, then the stops against bar i's range."""
        nonlocal trade
        while om.outbox:
            cmd = om.outbox.popleft()
            order = om.state.orders[cmd.client_order_id]
            if isinstance(cmd, CancelOrder):
                if not order.is_closed:
                    om.on_canceled(cmd.client_order_id)
                working_stops.pop(cmd.client_order_id, None)
            elif isinstance(cmd, SubmitOrder):
                om.on_accepted(cmd.client_order_id, f"V{cmd.client_order_id}")
                if order.order_type is OrderType.MARKET:
                    fill(order.client_order_id, order.leaves_qty, opens[i])
                elif order.order_type is OrderType.STOP_MARKET:
                    working_stops[order.client_order_id] = Decimal(order.trigger_raw) / 10**9
        for cid, trigger in list(working_stops.items()):
            if lows[i] <= trigger and not om.state.orders[cid].is_closed:
                fill(cid, om.state.orders[cid].leaves_qty, min(opens[i], trigger))
                del working_stops[cid]

    def fill(cid: str, qty: Decimal, price: Decimal) -> None:
        nonlocal trade
        trade += 1
        price = inst.make_price(price, OrderSide.BUY)
        fee = money_from_raw(to_raw(qty, "q") * to_raw(price, "p") // 1000)
        om.on_fill(cid, f"T{trade}", qty, price, fee=fee, fee_asset="USDT")

    for i in range(len(bars)):
        clock.set(int(times[i]))
        venue(i)
        clock.set(int(times[i]) + MINUTE - 1)
        risk.update_price("BTCUSDT", closes[i])
        equity = risk.equity_money()
        assert equity is not None
        curve.append(equity)
        if risk.trading_state != "ACTIVE":
            tripped_at = tripped_at if tripped_at is not None else i
        pos = om.state.positions.get("BTCUSDT")
        held = pos.qty_raw if pos else 0
        try:  # churn: all in, all out, every few minutes, paying the fee each time
            if held == 0 and not om.state.open_orders:
                usdt = om.state.account.free("USDT")
                qty = inst.make_qty(usdt * Decimal("0.98") / closes[i])
                _, stop = risk.submit_bracket(
                    OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.MARKET, qty),
                    stop_loss=inst.make_price(closes[i] / 2, OrderSide.SELL),
                )
                stop_id = stop.client_order_id
            elif held and stop_id and not om.state.orders[stop_id].is_closed:
                risk.cancel(stop_id)
            elif held and not om.state.open_orders:
                risk.close_position("BTCUSDT")
        except RiskDenied:
            pass
        if tripped_at is not None and i > tripped_at + 20:
            break

    assert tripped_at is not None, "the kill switch never tripped"
    trip = next(e for e in events if isinstance(e, TradingStateChanged))
    assert trip.trading_state == "HALTED" and trip.reason.startswith("KILL_SWITCH DRAWDOWN")
    peak = 0
    worst = 0.0
    for value in curve:
        peak = max(peak, value)
        worst = max(worst, (peak - value) / peak)
    assert 0.15 <= worst < 0.16, f"max drawdown {worst:.4f}"
    # Halted: the position was flattened and nothing but reduce-only orders went in.
    assert om.state.positions["BTCUSDT"].qty_raw == 0
    trip_seq = trip.seq
    late = [e for e in events if isinstance(e, OrderInitialized) and e.seq > trip_seq]
    assert late and all(e.reduce_only for e in late)
    denials = [e for e in events if isinstance(e, OrderDenied) and e.seq > trip_seq]
    assert denials and all(d.reason == "TRADING_HALTED" for d in denials)
    assert all(o.status is not OrderStatus.PENDING_CANCEL for o in om.state.orders.values())
    print(f"tripped at bar {tripped_at} ({trade} fills), max drawdown {worst:.4%}")
