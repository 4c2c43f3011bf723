"""``bot4 paper`` / ``bot4 live`` as processes (``python -m bot4.live``): the status
line, a clean Ctrl-C that cancels open orders, the live config file, and credentials
that appear in neither the journal nor the logs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot4.server.process import ServerProcess
from tests.live_support import (
    KEY,
    REPO,
    SECRET,
    SYMBOL,
    running_server,
    server_args,
    venue_account,
    wait_until,
)


def _risk(tmp: Path) -> Path:
    risk = tmp / "risk.toml"
    text = (REPO / "src/bot4/risk/default_profile.toml").read_text()
    risk.write_text(text.replace("require_stop_loss = true", "require_stop_loss = false"))
    return risk


class _Lines:
    """The process's stdout and stderr lines as they come (a thread each), so a test can
    wait on what it printed without the pipes filling up."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers: list[threading.Thread] = []
        for stream, lines in ((proc.stdout, self.out), (proc.stderr, self.err)):
            assert stream is not None
            reader = threading.Thread(
                target=lines.extend, args=(iter(stream.readline, ""),), daemon=True
            )
            reader.start()
            self._readers.append(reader)

    def joined(self) -> tuple[str, str]:
        """Everything printed, once the process has exited (the pipes reach EOF)."""
        for reader in self._readers:
            reader.join(10)
        return "".join(self.out), "".join(self.err)


def _journal_bytes(tmp: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp.iterdir() if p.name.startswith("journal.db"))


def test_paper_ctrl_c_cancels_open_orders_and_never_shows_the_secret(tmp_path: Path) -> None:
    import asyncio

    env = dict(
        os.environ,
        BOT4_PAPER_API_KEY=KEY,
        BOT4_PAPER_SECRET=SECRET,
        BOT4_LOG_LEVEL="DEBUG",
        PYTHONUNBUFFERED="1",
    )
    with running_server() as srv:
        args = [
            sys.executable, "-m", "bot4.live", "paper",
            "--exchange-url", srv.http,
            "--strategy", "tests.live_support:Churn",
            "--param", "period_ms=100",
            "--journal", str(tmp_path / "journal.db"),
            "--risk", str(_risk(tmp_path)),
            "--status-interval", "0.5",
            "--summary", str(tmp_path / "summary.json"),
        ]  # fmt: skip
        proc = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        printed = _Lines(proc)
        try:

            def resting_and_shown() -> bool:
                # Ctrl-C only once an order rests at the venue and a status line with
                # the venue up was printed (the line comes every 0.5 s: waiting for the
                # order alone raced it).
                shown = any("venue UP | risk ACTIVE" in line for line in list(printed.err))
                return shown and bool(asyncio.run(venue_account(srv.port))["open"])

            assert wait_until(resting_and_shown, 20, step=0.2), "no resting order/status"
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        out, err = printed.joined()
        assert proc.returncode == 0, err[-3000:]
        account = asyncio.run(venue_account(srv.port))
    assert account["open"] == [], "Ctrl-C left orders open at the venue"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["open_orders"] == []
    assert "venue UP | risk ACTIVE" in err  # the status line
    logs = out + err + (tmp_path / "summary.json").read_text()
    for secret in (SECRET, KEY):
        assert secret not in logs
        assert secret.encode() not in _journal_bytes(tmp_path)


def _paper_with_a_resting_order(
    tmp_path: Path, *extra: str
) -> tuple[subprocess.Popen[str], _Lines]:
    """``bot4 paper`` on its embedded exchange, in its own process group (a test can play
    the terminal), once its status line shows a resting order (the process is killed if
    it never does).  ``extra``: more command-line arguments."""
    args = [
        sys.executable, "-m", "bot4.live", "paper",
        "--strategy", "tests.live_support:Churn",
        "--param", "period_ms=100",
        "--journal", str(tmp_path / "journal.db"),
        "--risk", str(_risk(tmp_path)),
        "--status-interval", "0.3",
        "--summary", str(tmp_path / "summary.json"),
        *extra,
    ]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    printed = _Lines(proc)

    def resting() -> bool:
        return any(re.search(r"\| open [1-9]", line) for line in list(printed.err))

    if not wait_until(resting, 30, step=0.2):
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("no resting order in the status line")
    return proc, printed


