"""Loading bars: formats, time units, validation; synthetic bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot4.core.errors import ValidationError
from bot4.data.bars import from_frame, load_bars, synthetic_bars
from tests.conftest import SHARED_DATA

BTC = SHARED_DATA / "ohlcv_1m" / "binance_spot_BTC_USDT-1m_2025-05-20_2025-08-18.feather"


def frame(n: int = 5) -> pd.DataFrame:
    close = np.linspace(100.0, 104.0, n)
    return pd.DataFrame(
        {
            "date": pd.date_range("2025-01-01", periods=n, freq="1min", tz="UTC"),
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": np.ones(n),
        }
    )


def test_real_file_loads_exactly() -> None:
    bars = load_bars(BTC, "BTCUSDT")
    assert len(bars) == 130_708 and bars.interval_ns == 60 * 10**9
    assert bars.ts_ns[0] == pd.Timestamp("2025-05-20", tz="UTC").value
    assert bars.raw("close")[0] == 105_554_320_000_000  # 105554.32, exact


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_any_datetime_resolution_and_epoch_numbers(unit: str) -> None:
    f = frame()
    f["date"] = f["date"].dt.as_unit(unit)
    expected = pd.Timestamp("2025-01-01", tz="UTC").value
    assert from_frame(f, "X").ts_ns[0] == expected
    g = frame()
    g["date"] = g["date"].dt.as_unit(unit).astype("int64")  # epoch numbers in that unit
    assert from_frame(g, "X").ts_ns[0] == expected


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".feather"])
def test_formats_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"bars{suffix}"
    f = frame()
    {".csv": f.to_csv, ".parquet": f.to_parquet, ".feather": f.to_feather}[suffix](path)
    bars = load_bars(path, "X")
    assert list(bars.close) == list(f["close"])


@pytest.mark.parametrize(
    "change, rule",
    [
        (lambda f: f.drop(columns=["volume"]), "missing columns"),
        (lambda f: f.assign(close=[1, 2, np.nan, 4, 5]), "non-finite"),
        (lambda f: f.assign(low=f["low"] * -1), "price must be > 0"),
        (lambda f: f.assign(high=f["low"] - 1), "low <= open, close <= high"),
        (lambda f: f.iloc[::-1], "timestamps must strictly increase"),
    ],
)
def test_bad_data_is_refused(change: object, rule: str) -> None:
    with pytest.raises(ValidationError) as err:
        from_frame(change(frame()), "X")  # type: ignore[operator]
    assert rule in err.value.rule


def test_synthetic_bars_are_seeded_and_on_the_tick_grid() -> None:
    a, b = synthetic_bars(10_000, seed=5), synthetic_bars(10_000, seed=5)
    assert (a.close == b.close).all() and (a.high == b.high).all()
    assert not (synthetic_bars(10_000, seed=6).close == a.close).all()
    cents = a.close * 100
    assert np.allclose(cents, np.round(cents), atol=1e-6)
    assert (a.open[1:] == a.close[:-1]).all()
    assert (a.low <= np.minimum(a.open, a.close)).all()
