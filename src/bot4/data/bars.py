"""One-minute (or any) OHLCV bars as column arrays.

A backtest touches every bar once, so bars live as numpy columns (not objects): a
million bars are ~50 MB.  Prices are also kept as exact raw integers (units of 1e-9,
``bot4.core.numbers``), converted once here by rounding the float to the nearest raw
unit -- exact for any price with up to ~6 decimals at crypto magnitudes -- so the
simulator's fills are exact while indicators read the floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from bot4.core.errors import ValidationError
from bot4.core.numbers import SCALE

if TYPE_CHECKING:  # pandas costs ~75 MB of memory: imported only to read files
    import pandas as pd

MINUTE_NS = 60 * 10**9
_COLUMNS = ("open", "high", "low", "close", "volume")
_TIME_NAMES = ("date", "timestamp", "time", "datetime", "open_time", "ts")


@dataclass(frozen=True)
class BarSeries:
    symbol: str
    ts_ns: NDArray[np.int64]  # bar open time, ns since epoch, strictly increasing
    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    volume: NDArray[np.float64]
    interval_ns: int = MINUTE_NS

    def __len__(self) -> int:
        return int(self.ts_ns.shape[0])

    def raw(self, column: str) -> NDArray[np.int64]:
        """Exact raw prices (1e-9 units) of a price column."""
        values: NDArray[np.float64] = getattr(self, column)
        return np.rint(values * SCALE).astype(np.int64)

    def slice(self, start: int, stop: int) -> BarSeries:
        return BarSeries(
            self.symbol,
            self.ts_ns[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
            self.interval_ns,
        )

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            {
                "date": pd.to_datetime(self.ts_ns, utc=True),
                "open": self.open,
                "high": self.high,
                "low": self.low,
                "close": self.close,
                "volume": self.volume,
            }
        )


def from_frame(frame: pd.DataFrame, symbol: str) -> BarSeries:
    """Bars from a DataFrame with a time column (or index) and OHLCV columns; checks
    that the data can be traded on: finite, positive, consistent, time-ordered."""
    cols = {c.lower(): c for c in frame.columns}
    missing = [c for c in _COLUMNS if c not in cols]
    if missing:
        raise ValidationError("data", f"missing columns {missing}", list(frame.columns))
    time_col = next((cols[n] for n in _TIME_NAMES if n in cols), None)
    times = frame[time_col] if time_col is not None else frame.index.to_series()
    ts = _to_ns(times)
    arrays = {c: frame[cols[c]].to_numpy(dtype=np.float64, copy=True) for c in _COLUMNS}
    series = BarSeries(symbol, ts, **arrays, interval_ns=_interval(ts))
    validate(series)
    return series


def _to_ns(times: pd.Series) -> NDArray[np.int64]:
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(times) and not pd.api.types.is_datetime64_any_dtype(times):
        try:  # text, e.g. a CSV's "2025-01-01 00:00:00+00:00"
            times = pd.to_datetime(times, utc=True)
        except (ValueError, TypeError):
            raise ValidationError("data", "unreadable timestamps", str(times.iloc[0])) from None
    if pd.api.types.is_datetime64_any_dtype(times):
        # pandas may keep seconds or milliseconds resolution: make it nanoseconds first.
        dt = pd.to_datetime(times, utc=True).dt.as_unit("ns")
        values = np.asarray(dt.astype("int64"), dtype=np.int64)
        return values
    values = np.asarray(times.to_numpy(), dtype=np.int64)
    # Epoch numbers: guess the unit from the magnitude (s, ms, us, ns).
    top = int(values.max()) if len(values) else 0
    factor = 10**9 if top < 10**11 else 10**6 if top < 10**14 else 10**3 if top < 10**17 else 1
    return values * factor


def _interval(ts: NDArray[np.int64]) -> int:
    if len(ts) < 2:
        return MINUTE_NS
    return int(np.median(np.diff(ts)))


def validate(series: BarSeries) -> None:
    """Refuse data a backtest would silently mis-trade on."""
    if len(series) == 0:
        raise ValidationError("data", "no bars", 0)
    prices = np.vstack([series.open, series.high, series.low, series.close])
    if not np.isfinite(prices).all() or not np.isfinite(series.volume).all():
        raise ValidationError("data", "non-finite price or volume", series.symbol)
    if (prices <= 0).any():
        raise ValidationError("data", "price must be > 0", series.symbol)
    lo = np.minimum(series.open, series.close)
    hi = np.maximum(series.open, series.close)
    bad = (series.low > lo) | (series.high < hi)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValidationError("data", "low <= open, close <= high", f"bar {i}")
    if len(series) > 1 and (np.diff(series.ts_ns) <= 0).any():
        i = int(np.argmax(np.diff(series.ts_ns) <= 0)) + 1
        raise ValidationError("data", "timestamps must strictly increase", f"bar {i}")


def load_bars(path: str | Path, symbol: str) -> BarSeries:
    """Bars from a feather, parquet or csv file (freqtrade's layout and the like)."""
    p = Path(path)
    if not p.exists():
        raise ValidationError("data", "file not found", str(p))
    import pandas as pd

    suffix = p.suffix.lower()
    if suffix in (".feather", ".arrow", ".ipc"):
        frame = pd.read_feather(p)
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(p)
    elif suffix in (".csv", ".gz", ".txt"):
        frame = pd.read_csv(p)
    else:
        raise ValidationError("data", "unknown format (feather, parquet, csv)", str(p))
    return from_frame(frame, symbol)


def synthetic_bars(
    n: int,
    symbol: str = "BTCUSDT",
    seed: int = 42,
    start_price: float = 40_000.0,
    tick: float = 0.01,
    sigma: float = 0.0008,
    start_ns: int = 1_704_067_200 * 10**9,  # 2024-01-01 00:00 UTC
    interval_ns: int = MINUTE_NS,
) -> BarSeries:
    """A seeded geometric random walk on the tick grid (the peers' benchmark task):
    close follows exp(sigma x normal) steps, open[t] = close[t-1], high/low reach a
    little beyond the body.  Deterministic for a seed; all prices on the tick grid."""
    if n <= 0:
        raise ValidationError("n", "must be > 0", n)
    rng = np.random.default_rng(seed)
    ticks_per_unit = round(1 / tick)
    # In place where possible: a million bars should not cost several times their size.
    close = rng.normal(0.0, sigma, n)
    np.cumsum(close, out=close)
    np.exp(close, out=close)
    close *= start_price * ticks_per_unit
    np.rint(close, out=close)
    np.maximum(close, 1.0, out=close)
    open_ = np.empty(n)
    open_[0] = round(start_price * ticks_per_unit)
    open_[1:] = close[:-1]
    high = np.abs(rng.normal(0.0, sigma / 2, n))
    high *= close
    np.rint(high, out=high)
    high += np.maximum(open_, close)
    low = np.abs(rng.normal(0.0, sigma / 2, n))
    low *= close
    np.rint(low, out=low)
    np.subtract(np.minimum(open_, close), low, out=low)
    np.maximum(low, 1.0, out=low)
    volume = np.round(rng.gamma(2.0, 5.0, n), 5)
    for column in (open_, high, low, close):
        column /= ticks_per_unit
    ts = start_ns + np.arange(n, dtype=np.int64) * interval_ns
    return BarSeries(symbol, ts, open_, high, low, close, volume, interval_ns)
