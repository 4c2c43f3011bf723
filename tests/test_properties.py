"""Invariants over random sessions (hypothesis): replay = live, money is conserved,
linked orders never over-fill, funds locked equal what open orders hold."""

from __future__ import annotations

import contextlib
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.core.events import OrderFilled
from bot4.core.numbers import SCALE, to_raw
from bot4.oms.journal import replay
from bot4.oms.position import Position
from bot4.oms.state import TradingState
from tests.conftest import btcusdt
from tests.session import Session, new_session, oco_groups, step


def check_invariants(s: Session) -> None:
    state = s.om.state
    for cap, legs in oco_groups(s.om):
        assert sum(leg.filled_qty_raw for leg in legs) <= cap, "OCO legs over-filled"
    locked: dict[str, int] = {}
    pending: dict[str, int] = {}
    for o in state.orders.values():
        asset, _ = state.lock_unit(o)
        locked[asset] = locked.get(asset, 0) + o.locked_money
        pending[asset] = pending.get(asset, 0) + o.pending_money
        assert o.locked_money >= 0 and o.pending_money >= 0
        if o.is_closed:
            assert o.locked_money == 0 and o.pending_money == 0, "closed order holds funds"
    for asset, bal in state.account.balances.items():
        assert bal.locked == locked.get(asset, 0), f"{asset} locked drifted"
        assert bal.locked >= 0
    assert {a: v for a, v in pending.items() if v} == state.account.pending


@given(st.data())
@settings(max_examples=120)
def test_random_session_keeps_invariants_and_replays_exactly(data: st.DataObject) -> None:
    s = new_session()
    for _ in range(data.draw(st.integers(5, 60))):
        step(s, data.draw)
        check_invariants(s)
    rebuilt = replay(s.events, [btcusdt()])
    assert rebuilt.snapshot() == s.om.state.snapshot()
    assert [e.seq for e in s.events] == list(range(1, s.om.state.last_seq + 1))


@given(st.data(), st.integers(4_000_000, 8_000_000))
@settings(max_examples=120)
def test_equity_change_equals_pnl_minus_fees(data: st.DataObject, mark_cents: int) -> None:
    s = new_session()
    mark = to_raw(Decimal(mark_cents) / 100, "mark")
    marks = {"BTCUSDT": mark}
    start = s.om.state.equity_money("USDT", marks)
    for _ in range(data.draw(st.integers(5, 60))):
        step(s, data.draw)
    state = s.om.state
    pos = state.positions.get("BTCUSDT")
    pnl = pos.realized_money + pos.unrealized_money(mark) if pos else 0
    quote_fees = pos.fees_money.get("USDT", 0) if pos else 0
    # Base-asset fees are paid out of the position (see Position.apply_fill), so they are
    # inside the P&L already; quote fees are not.
    assert state.equity_money("USDT", marks) - start == pnl - quote_fees


@given(
    st.lists(
        st.tuples(st.integers(-50, 50).filter(bool), st.integers(1, 10_000), st.integers(0, 30)),
        max_size=80,
    ),
    st.integers(1, 20_000),
)
def test_position_pnl_is_conserved_exactly(
    fills: list[tuple[int, int, int]], mark_units: int
) -> None:
    """realized + unrealized == cash flow + qty * mark, to the last 1e-18 unit, over any
    sequence of buys, sells and flips -- including base-asset fees."""
    pos = Position("BTCUSDT")
    cash = 0
    base = 0
    mark = mark_units * SCALE // 100
    for q_steps, p_units, fee_steps in fills:
        q = q_steps * 1000
        p = p_units * SCALE // 100
        fee = fee_steps * SCALE  # base fee of fee_steps raw units
        pos.apply_fill(q, p, fee, "BTC", True)
        cash -= q * p
        base += q - fee // SCALE
    assert pos.qty_raw == base
    assert pos.realized_money + pos.unrealized_money(mark) == cash + base * mark


@given(st.data())
@settings(max_examples=200)
def test_linked_orders_never_overfill_under_adversarial_fills(data: st.DataObject) -> None:
    """Only brackets and OCOs, with fills aimed at the legs: the venue may report any
    size; whatever the manager accepts, the legs stay within their shared quantity."""
    from bot4.core.enums import OrderSide, OrderType
    from bot4.core.errors import Bot4Error
    from bot4.oms.requests import OrderRequest

    s = new_session()
    om = s.om
    entry, sl, tp = om.submit_bracket(
        OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "1", "60000"),
        stop_loss="59000",
        take_profit="61000",
    )
    a, b = om.submit_oco(
        OrderRequest("BTCUSDT", OrderSide.SELL, OrderType.LIMIT, "2", "65000"),
        OrderRequest("BTCUSDT", OrderSide.SELL, OrderType.STOP_MARKET, "2", trigger_price="55000"),
    )
    targets = [entry, sl, tp, a, b]
    for n in range(data.draw(st.integers(1, 40))):
        o = data.draw(st.sampled_from(targets))
        q = data.draw(st.integers(1, 300)) * 1000 * 10_000  # 0.01 .. 3 BTC
        with contextlib.suppress(Bot4Error):
            om.on_fill(o.client_order_id, f"X{n}", Decimal(q) / SCALE, "60000")
        for cap, legs in oco_groups(om):
            assert sum(leg.filled_qty_raw for leg in legs) <= cap
    bracket_exit = sl.filled_qty_raw + tp.filled_qty_raw
    assert bracket_exit <= entry.filled_qty_raw
    assert a.filled_qty_raw + b.filled_qty_raw <= a.initial_qty_raw
    assert all(isinstance(e, OrderFilled) is False or e.qty_raw > 0 for e in s.events)
    assert TradingState([btcusdt()]).replay(s.events).snapshot() == om.state.snapshot()
