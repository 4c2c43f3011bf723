"""Fit the simulation models' parameters to the real data in ``../shared/data``.

Run ``python -m bot4.sim.calibration`` to refit, print a report and rewrite
``bot4/sim/calibrated.py`` (``--dry-run`` only prints; ``--data DIR`` points elsewhere).
Every fit is checked with a Kolmogorov-Smirnov test against the fitted distribution,
on the full sample and on a seeded random subsample of 500: with thousands of
observations KS rejects any parametric model for tiny misfits, the subsample shows
whether the misfit is also visible at a size where the test is less sensitive.

Choices, and why:

* **Latency** (shifted log-normal): ``floor = min(sample) - 1 ms``, then the MLE of a
  log-normal on ``sample - floor`` (closed form: mean and standard deviation of the
  logs).  Exchange timestamps are whole milliseconds, so the minimum is known to within
  one millisecond only; fixing the floor there avoids the degenerate free-location MLE
  (it runs to the smallest observation).  Sources: tardis ``local_timestamp -
  timestamp`` (trades, quotes; a host with a synchronised clock), and the raw captures'
  ``local receive ns - E`` for trades.  The capture host's clock was about 1.27 s
  (spot) / 1.52 s (futures) *behind* Binance's, so the captures only give the shape of
  the latency above an unknown offset; the default market-data latency therefore comes
  from the tardis trades.
* **Arrivals**: aggressive (taker) orders, i.e. trades grouped by (trade time, taker
  side), from the spot BTCUSDT capture.  Their inter-arrival times are fitted with an
  exponential (Poisson process; MLE rate = 1 / mean).
* **Fill fraction**: for each taker event at the touch, the traded quantity at the touch
  price divided by the touch quantity shown by the last ``bookTicker`` received before
  it (the real-time best level; the rebuilt 100 ms book would be up to 100 ms stale).
  Events whose price is not the ticker's touch are skipped.  A fraction >= 1 (the whole
  level taken; also iceberg refills) is counted in ``p_full``; the rest is fitted with
  ``scipy.stats.beta.fit(floc=0, fscale=1)``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from bot4.sim.binance_capture import BookTicker, Trade, read_capture

__all__ = [
    "CAPTURE_SPOT_BTC",
    "CAPTURE_SPOT_ETH",
    "CAPTURE_USDM_BTC",
    "TARDIS_QUOTES",
    "TARDIS_TRADES",
    "calibrate",
    "capture_latencies",
    "default_data_dir",
    "fit_arrivals",
    "fit_beta_fractions",
    "fit_shifted_lognormal",
    "ks_check",
    "main",
    "render_module",
    "report",
    "taker_events",
    "touch_fractions",
]

TARDIS_TRADES = "trades_quotes/tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv"
TARDIS_QUOTES = "trades_quotes/tardis_binance-futures_BTCUSDT_quotes_2020-02-22.csv"
_RAW = "orderbook/hftbacktest_binance_raw/"
CAPTURE_SPOT_BTC: tuple[str, ...] = (
    _RAW + "spot_btcusdt_20240808.gz",
    _RAW + "spot_btcusdt_20240809.gz",
)
CAPTURE_SPOT_ETH: tuple[str, ...] = (_RAW + "spot_ethusdt_20240808.gz",)
CAPTURE_USDM_BTC: tuple[str, ...] = (
    _RAW + "usdm_btcusdt_20240718.gz",
    _RAW + "usdm_btcusdt_20240719.gz",
)

MS_NS = 1_000_000
KS_SUBSAMPLE = 500
KS_SEED = 20240808
_MODULE_PATH = Path(__file__).with_name("calibrated.py")


def default_data_dir() -> Path:
    """``<repo>/../shared/data`` (the layout of the project checkout)."""
    return Path(__file__).resolve().parents[4] / "shared" / "data"


# -- statistics -------------------------------------------------------------------


def ks_check(sample: NDArray[np.float64], dist: str, args: tuple[float, ...]) -> dict[str, Any]:
    """KS statistic and p-value on the full sample and on a seeded subsample of 500."""
    full = stats.kstest(sample, dist, args)
    rng = np.random.Generator(np.random.PCG64(KS_SEED))
    sub_n = min(KS_SUBSAMPLE, len(sample))
    sub = stats.kstest(rng.choice(sample, sub_n, replace=False), dist, args)
    return {
        "n": len(sample),
        "statistic": float(full.statistic),
        "pvalue": float(full.pvalue),
        "sub_n": sub_n,
        "sub_statistic": float(sub.statistic),
        "sub_pvalue": float(sub.pvalue),
    }


def fit_shifted_lognormal(samples_ns: NDArray[np.int64], quantum_ns: int = MS_NS) -> dict[str, Any]:
    """floor = min - quantum; (mu, sigma) = MLE of a log-normal on samples - floor."""
    if len(samples_ns) < 2:
        raise ValueError("need at least two samples")
    floor = int(samples_ns.min()) - quantum_ns
    logs = np.log((samples_ns - floor).astype(np.float64))
    mu, sigma = float(logs.mean()), float(logs.std())
    x = samples_ns.astype(np.float64)
    return {
        "floor_ns": floor,
        "mu": mu,
        "sigma": sigma,
        "mean_ns": floor + math.exp(mu + sigma**2 / 2),
        "sample_mean_ns": float(x.mean()),
        "sample_median_ns": float(np.median(x)),
        "ks": ks_check(x, "lognorm", (sigma, float(floor), math.exp(mu))),
    }


def fit_arrivals(event_times_ms: NDArray[np.int64]) -> dict[str, Any]:
    """Exponential inter-arrival fit (rate = 1/mean) of event times in ms."""
    gaps_s = np.diff(np.sort(event_times_ms)).astype(np.float64) / 1e3
    mean = float(gaps_s.mean())
    return {
        "events": len(event_times_ms),
        "duration_s": float((event_times_ms.max() - event_times_ms.min()) / 1e3),
        "rate_per_s": 1.0 / mean,
        "cv": float(gaps_s.std() / mean),  # 1 for a Poisson process
        "ks": ks_check(gaps_s, "expon", (0.0, mean)),
    }


def fit_beta_fractions(fractions: NDArray[np.float64]) -> dict[str, Any]:
    """p_full = share of fractions >= 1; Beta MLE on the rest (support fixed to (0, 1))."""
    full = fractions >= 1.0
    part = fractions[~full]
    a, b, _, _ = stats.beta.fit(part, floc=0, fscale=1)
    return {
        "n": len(fractions),
        "p_full": float(full.mean()),
        "beta_a": float(a),
        "beta_b": float(b),
        "sample_median": float(np.median(part)),
        "ks": ks_check(part, "beta", (float(a), float(b))),
    }


# -- data extraction ----------------------------------------------------------------


def tardis_latencies(path: Path) -> NDArray[np.int64]:
    """``local_timestamp - timestamp`` in ns (tardis stores µs)."""
    df = pd.read_csv(path, usecols=["timestamp", "local_timestamp"], dtype="int64")
    micros = df["local_timestamp"].to_numpy(np.int64) - df["timestamp"].to_numpy(np.int64)
    return np.asarray(micros * 1000, dtype=np.int64)


def tardis_taker_events(path: Path) -> NDArray[np.int64]:
    """Trade times (ms) of taker events: trades grouped by (timestamp, side)."""
    df = pd.read_csv(path, usecols=["timestamp", "side"])
    ts = df["timestamp"].to_numpy(dtype=np.int64) // 1000
    side = df["side"].to_numpy()
    new = np.ones(len(ts), dtype=bool)
    new[1:] = (ts[1:] != ts[:-1]) | (side[1:] != side[:-1])
    return np.asarray(ts[new], dtype=np.int64)


def capture_latencies(paths: Sequence[Path]) -> NDArray[np.int64]:
    """``local receive ns - E`` of every market trade (contains the clock offset)."""
    out = [
        m.local_ns - m.event_ms * MS_NS
        for m in read_capture(paths, (Trade,))
        if isinstance(m, Trade) and m.kind == "MARKET"
    ]
    return np.asarray(out, dtype=np.int64)


def taker_events(paths: Sequence[Path]) -> NDArray[np.int64]:
    """Trade times (ms) of taker events: consecutive trades with one T and taker side."""
    times: list[int] = []
    last: tuple[int, bool] | None = None
    for m in read_capture(paths, (Trade,)):
        if isinstance(m, Trade) and m.kind == "MARKET":
            key = (m.trade_ms, m.buyer_is_maker)
            if key != last:
                times.append(m.trade_ms)
                last = key
    return np.asarray(times, dtype=np.int64)


def touch_fractions(paths: Sequence[Path]) -> tuple[NDArray[np.float64], int]:
    """Per taker event at the touch: traded qty at the touch / touch qty before it.

    Returns the fractions (uncapped) and the number of events skipped because their
    first trade was not at the last ticker's touch price.
    """
    fractions: list[float] = []
    skipped = 0
    ticker: BookTicker | None = None
    key: tuple[int, bool] | None = None
    touch_price = touch_qty = volume = 0
    active = False
    for m in read_capture(paths, (Trade, BookTicker)):
        if isinstance(m, BookTicker):
            ticker = m
            continue
        if not isinstance(m, Trade) or m.kind != "MARKET":
            continue
        this = (m.trade_ms, m.buyer_is_maker)
        if this == key:
            if active and m.price == touch_price:
                volume += m.qty
            continue
        if active:
            fractions.append(volume / touch_qty)
        key, active = this, False
        if ticker is None:
            continue
        if m.buyer_is_maker:  # taker sold into the bid
            touch_price, touch_qty = ticker.bid_price, ticker.bid_qty
        else:
            touch_price, touch_qty = ticker.ask_price, ticker.ask_qty
        if m.price != touch_price or touch_qty <= 0:
            skipped += 1
            continue
        active, volume = True, m.qty
    if active:
        fractions.append(volume / touch_qty)
    return np.asarray(fractions, dtype=np.float64), skipped


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _listed_sums(data_dir: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    for line in (data_dir / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.removeprefix("./")] = digest
    return sums


def _provenance(data_dir: Path, names: Sequence[str], sums: dict[str, str]) -> list[list[str]]:
    """[[file, sha256], ...]; the file must match the listed SHA256SUMS entry."""
    out = []
    for name in names:
        actual = _sha256(data_dir / name)
        if sums.get(name) != actual:
            raise ValueError(f"{name}: sha256 {actual} does not match SHA256SUMS")
        out.append([name, actual])
    return out


# -- the whole calibration ------------------------------------------------------------


def calibrate(data_dir: Path | None = None, today: dt.date | None = None) -> dict[str, Any]:
    """Run every fit and return the ``CALIBRATION`` table (JSON-compatible)."""
    data_dir = data_dir if data_dir is not None else default_data_dir()
    sums = _listed_sums(data_dir)

    def files(names: Sequence[str]) -> list[Path]:
        return [data_dir / n for n in names]

    fits: dict[str, Any] = {}
    fits["latency_tardis_trades"] = {
        "files": _provenance(data_dir, [TARDIS_TRADES], sums),
        **fit_shifted_lognormal(tardis_latencies(data_dir / TARDIS_TRADES)),
    }
    fits["latency_tardis_quotes"] = {
        "files": _provenance(data_dir, [TARDIS_QUOTES], sums),
        **fit_shifted_lognormal(tardis_latencies(data_dir / TARDIS_QUOTES)),
    }
    for key, names in (("spot_btcusdt", CAPTURE_SPOT_BTC), ("usdm_btcusdt", CAPTURE_USDM_BTC)):
        lat = capture_latencies(files(names))
        fits[f"latency_capture_{key}"] = {
            "files": _provenance(data_dir, names, sums),
            "note": "local clock offset not separable: floor_ns is relative (negative)",
            **fit_shifted_lognormal(lat),
        }
    fits["arrivals_capture_spot_btcusdt"] = {
        "files": _provenance(data_dir, CAPTURE_SPOT_BTC, sums),
        **fit_arrivals(taker_events(files(CAPTURE_SPOT_BTC))),
    }
    fits["arrivals_tardis_trades"] = {
        "files": _provenance(data_dir, [TARDIS_TRADES], sums),
        **fit_arrivals(tardis_taker_events(data_dir / TARDIS_TRADES)),
    }
    for key, names in (
        ("spot_btcusdt", CAPTURE_SPOT_BTC),
        ("spot_ethusdt", CAPTURE_SPOT_ETH),
        ("usdm_btcusdt", CAPTURE_USDM_BTC),
    ):
        fractions, skipped = touch_fractions(files(names))
        fits[f"fill_fraction_capture_{key}"] = {
            "files": _provenance(data_dir, names, sums),
            "skipped_not_at_touch": skipped,
            **fit_beta_fractions(fractions),
        }

    md = fits["latency_tardis_trades"]
    market_data = {
        "mu": md["mu"],
        "sigma": md["sigma"],
        "floor_ns": md["floor_ns"],
        "source": "fits.latency_tardis_trades",
    }
    assumed = {**market_data, "source": "assumed equal to market_data (no round-trip data)"}
    arrivals = fits["arrivals_capture_spot_btcusdt"]
    fraction = fits["fill_fraction_capture_spot_btcusdt"]
    return {
        "generated_on": (today or dt.date.today()).isoformat(),
        "generator": "python -m bot4.sim.calibration",
        "scipy": _scipy_version(),
        "latency_model": {"submit": assumed, "cancel": dict(assumed), "market_data": market_data},
        "partial_fill_model": {
            "arrival_rate_per_s": arrivals["rate_per_s"],
            "beta_a": fraction["beta_a"],
            "beta_b": fraction["beta_b"],
            "p_full": fraction["p_full"],
            "source": "fits.arrivals_capture_spot_btcusdt, fits.fill_fraction_capture_spot_btcusdt",
        },
        "fits": fits,
    }


def _scipy_version() -> str:
    import scipy

    return str(scipy.__version__)


# -- output -------------------------------------------------------------------------


def _literal(value: Any, indent: int) -> str:
    """Python source for JSON-like data, laid out the way ``ruff format`` keeps it
    (one item per line, trailing commas, double quotes)."""
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = "".join(
            f"{pad}{_literal(k, 0)}: {_literal(v, indent + 4)},\n" for k, v in value.items()
        )
        return "{\n" + items + " " * indent + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        items = "".join(f"{pad}{_literal(v, indent + 4)},\n" for v in value)
        return "[\n" + items + " " * indent + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f'float("{value}")'
    raise TypeError(f"cannot render {type(value).__name__}")


def render_module(calibration: dict[str, Any]) -> str:
    header = (
        '"""Fitted simulation defaults with their provenance.\n\n'
        "Generated by ``python -m bot4.sim.calibration``; do not edit by hand: rerun it.\n"
        '"""\n\n'
        "from __future__ import annotations\n\n"
        "from typing import Any, Final\n\n"
    )
    return header + f"CALIBRATION: Final[dict[str, Any]] = {_literal(calibration, 0)}\n"


