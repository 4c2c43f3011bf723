"""Each benchmark runs in quick mode, as a user runs it, and ends with one JSON object
of positive figures."""

from __future__ import annotations

import time

from tests.conftest import assert_positive, run_benchmark


def test_core_ops() -> None:
    result, table = run_benchmark("core_ops.py", "--quick", timeout=60)
    assert table  # a table, then the JSON
    assert_positive(
        result,
        "order_events_per_sec",
        "position_fills_per_sec",
        "journal_appends_per_sec",
        "journal_batched_appends_per_sec",
    )


def test_risk() -> None:
    result, table = run_benchmark("risk.py", "--quick", timeout=60)
    assert table
    assert_positive(
        result,
        "check_p50_us",
        "check_p99_us",
        "breaker_p50_us",
        "breaker_with_p50_us",
        "check_after_price_update_p50_us",
        "submit_bracket_p50_us",
    )
    assert result["check_p99_us"] >= result["check_p50_us"]  # type: ignore[operator]
    assert result["quick"] is True


def test_matching() -> None:
    started = time.perf_counter()
    result, table = run_benchmark("matching.py", "--quick", timeout=60)
    assert time.perf_counter() - started < 10
    assert_positive(result, "orders_per_sec", "l3_messages_per_sec")
    assert result["quick"] is True
    assert result["l3_messages"] == 100_001 and result["l3_final_orders"] == 38
    # the in-run yardstick (a plain dict-of-levels book) ends in bot4's book
    assert result["l3_plain_reference_same_book"] is True
    assert_positive(result, "l3_plain_reference_messages_per_sec", "l3_vs_plain_reference")
    mix = result["order_mix"]
    assert isinstance(mix, dict)
    total = sum(mix.values())
    assert total == result["orders"]
    # about 60 % passive, 30 % cancels, 10 % marketable
    assert abs(mix["passive"] / total - 0.6) < 0.05
    assert abs(mix["cancel"] / total - 0.3) < 0.05
    assert abs(mix["marketable"] / total - 0.1) < 0.03
    for label in ("orders / s", "L3 messages / s"):
        assert label in table


def test_backtest_against_backtesting_py() -> None:
    result, _ = run_benchmark("backtest.py", "--quick", timeout=300)
    assert result["bars"] == 50_000
    assert result["same_trades"] is True and result["same_equity"] is True
    assert_positive(result, "bot4_bars_per_sec", "peer_bars_per_sec", "speedup", "peak_rss_mb")


def test_exchange_server() -> None:
    result, table = run_benchmark("exchange_server.py", "--quick")
    assert "round trips" in table
    assert_positive(result, "round_trips_per_sec", "p50_ms", "p99_ms")
    assert result["p50_ms"] <= result["p99_ms"]  # type: ignore[operator]
    assert result["round_trips"] == 300 and result["quick"] is True
    assert result["host"] == "127.0.0.1"


def test_live_loop() -> None:
    result, table = run_benchmark("live_loop.py", "--quick")
    assert "orders / s" in table
    assert_positive(result, "tick_to_order_p50_us", "tick_to_order_p99_us", "orders_per_sec")
    assert result["tick_to_order_p50_us"] <= result["tick_to_order_p99_us"]  # type: ignore[operator]
    assert result["ticks"] == 2_000 and result["orders"] == 300 and result["quick"] is True
    assert result["rounds"] == 1 and result["tick_to_order_p99_rounds_us"] == [
        result["tick_to_order_p99_us"]
    ]
    assert_positive(result, "host_fixed_work_p50_us", "host_fixed_work_p99_us")
    assert_positive(result, "tick_to_order_paced_p50_us", "host_reads_paced_p50_us")
    assert result["paced_gap_us"] == 1000.0
    # the host's fixed work is calibrated to the tick-to-order median
    assert 0.25 < result["host_fixed_work_p50_us"] / result["tick_to_order_p50_us"] < 4  # type: ignore[operator]
