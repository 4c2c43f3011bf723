"""The exchange's write-through command log, in process: a replay of the log on top of
the last snapshot ends in exactly the state the exchange had (every order, queue place,
balance, history, counter), whatever mix of commands came before; torn tails, gaps and
foreign logs are handled as documented in ``server/command_log.py``."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot4.core.clock import TestClock
from bot4.core.enums import OrderSide, OrderType, TimeInForce
from bot4.core.errors import ValidationError
from bot4.core.numbers import to_raw
from bot4.server import command_log as cl
from bot4.server import state as state_file
from bot4.server.config import CATALOG, AccountSpec, MakerSpec
from bot4.server.exchange import Exchange
from bot4.server.market_maker import NOTE, MarketMaker
from bot4.sim.errors import BinanceError
from bot4.sim.matching_types import NewOrder
from tests.conftest import T0

BTC = CATALOG["BTCUSDT"]
ETH = CATALOG["ETHUSDT"]
ALICE = AccountSpec("alice", "k", "s", {"USDT": Decimal(1_000_000), "BTC": Decimal(10)})


def _fresh(clock: TestClock) -> tuple[Exchange, MarketMaker]:
    ex = Exchange([BTC, ETH], clock)
    ex.open_account(ALICE)
    return ex, MarketMaker(ex, [BTC, ETH], MakerSpec(), 5)


def _comparable(ex: Exchange) -> dict[str, Any]:
    data = state_file.capture(ex)
    data.pop("saved_ms")
    return json.loads(json.dumps(data))


def _client_commands(ex: Exchange, clock: TestClock, rng: random.Random, n: int) -> int:
    """Random client orders (limits around the market, markets, IOCs, cancels, amends,
    cancel-alls) interleaved with market-maker steps; returns how many were refused."""
    refused = 0
    for i in range(n):
        clock.advance(rng.randrange(1, 50_000_000))
        book = ex.engine.book("BTCUSDT")
        mid = ((book.best_bid() or 0) + (book.best_ask() or 0)) // 2 or to_raw("60000", "p")
        roll = rng.random()
        try:
            if roll < 0.35:
                side = OrderSide.BUY if rng.random() < 0.5 else OrderSide.SELL
                off = rng.randrange(-30, 30) * to_raw("0.5", "p")
                price = (mid + off) // to_raw("0.01", "t") * to_raw("0.01", "t")
                tif = rng.choice([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC])
                qty = to_raw("0.001", "q") * rng.randrange(1, 20)
                ex.submit(
                    NewOrder("alice", "BTCUSDT", side, OrderType.LIMIT, qty, price, 0, tif, False,
                             0, f"c{i}")
                )  # fmt: skip
            elif roll < 0.45:
                side = OrderSide.BUY if rng.random() < 0.5 else OrderSide.SELL
                qty = to_raw("0.002", "q")
                ex.submit(NewOrder("alice", "BTCUSDT", side, OrderType.MARKET, qty))
            elif roll < 0.6:
                mine = ex.engine.open_orders_of("alice", "BTCUSDT")
                if mine:
                    o = rng.choice(mine)
                    if rng.random() < 0.5:
                        ex.cancel("alice", "BTCUSDT", o.order_id)
                    else:
                        ex.cancel("alice", "BTCUSDT", None, o.client_order_id)
            elif roll < 0.65:
                mine = ex.engine.open_orders_of("alice", "BTCUSDT")
                if mine:
                    o = mine[0]
                    ex.amend("alice", "BTCUSDT", o.order_id, o.executed + to_raw("0.001", "q"))
            elif roll < 0.67:
                ex.cancel_all("alice", "BTCUSDT")
            else:
                ex.set_last_price("ETHUSDT", to_raw("3000", "p") + rng.randrange(0, 100) * 10**7)
        except BinanceError:
            refused += 1
    return refused


def test_replay_of_the_log_reproduces_the_exchange_exactly() -> None:
    """Snapshot in the middle, more commands after it, then a 'crash': a fresh exchange
    restored from the snapshot plus the log's tail equals the live one, field by field."""
    clock = TestClock(T0)
    live, mm = _fresh(clock)
    entries: list[list[Any]] = []
    seq = [0]

    def record(entry: list[Any]) -> None:
        seq[0] += 1
        entries.append([seq[0], *entry])

    live.recorder = record
    mm.start()
    rng = random.Random(11)
    for _ in range(30):
        mm.step()
        _client_commands(live, clock, rng, 10)
    snap = state_file.capture(live, {"market_maker": mm.to_state()})
    snap["log_seq"] = seq[0]
    snap = json.loads(json.dumps(snap))  # through JSON, as on disk
    for _ in range(40):
        clock.advance(50_000_000)
        mm.step()
        _client_commands(live, clock, rng, 10)
    tail = [e for e in entries if e[0] > snap["log_seq"]]
    assert len(tail) > 300 and any(e[1] == cl.CANCEL_ALL for e in entries)
    assert {e[1] for e in tail} >= {cl.SUBMIT, cl.CANCEL, cl.AMEND, cl.LAST_PRICE, cl.NOTE}

    restarted_clock = TestClock(clock.now_ns() + 10**9)  # the restart happens later
    back = Exchange([BTC, ETH], restarted_clock)
    state_file.restore(back, snap)
    back.open_account(ALICE)
    mm2 = MarketMaker(back, [BTC, ETH], MakerSpec(), 5)
    mm2.load_state(snap["market_maker"])
    notes = back.replay(json.loads(json.dumps(tail)))
    mm2.load_refs(notes[NOTE])
    assert _comparable(back) == _comparable(live)
    assert {s: b.ref_ticks for s, b in mm2.books.items()} == {
        s: b.ref_ticks for s, b in mm.books.items()
    }
    assert mm2.books["BTCUSDT"].bids == mm.books["BTCUSDT"].bids
    # the replayed exchange goes on with the same counters
    back.recorder = record
    r = back.submit(NewOrder("alice", "BTCUSDT", OrderSide.BUY, OrderType.MARKET, 10**6))
    assert r[0].order_id == live.engine._next_id


