"""The event journal: round trip, sequence anomalies, a killed writer, PostgreSQL.

Real components only: an ``OrderManager`` writing to a ``SqlJournal`` on a SQLite file
(or a throw-away PostgreSQL server), then ``replay`` from what was written.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from bot4.core.clock import TestClock
from bot4.core.enums import OrderSide, OrderStatus, OrderType
from bot4.core.errors import InsufficientBalance, JournalUnavailable, SequenceError
from bot4.core.events import BalanceAdjusted
from bot4.core.instrument import Instrument
from bot4.core.numbers import SCALE, money_to_raw, to_raw
from bot4.oms.journal import SequenceAnomaly, SqlJournal, events_table, replay
from bot4.oms.manager import OrderManager
from bot4.oms.requests import OrderRequest
from bot4.oms.state import TradingState

T0 = 1_700_000_000_000_000_000
SEC = 1_000_000_000

BTCUSDT = Instrument.create(
    "BTCUSDT", "BTC", "USDT", tick_size="0.01", step_size="0.00001", min_notional="5"
)
INSTRUMENTS = [BTCUSDT]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def count_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events_table)).scalar_one())
    finally:
        engine.dispose()


def replay_journal(journal: SqlJournal) -> TradingState:
    """``replay(journal.read())``, closing the reader when replay stops early: a half-read
    ``records()`` generator keeps its connection (and transaction) until it is collected."""
    with closing(journal.read()) as events:
        return replay(events, INSTRUMENTS)


def limit(side: OrderSide, qty: str, price: str) -> OrderRequest:
    return OrderRequest("BTCUSDT", side, OrderType.LIMIT, qty, price=price)


# -- the round-trip scenario ---------------------------------------------------------------

# Events the scenario emits, derived by hand from the manager's rules (see comments).
SCENARIO_KINDS = {
    "BalanceAdjusted": 3,  # two deposits and a withdrawal
    # A, B, C, entry, SL, TP, OCO x2, D, E
    "OrderInitialized": 10,
    "OrderSubmitted": 10,  # the exits only once the entry fills
    # A, B, C (late, after the cancel request), entry, SL, TP, OCO x2, D
    "OrderAccepted": 9,
    # A 2, B 1, entry 2, TP 2, OCO leg 1
    "OrderFilled": 8,
    # exits released x2, exits grown x2, SL shrunk after TP's partial, OCO sibling shrunk
    "OrderUpdated": 6,
    "OrderPendingCancel": 4,  # B, C, both OCO legs
    "OrderCanceled": 5,  # B, C, SL (sibling filled), both OCO legs
}
SCENARIO_EVENTS = sum(SCENARIO_KINDS.values())  # 55


def run_scenario(om: OrderManager, clock: TestClock) -> dict[str, str]:
    """Deposits, plain limit orders, a bracket and an OCO through their lifecycles.
    Returns the client order ids by name."""
    tick = itertools.count(1)

    def step() -> None:
        clock.set(T0 + next(tick) * SEC)

    step()
    om.deposit("USDT", "100000")
    om.deposit("BTC", "1")

    # A: buy 0.5 @ 30000, two fills: fee in base (BTC), then fee in quote (USDT).
    step()
    a = om.submit(limit(OrderSide.BUY, "0.5", "30000")).client_order_id
    assert om.on_accepted(a, "V-A")
    assert not om.on_accepted(a, "V-A")  # a repeated report emits nothing
    step()
    assert om.on_fill(a, "t-a1", "0.2", "30000", fee="0.0002", fee_asset="BTC")
    assert not om.on_fill(a, "t-a1", "0.2", "30000", fee="0.0002", fee_asset="BTC")
    assert om.on_fill(a, "t-a2", "0.3", "29990", fee="8.997", fee_asset="USDT")

    # B: sell 0.3 @ 31000, partial fill, then cancelled.
    step()
    b = om.submit(limit(OrderSide.SELL, "0.3", "31000")).client_order_id
    om.on_accepted(b, "V-B")
    assert om.on_fill(b, "t-b1", "0.1", "31000", fee="3.1", fee_asset="USDT")
    om.cancel(b)
    assert om.on_canceled(b)

    # C: cancel requested before the venue acknowledged; the acceptance arrives late.
    step()
    c = om.submit(limit(OrderSide.BUY, "0.1", "29000")).client_order_id
    om.cancel(c)
    assert om.on_accepted(c, "V-C")
    assert om.state.order(c).status is OrderStatus.PENDING_CANCEL
    assert om.on_canceled(c)

    # Bracket: entry buy 0.4 @ 30000, SL 29000, TP 32000.
    step()
    entry, sl, tp = (
        o.client_order_id
        for o in om.submit_bracket(limit(OrderSide.BUY, "0.4", "30000"), "29000", "32000")
    )
    om.on_accepted(entry, "V-E")
    step()
    # 0.25 filled, 0.00025 BTC fee: the exits are released for 0.24975.
    assert om.on_fill(entry, "t-e1", "0.25", "30000", fee="0.00025", fee_asset="BTC")
    assert om.state.order(sl).quantity_raw == to_raw("0.24975", "q")
    om.on_accepted(sl, "V-SL")
    om.on_accepted(tp, "V-TP")
    step()
    assert om.on_fill(entry, "t-e2", "0.15", "29995", fee="4.49925", fee_asset="USDT")
    assert om.state.order(tp).quantity_raw == to_raw("0.39975", "q")
    step()
    assert om.on_fill(tp, "t-tp1", "0.1", "32000", fee="3.2", fee_asset="USDT")
    assert om.state.order(sl).quantity_raw == to_raw("0.29975", "q")
    assert om.on_fill(tp, "t-tp2", "0.29975", "32000.5")
    assert om.state.order(sl).status is OrderStatus.CANCELED

    # OCO: sell 0.2 limit @ 33000 / stop-limit 28000 -> 27990; a partial fill on the
    # limit leg (fee in base) shrinks the stop leg; cancelling one cancels both.
    step()
    o1, o2 = (
        o.client_order_id
        for o in om.submit_oco(
            limit(OrderSide.SELL, "0.2", "33000"),
            OrderRequest(
                "BTCUSDT",
                OrderSide.SELL,
                OrderType.STOP_LIMIT,
                "0.2",
                price="27990",
                trigger_price="28000",
            ),
        )
    )
    om.on_accepted(o1, "V-O1")
    om.on_accepted(o2, "V-O2")
    assert om.on_fill(o1, "t-o1", "0.05", "33000", fee="0.00001", fee_asset="BTC")
    assert om.state.order(o2).quantity_raw == to_raw("0.15", "q")
    om.cancel(o1)
    assert om.on_canceled(o1)
    assert om.on_canceled(o2)

    # D stays open (locks quote), E stays submitted (pending quote), then a withdrawal.
    step()
    d = om.submit(limit(OrderSide.BUY, "0.01", "25000")).client_order_id
    om.on_accepted(d, "V-D")
    e = om.submit(limit(OrderSide.BUY, "0.02", "25000")).client_order_id
    om.deposit("USDT", "-1000", reason="withdrawal")
    return {
        **{"A": a, "B": b, "C": c, "D": d, "E": e},
        **{"entry": entry, "sl": sl, "tp": tp, "o1": o1, "o2": o2},
    }


def check_scenario_state(state: TradingState) -> None:
    """Balances, position and statuses computed by hand (see run_scenario)."""
    assert state.last_seq == SCENARIO_EVENTS
    usdt = state.account.balances["USDT"]
    btc = state.account.balances["BTC"]
    # USDT: 100000 - (6000 + 8997 + 8.997) + (3100 - 3.1) - (7500 + 4499.25 + 4.49925)
    #       + (3200 - 3.2) + 9592.149875 + 1650 - 1000
    assert usdt.free + usdt.locked == money_to_raw("89526.103625", "x")
    assert usdt.locked == money_to_raw("250", "x")  # D: 0.01 x 25000
    assert state.account.pending == {"USDT": money_to_raw("500", "x")}  # E: 0.02 x 25000
    # BTC: 1 + (0.5 - 0.0002) - 0.1 + (0.4 - 0.00025) - 0.39975 - (0.05 + 0.00001)
    assert btc.free == money_to_raw("1.34979", "x")
    assert btc.locked == 0
    pos = state.positions["BTCUSDT"]
    # Fills: +0.5 - 0.1 + 0.4 - 0.39975 - 0.05; the BTC fees (0.00046) leave the position
    # too, so it equals the BTC the trades delivered (1.34979 - 1 deposited).
    assert pos.qty_raw == to_raw("0.34979", "q")
    assert pos.trades == 8
    assert pos.fees_money == {
        "BTC": money_to_raw("0.00046", "x"),
        "USDT": money_to_raw("19.796250", "x"),
    }
    statuses = Counter(o.status for o in state.orders.values())
    assert statuses == {
        OrderStatus.FILLED: 3,  # A, entry, TP
        OrderStatus.CANCELED: 5,  # B, C, SL, OCO x2
        OrderStatus.ACCEPTED: 1,  # D
        OrderStatus.SUBMITTED: 1,  # E
    }
    assert len(state.open_orders) == 2


def roundtrip(url: str) -> None:
    clock = TestClock(T0)
    with SqlJournal(url) as journal:
        assert journal.last_seq == 0
        om = OrderManager(INSTRUMENTS, clock=clock, journal=journal)
        ids = run_scenario(om, clock)
        check_scenario_state(om.state)
        assert journal.last_seq == SCENARIO_EVENTS
        assert journal.verify() == []

        events = list(journal.read())
        assert [ev.seq for ev in events] == list(range(1, SCENARIO_EVENTS + 1))
        assert Counter(ev.kind for ev in events) == SCENARIO_KINDS
        rebuilt = replay(journal.read(), INSTRUMENTS)
        assert rebuilt.snapshot() == om.state.snapshot()
        check_scenario_state(rebuilt)
        # Events survive the round trip field for field (enums, tuples, big ints).
        fills = [ev for ev in events if ev.kind == "OrderFilled"]
        assert fills[0].client_order_id == ids["A"]
        assert fills[0].fee_money == money_to_raw("0.0002", "x")
        inits = {ev.client_order_id: ev for ev in events if ev.kind == "OrderInitialized"}
        assert inits[ids["entry"]].linked_ids == (ids["sl"], ids["tp"])
        assert inits[ids["o2"]].order_type is OrderType.STOP_LIMIT
        assert inits[ids["o2"]].trigger_raw == 28000 * SCALE
        # read(from_seq) starts in the middle.
        assert [ev.seq for ev in journal.read(from_seq=50)] == list(range(50, SCENARIO_EVENTS + 1))
        live_snapshot = om.state.snapshot()

    # Reopen: the journal knows where it stopped, and a manager built on the replayed
    # state carries on where the first one left off.
    with SqlJournal(url) as journal:
        assert journal.last_seq == SCENARIO_EVENTS
        state = replay(journal.read(), {"BTCUSDT": BTCUSDT})
        assert state.snapshot() == live_snapshot
        clock2 = TestClock(T0 + 100 * SEC)
        om2 = OrderManager(INSTRUMENTS, clock=clock2, journal=journal, state=state)
        assert sorted(state.open_orders) == sorted([ids["D"], ids["E"]])
        # A repeat of a fill from before the restart is recognised from the replay.
        assert om2.on_fill(ids["A"], "t-a2", "0.3", "29990", fee="8.997") is False
        assert om2.duplicate_fills == 1
        assert journal.last_seq == SCENARIO_EVENTS
        assert om2.on_fill(ids["D"], "t-d1", "0.01", "25000")
        om2.deposit("BTC", "0.5")
        assert journal.last_seq == SCENARIO_EVENTS + 2
        assert replay(journal.read(), INSTRUMENTS).snapshot() == om2.state.snapshot()
        assert om2.state.account.balances["USDT"].locked == 0
        # 1.34979 + 0.01 bought by D + 0.5 deposited
        assert om2.state.account.balances["BTC"].free == money_to_raw("1.85979", "x")
    assert count_rows(url) == SCENARIO_EVENTS + 2


def test_roundtrip_sqlite(tmp_path: Path) -> None:
    roundtrip(sqlite_url(tmp_path / "journal.db"))


def test_failed_call_journals_nothing(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "j.db")
    with SqlJournal(url) as journal:
        om = OrderManager(INSTRUMENTS, clock=TestClock(T0), journal=journal)
        om.deposit("USDT", "100")
        with pytest.raises(InsufficientBalance, match="needs"):
            om.submit(limit(OrderSide.BUY, "1", "30000"))  # 30000 USDT > 100
        assert journal.last_seq == 1
    assert count_rows(url) == 1


# -- sequence anomalies --------------------------------------------------------------------


def raw_row(seq: int, amount: str = "1") -> dict[str, object]:
    return {
        "seq": seq,
        "ts_event": T0 + seq,
        "ts_recv": T0 + seq,
        "kind": "BalanceAdjusted",
        "payload": json.dumps(
            {"asset": "USDT", "amount_money": money_to_raw(amount, "x"), "reason": "raw"}
        ),
    }


def five_deposits(url: str) -> None:
    with SqlJournal(url) as journal:
        om = OrderManager(INSTRUMENTS, clock=TestClock(T0), journal=journal)
        for i in range(1, 6):
            om.deposit("USDT", str(i))
        assert journal.last_seq == 5


def insert_raw(url: str, *rows: dict[str, object]) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for row in rows:
                conn.execute(insert(events_table), row)
    finally:
        engine.dispose()


def test_verify_reports_gap_and_out_of_order(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "j.db")
    five_deposits(url)
    insert_raw(url, raw_row(7))  # seq 6 skipped
    insert_raw(url, raw_row(6))  # ... and written late
    with SqlJournal(url) as journal:
        assert journal.last_seq == 7
        anomalies = journal.verify()
        assert anomalies == [
            SequenceAnomaly(row_id=6, expected=6, got=7),
            SequenceAnomaly(row_id=7, expected=8, got=6),
        ]
        assert [a.kind for a in anomalies] == ["gap", "out-of-order or duplicate"]
        # The journal reads in write order, so replay meets the gap first.
        assert [ev.seq for ev in journal.read()] == [1, 2, 3, 4, 5, 7, 6]
        with pytest.raises(SequenceError) as err:
            replay_journal(journal)
        assert (err.value.expected, err.value.got, err.value.kind) == (6, 7, "gap")
        # A journal that was healthy up to a point replays to that point.
        events = list(journal.read())
        assert replay(events[:5], INSTRUMENTS).account.balances["USDT"].free == money_to_raw(
            "15", "x"
        )
    # The stream goes on after the late row: 8 follows 7, so nothing more is wrong.
    insert_raw(url, raw_row(8))
    with SqlJournal(url) as journal:
        assert journal.last_seq == 8
        assert [(a.row_id, a.expected, a.got) for a in journal.verify()] == [(6, 6, 7), (7, 8, 6)]


def test_duplicate_seq_refused_by_schema(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "j.db")
    five_deposits(url)
    with pytest.raises(IntegrityError):
        insert_raw(url, raw_row(3))
    assert count_rows(url) == 5
    with SqlJournal(url) as journal:
        assert journal.verify() == []


def test_verify_reports_duplicate_in_table_without_unique_seq(tmp_path: Path) -> None:
    """A table created elsewhere without the UNIQUE(seq) constraint: verify still sees a
    repeated seq, and replay refuses it."""
    url = sqlite_url(tmp_path / "j.db")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE bot4_events (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "seq BIGINT NOT NULL, ts_event BIGINT NOT NULL, ts_recv BIGINT NOT NULL, "
                "kind VARCHAR(64) NOT NULL, payload TEXT NOT NULL)"
            )
        )
    engine.dispose()
    five_deposits(url)
    insert_raw(url, raw_row(5), raw_row(6))  # seq 5 written twice, then the stream goes on
    with SqlJournal(url) as journal:
        anomalies = journal.verify()
        assert anomalies == [SequenceAnomaly(row_id=6, expected=6, got=5)]
        assert anomalies[0].kind == "out-of-order or duplicate"
        with pytest.raises(SequenceError) as err:
            replay_journal(journal)
        assert (err.value.expected, err.value.got) == (6, 5)
        assert err.value.kind == "out-of-order or duplicate"
        # A repeat of an older seq in the middle: one anomaly, and no false gap after it.
        insert_raw(url, raw_row(2), raw_row(7))
        assert journal.verify() == [
            SequenceAnomaly(row_id=6, expected=6, got=5),
            SequenceAnomaly(row_id=8, expected=7, got=2),
        ]


def test_replay_refuses_out_of_order_events(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "j.db")
    five_deposits(url)
    with SqlJournal(url) as journal:
        events = list(journal.read())
    swapped = [events[0], events[2], events[1], *events[3:]]
    with pytest.raises(SequenceError) as err:
        replay(swapped, INSTRUMENTS)
    assert (err.value.expected, err.value.got, err.value.kind) == (2, 3, "gap")
    repeated = [*events, events[4]]
    with pytest.raises(SequenceError) as err:
        replay(repeated, INSTRUMENTS)
    assert (err.value.expected, err.value.got) == (6, 5)
    assert err.value.kind == "out-of-order or duplicate"


def test_append_refuses_wrong_seq_and_writes_nothing(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "j.db")
    five_deposits(url)

    def deposit(seq: int) -> BalanceAdjusted:
        return BalanceAdjusted(
            seq=seq, ts_event=T0, ts_recv=T0, asset="BTC", amount_money=money_to_raw("1", "x")
        )

    with SqlJournal(url) as journal:
        for bad, kind in ((7, "gap"), (5, "out-of-order or duplicate"), (1, None), (0, None)):
            with pytest.raises(SequenceError) as err:
                journal.append(deposit(bad))
            assert (err.value.expected, err.value.got) == (6, bad)
            if kind:
                assert err.value.kind == kind
            assert journal.last_seq == 5
        assert count_rows(url) == 5
        # All or none: a batch with one bad event in the middle writes nothing.
        with pytest.raises(SequenceError) as err:
            journal.append_many([deposit(6), deposit(7), deposit(9)])
        assert (err.value.expected, err.value.got) == (8, 9)
        assert journal.last_seq == 5
        assert count_rows(url) == 5
        journal.append_many([])
        assert count_rows(url) == 5
        # The journal is still usable afterwards.
        journal.append_many([deposit(6), deposit(7)])
        journal.append(deposit(8))
        assert journal.last_seq == 8
        assert journal.verify() == []
        state = replay(journal.read(), INSTRUMENTS)
        assert state.account.balances["BTC"].free == money_to_raw("3", "x")
        assert state.account.balances["USDT"].free == money_to_raw("15", "x")
    assert count_rows(url) == 8


# -- a writer killed mid-write -------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys

    from bot4.core.clock import TestClock
    from bot4.core.enums import OrderSide, OrderType
    from bot4.core.instrument import Instrument
    from bot4.oms.journal import SqlJournal, replay
    from bot4.oms.manager import OrderManager
    from bot4.oms.requests import OrderRequest

    inst = Instrument.create("BTCUSDT", "BTC", "USDT", "0.01", "0.00001", min_notional="5")
    journal = SqlJournal(sys.argv[1])
    state = replay(journal.read(), [inst])
    clock = TestClock(1_700_000_000_000_000_000 + state.last_seq * 1_000_000)
    om = OrderManager([inst], clock=clock, journal=journal, state=state)
    om.listeners.append(lambda ev: print(ev.seq, flush=True))  # after the commit
    print("ready", state.last_seq, flush=True)

    def req(side, qty, price):
        return OrderRequest("BTCUSDT", side, OrderType.LIMIT, qty, price=price)

    n = len(state.orders)
    while True:
        n += 1
        clock.advance(1_000_000)
        om.deposit("USDT", "3000")
        om.deposit("BTC", "0.1")
        buy = om.submit(req(OrderSide.BUY, "0.1", "30000")).client_order_id
        om.on_accepted(buy, f"V{n}")
        om.on_fill(buy, f"T{n}a", "0.04", "30000", fee="0.00004", fee_asset="BTC")
        om.on_fill(buy, f"T{n}b", "0.06", "29999.99", fee="1.8", fee_asset="USDT")
        sell = om.submit(req(OrderSide.SELL, "0.05", "31000")).client_order_id
        om.on_accepted(sell, f"V{n}s")
        om.on_fill(sell, f"T{n}c", "0.01", "31000")
        om.cancel(sell)
        om.on_canceled(sell)
    """
)


