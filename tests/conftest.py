"""Shared fixtures: an instrument like Binance's BTCUSDT and an order manager on a
test clock (time is the only thing the tests control; everything else is real)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from bot4.core.clock import TestClock
from bot4.core.instrument import Instrument
from bot4.oms.manager import OrderManager

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
T0 = 1_747_699_200 * 10**9


def btcusdt() -> Instrument:
    return Instrument.create(
        "BTCUSDT",
        "BTC",
        "USDT",
        tick_size="0.01",
        step_size="0.00001",
        min_qty="0.00001",
        max_qty="9000",
        min_notional="5",
        max_notional="9000000",
    )


def ethusdt() -> Instrument:
    return Instrument.create(
        "ETHUSDT",
        "ETH",
        "USDT",
        tick_size="0.01",
        step_size="0.0001",
        min_qty="0.0001",
        max_qty="9000",
        min_notional="5",
    )


@pytest.fixture
def clock() -> TestClock:
    return TestClock(T0)


@pytest.fixture
def om(clock: TestClock) -> OrderManager:
    manager = OrderManager([btcusdt(), ethusdt()], clock=clock)
    manager.deposit("USDT", "1000000")
    manager.deposit("BTC", "10")
    return manager


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(name: str, *args: str, timeout: float = 120) -> tuple[dict[str, object], str]:
    """Run ``benchmarks/<name>`` (usually with ``--quick``) as a user would; returns its
    last line parsed as the JSON object every benchmark ends with, and the text above."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert isinstance(result, dict)
    return result, "\n".join(lines[:-1])


def assert_positive(result: dict[str, object], *keys: str) -> None:
    for key in keys:
        value = result[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert value > 0, key
