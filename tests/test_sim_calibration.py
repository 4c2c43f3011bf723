"""Calibration: the stored defaults are reproduced from ../shared/data, every fit carries
its KS test, and the fitting functions recover known parameters.  Missing data files
make these tests fail, not skip."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot4.sim.calibrated import CALIBRATION
from bot4.sim.calibration import (
    CAPTURE_SPOT_BTC,
    TARDIS_TRADES,
    calibrate,
    fit_arrivals,
    fit_beta_fractions,
    fit_shifted_lognormal,
    main,
    render_module,
    report,
)
from tests.conftest import SHARED_DATA


@pytest.fixture(scope="module")
def fresh() -> dict[str, Any]:
    for name in (TARDIS_TRADES, *CAPTURE_SPOT_BTC, "SHA256SUMS"):
        assert (SHARED_DATA / name).is_file(), f"missing shared data file {name}"
    return calibrate(SHARED_DATA)


def _close(a: Any, b: Any, rel: float = 1e-6) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-300)
    return bool(a == b)


def test_stored_defaults_are_reproduced_from_the_data(fresh: dict[str, Any]) -> None:
    for section in ("latency_model", "partial_fill_model"):
        stored, now = CALIBRATION[section], fresh[section]
        assert stored.keys() == now.keys()
        for key in ("submit", "cancel", "market_data") if section == "latency_model" else [""]:
            s, n = (stored[key], now[key]) if key else (stored, now)
            for field, value in s.items():
                if field != "source":
                    assert _close(value, n[field], rel=1e-3), (section, key, field)


def test_every_fit_reproduced_with_sample_sizes_and_ks(fresh: dict[str, Any]) -> None:
    assert fresh["fits"].keys() == CALIBRATION["fits"].keys()
    for name, fit in fresh["fits"].items():
        stored = CALIBRATION["fits"][name]
        assert fit["files"] == stored["files"]  # names and sha256 (checked on read)
        ks = fit["ks"]
        assert ks["n"] == stored["ks"]["n"] > 1000
        assert 0.0 < ks["statistic"] < 1.0 and 0.0 <= ks["pvalue"] <= 1.0
        assert ks["sub_n"] == 500 and 0.0 <= ks["sub_pvalue"] <= 1.0
        for key in ("mu", "sigma", "floor_ns", "rate_per_s", "beta_a", "beta_b", "p_full"):
            if key in fit:
                assert _close(fit[key], stored[key], rel=1e-3), (name, key)
        assert _close(ks["statistic"], stored["ks"]["statistic"], rel=1e-3), name


def test_known_sample_sizes_and_plausible_values(fresh: dict[str, Any]) -> None:
    fits = fresh["fits"]
    assert fits["latency_tardis_trades"]["ks"]["n"] == 9999
    assert fits["latency_tardis_quotes"]["ks"]["n"] == 9999
    assert fits["latency_capture_spot_btcusdt"]["ks"]["n"] == 9757 + 10147
    assert 110e6 < fits["latency_tardis_trades"]["floor_ns"] < 116e6  # min 115.088 ms
    # The capture host's clock was ~1.27 s behind Binance's (spot): negative "latency".
    assert -1.3e9 < fits["latency_capture_spot_btcusdt"]["floor_ns"] < -1.25e9
    arrivals = fits["arrivals_capture_spot_btcusdt"]
    assert 5 < arrivals["rate_per_s"] < 20 and arrivals["cv"] > 1  # bursty, not Poisson
    frac = fits["fill_fraction_capture_spot_btcusdt"]
    assert 0 < frac["p_full"] < 0.5 and frac["beta_a"] < 1 < frac["beta_b"]


def test_rendered_module_round_trips(fresh: dict[str, Any], tmp_path: Path) -> None:
    source = render_module(fresh)
    namespace: dict[str, Any] = {}
    exec(compile(source, "calibrated.py", "exec"), namespace)
    assert namespace["CALIBRATION"] == fresh
    assert all(len(line) <= 100 for line in source.splitlines())


def test_report_prints_ks_for_every_fit(
    fresh: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    text = report(fresh)
    assert text.count("KS D=") == len(fresh["fits"])
    for name in fresh["fits"]:
        assert name in text
    with capsys.disabled():
        print("\n" + text)


def test_cli_dry_run_does_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "calibrated.py"
    assert main(["--data", str(SHARED_DATA), "--dry-run", "--output", str(out)]) == 0
    assert not out.exists() and "defaults: latency" in capsys.readouterr().out


# -- the fitting functions on samples with known parameters -------------------------------


def test_shifted_lognormal_fit_recovers_parameters() -> None:
    rng = np.random.Generator(np.random.PCG64(1))
    floor, mu, sigma = 50_000_000, math.log(20e6), 0.4
    x = (floor + np.exp(mu + sigma * rng.standard_normal(20_000))).astype(np.int64)
    fit = fit_shifted_lognormal(x)
    # The floor is placed one quantum below the minimum, which biases mu/sigma a bit.
    assert abs(fit["floor_ns"] - floor) < 10e6
    assert abs(fit["mean_ns"] / x.mean() - 1) < 0.02
    assert fit["ks"]["statistic"] < 0.05


def test_arrival_and_beta_fits_recover_parameters() -> None:
    rng = np.random.Generator(np.random.PCG64(2))
    times = np.cumsum(rng.exponential(1000 / 8.0, 20_000)).astype(np.int64)  # 8/s in ms
    arr = fit_arrivals(times)
    assert abs(arr["rate_per_s"] / 8.0 - 1) < 0.02 and abs(arr["cv"] - 1) < 0.05
    assert arr["ks"]["sub_pvalue"] > 0.01
    fractions = np.concatenate([rng.beta(0.3, 2.0, 9_000), np.ones(1_000)])
    beta = fit_beta_fractions(fractions)
    assert beta["p_full"] == pytest.approx(0.1)
    assert abs(beta["beta_a"] - 0.3) < 0.02 and abs(beta["beta_b"] - 2.0) < 0.15
    assert beta["ks"]["statistic"] < 0.02
