"""The risk benchmark runs in quick mode and ends with one JSON line of positive
latencies (microseconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "risk.py"
KEYS = (
    "check_p50_us",
    "check_p99_us",
    "breaker_p50_us",
    "breaker_with_p50_us",
    "check_after_price_update_p50_us",
    "submit_bracket_p50_us",
)


def test_risk_benchmark_quick_reports_json() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) >= 2  # a table, then the JSON
    result = json.loads(lines[-1])
    assert isinstance(result, dict)
    for key in KEYS:
        value = result[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert value > 0, key
    assert result["check_p99_us"] >= result["check_p50_us"]
    assert result["quick"] is True
    assert result["open_positions"] == 10
    assert result["history_orders"] > 0
    table = "\n".join(lines[:-1])
    for label in ("risk check chain", "breaker.allow()", "with breaker:", "submit_bracket"):
        assert label in table
