"""Operator actions on a running session: ``bot4 risk halt`` trips the kill switch,
``bot4 risk reset`` re-enables trading -- refused while a trip condition still holds --
both as real commands against a session trading on the exchange server; the status
line shows why trading stopped and how to resume."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bot4.core.enums import OrderSide
from bot4.live.runner import LiveRunner, RunnerConfig
from bot4.live.status import render, snapshot
from bot4.venues.ccxt_config import Credentials, VenueConfig
from tests.live_support import (
    KEY,
    REPO,
    SECRET,
    Churn,
    async_wait_until,
    no_stop_profile,
    running_server,
)


async def _command(*args: str) -> tuple[int, dict[str, Any] | None, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot4.live", *args,
        cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode().strip()
    answer = json.loads(text.splitlines()[-1]) if text else None
    assert proc.returncode is not None
    return proc.returncode, answer, err.decode()


def _buys_after(runner: LiveRunner, ts: int) -> int:
    orders = runner.om.state.orders.values()
    return sum(1 for o in orders if o.side is OrderSide.BUY and o.ts_init > ts)


def test_operator_halts_and_resets_a_running_session(tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    result: dict[str, Any] = {}

    async def go(url: str) -> None:
        cfg = RunnerConfig(
            VenueConfig.local(url, Credentials(KEY, SECRET)),
            ["BTC/USDT"],
            Churn,
            {"period_ms": "100"},
            journal_url=f"sqlite:///{journal}",
            risk_profile=no_stop_profile(),
            status=False,
            seed=5,
        )
        runner = LiveRunner(cfg)
        stop = asyncio.Event()
        task = asyncio.ensure_future(runner.run(stop))
        try:
            assert await async_wait_until(
                lambda: hasattr(runner, "venue") and runner.venue.stats["fills"] >= 3, 20
            )
            # halt: no new buys, the status line says why and what to do
            rc, answer, err = await _command("halt", "--journal", str(journal), "--reason", "drill")
            assert rc == 0 and answer is not None, err
            assert answer["ok"] and answer["trading_state"] != "ACTIVE"
            halted_ns = runner.clock.now_ns()
            line = render(snapshot(runner))
            assert "(MANUAL: operator: drill; bot4 risk reset)" in line, line
            denied = runner.risk.denied
            await asyncio.sleep(0.8)
            assert _buys_after(runner, halted_ns) == 0
            assert runner.risk.denied > denied  # the strategy kept trying, and was denied
            # a reset is refused while a trip condition holds (here: venue disconnected)
            runner.risk.kill_switch.set_connected(False)
            rc, answer, err = await _command("reset", "--journal", str(journal))
            assert rc == 1 and answer is not None and not answer["ok"], (rc, answer, err)
            assert "trip condition still holds" in answer["error"]
            assert runner.risk.trading_state != "ACTIVE"
            runner.risk.kill_switch.set_connected(True)
            # reset: trading resumes
            rc, answer, err = await _command(
                "reset", "--journal", str(journal), "--reason", "drill over"
            )
            assert rc == 0 and answer is not None and answer["ok"], (answer, err)
            assert answer["trading_state"] == "ACTIVE"
            reset_ns = runner.clock.now_ns()
            assert "risk ACTIVE hold" in render(snapshot(runner))
            assert await async_wait_until(lambda: _buys_after(runner, reset_ns) >= 1, 5)
            result["requests"] = list(runner.control.applied)
        finally:
            stop.set()
            summary = await asyncio.wait_for(task, 30)
        result["summary"] = summary

    with running_server() as srv:
        asyncio.run(asyncio.wait_for(go(srv.http), 60))
    assert [r["action"] for r in result["requests"]] == ["halt", "reset", "reset"]
    assert result["summary"]["trading_state"] == "ACTIVE"
    assert result["summary"]["strategy_errors"] == []
    # the journal holds the operator's actions with their reasons
    from bot4.core.events import TradingStateChanged
    from bot4.oms.journal import SqlJournal

    with SqlJournal(f"sqlite:///{journal}") as j:
        reasons = [e.reason for e in j.read() if isinstance(e, TradingStateChanged)]
    assert any("operator: drill" in r for r in reasons), reasons
    assert any("reset by operator: drill over" in r for r in reasons), reasons


def test_reset_without_a_session_fails_plainly_and_leaves_nothing(tmp_path: Path) -> None:
    journal = tmp_path / "nobody.db"
    done = subprocess.run(
        [sys.executable, "-m", "bot4.live", "reset", "--journal", str(journal), "--wait", "0.5"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no running session answered" in done.stderr
    assert not (tmp_path / "nobody.db.control").exists()  # taken back: never applied later
    bad = subprocess.run(
        [sys.executable, "-m", "bot4.live", "reset", "--journal", "postgresql://h/db"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert bad.returncode == 2 and "journal" in bad.stderr