def _ks_line(ks: dict[str, Any]) -> str:
    return (
        f"KS D={ks['statistic']:.4f} p={ks['pvalue']:.3g} (n={ks['n']}); "
        f"subsample D={ks['sub_statistic']:.4f} p={ks['sub_pvalue']:.3g} (n={ks['sub_n']})"
    )


def report(calibration: dict[str, Any]) -> str:
    lines = [f"bot4 simulation calibration ({calibration['generated_on']})", ""]
    for name, fit in calibration["fits"].items():
        lines.append(f"{name}: {', '.join(Path(f[0]).name for f in fit['files'])}")
        if "mu" in fit:
            lines.append(
                f"  shifted log-normal: floor {fit['floor_ns'] / 1e6:.3f} ms, "
                f"mu {fit['mu']:.4f}, sigma {fit['sigma']:.4f}; mean {fit['mean_ns'] / 1e6:.3f} ms"
                f" (sample mean {fit['sample_mean_ns'] / 1e6:.3f}, "
                f"median {fit['sample_median_ns'] / 1e6:.3f})"
            )
        elif "rate_per_s" in fit:
            lines.append(
                f"  exponential inter-arrivals: {fit['events']} taker events in "
                f"{fit['duration_s']:.1f} s, rate {fit['rate_per_s']:.4f}/s, CV {fit['cv']:.3f}"
            )
        else:
            lines.append(
                f"  fill fraction: n {fit['n']} (skipped {fit['skipped_not_at_touch']}), "
                f"p_full {fit['p_full']:.4f}, Beta(a={fit['beta_a']:.4f}, b={fit['beta_b']:.4f})"
                f", median {fit['sample_median']:.4g}"
            )
        lines.append("  " + _ks_line(fit["ks"]))
    lat = calibration["latency_model"]["market_data"]
    pf = calibration["partial_fill_model"]
    lines += [
        "",
        f"defaults: latency mu={lat['mu']:.4f} sigma={lat['sigma']:.4f} "
        f"floor={lat['floor_ns']} ns; partial fills rate={pf['arrival_rate_per_s']:.4f}/s "
        f"Beta({pf['beta_a']:.4f}, {pf['beta_b']:.4f}) p_full={pf['p_full']:.4f}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot4.sim.calibration", description=__doc__)
    parser.add_argument("--data", type=Path, default=None, help="the shared data directory")
    parser.add_argument("--dry-run", action="store_true", help="print, do not rewrite")
    parser.add_argument("--output", type=Path, default=_MODULE_PATH, help="module to write")
    args = parser.parse_args(argv)
    calibration = calibrate(args.data)
    print(report(calibration))
    if not args.dry_run:
        args.output.write_text(render_module(calibration), encoding="utf-8")
        print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