def test_refused_commands_are_not_logged_and_the_time_is_pinned() -> None:
    clock = TestClock(T0)
    ex, _ = _fresh(clock)
    entries: list[list[Any]] = []
    ex.recorder = entries.append
    with pytest.raises(BinanceError):
        ex.cancel("alice", "BTCUSDT", 12345)
    with pytest.raises(BinanceError):
        ex.submit(NewOrder("alice", "BTCUSDT", OrderSide.BUY, OrderType.LIMIT, 1, 1))
    assert entries == []
    ex.set_last_price("BTCUSDT", to_raw("60000", "p"))
    assert entries == [[cl.LAST_PRICE, T0, "BTCUSDT", to_raw("60000", "p")]]
    assert ex.command_clock.pinned == 0


def test_log_file_torn_tail_gap_and_truncate(tmp_path: Path) -> None:
    path = tmp_path / "x.json.log"
    log = cl.CommandLog(path, "fsync", seq=4)
    log.append([cl.LAST_PRICE, 1, "BTCUSDT", 5])
    log.append([cl.LAST_PRICE, 2, "BTCUSDT", 6])
    log.close()
    assert [e[0] for e in cl.read_log(path, 4)] == [5, 6]
    assert [e[0] for e in cl.read_log(path, 5)] == [6]  # the snapshot holds 5 already
    with path.open("ab") as fh:
        fh.write(b'[7,"p",3,"BTC')  # a write torn by a kill: never answered
    assert [e[0] for e in cl.read_log(path, 4)] == [5, 6]
    assert path.read_bytes().endswith(b"\n")  # the torn tail is cut off
    with pytest.raises(cl.LogError, match="gap"):
        cl.read_log(path, 2)  # entries 3 and 4 are missing
    path.write_bytes(b'[1,"p",1,"BTCUSDT",5]\nnot json\n[3,"p",1,"BTCUSDT",5]\n')
    with pytest.raises(cl.LogError, match="line 2"):
        cl.read_log(path, 0)
    log = cl.CommandLog(path, "write", seq=9)
    log.truncate()
    log.append([cl.NOTE, 0, "x", 1])
    log.close()
    assert cl.read_log(path, 9) == [[10, cl.NOTE, 0, "x", 1]]
    assert cl.read_log(tmp_path / "missing.log", 0) == []
    with pytest.raises(ValidationError, match="state_sync"):
        cl.sync_policy("sometimes")


def test_a_log_that_does_not_fit_the_state_is_refused() -> None:
    clock = TestClock(T0)
    ex, _ = _fresh(clock)
    cancel = [1, cl.CANCEL, T0, "alice", "BTCUSDT", 999, ""]
    with pytest.raises(cl.LogError, match="does not apply"):
        ex.replay([cancel])
    with pytest.raises(cl.LogError, match="unknown kind"):
        ex.replay([[1, "?", T0]])


def test_a_failed_write_stops_before_the_answer(tmp_path: Path) -> None:
    failures: list[OSError] = []
    log = cl.CommandLog(tmp_path / "y.log", "write", on_failure=failures.append)
    log.close()
    log._fd = 10**6  # a descriptor that does not exist: os.write fails
    log.append([cl.NOTE, 0, "x", 1])
    assert len(failures) == 1 and log.seq == 0
    log._fd = None
