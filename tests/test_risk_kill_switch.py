"""The kill switch trips on each condition, cancels, optionally flattens, journals why,
and comes back only by an explicit reset (at once, or staged)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot4.core.clock import TestClock
from bot4.core.enums import OrderSide, OrderStatus, OrderType
from bot4.core.errors import ValidationError
from bot4.core.events import Event, TradingStateChanged
from bot4.oms.manager import OrderManager
from bot4.oms.requests import OrderRequest
from bot4.risk.denials import DenialReason, RiskDenied
from bot4.risk.engine import RiskEngine
from bot4.risk.profile import RiskProfile
from tests.conftest import T0, btcusdt

S = 10**9
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def setup(clock: TestClock, **kill: Any) -> tuple[RiskEngine, list[Event]]:
    om = OrderManager([btcusdt()], clock=clock)
    events: list[Event] = []
    om.listeners.append(events.append)
    om.deposit("USDT", "100000")
    profile = RiskProfile.default().with_limits(
        max_position_pct_equity="1", max_order_notional="1000000", daily_loss_limit_pct="1"
    )
    risk = RiskEngine(om, profile.with_kill_switch(**kill))
    risk.update_price("BTCUSDT", "50000")
    # One long position of 1 BTC (50 % of equity) and one resting bracket order.
    entry, _ = risk.submit_bracket(OrderRequest("BTCUSDT", BUY, OrderType.MARKET, "1"), "10000")
    om.on_fill(entry.client_order_id, "t1", "1", "50000")
    risk.submit_bracket(OrderRequest("BTCUSDT", BUY, OrderType.LIMIT, "0.1", "49000"), "40000")
    return risk, events


def assert_tripped(risk: RiskEngine, events: list[Event], condition: str, state: str) -> None:
    assert risk.trading_state == state
    changes = [e for e in events if isinstance(e, TradingStateChanged)]
    assert changes[-1].trading_state == state
    assert changes[-1].reason.startswith(f"KILL_SWITCH {condition}")
    assert risk.kill_switch.trips[-1][1] == condition
    # Every working order that could add risk was asked to cancel; the protective stop
    # of the position held stays working.
    for o in risk.state.open_orders.values():
        if o.reduce_only:
            assert o.status is OrderStatus.SUBMITTED and o.order_type is OrderType.STOP_MARKET
        else:
            assert o.status is OrderStatus.PENDING_CANCEL
    with pytest.raises(RiskDenied) as err:
        risk.submit_bracket(OrderRequest("BTCUSDT", BUY, OrderType.MARKET, "0.01"), "1000")
    assert err.value.reason in (DenialReason.TRADING_HALTED, DenialReason.REDUCING_ONLY)


@pytest.fixture
def clock() -> TestClock:
    return TestClock(T0)


def test_drawdown_trips_at_15_percent_of_peak(clock: TestClock) -> None:
    risk, events = setup(clock, daily_loss_pct="1")
    # Equity 100,000 -> peak. Losing 15,000 needs BTC at 35,000 (1 BTC held).
    risk.update_price("BTCUSDT", "35000.01")
    assert risk.trading_state == "ACTIVE"
    risk.update_price("BTCUSDT", "35000")
    assert_tripped(risk, events, "DRAWDOWN", "HALTED")


def test_daily_loss_trips(clock: TestClock) -> None:
    risk, events = setup(clock, daily_loss_pct="0.08", max_drawdown_pct="1")
    risk.update_price("BTCUSDT", "42000.01")
    assert risk.trading_state == "ACTIVE"
    risk.update_price("BTCUSDT", "42000")  # 8,000 = 8 % of the day's 100,000
    assert_tripped(risk, events, "DAILY_LOSS", "HALTED")


def test_error_rate_trips_through_the_venue_breaker(clock: TestClock) -> None:
    risk, events = setup(clock, on_trip="REDUCING")
    breaker = risk.kill_switch.venue_breaker
    for i in range(10):
        try:
            with breaker:
                if i % 2 == 0:
                    raise ConnectionError("venue 503")
        except ConnectionError:
            pass
    assert breaker.failure_rate() == 0.5
    assert_tripped(risk, events, "ERROR_RATE", "REDUCING")


def test_stale_market_data_trips(clock: TestClock) -> None:
    risk, events = setup(clock)
    clock.advance(300 * S)
    risk.heartbeat()
    assert risk.trading_state == "ACTIVE"
    clock.advance(1)
    risk.heartbeat()
    assert_tripped(risk, events, "STALE_DATA", "HALTED")


def test_lost_connection_trips_and_blocks_reset(clock: TestClock) -> None:
    risk, events = setup(clock)
    risk.kill_switch.set_connected(False)
    assert_tripped(risk, events, "CONNECTION_LOST", "HALTED")
    with pytest.raises(ValidationError):
        risk.kill_switch.reset()
    assert risk.trading_state == "HALTED"
    risk.kill_switch.set_connected(True)
    risk.kill_switch.reset()
    assert risk.trading_state == "ACTIVE"


def test_manual_trigger_flattens_when_configured(clock: TestClock) -> None:
    risk, events = setup(clock, flatten_on_trip=True)
    risk.kill_switch.trigger("operator says stop")
    assert risk.trading_state == "HALTED"
    stop = next(
        o
        for o in risk.state.orders.values()
        if o.order_type is OrderType.STOP_MARKET and o.status is OrderStatus.PENDING_CANCEL
    )

    def flatten_orders() -> list[Any]:
        return [
            o
            for o in risk.state.orders.values()
            if o.reduce_only and o.order_type is OrderType.MARKET
        ]

    assert flatten_orders() == []  # the stop still holds the coin
    risk.om.on_canceled(stop.client_order_id)
    (flat,) = flatten_orders()
    assert flat.side is SELL and flat.quantity == 1 and flat.status is OrderStatus.SUBMITTED
    assert risk.kill_switch.pending_flatten == set()
    assert any(
        isinstance(e, TradingStateChanged) and "KILL_SWITCH MANUAL" in e.reason for e in events
    )


def test_staged_reenable_widens_limits_over_time(clock: TestClock) -> None:
    risk, _events = setup(clock)
    risk.kill_switch.trigger()
    risk.kill_switch.reset(staged=True)
    assert risk.trading_state == "ACTIVE" and risk.scale == (1, 4)
    # Position limit is 100 % of equity (~100,000) x 1/4: 0.5 BTC more passes, 0.6 not
    # (the 1 BTC already held counts: 1.5 x 50,000 = 75,000 > 25,000 -> check the delta).
    with pytest.raises(RiskDenied) as err:
        risk.submit_bracket(OrderRequest("BTCUSDT", BUY, OrderType.MARKET, "0.1"), "10000")
    assert err.value.reason is DenialReason.POSITION_SIZE_EXCEEDS_LIMIT
    clock.advance(3600 * S)
    risk.update_price("BTCUSDT", "50000")
    assert risk.scale == (1, 2)
    clock.advance(3600 * S)
    risk.update_price("BTCUSDT", "50000")
    assert risk.scale == (1, 1) and risk.kill_switch.reset_at is None
    risk.submit_bracket(OrderRequest("BTCUSDT", BUY, OrderType.MARKET, "0.1"), "10000")


def test_trip_survives_replay(clock: TestClock) -> None:
    from bot4.oms.journal import replay

    risk, events = setup(clock)
    risk.kill_switch.trigger()
    assert replay(events, [btcusdt()]).trading_state == "HALTED"


@given(
    peak=st.integers(min_value=0, max_value=10**30),
    start=st.integers(min_value=-(10**6), max_value=10**30),
    equity=st.integers(min_value=-(10**30), max_value=10**30),
    dd=st.decimals(min_value=Decimal("0.0001"), max_value=1, places=4),
    daily=st.decimals(min_value=Decimal("0.0001"), max_value=1, places=4),
)
def test_the_equity_floor_is_exactly_the_loss_limits(
    peak: int, start: int, equity: int, dd: Decimal, daily: Decimal
) -> None:
    # The per-price fast path compares equity with one precomputed floor; it must
    # return early exactly when the two loss-limit inequalities both hold.
    risk, _ = setup(TestClock(T0))
    ks = risk.kill_switch
    ks._dd, ks._daily = dd.as_integer_ratio(), daily.as_integer_ratio()
    ks._set_floor(peak, start)
    (num, den), (dnum, dden) = ks._dd, ks._daily
    safe = (peak - equity) * den < peak * num and (
        start <= 0 or (start - equity) * dden < start * dnum
    )
    assert (equity > ks._floor) == safe
    for e in (ks._floor, ks._floor + 1):  # the boundary itself
        safe = (peak - e) * den < peak * num and (start <= 0 or (start - e) * dden < start * dnum)
        assert (e > ks._floor) == safe