def run_and_kill(script: Path, url: str, kill_after: int, log: Path) -> tuple[int, int]:
    """Start the writer, SIGKILL it once it has reported ``kill_after`` commits.
    Returns (seq the journal held at start, last seq the child reported)."""
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), url], stdout=subprocess.PIPE, stderr=err, text=True
        )
    watchdog = threading.Timer(15.0, proc.kill)  # a hung child fails the test, not CI
    watchdog.start()
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline().split()
        assert header[:1] == ["ready"], log.read_text()
        start = int(header[1])
        reported: list[int] = []
        while len(reported) < kill_after:
            line = proc.stdout.readline()
            if not line:
                break
            reported.append(int(line))
        assert len(reported) >= kill_after, log.read_text()
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read()  # what it printed before it died (EOF once it is gone)
        proc.wait(timeout=10)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    # A torn last line (no newline) is not a report.
    reported += [int(x) for x in rest.split("\n")[:-1] if x]
    assert reported == list(range(start + 1, start + len(reported) + 1))
    return start, reported[-1]


def test_killed_writer_leaves_a_consistent_journal(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(CHILD)
    db = tmp_path / "killed.db"
    url = sqlite_url(db)
    began = time.monotonic()
    previous_last = 0
    for runs, kill_after in enumerate((500, 2000, 3000), start=1):
        start, last_reported = run_and_kill(script, url, kill_after, tmp_path / "err.log")
        assert start == previous_last  # the next writer resumed from what was on disk
        assert last_reported - start >= kill_after
        # Killed, not closed: the WAL file is still there for recovery to read.
        assert Path(f"{db}-wal").exists()
        with SqlJournal(url) as journal:
            assert journal.verify() == []
            # Every reported commit is there; at most the transaction committed but not
            # yet (fully) printed when the kill landed is extra: the writer's largest
            # holds two events (an order's initialization and submission).
            assert last_reported <= journal.last_seq <= last_reported + 2
            assert count_rows(url) == journal.last_seq
            state = replay(journal.read(), INSTRUMENTS)
            assert state.last_seq == journal.last_seq
            # The replayed funds agree with the replayed orders.
            usdt, btc = state.account.balances["USDT"], state.account.balances["BTC"]
            open_orders = list(state.open_orders.values())
            assert usdt.locked == sum(
                o.locked_money for o in open_orders if o.side is OrderSide.BUY
            )
            assert btc.locked == sum(
                o.locked_money for o in open_orders if o.side is OrderSide.SELL
            )
            assert usdt.free >= 0 and btc.free >= 0
            # 13 events and one filled buy per loop; each kill may cut one loop short.
            filled = sum(1 for o in state.orders.values() if o.status is OrderStatus.FILLED)
            assert filled >= journal.last_seq // 13 - runs
            previous_last = journal.last_seq
    assert previous_last >= 5500
    assert time.monotonic() - began < 20


# -- PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        import pgserver  # a dev dependency: missing is a failure, not a skip
    except ImportError as exc:  # pragma: no cover - only when the env is broken
        pytest.fail(f"pgserver is not importable: {exc}")
    # A start can fail when another PostgreSQL starts on this machine at the same moment
    # (shared runtime files); two more tries in fresh directories, then a real failure.
    for attempt in range(3):
        try:
            srv = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
            break
        except Exception:
            if attempt == 2:
                raise
            time.sleep(1.0)
    try:
        yield srv
    finally:
        srv.cleanup()


_db_names = itertools.count(1)


@pytest.fixture
def pg_url(pg_server: Any) -> Iterator[str]:
    """A fresh database on the session's server, dropped afterwards."""
    base = make_url(pg_server.get_uri()).set(drivername="postgresql+psycopg")
    name = f"bot4_test_{os.getpid()}_{next(_db_names)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_roundtrip_postgresql(pg_url: str) -> None:
    assert pg_url.startswith("postgresql+psycopg://")
    roundtrip(pg_url)
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.dialect.name == "postgresql"
            seqs = conn.execute(select(events_table.c.seq).order_by(events_table.c.id)).scalars()
            assert list(seqs) == list(range(1, SCENARIO_EVENTS + 3))
    finally:
        engine.dispose()


def test_postgresql_gap_and_wrong_append(pg_url: str) -> None:
    five_deposits(pg_url)
    insert_raw(pg_url, raw_row(7))
    insert_raw(pg_url, raw_row(6))
    with pytest.raises(IntegrityError):
        insert_raw(pg_url, raw_row(3))
    with SqlJournal(pg_url) as journal:
        assert journal.last_seq == 7
        assert [(a.expected, a.got, a.kind) for a in journal.verify()] == [
            (6, 7, "gap"),
            (8, 6, "out-of-order or duplicate"),
        ]
        with pytest.raises(SequenceError) as err:
            replay_journal(journal)
        assert (err.value.expected, err.value.got) == (6, 7)
        with pytest.raises(SequenceError):
            journal.append(
                BalanceAdjusted(seq=9, ts_event=T0, ts_recv=T0, asset="BTC", amount_money=1)
            )
    assert count_rows(pg_url) == 7


def test_big_amounts_survive_the_journal(tmp_path: Path) -> None:
    """Money beyond 2**63 (123 million USDT is 1.2e26 raw) round-trips exactly."""
    big = money_to_raw(Decimal("123456789.123456789123456789"), "x")
    assert big > 2**63
    with SqlJournal(sqlite_url(tmp_path / "j.db")) as journal:
        journal.append(
            BalanceAdjusted(seq=1, ts_event=T0, ts_recv=T0 + 1, asset="USDT", amount_money=big)
        )
        (ev,) = journal.read()
    assert ev == BalanceAdjusted(
        seq=1, ts_event=T0, ts_recv=T0 + 1, asset="USDT", amount_money=big, reason="deposit"
    )


def test_manager_fails_closed_when_the_journal_cannot_write(tmp_path: Path) -> None:
    """A second writer takes the next sequence number: the manager's write fails, it
    refuses every later call, and the journal holds no half-written step."""
    url = f"sqlite:///{tmp_path / 'j.db'}"
    journal = SqlJournal(url)
    om = OrderManager([BTCUSDT], clock=TestClock(T0), journal=journal)
    om.deposit("USDT", "1000")
    with SqlJournal(url) as intruder:
        intruder.append(BalanceAdjusted(seq=2, ts_event=T0, ts_recv=T0, asset="X", amount_money=1))
    seen: list[object] = []
    om.listeners.append(seen.append)
    with pytest.raises(JournalUnavailable):
        om.submit_bracket(
            OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "0.01", "30000"),
            "29000",
            "31000",
        )
    assert seen == []  # listeners only ever see durable events
    with pytest.raises(JournalUnavailable):
        om.deposit("USDT", "1")
    with SqlJournal(url) as reader:
        kinds = [e.kind for e in reader.read()]
    assert kinds == ["BalanceAdjusted", "BalanceAdjusted"]  # none of the bracket's 4 events


