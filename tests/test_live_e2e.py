"""Paper trading end to end: a strategy trades for a while through the real ccxt
against a ``bot4 exchange`` subprocess; afterwards the journal's orders, fills,
positions and balances equal the exchange's own account state exactly (Decimal)."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot4.live.runner import LiveRunner, RunnerConfig
from bot4.oms.journal import SqlJournal, replay
from bot4.venues.ccxt_config import Credentials, VenueConfig
from tests.live_support import (
    KEY,
    SECRET,
    Churn,
    check_journal_matches_venue,
    no_stop_profile,
    running_server,
    venue_account,
)

INITIAL = {"BTC": Decimal(10), "USDT": Decimal(1_000_000)}


def _config(port: int, tmp: Path, websockets: bool, seconds: float) -> RunnerConfig:
    return RunnerConfig(
        VenueConfig.local(
            f"http://127.0.0.1:{port}", Credentials(KEY, SECRET), websockets=websockets
        ),
        ["BTC/USDT"],
        Churn,
        {"period_ms": "100"},
        journal_url=f"sqlite:///{tmp / 'journal.db'}",
        risk_profile=no_stop_profile(),
        duration_s=seconds,
        status=False,
        seed=1,
    )


async def _session(port: int, tmp: Path, websockets: bool) -> tuple[LiveRunner, Any, Any]:
    cfg = _config(port, tmp, websockets, 6.0)
    cfg.books = websockets
    runner = LiveRunner(cfg)
    summary = await asyncio.wait_for(runner.run(), 40)
    account = await venue_account(port)
    return runner, summary, account


def _check(runner: LiveRunner, summary: Any, account: Any) -> None:
    counts = check_journal_matches_venue(runner.om, account, INITIAL)
    assert counts["fills"] >= 10 and counts["orders"] >= 20, counts
    assert summary["alerts"] == [] and summary["strategy_errors"] == []
    assert runner.venue.stats["cancels"] >= 5
    # the journal alone rebuilds the same state (crash-only start-up relies on it)
    with SqlJournal(runner.cfg.journal_url) as journal:
        rebuilt = replay(journal.read(), runner.instruments)
    assert rebuilt.snapshot() == runner.om.state.snapshot()
    # on_position: one change per fill that moved the position, chained exactly
    changes = getattr(runner.strategy, "position_changes", [])
    assert len(changes) >= 5
    qty = Decimal(0)
    for change in changes:
        assert change.previous_qty == qty and change.qty != qty
        qty = change.qty
    assert qty == runner.om.state.positions["BTCUSDT"].quantity


def test_paper_session_over_websockets_matches_the_venue_exactly(tmp_path: Path) -> None:
    with running_server() as srv:
        runner, summary, account = asyncio.run(_session(srv.port, tmp_path, True))
    _check(runner, summary, account)
    assert runner.session.websockets
    # market data is counted (delivered to the strategy, or conflated into a newer one)
    assert summary["market_data"]["trades_delivered"]["BTCUSDT"] >= 10
    # the order book streamed (snapshot + diffs, kept in sequence by ccxt), never crossed
    assert getattr(runner.strategy, "books", 0) >= 10
    assert getattr(runner.strategy, "crossed", 0) == 0


def test_paper_session_with_rest_polling_matches_the_venue_exactly(tmp_path: Path) -> None:
    with running_server() as srv:
        runner, summary, account = asyncio.run(_session(srv.port, tmp_path, False))
    _check(runner, summary, account)
    assert not runner.session.websockets


def test_bracket_stop_lives_at_the_venue_and_close_position_waits_for_its_cancel(
    tmp_path: Path,
) -> None:
    from tests.live_support import BracketOnce

    async def go(port: int) -> tuple[LiveRunner, Any, Any, list[Any]]:
        cfg = _config(port, tmp_path, True, 3.0)
        cfg.strategy, cfg.params = BracketOnce, {}
        cfg.risk_profile = None  # the default profile: a stop-loss is mandatory
        runner = LiveRunner(cfg)
        summary = await asyncio.wait_for(runner.run(), 40)
        account = await venue_account(port)
        return runner, summary, account, list(runner.om.state.orders.values())

    with running_server() as srv:
        runner, summary, account, orders = asyncio.run(go(srv.port))
    check_journal_matches_venue(runner.om, account, INITIAL)
    kinds = [(o.order_type.value, o.side.value, o.status.value) for o in orders]
    assert kinds == [
        ("MARKET", "BUY", "FILLED"),  # the entry
        ("STOP_MARKET", "SELL", "CANCELED"),  # its stop, at the venue until the close
        ("MARKET", "SELL", "FILLED"),  # the close, sent once the stop's coins were free
    ], kinds
    assert orders[1].venue_order_id  # the stop really was at the venue
    # flat but for the dust below one step that the entry's BTC fee left (spot)
    assert Decimal(0) <= Decimal(summary["positions"]["BTCUSDT"]) < Decimal("0.00001")
    assert summary["alerts"] == []


class QuoteWatcher(Churn):
    """Churn, also reading quotes: ``on_quote`` gets the book stream's best levels."""

    def on_start(self) -> None:
        super().on_start()
        self.quotes: list[Any] = []

    def on_quote(self, quote: Any) -> None:
        self.quotes.append(quote)


def test_on_quote_gets_the_books_best_levels_in_paper(tmp_path: Path) -> None:
    async def go(port: int) -> LiveRunner:
        cfg = _config(port, tmp_path, True, 4.0)
        cfg.strategy = QuoteWatcher
        runner = LiveRunner(cfg)
        await asyncio.wait_for(runner.run(), 40)
        return runner

    with running_server() as srv:
        runner = asyncio.run(go(srv.port))
    quotes = runner.strategy.quotes  # type: ignore[attr-defined]
    assert len(quotes) >= 5
    for q in quotes:
        assert q.symbol == "BTCUSDT" and 0 < q.bid < q.ask and q.bid_qty > 0 < q.ask_qty
    tops = [(q.bid, q.bid_qty, q.ask, q.ask_qty) for q in quotes]
    assert all(a != b for a, b in itertools.pairwise(tops))  # changes only
    assert [q.ts_ns for q in quotes] == sorted(q.ts_ns for q in quotes)
