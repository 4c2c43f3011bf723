"""The benchmark script runs and ends with one JSON line of positive rates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "core_ops.py"
KEYS = ("order_events_per_sec", "position_fills_per_sec", "journal_appends_per_sec")


def test_core_ops_quick_reports_json() -> None:
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
    for key in (*KEYS, "journal_batched_appends_per_sec"):
        value = result[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert value > 0, key
    assert result["quick"] is True
    assert result["order_events_per_run"] > 0
    # The table above the JSON names every measured operation.
    table = "\n".join(lines[:-1])
    for label in ("order events / s", "position fills / s", "journal appends / s"):
        assert label in table
