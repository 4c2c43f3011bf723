"""Backtests through the real order path: parity with backtesting.py on real BTC
minutes, determinism, no global state, the risk engine in the path, multi-symbol."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
import warnings
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot4.backtest.engine import Backtest
from bot4.backtest.metrics import compute_metrics
from bot4.core.errors import ValidationError
from bot4.data.bars import BarSeries, load_bars, synthetic_bars
from bot4.examples.no_stop import SmaCrossNoStop
from bot4.examples.sma_cross import SmaCross
from tests.conftest import SHARED_DATA

BTC = SHARED_DATA / "ohlcv_1m" / "binance_spot_BTC_USDT-1m_2025-05-20_2025-08-18.feather"
ETH = SHARED_DATA / "ohlcv_1m" / "binance_spot_ETH_USDT-1m_2025-05-20_2025-08-18.feather"
PARAMS = {"fast": 10, "slow": 30, "qty": 1, "stop_pct": "0.5"}
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_parity_with_backtesting_py_on_real_btc_minutes() -> None:
    from peer_backtesting import run_peer

    frame = pd.read_feather(BTC)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = run_peer(frame)
    result = Backtest(SmaCross, load_bars(BTC, "BTCUSDT"), params=PARAMS).run()
    peer_trades = stats._trades
    assert result.entries == len(peer_trades) == 2565
    assert result.final_equity.quantize(Decimal("0.01")) == Decimal(
        f"{stats['Equity Final [$]']:.2f}"
    )
    # Trade by trade: the same entries, exits and prices.
    ours = [
        (t.entry_ts_ns, t.exit_ts_ns, float(t.entry_price), float(t.exit_price))
        for t in result.trades
    ]
    theirs = [
        (pd.Timestamp(e).value, pd.Timestamp(x).value, ep, xp)
        for e, x, ep, xp in peer_trades[
            ["EntryTime", "ExitTime", "EntryPrice", "ExitPrice"]
        ].itertuples(index=False)
    ]
    closed = [t for t in theirs if not pd.isna(t[1])][: len(ours)]
    assert len(ours) == len(closed) > 2500
    assert [t[:2] for t in ours] == [t[:2] for t in closed]  # entry and exit times
    for mine, peer in zip(ours, closed, strict=True):  # prices, to float precision
        assert mine[2:] == pytest.approx(peer[2:])
    assert len(result.denials) == 0


def test_same_run_twice_is_identical_and_two_runs_share_nothing() -> None:
    bars = synthetic_bars(30_000, seed=7)
    thresholds = gc.get_threshold()
    first = Backtest(SmaCross, bars, params=PARAMS).run()
    assert gc.get_threshold() == thresholds  # the run's collector setting is undone
    # Another backtest in between, with other parameters, in another thread.
    other: list[object] = []
    t = threading.Thread(
        target=lambda: other.append(
            Backtest(SmaCross, synthetic_bars(20_000, seed=8), params={"fast": 5, "slow": 20}).run()
        )
    )
    t.start()
    second = Backtest(SmaCross, bars, params=PARAMS).run()
    t.join()
    assert first.trades == second.trades and first.fills == second.fills
    assert first.final_equity == second.final_equity
    assert (first.equity == second.equity).all()
    assert compute_metrics(first).to_dict() == compute_metrics(second).to_dict()
    alone = Backtest(SmaCross, synthetic_bars(20_000, seed=8), params={"fast": 5, "slow": 20}).run()
    assert other[0].trades == alone.trades  # type: ignore[attr-defined]


def test_a_strategy_without_stop_loss_has_every_entry_denied(tmp_path: Path) -> None:
    result = Backtest(SmaCrossNoStop, synthetic_bars(20_000, seed=3)).run()
    assert result.entries == 0 and result.fills == []
    assert len(result.denials) > 100
    assert {d.reason for d in result.denials} == {"STOP_LOSS_REQUIRED"}
    from bot4.backtest.report import write_html_report

    html = write_html_report(result, None, tmp_path / "r.html").read_text()
    assert "STOP_LOSS_REQUIRED" in html


def test_multi_symbol_backtest_shares_one_account() -> None:
    btc = load_bars(BTC, "BTCUSDT").slice(0, 20_000)
    eth = load_bars(ETH, "ETHUSDT").slice(0, 20_000)
    result = Backtest(SmaCross, [btc, eth], params={"qty": "0.1"}, cash="1000000").run()
    symbols = {f.symbol for f in result.fills}
    assert symbols == {"BTCUSDT"}  # the strategy trades its default (first) symbol
    assert result.bars == 40_000
    # Equity is marked with both symbols' prices; the account is one.
    assert len(result.equity) == 40_000


def _series(closes: list[float], gap_open: dict[int, float] | None = None) -> BarSeries:
    close = np.array(closes)
    open_ = np.concatenate([[closes[0]], close[:-1]])
    for k, v in (gap_open or {}).items():
        open_[k] = v
    high = np.maximum(open_, close) + 0.5
    low = np.minimum(open_, close) - 0.5
    ts = np.arange(len(closes), dtype=np.int64) * 60 * 10**9 + 1_700_000_000 * 10**9
    return BarSeries("BTCUSDT", ts, open_, high, low, close, np.ones(len(closes)))


RAMP = [100.0] * 20 + [99.0, 98.0, 97.0, 96.0, 95.0] + [110.0]  # a cross above at the end
SMALL = {"fast": 2, "slow": 5, "qty": 1, "stop_pct": "1"}


def test_stop_fills_at_the_stop_inside_a_bar() -> None:
    # Entry at the open after the cross (110), stop 1 % below: 108.90.  The bar whose
    # path falls from its open 111 to a low of 99.5 goes through the stop: filled there.
    result = Backtest(
        SmaCross, _series([*RAMP, 112.0, 113.0, 113.0, 111.0, 100.0, 100.0]), params=SMALL
    ).run()
    buy, sell = result.fills
    assert (buy.side, buy.price) == ("BUY", Decimal("110"))
    assert (sell.side, sell.price) == ("SELL", Decimal("108.9"))
    (trade,) = result.trades
    # -1.1 per coin, less 0.1 % fees on both legs (0.11 + 0.1089).
    assert trade.pnl == Decimal("-1.3189")


def test_stop_gapped_through_fills_at_the_open() -> None:
    closes = [*RAMP, 112.0, 113.0, 113.0, 104.0, 104.0]
    result = Backtest(
        SmaCross, _series(closes, gap_open={len(closes) - 2: 105.0}), params=SMALL
    ).run()
    sell = result.fills[1]
    assert (sell.side, sell.price) == ("SELL", Decimal("105"))  # the open, below 108.90


def test_bad_inputs_are_refused() -> None:
    bars = synthetic_bars(100)
    with pytest.raises(ValidationError) as err:
        Backtest(SmaCross, bars, params={"fast": "ten"}).run()
    assert err.value.field == "fast"
    with pytest.raises(ValidationError) as err:
        Backtest(SmaCross, bars, params={"nope": 1})
    assert err.value.field == "nope"
    with pytest.raises(ValidationError):
        Backtest(SmaCross, bars, cash=1e6)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Backtest(SmaCross, bars, params={"fast": 30, "slow": 10}).run()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot4.cli", "backtest", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_cli_json_is_deterministic_and_reports(tmp_path: Path) -> None:
    args = [
        "--data",
        str(BTC),
        "--symbol",
        "BTC/USDT",
        "--param",
        "fast=10",
        "--param",
        "slow=30",
        "--param",
        "qty=1",
        "--param",
        "stop_pct=0.5",
        "--cash",
        "10000000",
        "--fee-bps",
        "10",
        "--json",
    ]
    one = run_cli(*args, "--trades", "t1.csv", "--report", "r.html", cwd=tmp_path)
    two = run_cli(*args, "--trades", "t2.csv", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    a = json.loads(one.stdout.strip().splitlines()[-1])
    b = json.loads(two.stdout.strip().splitlines()[-1])
    for key in (
        "bars",
        "trades",
        "final_equity",
        "total_return",
        "max_drawdown",
        "sharpe",
        "seconds",
    ):
        assert key in a
    a.pop("seconds"), b.pop("seconds"), a.pop("report")
    assert a == b  # everything but the wall-clock time
    assert (tmp_path / "t1.csv").read_bytes() == (tmp_path / "t2.csv").read_bytes()
    assert a["trades"] == 2565 and a["final_equity"].startswith("9424824.09")
    assert (tmp_path / "r.html").stat().st_size > 100_000


def test_cli_default_run_prints_report_path(tmp_path: Path) -> None:
    out = run_cli("--bars", "20000", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("report: ") and Path(last[8:]).exists()


def test_cli_bad_input(tmp_path: Path) -> None:
    out = run_cli("--strategy", "bot4.nope:Nope", cwd=tmp_path)
    assert out.returncode == 2 and "strategy" in out.stderr
    out = run_cli("--param", "fast", cwd=tmp_path)
    assert out.returncode == 2 and "NAME=VALUE" in out.stderr
    out = run_cli("--data", str(tmp_path / "missing.feather"), cwd=tmp_path)
    assert out.returncode == 2 and "file not found" in out.stderr
