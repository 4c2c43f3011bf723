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

from bot4.backtest.engine import Backtest
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
from bot4.sim._compiled import FORCE_PURE
from tests.conftest import btcusdt
from tests.session import new_session, step

FOLD = TradingState.__dict__["apply"]
PURE = TradingState.apply_py


@contextmanager
def _pure() -> Iterator[None]:
    """``TradingState.apply`` is the pure reference inside the block."""
    saved = TradingState.__dict__["apply"]
    setattr(TradingState, "apply", PURE)  # noqa: B010
    try:
        yield
    finally:
        setattr(TradingState, "apply", saved)  # noqa: B010


def test_the_compiled_fold_is_built_and_in_use() -> None:
    if FORCE_PURE:
        pytest.skip("BOT4_PURE_SIM is set: the pure fold is in use on purpose")
    from bot4.oms import _fastfold

    assert _fastfold.__file__ is not None and not _fastfold.__file__.endswith((".py", ".pyx"))
    assert state_mod.COMPILED_FOLD, "bot4.oms._fastfold is not built: run pip install -e ."
    assert FOLD is _fastfold.fold
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
