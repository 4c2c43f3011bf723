"""Public market statistics built from the engine's trades: klines, 24h ticker, trades.

One-minute candles are the only stored series (a bounded window); every other kline
interval and the rolling 24-hour ticker are folded from them on request.  That keeps the
per-trade cost to a few integer updates, which matters because the market maker trades
continuously.  Empty minutes are filled on output with the previous close and zero
volume, as Binance does, so a chart has no holes.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Final

from bot4.sim.matching_types import Trade

MINUTE_MS: Final = 60_000
DAY_MS: Final = 86_400_000
_WEEK_OFFSET_MS: Final = 4 * DAY_MS  # 1970-01-01 was a Thursday; Binance weeks start Monday

INTERVALS: Final[dict[str, int]] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
    "1M": 0,  # calendar months
}

# candle fields: open ms, open, high, low, close, volume raw, quote money, count,
# taker-buy volume raw, taker-buy quote money, first trade id, last trade id
Candle = list[int]
(
    K_OPEN_MS,
    K_OPEN,
    K_HIGH,
    K_LOW,
    K_CLOSE,
    K_VOL,
    K_QVOL,
    K_COUNT,
    K_TB_VOL,
    K_TB_QUOTE,
    K_FIRST,
    K_LAST,
) = range(12)


def bucket_start(ts_ms: int, interval: str) -> int:
    """Open time of the ``interval`` candle holding ``ts_ms``."""
    if interval == "1M":
        d = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
        return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp() * 1000)
    length = INTERVALS[interval]
    offset = _WEEK_OFFSET_MS if interval == "1w" else 0
    return (ts_ms - offset) // length * length + offset


def bucket_end(open_ms: int, interval: str) -> int:
    """Close time (inclusive, Binance style: next open - 1)."""
    if interval == "1M":
        d = datetime.fromtimestamp(open_ms / 1000, tz=UTC)
        year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000) - 1
    return open_ms + INTERVALS[interval] - 1


class SymbolMarket:
    """Recent trades and minute candles of one symbol."""

    __slots__ = ("candles", "last_qty", "symbol", "trades")

    def __init__(self, symbol: str, max_trades: int = 1000, max_minutes: int = 10_080) -> None:
        self.symbol = symbol
        self.trades: deque[Trade] = deque(maxlen=max_trades)
        self.candles: deque[Candle] = deque(maxlen=max_minutes)
        self.last_qty = 0

    def add_trade(self, t: Trade) -> None:
        self.trades.append(t)
        self.last_qty = t.qty_raw
        minute = t.ts // 1_000_000 // MINUTE_MS * MINUTE_MS
        candles = self.candles
        c = candles[-1] if candles else None
        taker_buy = not t.buyer_is_maker
        if c is None or c[K_OPEN_MS] < minute:
            candles.append(
                [
                    minute,
                    t.price_raw,
                    t.price_raw,
                    t.price_raw,
                    t.price_raw,
                    t.qty_raw,
                    t.quote_money,
                    1,
                    t.qty_raw if taker_buy else 0,
                    t.quote_money if taker_buy else 0,
                    t.trade_id,
                    t.trade_id,
                ]
            )
            return
        price = t.price_raw
        if price > c[K_HIGH]:
            c[K_HIGH] = price
        if price < c[K_LOW]:
            c[K_LOW] = price
        c[K_CLOSE] = price
        c[K_VOL] += t.qty_raw
        c[K_QVOL] += t.quote_money
        c[K_COUNT] += 1
        if taker_buy:
            c[K_TB_VOL] += t.qty_raw
            c[K_TB_QUOTE] += t.quote_money
        c[K_LAST] = t.trade_id

    # -- queries -------------------------------------------------------------------------
    def klines(
        self, interval: str, start_ms: int | None, end_ms: int | None, limit: int, now_ms: int
    ) -> list[Candle]:
        """Candles of ``interval`` (open ms ascending), gaps filled with the previous
        close; only from the first trade on (there is no earlier history)."""
        if not self.candles:
            return []
        first_open = bucket_start(self.candles[0][K_OPEN_MS], interval)
        last_open = bucket_start(now_ms if end_ms is None else min(end_ms, now_ms), interval)
        lo = first_open if start_ms is None else max(first_open, bucket_start(start_ms, interval))
        if lo > last_open:
            return []
        opens: list[int] = []
        t = last_open if start_ms is None else lo
        while len(opens) < limit and lo <= t <= last_open:
            opens.append(t)
            t = bucket_start(t - 1, interval) if start_ms is None else bucket_end(t, interval) + 1
        opens.sort()
        out: list[Candle] = []
        by_open: dict[int, Candle] = {}
        prev_close = 0
        first_needed = opens[0]
        for c in self.candles:
            b = bucket_start(c[K_OPEN_MS], interval)
            if b < first_needed:
                prev_close = c[K_CLOSE]
                continue
            if b > opens[-1]:
                break
            agg = by_open.get(b)
            if agg is None:
                by_open[b] = [b, *c[1:]]
                continue
            agg[K_HIGH] = max(agg[K_HIGH], c[K_HIGH])
            agg[K_LOW] = min(agg[K_LOW], c[K_LOW])
            agg[K_CLOSE] = c[K_CLOSE]
            for i in (K_VOL, K_QVOL, K_COUNT, K_TB_VOL, K_TB_QUOTE):
                agg[i] += c[i]
            agg[K_LAST] = c[K_LAST]
        for b in opens:
            agg = by_open.get(b)
            if agg is None:
                if not prev_close:
                    continue
                agg = [b, prev_close, prev_close, prev_close, prev_close, 0, 0, 0, 0, 0, -1, -1]
            prev_close = agg[K_CLOSE]
            out.append(agg)
        return out

    def window(self, now_ms: int, span_ms: int = DAY_MS) -> Candle | None:
        """One candle folded over the last ``span_ms`` (the 24h ticker), or None."""
        start = now_ms - span_ms
        agg: Candle | None = None
        prev_close = 0
        for c in self.candles:
            if c[K_OPEN_MS] + MINUTE_MS <= start:
                prev_close = c[K_CLOSE]
                continue
            if agg is None:
                agg = list(c)
                agg[K_OPEN_MS] = prev_close  # the previous close rides along in the open slot
                continue
            agg[K_HIGH] = max(agg[K_HIGH], c[K_HIGH])
            agg[K_LOW] = min(agg[K_LOW], c[K_LOW])
            agg[K_CLOSE] = c[K_CLOSE]
            for i in (K_VOL, K_QVOL, K_COUNT, K_TB_VOL, K_TB_QUOTE):
                agg[i] += c[i]
            agg[K_LAST] = c[K_LAST]
        return agg

    # -- persistence ---------------------------------------------------------------------
    def to_state(self, max_minutes: int = 1440) -> dict[str, object]:
        return {
            "candles": [list(c) for c in list(self.candles)[-max_minutes:]],
            "trades": [list(t) for t in self.trades],
            "last_qty": self.last_qty,
        }

    def load_state(self, data: dict[str, object]) -> None:
        candles = data.get("candles", [])
        trades = data.get("trades", [])
        assert isinstance(candles, list) and isinstance(trades, list)
        self.candles.clear()
        self.candles.extend([int(x) for x in c] for c in candles)
        self.trades.clear()
        for t in trades:
            self.trades.append(_trade_from_list(t))
        last_qty = data.get("last_qty", 0)
        self.last_qty = last_qty if isinstance(last_qty, int) else 0


def _trade_from_list(items: list[object]) -> Trade:
    from bot4.core.enums import OrderSide

    tid, symbol, price, qty, quote, ts, side, maker_oid, taker_oid, maker_acct, taker_acct = items
    assert isinstance(tid, int) and isinstance(symbol, str) and isinstance(price, int)
    assert isinstance(qty, int) and isinstance(quote, int) and isinstance(ts, int)
    assert isinstance(maker_oid, int) and isinstance(taker_oid, int)
    return Trade(
        tid,
        symbol,
        price,
        qty,
        quote,
        ts,
        OrderSide(str(side)),
        maker_oid,
        taker_oid,
        str(maker_acct),
        str(taker_acct),
    )
