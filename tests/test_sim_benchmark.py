"""The matching benchmark runs quickly with --quick and ends with one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "matching.py"


def test_matching_benchmark_quick_reports_json() -> None:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 10, f"--quick took {elapsed:.1f} s"
    lines = proc.stdout.strip().splitlines()
    assert len(lines) >= 3  # a table, then the JSON
    result = json.loads(lines[-1])
    assert isinstance(result, dict)
    for key in ("orders_per_sec", "l3_messages_per_sec"):
        value = result[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert value > 0, key
    assert result["quick"] is True
    assert result["l3_messages"] == 100_001 and result["l3_final_orders"] == 38
    mix = result["order_mix"]
    total = sum(mix.values())
    assert total == result["orders"]
    # about 60 % passive, 30 % cancels, 10 % marketable
    assert abs(mix["passive"] / total - 0.6) < 0.05
    assert abs(mix["cancel"] / total - 0.3) < 0.05
    assert abs(mix["marketable"] / total - 0.1) < 0.03
    table = "\n".join(lines[:-1])
    for label in ("orders / s", "L3 messages / s"):
        assert label in table