def test_sqlite_wal_is_checkpointed_off_the_commit_path(tmp_path: Path) -> None:
    """Appends go through the driver's connection with automatic checkpoints off; a
    thread checkpoints instead, so the write-ahead log is reused rather than growing
    without bound, a second reader sees every committed event while the writer is
    open, and the log is folded back into the database at close."""
    from bot4.core.events import TradingStateChanged

    db = tmp_path / "j.db"
    wal = tmp_path / "j.db-wal"
    journal = SqlJournal(f"sqlite:///{db}")

    def batch(first: int, n: int) -> None:
        for seq in range(first, first + n):
            ev = TradingStateChanged(
                seq=seq, ts_event=seq, ts_recv=seq, trading_state="ACTIVE", reason="x" * 200
            )
            journal.append(ev)

    batch(1, 2000)
    size_after_first = wal.stat().st_size
    with SqlJournal(f"sqlite:///{db}") as reader:
        assert sum(1 for _ in reader.read()) == 2000
    time.sleep(1.2)  # the checkpoint thread runs every 0.5 s
    batch(2001, 2000)
    assert wal.stat().st_size <= size_after_first * 1.2, "the log was not reused"
    journal.close()
    assert not wal.exists() or wal.stat().st_size == 0
    with SqlJournal(f"sqlite:///{db}") as reader:
        assert [e.seq for e in reader.read()] == list(range(1, 4001))
        assert reader.verify() == []
