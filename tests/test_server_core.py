"""The exchange server's core, in process: depth update ids, the market maker, the
state file, the replay of a raw Binance capture.  No network: these pin the invariants
the network tests rely on, and they run in a second or two."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.core.clock import TestClock
from bot4.core.enums import OrderSide, OrderType, TimeInForce
from bot4.core.numbers import to_raw
from bot4.server import state as state_file
from bot4.server.config import CATALOG, AccountSpec, MakerSpec
from bot4.server.exchange import Exchange
from bot4.server.market_maker import MarketMaker
from bot4.server.orders import AccountHistory
from bot4.server.replay import Replayer
from bot4.sim.binance_capture import DepthDiff, DepthSnapshot, Trade, read_capture
from bot4.sim.errors import BinanceError
from bot4.sim.matching_checks import audit
from bot4.sim.matching_types import NewOrder, SimStatus
from tests.conftest import SHARED_DATA, T0

BTC = CATALOG["BTCUSDT"]
ETH = CATALOG["ETHUSDT"]
CAPTURE = SHARED_DATA / "orderbook" / "hftbacktest_binance_raw" / "spot_btcusdt_20240808.gz"
ALICE = AccountSpec("alice", "k", "s", {"USDT": Decimal(1_000_000), "BTC": Decimal(10)})
STEP_NS = 100_000_000


def _exchange(maker: bool = True, seed: int = 7) -> tuple[Exchange, TestClock, MarketMaker | None]:
    clock = TestClock(T0)
    ex = Exchange([BTC, ETH], clock)
    ex.open_account(ALICE)
    mm = MarketMaker(ex, [BTC, ETH], MakerSpec(), seed) if maker else None
    if mm is not None:
        mm.start()
    return ex, clock, mm


def _order(side: OrderSide, price: str, qty: str, tif: TimeInForce = TimeInForce.GTC) -> NewOrder:
    return NewOrder(
        "alice",
        "BTCUSDT",
        side,
        OrderType.LIMIT,
        to_raw(qty, "q"),
        to_raw(price, "p"),
        time_in_force=tif,
    )


# -- depth: REST snapshot + diff stream rebuild the book exactly -------------------------


class StreamClient:
    """Binance's documented local-book procedure, as ccxt implements it for spot."""

    def __init__(self, snapshot: tuple[int, list[tuple[int, int]], list[tuple[int, int]]]) -> None:
        self.nonce, bids, asks = snapshot
        self.bids = dict(bids)
        self.asks = dict(asks)
        self.started = False

    def apply(self, first: int, last: int, bids: list[Any], asks: list[Any]) -> None:
        if last <= self.nonce:
            return
        if self.started:
            assert first == self.nonce + 1, f"gap: U={first} after u={self.nonce}"
        else:
            assert first <= self.nonce + 1 <= last, "first diff does not bridge the snapshot"
            self.started = True
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, q in levels:
                if q:
                    side[p] = q
                else:
                    side.pop(p, None)
        self.nonce = last


ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("order"),
            st.sampled_from(list(OrderSide)),
            st.integers(-40, 40),
            st.integers(1, 50),
            st.sampled_from([TimeInForce.GTC, TimeInForce.IOC]),
        ),
        st.tuples(st.just("cancel"), st.integers(0, 10**6)),
        st.tuples(st.just("maker")),
        st.tuples(st.just("flush"), st.integers(0, 1)),
        st.tuples(st.just("snapshot")),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60)
@given(ops)
def test_snapshot_plus_diffs_rebuild_the_book_exactly(program: list[tuple[Any, ...]]) -> None:
    ex, clock, mm = _exchange()
    assert mm is not None
    clients: list[StreamClient] = []
    for op in program:
        clock.advance(STEP_NS)
        if op[0] == "order":
            _, side, offset, lots, tif = op
            mid = (ex.engine.book("BTCUSDT").best_bid() or 0) // 10**7 * 10**7
            price = mid + offset * 3 * 10**9
            req = _order(side, str(price / 10**9), str(Decimal(lots) / 1000), tif)
            with contextlib.suppress(BinanceError):
                ex.submit(req)
        elif op[0] == "cancel":
            mine = ex.engine.open_orders_of("alice", "BTCUSDT")
            if mine:
                ex.cancel("alice", "BTCUSDT", mine[op[1] % len(mine)].order_id)
        elif op[0] == "maker":
            mm.step()
        elif op[0] == "flush":
            state = ex.depth["BTCUSDT"]
            event = state.windows[op[1]].drain(state.book, state.update_id)
            if event is not None:
                for c in clients:
                    if getattr(c, "speed", 0) == op[1]:
                        c.apply(*event)
        else:
            for speed in (0, 1):
                client = StreamClient(ex.depth_snapshot("BTCUSDT", 5000))
                client.speed = speed  # type: ignore[attr-defined]
                clients.append(client)
    for speed in (0, 1):
        state = ex.depth["BTCUSDT"]
        event = state.windows[speed].drain(state.book, state.update_id)
        for c in clients:
            if event is not None and getattr(c, "speed", 0) == speed:
                c.apply(*event)
    uid, bids, asks = ex.depth_snapshot("BTCUSDT", 5000)
    for c in clients:
        assert c.nonce == uid
        assert c.bids == dict(bids)
        assert c.asks == dict(asks)
    audit(ex.engine)


