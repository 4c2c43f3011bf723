"""bot4's backtest speed against backtesting.py, in the same run.

The task is the peers' (../shared/docs/peers.md): SmaCross(fast=10, slow=30, qty=1,
stop_pct=0.5), 10,000,000 USDT, 10 bps commission, fills at the next open, on
1,000,000 seeded synthetic one-minute bars and on the real BTC/USDT file.  bot4 runs
its real path -- strategy, risk engine, order manager, simulated venue -- not a
vectorised side door.  Each engine runs in its own child process so its peak memory
(VmHWM) is its own.

    python benchmarks/backtest.py            # 1,000,000 bars + the real file, 3 rounds
    python benchmarks/backtest.py --quick    # 50,000 bars, one round: a smoke run

Each round runs bot4 and then backtesting.py; the figures are the medians of the rounds
(the machines here vary +-20 % from run to run, see ../shared/docs/peers.md).

The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
REAL = (
    HERE.parent.parent
    / "shared"
    / "data"
    / "ohlcv_1m"
    / ("binance_spot_BTC_USDT-1m_2025-05-20_2025-08-18.feather")
)
PARAMS = {"fast": 10, "slow": 30, "qty": 1, "stop_pct": "0.5"}


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(engine: str, bars: int, data: str | None) -> dict[str, object]:
    """Run one engine once; returns its figures."""
    from bot4.data.bars import load_bars, synthetic_bars

    series = load_bars(data, "BTCUSDT") if data else synthetic_bars(bars, "BTCUSDT", seed=42)
    n = len(series)
    if engine == "bot4":
        from bot4.backtest.engine import Backtest
        from bot4.examples.sma_cross import SmaCross

        t0 = time.perf_counter()
        result = Backtest(SmaCross, series, params=PARAMS, cash=10_000_000, fee_bps=10).run()
        seconds = time.perf_counter() - t0
        trades = result.entries
        equity = f"{result.final_equity:.2f}"
    else:
        import pandas as pd

        sys.path.insert(0, str(HERE))
        from peer_backtesting import run_peer

        frame = pd.DataFrame(
            {
                "date": pd.to_datetime(series.ts_ns, utc=True),
                "open": series.open,
                "high": series.high,
                "low": series.low,
                "close": series.close,
                "volume": series.volume,
            }
        )
        del series
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = run_peer(frame)
        seconds = time.perf_counter() - t0
        # Entries: closed trades plus a position still open at the end (bot4 counts both).
        trades = int(stats["# Trades"]) + len(stats._strategy.trades)
        equity = f"{stats['Equity Final [$]']:.2f}"
    return {
        "seconds": seconds,
        "bars": n,
        "trades": trades,
        "equity": equity,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def run_child(engine: str, bars: int, data: str | None) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", engine, "--bars", str(bars)]
    if data:
        cmd += ["--data", data]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def compare(label: str, bars: int, data: str | None, repeat: int) -> dict[str, object]:
    """``repeat`` rounds, each running bot4 then the peer (alternating, so a noisy
    stretch of the machine hits both); rates are medians over the rounds and the
    speedup is the ratio of the medians (per-round ratios reported too)."""
    rounds = [(run_child("bot4", bars, data), run_child("peer", bars, data)) for _ in range(repeat)]
    bot4, peer = rounds[-1]
    b_rates = [b["bars"] / b["seconds"] for b, _ in rounds]  # type: ignore[operator]
    p_rates = [p["bars"] / p["seconds"] for _, p in rounds]  # type: ignore[operator]
    b_rate, p_rate = statistics.median(b_rates), statistics.median(p_rates)
    ratios = [b / p for b, p in zip(b_rates, p_rates, strict=True)]
    row = {
        "label": label,
        "bars": bot4["bars"],
        "bot4_bars_per_sec": round(b_rate),
        "peer_bars_per_sec": round(p_rate),
        "speedup": round(b_rate / p_rate, 3),
        "speedup_per_round": [round(r, 3) for r in ratios],
        "rounds": repeat,
        "same_trades": all(b["trades"] == p["trades"] for b, p in rounds),
        "same_equity": all(b["equity"] == p["equity"] for b, p in rounds),
        "bot4_trades": bot4["trades"],
        "peer_trades": peer["trades"],
        "bot4_equity": bot4["equity"],
        "peer_equity": peer["equity"],
        "bot4_peak_rss_mb": max(b["peak_rss_mb"] for b, _ in rounds),  # type: ignore[type-var]
        "peer_peak_rss_mb": max(p["peak_rss_mb"] for _, p in rounds),  # type: ignore[type-var]
    }
    print(
        f"{label:<28} bot4 {b_rate:>10,.0f} bars/s  backtesting.py {p_rate:>10,.0f} bars/s  "
        f"x{b_rate / p_rate:.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f})  "
        f"trades {bot4['trades']}/{peer['trades']}  "
        f"equity {bot4['equity']}/{peer['equity']}  "
        f"RSS {row['bot4_peak_rss_mb']}/{row['peer_peak_rss_mb']} MB"
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", choices=["bot4", "peer"])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--data")
    parser.add_argument("--repeat", type=int, help="rounds per comparison (default 3, quick 1)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.bars, args.data)))
        return 0
    n = 50_000 if args.quick else args.bars
    repeat = args.repeat or (1 if args.quick else 3)
    synth = compare(f"synthetic {n:,} bars", n, None, repeat)
    rows = {"synthetic": synth}
    if not args.quick and REAL.exists():
        rows["real_btc"] = compare("real BTC/USDT 1m", 0, str(REAL), repeat)
    summary = {
        "bars": synth["bars"],
        "bot4_bars_per_sec": synth["bot4_bars_per_sec"],
        "peer_bars_per_sec": synth["peer_bars_per_sec"],
        "speedup": synth["speedup"],
        "speedup_per_round": synth["speedup_per_round"],
        "rounds": repeat,
        "same_trades": synth["same_trades"],
        "same_equity": synth["same_equity"],
        "peak_rss_mb": synth["bot4_peak_rss_mb"],
        "peer_peak_rss_mb": synth["peer_peak_rss_mb"],
        "real_btc": rows.get("real_btc"),
        "quick": args.quick,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
