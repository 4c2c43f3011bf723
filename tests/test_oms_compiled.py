"""The compiled event fold (``bot4.oms._fastfold``) against the pure-Python reference
(``TradingState.apply_py``): the same state after every event of random sessions, the
same exception and an untouched state for illegal events, the same backtest, and a
journal replay equal to the live state (docs/core.md, "The compiled fold")."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4._compiled import FORCE_PURE
from bot4.backtest.engine import Backtest
from bot4.core.enums import OrderSide, OrderType, TimeInForce
from bot4.core.events import (
    Event,
    OrderFilled,
    OrderInitialized,
    OrderUpdated,
)
from bot4.data.bars import synthetic_bars
from bot4.examples.sma_cross import SmaCross
from bot4.oms import state as state_mod
from bot4.oms.journal import replay
from bot4.oms.state import TradingState
from tests.conftest import btcusdt
from tests.session import new_session, step

FOLD = TradingState.__dict__["apply"]
PURE = TradingState.apply_py
OPEN = TradingState.__dict__["open_order"]
PURE_OPEN = TradingState.open_order_py


@contextmanager
def _pure() -> Iterator[None]:
    """``TradingState.apply`` and ``open_order`` are the pure references in the block."""
    saved = TradingState.__dict__["apply"], TradingState.__dict__["open_order"]
    setattr(TradingState, "apply", PURE)  # noqa: B010
    setattr(TradingState, "open_order", PURE_OPEN)  # noqa: B010
    try:
        yield
    finally:
        setattr(TradingState, "apply", saved[0])  # noqa: B010
        setattr(TradingState, "open_order", saved[1])  # noqa: B010


def test_the_compiled_fold_is_built_and_in_use() -> None:
    if FORCE_PURE:
        pytest.skip("BOT4_PURE_SIM is set: the pure fold is in use on purpose")
    from bot4.oms import _fastfold

    assert _fastfold.__file__ is not None and not _fastfold.__file__.endswith((".py", ".pyx"))
    assert state_mod.COMPILED_FOLD, "bot4.oms._fastfold is not built: run pip install -e ."
    assert FOLD is _fastfold.fold
    assert OPEN is _fastfold.open_order
    # Every member it reads or writes by offset is still a slot, and it mirrors
    # ``Order.__init__``'s members exactly (else it must not be installed).
    assert all(_fastfold.slots_in_use().values()), _fastfold.slots_in_use()


def _outcome(fold: object, state: TradingState, event: Event) -> tuple[object, ...]:
    before = state.snapshot()
    try:
        fold(state, event)  # type: ignore[operator]
    except Exception as exc:
        assert state.snapshot() == before, "an illegal event changed the state"
        return (type(exc), str(exc), exc.args)
    return ("ok",)


def _probe(draw: st.DrawFn, events: list[Event], seq: int) -> Event:
    """A likely illegal (sometimes legal) event: an earlier one replayed as the next,
    with its quantity, order id, sequence number or price bent."""
    base = draw(st.sampled_from(events))
    fields = {f.name for f in dataclasses.fields(base)}
    changes: dict[str, object] = {"seq": seq}
    how = draw(st.sampled_from(["as_is", "seq", "cid", "qty", "price", "fill", "update"]))
    if how == "seq":
        changes["seq"] = draw(st.sampled_from([seq - 1, seq + 1, 0]))
    elif how == "cid" and "client_order_id" in fields:
        changes["client_order_id"] = draw(st.sampled_from(["nope", "B4-1", "B4-2"]))
    elif how == "qty":
        for name in ("qty_raw", "quantity_raw"):
            if name in fields:
                changes[name] = draw(st.integers(-(10**9), 10**12))
    elif how == "price":
        for name in ("price_raw", "trigger_raw"):
            if name in fields:
                changes[name] = draw(st.integers(0, 10**14))
    if how == "fill":
        cids = [e.client_order_id for e in events if isinstance(e, OrderInitialized)]
        if cids:
            return OrderFilled(
                seq,
                base.ts_event,
                base.ts_recv,
                draw(st.sampled_from(cids)),
                f"probe-{seq}",
                draw(st.integers(-5, 10**10)),
                draw(st.integers(1, 10**14)),
                draw(st.sampled_from([0, 10**15])),
                draw(st.sampled_from(["", "BTC", "USDT", "BNB"])),
            )
    if how == "update":
        cids = [e.client_order_id for e in events if isinstance(e, OrderInitialized)]
        if cids:
            return OrderUpdated(
                seq,
                base.ts_event,
                base.ts_recv,
                draw(st.sampled_from(cids)),
                draw(st.integers(-5, 10**10)),
                "probe",
                draw(st.sampled_from([0, 10**13])),
                draw(st.sampled_from([0, 10**13, 7 * 10**12])),
            )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_random_sessions_fold_the_same_event_by_event(data: st.DataObject) -> None:
    s = new_session()
    for _ in range(data.draw(st.integers(5, 60))):
        step(s, data.draw)
    fast, pure = TradingState([btcusdt()]), TradingState([btcusdt()])
    for event in s.events:
        if data.draw(st.integers(0, 3)) == 0:
            probe = _probe(data.draw, s.events, fast.last_seq + 1)
            f2, p2 = copy.deepcopy(fast), copy.deepcopy(pure)
            assert _outcome(FOLD, f2, probe) == _outcome(PURE, p2, probe), probe
            assert f2.snapshot() == p2.snapshot()
        FOLD(fast, event)
        PURE(pure, event)
        assert fast.snapshot() == pure.snapshot(), event
    assert fast.snapshot() == s.om.state.snapshot()


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_journal_replay_of_a_live_session_equals_the_live_state(data: st.DataObject) -> None:
    s = new_session()
    for _ in range(data.draw(st.integers(5, 60))):
        step(s, data.draw)
    live = s.om.state.snapshot()
    assert replay(s.events, [btcusdt()]).snapshot() == live
    with _pure():
        assert replay(s.events, [btcusdt()]).snapshot() == live


def test_a_whole_backtest_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    states: list[TradingState] = []
    init = TradingState.__init__

    def keep(self: TradingState, *args: Any) -> None:
        init(self, *args)
        states.append(self)

    monkeypatch.setattr(TradingState, "__init__", keep)
    bars = synthetic_bars(20000, "BTCUSDT", seed=42)
    params = {"fast": 10, "slow": 30, "qty": 1, "stop_pct": "0.5"}

    def run() -> tuple[object, ...]:
        states.clear()
        r = Backtest(SmaCross, bars, params=params, cash=10_000_000, fee_bps=10).run()
        assert len(states) == 1
        return (
            r.bars,
            r.fills,
            r.trades,
            r.denials,
            r.entries,
            r.final_equity,
            r.equity.tobytes(),
            states[0].snapshot(),
        )

    fast = run()
    with _pure():
        pure = run()
    assert fast == pure
    assert len(fast[1]) > 100  # type: ignore[arg-type]


def _open_outcome(
    open_order: Any, state: TradingState, fields: tuple[Any, ...], now: int
) -> tuple[object, ...]:
    before = state.snapshot()
    pending: list[Event] = []
    try:
        order = open_order(state, fields, now, pending)
    except Exception as exc:
        assert state.snapshot() == before and pending == [], "a refused order changed state"
        return (type(exc), str(exc), exc.args)
    return ("ok", order.snapshot(), [(type(e), e) for e in pending], state.snapshot())


_SIDES = st.sampled_from(list(OrderSide))
_TYPES = st.sampled_from(list(OrderType))
_TIFS = st.sampled_from(list(TimeInForce))
_RAW = st.integers(0, 10**15)


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_open_order_builds_and_folds_what_the_reference_does(data: st.DataObject) -> None:
    """The compiled ``open_order`` (events built slot by slot) against the pure one
    (events built by ``__init__``, folded by ``apply_py``): the same events, order,
    state -- or the same exception with nothing changed -- on states from random
    sessions, for fresh, taken and unknown ids and symbols."""
    s = new_session()
    for _ in range(data.draw(st.integers(0, 30))):
        step(s, data.draw)
    taken = sorted(s.om.state.orders)
    cid = data.draw(st.sampled_from([*taken, "new-1", "B4-x"]) if taken else st.just("new-1"))
    symbol = data.draw(st.sampled_from(["BTCUSDT", "BTCUSDT", "ETHUSDT"]))
    fields = (
        cid,
        symbol,
        data.draw(_SIDES),
        data.draw(_TYPES),
        data.draw(st.integers(1, 10**12)),
        data.draw(_RAW),
        data.draw(_RAW),
        data.draw(_TIFS),
        data.draw(st.booleans()),
        data.draw(st.booleans()),
        data.draw(_RAW),
    )
    now = data.draw(st.integers(0, 2**63 - 1))
    fast, pure = copy.deepcopy(s.om.state), copy.deepcopy(s.om.state)
    got = _open_outcome(OPEN, fast, fields, now)
    with _pure():
        want = _open_outcome(PURE_OPEN, pure, fields, now)
    assert got == want
    assert fast.snapshot() == pure.snapshot()
    if got[0] == "ok":
        init, sub = (e for _, e in got[2])  # type: ignore[misc]
        assert init == OrderInitialized(init.seq, now, now, *fields)
        assert (init.seq, sub.seq) == (s.om.state.last_seq + 1, s.om.state.last_seq + 2)


def test_open_order_hands_other_shapes_to_the_reference() -> None:
    """Fields it does not build itself (a list, fewer fields, a link field given) go
    to the pure code: the same outcome as the reference, whatever it is."""
    ok = ("a-1", "BTCUSDT", OrderSide.BUY, OrderType.LIMIT, 10**6, 10**12, 0,
          TimeInForce.GTC, False, False, 0)  # fmt: skip
    for shape in (list(ok), ok[:10], (*ok, "list-1"), ok):
        fast, pure = TradingState([btcusdt()]), TradingState([btcusdt()])
        got = _open_outcome(OPEN, fast, shape, 7)  # type: ignore[arg-type]
        with _pure():
            want = _open_outcome(PURE_OPEN, pure, shape, 7)  # type: ignore[arg-type]
        assert got == want and got[0] == "ok"
    assert [e.kind for _, e in got[2]] == ["OrderInitialized", "OrderSubmitted"]  # type: ignore[attr-defined]