def test_update_id_moves_only_when_a_level_changes() -> None:
    ex, _, _ = _exchange(maker=False)
    before = ex.depth["BTCUSDT"].update_id
    ex.submit(_order(OrderSide.BUY, "50000", "0.01"))
    assert ex.depth["BTCUSDT"].update_id == before + 1
    with_ioc = ex.depth["BTCUSDT"].update_id
    ex.submit(_order(OrderSide.SELL, "70000", "0.01", TimeInForce.IOC))  # nothing to hit
    assert ex.depth["BTCUSDT"].update_id == with_ioc  # expired at once: the book is as it was
    assert ex.depth["ETHUSDT"].update_id == 0


# -- market maker ------------------------------------------------------------------------


def _run(mm: MarketMaker, clock: TestClock, steps: int) -> None:
    for _ in range(steps):
        clock.advance(STEP_NS)
        mm.step()


def test_market_maker_keeps_twenty_levels_and_trades() -> None:
    ex, clock, mm = _exchange()
    assert mm is not None
    trades = 0
    for _ in range(300):
        _run(mm, clock, 1)
        for symbol in ("BTCUSDT", "ETHUSDT"):
            bids, asks = ex.engine.book(symbol).depth()
            assert len(bids) >= 20 and len(asks) >= 20, symbol
            assert bids[0][0] < asks[0][0]
        trades = sum(len(m.trades) for m in ex.market.values())
    audit(ex.engine)
    assert trades > 50
    assert mm.errors == 0
    lo = min(c[3] for c in ex.market["BTCUSDT"].candles)
    hi = max(c[2] for c in ex.market["BTCUSDT"].candles)
    assert hi > lo  # the reference price walks


def test_market_maker_is_deterministic_per_seed() -> None:
    def fingerprint(seed: int) -> tuple[object, ...]:
        ex, clock, mm = _exchange(seed=seed)
        assert mm is not None
        _run(mm, clock, 150)
        return (
            ex.engine.book("BTCUSDT").snapshot(),
            tuple(ex.market["BTCUSDT"].trades),
            ex.depth["BTCUSDT"].update_id,
        )

    assert fingerprint(3) == fingerprint(3)
    assert fingerprint(3) != fingerprint(4)


def test_client_limit_orders_fill_against_the_market_maker() -> None:
    ex, clock, mm = _exchange()
    assert mm is not None
    book = ex.engine.book("BTCUSDT")
    bid, ask = book.best_bid(), book.best_ask()
    assert bid is not None and ask is not None
    inside = (bid + ask) // 2 // 10**7 * 10**7  # a new best bid, inside the spread
    oid = ex.submit(_order(OrderSide.BUY, str(Decimal(inside) / 10**9), "0.002"))[0].order_id
    hist = ex.history["alice"]
    for _ in range(3000):
        _run(mm, clock, 1)
        rec = hist.get(oid, "")
        if rec is not None and rec.status is SimStatus.FILLED:
            break
    rec = hist.get(oid, "")
    assert rec is not None and rec.executed > 0, "the bid inside the spread never traded"
    assert any(t.order_id == oid for t in hist.trades)
    audit(ex.engine)


# -- the state file --------------------------------------------------------------------


def test_state_round_trip_restores_everything_and_continues_identically() -> None:
    ex, clock, mm = _exchange(seed=11)
    assert mm is not None
    _run(mm, clock, 50)
    ex.submit(_order(OrderSide.BUY, "59000", "0.01"))
    stop = NewOrder(
        "alice",
        "BTCUSDT",
        OrderSide.SELL,
        OrderType.STOP_LIMIT,
        to_raw("0.01", "q"),
        to_raw("55000", "p"),
        to_raw("55500", "t"),
    )
    ex.submit(stop)
    ex.submit(NewOrder("alice", "BTCUSDT", OrderSide.BUY, OrderType.MARKET, to_raw("0.05", "q")))
    _run(mm, clock, 50)
    saved = json.loads(json.dumps(state_file.capture(ex, {"market_maker": mm.to_state()})))

    ex2 = Exchange([BTC, ETH], TestClock(clock.now_ns()))
    state_file.restore(ex2, saved)
    ex2.open_account(ALICE)  # an existing account keeps its restored balances
    mm2 = MarketMaker(ex2, [BTC, ETH], MakerSpec(), seed=999)
    mm2.load_state(saved["market_maker"])
    assert ex2.engine.snapshot() == ex.engine.snapshot()
    assert ex2.depth["BTCUSDT"].update_id == ex.depth["BTCUSDT"].update_id
    h1, h2 = ex.history["alice"], ex2.history["alice"]
    assert [r.to_json() for r in h1.open.values()] == [r.to_json() for r in h2.open.values()]
    assert [t.to_json() for t in h1.trades] == [t.to_json() for t in h2.trades]
    # the same commands now produce the same reports, ids and all
    clock2 = ex2.clock
    assert isinstance(clock2, TestClock)
    for _ in range(30):
        clock.advance(STEP_NS)
        clock2.advance(STEP_NS)
        mm.step()
        mm2.step()
    r1 = ex.submit(_order(OrderSide.SELL, "61000", "0.01"))
    r2 = ex2.submit(_order(OrderSide.SELL, "61000", "0.01"))
    assert r1 == r2
    assert ex2.engine.snapshot() == ex.engine.snapshot()
    assert list(ex2.market["BTCUSDT"].trades) == list(ex.market["BTCUSDT"].trades)


