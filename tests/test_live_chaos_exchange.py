"""Chaos on the exchange's side, bounded in time.

* The exchange process is killed with SIGKILL mid-session (no state file written;
  orders resting, a burst in flight) and restarted from its write-through command log.
  After it: zero lost and zero duplicated orders, the journal's fills, positions and
  balances equal to the venue's, trading resumes; the recovery time (venue back → first
  allowed order) is measured and printed.
* The depth stream loses a message (the server's ``--test-controls`` depth gap): ccxt
  sees the sequence gap, the session holds new risk (RECONCILING denials) until the book
  is rebuilt from a new REST snapshot, then trading resumes on a book equal to the
  venue's."""

from __future__ import annotations

import asyncio
import gc
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot4.core.enums import OrderSide, OrderType
from bot4.live.runner import LiveRunner, RunnerConfig
from bot4.oms.requests import OrderRequest
from bot4.risk.denials import DenialReason, RiskDenied
from bot4.server.process import ServerProcess
from bot4.strategy.base import Strategy
from bot4.venues.ccxt_config import Credentials, VenueConfig
from tests.live_support import (
    KEY,
    SECRET,
    async_wait_until,
    check_journal_matches_venue,
    free_port,
    no_stop_profile,
    recovery_after,
    run_then_stop_servers,
    server_args,
    start_server,
    venue_account,
)
from tests.test_live_chaos import INITIAL, _runner


def test_exchange_sigkill_mid_session_loses_and_doubles_nothing(tmp_path: Path) -> None:
    state = tmp_path / "exchange.json"
    port = free_port()
    srv = start_server(state, port)
    result: dict[str, Any] = {}

    async def go() -> None:
        runner = _runner(srv.http, tmp_path, recv_window_ms=1000)
        stop = asyncio.Event()
        task = asyncio.ensure_future(runner.run(stop))
        assert await async_wait_until(
            lambda: (
                hasattr(runner, "venue")
                and runner.venue.stats["fills"] >= 5
                and runner.risk.market.last_prices.get("BTCUSDT")
            ),
            15,
        )
        # resting orders at the venue: a ladder of bids well under the market
        mark = Decimal(runner.risk.market.last_prices["BTCUSDT"]) / 10**9
        for i in range(4):
            price = str((mark * (Decimal("0.98") - i * Decimal("0.002"))).quantize(Decimal("0.01")))
            runner.risk.submit(OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "0.001",
                                            price=price))  # fmt: skip
        runner.venue.kick()
        assert await async_wait_until(
            lambda: sum(1 for o in runner.om.state.open_orders.values() if o.venue_order_id) >= 4,
            10,
        )
        # a burst, and SIGKILL while it is on the wire
        burst = []
        for i in range(6):
            price = str((mark * (Decimal("0.97") - i * Decimal("0.001"))).quantize(Decimal("0.01")))
            req = OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "0.001", price=price)
            burst.append(runner.risk.submit(req).client_order_id)
        runner.venue.kick()
        await asyncio.sleep(0.003)
        srv.kill()
        orders = runner.om.state.orders
        open_now = runner.om.state.open_orders.values()
        result["at_kill"] = {
            "resting_acked": sum(1 for o in open_now if o.venue_order_id),
            "burst_acked": sum(1 for c in burst if orders[c].venue_order_id),
            "inflight": sum(1 for t in runner.venue.inflight.values() if not t.done()),
        }
        acked_before = {c: o.venue_order_id for c, o in orders.items() if o.venue_order_id}
        assert await async_wait_until(lambda: runner.session.state.value == "DOWN", 5)
        await asyncio.sleep(0.5)
        t0 = time.perf_counter()
        back = start_server(state, port)
        result["start_s"] = time.perf_counter() - t0
        back_ns = time.time_ns()
        result["server"] = back
        result["replayed"] = back.lines[-1].strip()
        assert await async_wait_until(lambda: len(runner.session.recoveries) >= 2, 10)
        fills_at_back = runner.venue.stats["fills"]
        # every burst order settles: found at the venue, or proven absent (then resent, or
        # cancelled by the strategy before it went out)
        assert await async_wait_until(
            lambda: (
                all(orders[c].venue_order_id or orders[c].is_closed for c in burst)
                and not runner.venue.resolvers
            ),
            10,
        ), [(orders[c].status, orders[c].venue_order_id) for c in burst]
        result["burst"] = [(orders[c].status.value, bool(orders[c].venue_order_id)) for c in burst]
        for cid, oid in acked_before.items():  # what the venue had acknowledged, it kept
            assert orders[cid].venue_order_id == oid
        await asyncio.sleep(2.0)  # trading resumes
        stop.set()
        summary = await asyncio.wait_for(task, 30)
        result.update(runner=runner, summary=summary, back_ns=back_ns, fills=fills_at_back)
        result["account"] = await venue_account(port)
        result["acked_before"] = acked_before

    run_then_stop_servers(go, srv, result)
    runner: LiveRunner = result["runner"]
    rec, allowed_s, first_order_s = recovery_after(runner, result["back_ns"])
    stats = runner.venue.stats
    print(
        f"\nexchange SIGKILL: at the kill {result['at_kill']}; restart (log replay) "
        f"{result['start_s']:.3f} s {result['replayed']}; new orders allowed {allowed_s:.3f} s "
        f"after the venue was back (reconciliation {rec.recovery_s:.3f} s, {rec.probes} "
        f"probes, {rec.report.orders_checked} orders checked); first order "
        f"{first_order_s:.3f} s after; found by client id {stats['resolved_found']}, "
        f"resent {stats['resent']}; burst {result['burst']}"
    )
    assert result["at_kill"]["resting_acked"] >= 4
    assert allowed_s <= 1.5, allowed_s
    assert runner.venue.stats["fills"] > result["fills"], "trading did not resume"
    counts = check_journal_matches_venue(runner.om, result["account"], INITIAL)
    assert counts["orders"] >= len(result["acked_before"])
    assert result["summary"]["strategy_errors"] == []
    assert result["summary"]["alerts"] == []
    assert result["summary"]["trading_state"] == "ACTIVE"


