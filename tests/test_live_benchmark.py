"""benchmarks/live_loop.py runs with --quick and ends with one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "live_loop.py"


def test_live_loop_benchmark_quick_reports_json() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) >= 2 and "orders / s" in "\n".join(lines[:-1])  # a table, then JSON
    result = json.loads(lines[-1])
    for key in ("tick_to_order_p50_us", "tick_to_order_p99_us", "orders_per_sec"):
        value = result[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert value > 0, key
    assert result["tick_to_order_p50_us"] <= result["tick_to_order_p99_us"]
    assert result["ticks"] == 2_000 and result["orders"] == 300 and result["quick"] is True
