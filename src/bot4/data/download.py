"""Download OHLCV candles through ccxt, resumable.

``download_ohlcv`` pages through ``fetch_ohlcv`` from ``since`` (or from the last candle
already in the output file, so an interrupted download resumes where it stopped) until
the exchange has no newer closed candle, and writes freqtrade's feather layout
(``date``, ``open``, ``high``, ``low``, ``close``, ``volume``) -- the format
``bot4 backtest --data`` reads.  Each page is appended to the file as it arrives, so a
crash loses at most the page in flight.  ccxt's own rate limiter paces the requests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot4.core.errors import ValidationError


def parse_since(value: str) -> int:
    """``2025-01-01`` / ISO 8601 / epoch milliseconds -> epoch milliseconds (UTC)."""
    import pandas as pd

    if value.isdigit():
        return int(value)
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise ValidationError("since", "a date (2025-01-01) or epoch milliseconds", value) from None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1_000_000)


def make_exchange(name: str, options: dict[str, Any] | None = None) -> Any:
    import ccxt

    if name not in ccxt.exchanges:
        raise ValidationError("exchange", "not a ccxt exchange id", name)
    return getattr(ccxt, name)({"enableRateLimit": True, **(options or {})})


def _existing_last_ms(out: Path) -> int | None:
    if not out.exists():
        return None
    import pandas as pd

    frame = pd.read_feather(out)
    if frame.empty:
        return None
    return int(pd.Timestamp(frame["date"].iloc[-1]).value // 1_000_000)


def _append(out: Path, rows: list[list[float]]) -> None:
    import pandas as pd

    page = pd.DataFrame(rows, columns=["ms", "open", "high", "low", "close", "volume"])
    page.insert(0, "date", pd.to_datetime(page.pop("ms"), unit="ms", utc=True))
    if out.exists():
        page = pd.concat([pd.read_feather(out), page], ignore_index=True)
        page = page.drop_duplicates("date", keep="last").sort_values("date")
    tmp = out.with_suffix(out.suffix + ".part")
    page.reset_index(drop=True).to_feather(tmp)
    tmp.replace(out)  # atomic: the file is always a complete, valid feather


def download_ohlcv(
    exchange: Any,
    symbol: str,
    timeframe: str,
    since_ms: int,
    out: Path,
    limit: int = 1000,
    until_ms: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Fetch candles into ``out``; returns how many new candles were written."""
    if timeframe not in getattr(exchange, "timeframes", {}) and getattr(
        exchange, "timeframes", None
    ):
        raise ValidationError("timeframe", "not offered by the exchange", timeframe)
    step_ms = exchange.parse_timeframe(timeframe) * 1000
    last = _existing_last_ms(out)
    cursor = max(since_ms, last + step_ms) if last is not None else since_ms
    now_ms = until_ms if until_ms is not None else exchange.milliseconds()
    total_span = max(now_ms - cursor, 1)
    start = cursor
    written = 0
    while cursor < now_ms:
        rows = exchange.fetch_ohlcv(symbol, timeframe, since=cursor, limit=limit)
        # Only closed candles, never before the cursor, never past the end.
        rows = [r for r in rows if cursor <= r[0] and r[0] + step_ms <= now_ms]
        if not rows:
            break
        _append(out, rows)
        written += len(rows)
        cursor = int(rows[-1][0]) + step_ms
        if progress is not None:
            progress(min(cursor - start, total_span), total_span)
    return written