# -- the depth stream loses a message -------------------------------------------------------


class Books(Strategy):
    """Keeps the latest order book it was given (a copy: ccxt updates its own in place)."""

    def on_start(self) -> None:
        self.books: list[tuple[int, list[list[float]], list[list[float]]]] = []

    def on_book(self, book: Any) -> None:
        bids = [list(x[:2]) for x in book["bids"][:20]]
        asks = [list(x[:2]) for x in book["asks"][:20]]
        self.books.append((int(book["nonce"]), bids, asks))


def _bid(runner: LiveRunner, frac: str) -> OrderRequest:
    mark = Decimal(runner.risk.market.last_prices["BTCUSDT"]) / 10**9
    price = str((mark * Decimal(frac)).quantize(Decimal("0.01")))
    return OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "0.001", price=price)


def test_depth_sequence_gap_holds_orders_and_resyncs_from_a_snapshot(tmp_path: Path) -> None:
    import aiohttp
    import ccxt.async_support as ccxt_async

    from bot4.server.process import ccxt_options, point_ccxt

    srv = ServerProcess(server_args(None, "--test-controls", "--mm-interval-ms", "250")).start()
    out: dict[str, Any] = {}

    async def go() -> None:
        runner = LiveRunner(_books_config(srv, tmp_path))
        stop = asyncio.Event()
        task = asyncio.ensure_future(runner.run(stop))
        rest = point_ccxt(ccxt_async.binance(ccxt_options(KEY, SECRET)), srv.port)
        try:
            await rest.load_markets()
            assert await async_wait_until(
                lambda: (
                    hasattr(runner, "venue")
                    and runner.venue.ready.is_set()
                    and len(getattr(runner.strategy, "books", ())) >= 3
                    and runner.risk.market.last_prices.get("BTCUSDT")
                ),
                15,
            )
            async with aiohttp.ClientSession() as http:
                url = f"{srv.http}/bot4/test/depth-gap?symbol=BTCUSDT"
                async with http.post(url) as resp:
                    assert resp.status == 200, await resp.text()
                    out["gap"] = await resp.json()
                async with http.post(f"{srv.http}/bot4/test/depth-gap?symbol=BTCUSDT&count=x") as r:
                    assert r.status == 400 and "count" in (await r.json())["msg"]
            # ccxt sees the next diff start past its book: the session holds new risk
            assert await async_wait_until(lambda: runner.risk.held, 10, step=0)  # every loop turn
            try:
                runner.risk.submit(_bid(runner, "0.98"))
                raise AssertionError("an order passed during the resync")
            except RiskDenied as exc:
                out["denial"] = exc
            assert await async_wait_until(lambda: runner.session.book_resyncs, 10)
            assert not runner.risk.held
            resync = runner.session.book_resyncs[0]
            assert resync.nonce > out["gap"]["update_id"]
            # the rebuilt book is the venue's: compare with REST depth at the same id
            n_books = len(runner.strategy.books)
            equal = False
            for _ in range(40):
                snap = await rest.fetch_order_book("BTC/USDT", 20)
                ours = [b for b in runner.strategy.books[n_books - 1 :] if b[0] == snap["nonce"]]
                if ours:
                    assert ours[-1][1] == [list(x[:2]) for x in snap["bids"][:20]]
                    assert ours[-1][2] == [list(x[:2]) for x in snap["asks"][:20]]
                    equal = True
                    break
                await asyncio.sleep(0.02)
            assert equal, "no book at the same update id as a REST snapshot"
            # trading resumes
            after = runner.risk.submit(_bid(runner, "0.98"))
            runner.venue.kick()
            assert await async_wait_until(lambda: after.status.value == "ACCEPTED", 10)
            out["resync"] = resync
            out["connections"] = len(runner.session.recoveries)
        finally:
            stop.set()
            out["summary"] = await asyncio.wait_for(task, 30)
            await rest.close()

    try:
        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        srv.stop()
        srv.close()
    denial: RiskDenied = out["denial"]
    assert denial.reason is DenialReason.RECONCILING and "book-resync BTCUSDT" in str(denial)
    assert out["connections"] == 1  # a resync of the book, not a reconnect
    print(
        f"\ndepth gap at update id {out['gap']['update_id']}: new risk held "
        f"{out['resync'].held_s * 1000:.0f} ms, book resynced at update id "
        f"{out['resync'].nonce} from a REST snapshot"
    )
    assert out["summary"]["strategy_errors"] == [] and out["summary"]["alerts"] == []


