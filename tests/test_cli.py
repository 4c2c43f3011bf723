"""The bot4 command as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

BOT4 = [sys.executable, "-m", "bot4.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BOT4, *args], capture_output=True, text=True, timeout=120)


def test_demo_journals_and_replays(tmp_path: Path) -> None:
    journal = tmp_path / "demo.db"
    out = run("demo", "--journal", str(journal))
    assert out.returncode == 0, out.stderr
    assert "replay rebuilds the same" in out.stdout and "True" in out.stdout
    assert "Filter failure: PRICE_FILTER" in out.stdout
    shown = run("journal", "show", str(journal), "--json", "--limit", "100")
    events = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    fills = [e for e in events if e["kind"] == "OrderFilled"]
    assert [f["trade_id"] for f in fills] == ["T-1", "T-2", "T-3", "T-4"]  # T-1 once only
    verified = run("journal", "verify", str(journal))
    assert verified.returncode == 0 and "0 anomalies" in verified.stdout


def test_demo_refuses_to_overwrite_a_journal(tmp_path: Path) -> None:
    journal = tmp_path / "demo.db"
    assert run("demo", "--journal", str(journal)).returncode == 0
    again = run("demo", "--journal", str(journal))
    assert again.returncode != 0 and "exists" in (again.stdout + again.stderr)


def test_journal_verify_reports_a_gap(tmp_path: Path) -> None:
    journal = tmp_path / "demo.db"
    assert run("demo", "--journal", str(journal)).returncode == 0
    engine = create_engine(f"sqlite:///{journal}")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM bot4_events WHERE seq = 5"))
    engine.dispose()
    out = run("journal", "verify", str(journal))
    assert out.returncode == 1
    assert "gap" in out.stdout and "expected seq 5, got 6" in out.stdout


def test_risk_profile_print_edit_check(tmp_path: Path) -> None:
    out = run("risk", "profile")
    assert out.returncode == 0 and 'max_drawdown_pct = "0.15"' in out.stdout
    path = tmp_path / "risk.toml"
    path.write_text(
        out.stdout.replace('max_position_pct_equity = "0.02"', 'max_position_pct_equity = "0.05"')
    )
    checked = run("risk", "check", str(path))
    assert checked.returncode == 0 and "0.05" in checked.stdout
    path.write_text('[limits]\nmax_open_orders = "many"\n')
    bad = run("risk", "check", str(path))
    assert bad.returncode == 2 and "limits.max_open_orders" in bad.stdout