def test_a_terminal_ctrl_c_cancels_at_the_embedded_exchange(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches the whole foreground process group.  The embedded
    exchange of ``bot4 paper`` runs in its own session, so it outlives the signal and
    the trader still cancels its orders there and reconciles before stopping it: its
    saved state holds no order of the trader's."""
    proc, printed = _paper_with_a_resting_order(tmp_path)
    try:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    _, err = printed.joined()
    assert proc.returncode == 0, err[-3000:]
    assert "final reconciliation failed" not in err, err[-3000:]
    assert json.loads((tmp_path / "summary.json").read_text())["open_orders"] == []
    saved = json.loads((tmp_path / "journal.exchange.json").read_text())
    assert saved["orders"], "the exchange saved no book at all"
    assert [o for o in saved["orders"] if o[1] != "__market_maker__"] == []


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"  # exited, not yet reaped


def test_a_kill_9_of_the_trader_stops_its_embedded_exchange(tmp_path: Path) -> None:
    """No signal handler sees a kill -9, so the trader cannot stop its embedded exchange;
    the exchange (its own session, so no terminal signal reaches it either) would live on
    as an orphan holding its port and state file.  It watches the pipe on its stdin
    instead, whose other end only the trader held: it stops by itself, saving its state
    -- the trader's resting order included, ready for the next ``bot4 paper``."""
    # one resting limit buy, then nothing: it is still resting when the trader dies
    proc, _ = _paper_with_a_resting_order(tmp_path, "--param", "steps=1")
    exchanges: list[int] = []
    try:
        exchanges = _children(proc.pid)
        assert len(exchanges) == 1, exchanges
        killed_at = time.time()
        proc.kill()
        proc.wait(timeout=10)
        assert wait_until(lambda: _gone(exchanges[0]), 20, step=0.1), "the exchange lives on"
    finally:
        for pid in [proc.pid, *exchanges]:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
    state = tmp_path / "journal.exchange.json"
    assert state.stat().st_mtime >= killed_at - 1, "the state was not saved on the way out"
    saved = json.loads(state.read_text())
    assert [o for o in saved["orders"] if o[1] != "__market_maker__"], "no trader order saved"


def test_paper_keep_orders_leaves_them_working(tmp_path: Path) -> None:
    import asyncio

    env = dict(os.environ, BOT4_PAPER_API_KEY=KEY, BOT4_PAPER_SECRET=SECRET)
    with running_server() as srv:
        args = [
            sys.executable, "-m", "bot4.live", "paper",
            "--exchange-url", srv.http,
            "--strategy", "tests.live_support:Churn",
            "--param", "period_ms=100",
            "--param", "steps=1",  # one resting limit buy, then nothing
            "--journal", str(tmp_path / "journal.db"),
            "--risk", str(_risk(tmp_path)),
            "--duration", "2",
            "--keep-orders",
        ]  # fmt: skip
        done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=40)
        assert done.returncode == 0, done.stderr[-3000:]
        account = asyncio.run(venue_account(srv.port))
    assert len(account["open"]) == 1


def test_live_command_with_a_config_file(tmp_path: Path) -> None:
    with running_server() as srv:
        cfg = tmp_path / "live.toml"
        cfg.write_text(
            f"""
exchange = "binance"
symbols = ["BTC/USDT"]
strategy = "tests.live_support:Churn"
journal = "{tmp_path / "journal.db"}"
risk_profile = "{_risk(tmp_path)}"
[params]
period_ms = 100
[urls]
rest = "{srv.http}/api/v3"
ws = "{srv.ws}/ws"
ws_api = "{srv.ws}/ws-api/v3"
"""
        )
        env = dict(os.environ, BOT4_BINANCE_API_KEY=KEY, BOT4_BINANCE_SECRET=SECRET)
        args = [sys.executable, "-m", "bot4.live", "live", "--exchange", "binance"]
        args += ["--config", str(cfg), "--duration", "3", "--summary", str(tmp_path / "s.json")]
        done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=40)
        assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["stats"]["fills"] > 0 and summary["alerts"] == []
    assert summary["positions"].get(SYMBOL) is not None


