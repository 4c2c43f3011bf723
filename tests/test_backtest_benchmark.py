import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "backtest.py"


def test_backtest_benchmark_quick_runs_both_engines_and_agrees() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    for key in (
        "bars",
        "bot4_bars_per_sec",
        "peer_bars_per_sec",
        "speedup",
        "same_trades",
        "same_equity",
        "peak_rss_mb",
    ):
        assert key in figures
    assert figures["bars"] == 50_000
    assert figures["same_trades"] is True and figures["same_equity"] is True
    assert figures["bot4_bars_per_sec"] > 0 and figures["peak_rss_mb"] > 0
