"""``bot4 download`` against the ``bot4 exchange`` server's klines, through real ccxt:
pages, resumes where it stopped, writes what ``bot4 backtest`` reads."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from bot4.data.bars import load_bars
from bot4.server.process import ServerProcess

MINUTE_MS = 60_000
N = 2_500  # candles of history: three pages of 1,000


def server_args(state: Path) -> list[str]:
    return [
        "--symbols",
        "BTCUSDT",
        "--api-key",
        "k",
        "--api-secret",
        "s",
        "--balances",
        "USDT=1000",
        "--state",
        str(state),
    ]


def history_state(tmp: Path) -> tuple[Path, int]:
    """A server state file holding ``N`` past one-minute candles (the server keeps the
    candles of its state file, so a fresh server has history to serve)."""
    state = tmp / "state.json"
    args = server_args(state)
    with ServerProcess(args) as srv:
        time.sleep(0.5)
        srv.stop()
    data = json.loads(state.read_text())
    now_ms = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
    start = now_ms - (N + 5) * MINUTE_MS
    candles = []
    for k in range(N):
        price = (60_000 + k % 50) * 10**9
        candles.append(
            [
                start + k * MINUTE_MS,
                price,
                price + 10**9,
                price - 10**9,
                price,
                10**9,
                price * 10**9,
                1,
                0,
                0,
                k + 1,
                k + 1,
            ]
        )
    data["market"]["BTCUSDT"]["candles"] = candles
    state.write_text(json.dumps(data))
    return state, start


def download(url: str, out: Path, since: int, until: int | None = None) -> str:
    cmd = [
        sys.executable,
        "-m",
        "bot4.cli",
        "download",
        "--exchange",
        "binance",
        "--symbol",
        "BTC/USDT",
        "--timeframe",
        "1m",
        "--since",
        str(since),
        "--out",
        str(out),
        "--api-url",
        f"{url}/api/v3",
    ]
    if until is not None:
        cmd += ["--until", str(until)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_download_pages_and_resumes(tmp_path: Path) -> None:
    state, start = history_state(tmp_path)
    args = server_args(state)
    out = tmp_path / "BTC_USDT-1m.feather"
    with ServerProcess(args) as srv:
        # Stop part-way (as an interrupted download would) ...
        first = download(srv.http, out, start, until=start + 1_200 * MINUTE_MS)
        assert first.startswith("1200 new candles")
        # ... and the next run goes on from the last candle it has.
        second = download(srv.http, out, start)
        third = download(srv.http, out, start)
        srv.stop()
    frame = pd.read_feather(out)
    # The history, then the minutes the server itself has lived through (it serves a
    # candle for every closed minute since): only closed candles, none twice.
    n2, n3 = int(second.split()[0]), int(third.split()[0])
    assert N <= len(frame) <= N + 10
    assert len(frame) == 1200 + n2 + n3  # each run added exactly what was new
    assert n3 in (0, 1)  # at most a minute that closed in between
    ms = frame["date"].dt.as_unit("ms").astype("int64")
    assert ms.iloc[0] == start and (ms.diff().dropna() == MINUTE_MS).all()
    assert frame["close"].iloc[7] == 60_007.0
    bars = load_bars(out, "BTCUSDT")  # what `bot4 backtest --data` reads
    assert len(bars) == len(frame)
