"""Balances from the user stream (``watch_balance``): while a session trades, the
venue's balance pushes agree with the journal (no false alarm, no adjustment); a trade
on the same account that is not bot4's -- a person with the same API key -- is noticed
from the push within about a second and reconciled (journaled ``BalanceAdjusted`` with
an alert), without waiting for a reconnect.  Without websockets the REST audit compares
balances instead (the fallback)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot4.core.events import BalanceAdjusted
from bot4.live.runner import LiveRunner, RunnerConfig
from bot4.oms.journal import SqlJournal
from bot4.server.process import ccxt_options, point_ccxt
from bot4.venues.ccxt_config import Credentials, VenueConfig
from tests.live_support import (
    KEY,
    SECRET,
    Churn,
    async_wait_until,
    no_stop_profile,
    running_server,
    venue_account,
)


def _adjustments(url: str) -> list[BalanceAdjusted]:
    with SqlJournal(url) as journal:
        return [
            e
            for e in journal.read()
            if isinstance(e, BalanceAdjusted) and e.reason != "venue balance at start"
        ]


async def _foreign_buy(port: int) -> None:
    """A market buy on the same account, by another client (not through bot4)."""
    import ccxt.async_support as ccxt_async

    ex = point_ccxt(ccxt_async.binance(ccxt_options(KEY, SECRET)), port)
    try:
        await ex.load_markets()
        await ex.create_order("BTC/USDT", "market", "buy", 0.01)
    finally:
        await ex.close()


def _run(tmp: Path, port_url: str, port: int, websockets: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    url = f"sqlite:///{tmp / 'journal.db'}"

    async def go() -> None:
        cfg = RunnerConfig(
            VenueConfig.local(
                port_url, Credentials(KEY, SECRET), websockets=websockets, poll_interval_s=0.2
            ),
            ["BTC/USDT"],
            Churn,
            {"period_ms": "100"},
            journal_url=url,
            risk_profile=no_stop_profile(),
            status=False,
            seed=9,
        )
        runner = LiveRunner(cfg)
        stop = asyncio.Event()
        task = asyncio.ensure_future(runner.run(stop))
        try:
            assert await async_wait_until(
                lambda: hasattr(runner, "venue") and runner.venue.stats["fills"] >= 6, 20
            )
            if websockets:
                await asyncio.sleep(0.6)  # pushes settle and are compared while trading
            out["before"] = len(_adjustments(url))
            if not websockets:
                runner.session.balance_poll_s = 0.5
            t0 = time.perf_counter()  # includes the foreign client's connect and order
            await _foreign_buy(port)
            assert await async_wait_until(lambda: len(_adjustments(url)) > out["before"], 10)
            out["noticed_s"] = time.perf_counter() - t0
            out["stats"] = dict(runner.session.balance_stats)
        finally:
            stop.set()
            out["summary"] = await asyncio.wait_for(task, 30)
        out["runner"] = runner
        out["account"] = await venue_account(port)

    asyncio.run(asyncio.wait_for(go(), 60))
    return out


def test_balance_pushes_agree_and_a_foreign_trade_is_reconciled(tmp_path: Path) -> None:
    with running_server() as srv:
        out = _run(tmp_path, srv.http, srv.port, websockets=True)
    stats = out["stats"]
    print(f"\nbalance push: foreign trade reconciled in {out['noticed_s']:.2f} s; {stats}")
    assert out["before"] == 0, "a balance adjustment while only bot4 traded"
    assert stats["pushes"] > 0 and stats["compared"] > 0 and stats["mismatches"] >= 1
    assert stats["polled"] == 0
    assert out["noticed_s"] < 3.0
    assert any("balance BTC" in a for a in out["summary"]["alerts"])
    state = out["runner"].om.state
    for asset in ("BTC", "USDT"):
        assert state.account.total(asset) == out["account"]["balances"][asset], asset
    assert out["account"]["balances"]["BTC"] > Decimal(10) - Decimal(1)  # sanity


def test_without_websockets_rest_audit_compares_balances(tmp_path: Path) -> None:
    with running_server() as srv:
        out = _run(tmp_path, srv.http, srv.port, websockets=False)
    stats = out["stats"]
    assert stats["pushes"] == 0 and stats["polled"] >= 1
    state = out["runner"].om.state
    for asset in ("BTC", "USDT"):
        assert state.account.total(asset) == out["account"]["balances"][asset], asset