def test_state_refuses_inconsistent_files(tmp_path: Any) -> None:
    ex, _, mm = _exchange()
    assert mm is not None
    ex.submit(_order(OrderSide.BUY, "59000", "0.01"))
    saved = state_file.capture(ex)
    saved["accounts"]["alice"]["balances"]["USDT"][1] += 1  # locked no longer matches
    path = tmp_path / "state.json"
    state_file.save(path, saved)
    bad = state_file.load(path)
    try:
        state_file.restore(Exchange([BTC, ETH], TestClock(T0)), bad)
    except state_file.StateError as exc:
        assert "inconsistent" in str(exc)
    else:
        raise AssertionError("an inconsistent state file was accepted")
    path.write_text('{"version": 99}')
    try:
        state_file.load(path)
    except state_file.StateError:
        pass
    else:
        raise AssertionError("a wrong version was accepted")


def test_history_keeps_closed_orders_bounded() -> None:
    ex, _, _ = _exchange(maker=False)
    ex.history["alice"] = AccountHistory(max_closed=5)
    ids = []
    for i in range(12):
        r = ex.submit(_order(OrderSide.BUY, str(50000 + i), "0.001"))
        ids.append(r[0].order_id)
        ex.cancel("alice", "BTCUSDT", ids[-1])
    hist = ex.history["alice"]
    assert list(hist.closed) == ids[-5:]
    assert hist.get(ids[0], "") is None
    assert len(hist.by_client_id) == 5


# -- replay of a raw Binance capture -------------------------------------------------------


def test_replay_mirrors_the_recorded_book() -> None:
    assert CAPTURE.is_file(), f"missing shared data file {CAPTURE}"
    ex = Exchange([BTC], TestClock(T0))
    rp = Replayer(ex, [CAPTURE])
    assert rp.symbol == "BTCUSDT"
    step, min_qty = BTC.instrument().step_raw, BTC.instrument().min_qty_raw
    compared = equal = 0
    for i, msg in enumerate(read_capture([CAPTURE], (DepthDiff, DepthSnapshot, Trade))):
        if i >= 4000:
            break
        rp.apply(msg)
        if isinstance(msg, DepthDiff) and rp.sync.is_live:
            book = rp.sync.book
            want_bids = sorted(
                ((p, q - q % step) for p, q in book.bids.items() if q - q % step >= min_qty),
                reverse=True,
            )[:20]
            want_asks = sorted(
                (p, q - q % step) for p, q in book.asks.items() if q - q % step >= min_qty
            )[:20]
            bids, asks = ex.engine.book("BTCUSDT").depth(20)
            compared += 1
            equal += (bids, asks) == (want_bids, want_asks)
    audit(ex.engine)
    assert compared > 100
    assert sum(len(ex.market[s].trades) for s in ex.market) > 100  # recorded trades replayed
    assert equal / compared > 0.99, f"{equal}/{compared} top-20 books equal"
    assert rp.errors == 0


def test_replayed_trades_fill_a_client_order_in_their_path() -> None:
    assert CAPTURE.is_file()
    ex = Exchange([BTC], TestClock(T0))
    ex.open_account(ALICE)
    rp = Replayer(ex, [CAPTURE])
    msgs = read_capture([CAPTURE], (DepthDiff, DepthSnapshot, Trade))
    for msg in msgs:
        rp.apply(msg)
        if rp.sync.is_live:
            break
    best_bid = ex.engine.book("BTCUSDT").best_bid()
    assert best_bid is not None
    ex.submit(_order(OrderSide.BUY, str(Decimal(best_bid) / 10**9), "0.001"))
    for i, msg in enumerate(msgs):
        rp.apply(msg)
        if ex.history["alice"].trades or i > 20000:
            break
    assert ex.history["alice"].trades, "no replayed trade reached the client's bid"
    audit(ex.engine)
