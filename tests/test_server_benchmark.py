"""The exchange-server benchmark runs with --quick and ends with one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "exchange_server.py"


def test_exchange_server_benchmark_quick_reports_json() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) >= 2 and "round trips" in "\n".join(lines[:-1])  # a table, then JSON
    result = json.loads(lines[-1])
    for key in ("round_trips_per_sec", "p50_ms", "p99_ms"):
        value = result[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert value > 0, key
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["round_trips"] == 300 and result["quick"] is True
    assert result["host"] == "127.0.0.1"