def test_live_refuses_credentials_inside_a_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    cfg = repo / "live.toml"
    cfg.write_text('symbols = ["BTC/USDT"]\n[credentials]\napi_key = "k"\nsecret = "s"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT4_BINANCE_")}
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot4.live", "live", "--exchange", "binance", "--config", str(cfg)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert "outside any git repository" in done.stderr
    assert time.monotonic() - t0 < 30


def test_paper_without_a_url_runs_its_own_simulator(tmp_path: Path) -> None:
    args = [
        sys.executable, "-m", "bot4.live", "paper",
        "--strategy", "tests.live_support:Churn",
        "--param", "period_ms=100",
        "--risk", str(_risk(tmp_path)),
        "--journal", str(tmp_path / "journal.db"),
        "--balances", "USDT=50000,BTC=1",
        "--duration", "2",
        "--summary", str(tmp_path / "s.json"),
    ]  # fmt: skip
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "s.json").read_text())
    start = summary["recoveries"][0]
    assert start["balance_adjustments"] == {"BTC": "1", "USDT": "50000"}  # fresh journal
    assert summary["stats"]["creates"] > 0 and summary["open_orders"] == []
    assert (tmp_path / "journal.exchange.json").exists()  # the simulator's state, kept


async def _venue_trades(port: int, symbols: list[str]) -> dict[str, Any]:
    """The venue's own trades and balances of the account, per symbol."""
    import ccxt.async_support as ccxt_async

    from bot4.server.process import ccxt_options, point_ccxt

    ex = point_ccxt(ccxt_async.binance(ccxt_options(KEY, SECRET)), port)
    try:
        await ex.load_markets()
        bal = await ex.fetch_balance()
        trades = {s: await ex.fetch_my_trades(s, None, 1000) for s in symbols}
        opened = {s: await ex.fetch_open_orders(s) for s in symbols}
    finally:
        await ex.close()
    return {
        "balances": {
            b["asset"]: Decimal(b["free"]) + Decimal(b["locked"]) for b in bal["info"]["balances"]
        },
        "trades": {
            s.replace("/", ""): sorted((str(t["order"]), str(t["id"])) for t in ts)
            for s, ts in trades.items()
        },
        "open": sum(len(v) for v in opened.values()),
    }


def test_paper_trades_several_symbols_on_one_account(tmp_path: Path) -> None:
    """``--symbol BTC/USDT --symbol ETH/USDT``: one journal, one account, both traded;
    the journal's fills and balances equal the venue's for each symbol."""
    import asyncio

    from bot4.core.events import OrderFilled
    from bot4.oms.journal import SqlJournal

    env = dict(os.environ, BOT4_PAPER_API_KEY=KEY, BOT4_PAPER_SECRET=SECRET)
    srv = ServerProcess(
        server_args(None, "--symbols", "BTCUSDT,ETHUSDT", "--balances", "USDT=100000,BTC=1,ETH=10")
    ).start()
    try:
        args = [
            sys.executable, "-m", "bot4.live", "paper",
            "--exchange-url", srv.http,
            "--symbol", "BTC/USDT", "--symbol", "eth/usdt",
            "--strategy", "tests.live_support:ChurnEach",
            "--param", "period_ms=100",
            "--journal", str(tmp_path / "journal.db"),
            "--risk", str(_risk(tmp_path)),
            "--duration", "3",
            "--summary", str(tmp_path / "s.json"),
        ]  # fmt: skip
        done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=40)
        assert done.returncode == 0, done.stderr[-3000:]
        venue = asyncio.run(_venue_trades(srv.port, ["BTC/USDT", "ETH/USDT"]))
    finally:
        srv.stop()
        srv.close()
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["strategy_errors"] == [] and summary["alerts"] == []
    assert set(summary["positions"]) == {"BTCUSDT", "ETHUSDT"}
    with SqlJournal(f"sqlite:///{tmp_path / 'journal.db'}") as journal:
        fills = [e for e in journal.read() if isinstance(e, OrderFilled)]
    by_symbol: dict[str, set[str]] = {"BTCUSDT": set(), "ETHUSDT": set()}
    for f in summary["fills"]:
        by_symbol[f["symbol"]].add(f["trade_id"])
    assert len(fills) == len(summary["fills"])
    for symbol, ids in by_symbol.items():
        assert len(ids) >= 2, symbol  # a buy and a sell at least, on each symbol
        assert ids == {tid for _, tid in venue["trades"][symbol]}, symbol
    for asset in ("BTC", "ETH", "USDT"):
        assert Decimal(summary["balances"][asset]) == venue["balances"][asset], asset
    assert venue["open"] == 0 and summary["open_orders"] == []