def test_a_resync_that_does_not_finish_in_time_reconnects(tmp_path: Path) -> None:
    """The escalation: a book that is not rebuilt within ``book_resync_timeout_s``
    counts as a lost connection (DOWN, reconnect, full reconciliation), and the book's
    own hold goes with it."""
    import aiohttp

    srv = ServerProcess(server_args(None, "--test-controls")).start()
    out: dict[str, Any] = {}

    async def go() -> None:
        runner = LiveRunner(_books_config(srv, tmp_path))
        stop = asyncio.Event()
        task = asyncio.ensure_future(runner.run(stop))
        try:
            assert await async_wait_until(
                lambda: (
                    hasattr(runner, "venue")
                    and runner.venue.ready.is_set()
                    and len(getattr(runner.strategy, "books", ())) >= 3
                ),
                15,
            )
            out["frozen"] = gc.get_freeze_count()
            runner.session.book_resync_timeout_s = 0.0  # no resync can be this fast
            async with aiohttp.ClientSession() as http:
                url = f"{srv.http}/bot4/test/depth-gap?symbol=BTCUSDT"
                async with http.post(url) as resp:
                    assert resp.status == 200
            assert await async_wait_until(lambda: len(runner.session.recoveries) >= 2, 10)
            assert await async_wait_until(lambda: runner.venue.ready.is_set(), 10)
            out["held"] = runner.risk.held
            out["resyncs"] = list(runner.session.book_resyncs)
            after = runner.risk.submit(_bid(runner, "0.98"))
            runner.venue.kick()
            assert await async_wait_until(lambda: after.status.value == "ACCEPTED", 10)
        finally:
            stop.set()
            out["summary"] = await asyncio.wait_for(task, 30)

    try:
        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        srv.stop()
        srv.close()
    assert out["held"] is False and out["resyncs"] == []
    assert out["summary"]["strategy_errors"] == []
    assert out["frozen"] > 0 and gc.get_freeze_count() == 0  # tune_gc ran, then undone
    paced = out["summary"]["gc"]  # the runner's GcPacer stepped on the loop meanwhile
    assert paced["steps"] > 0 and paced["step_max_ms"] > 0, paced


def _books_config(srv: ServerProcess, tmp_path: Path) -> RunnerConfig:
    """A session streaming order books (``Books``) against ``srv``."""
    return RunnerConfig(
        VenueConfig.local(srv.http, Credentials(KEY, SECRET)),
        ["BTC/USDT"],
        Books,
        journal_url=f"sqlite:///{tmp_path / 'journal.db'}",
        risk_profile=no_stop_profile(),
        status=False,
        seed=3,
        books=True,
    )
