"""Tick data for backtests: trades, best bid/ask quotes and order-book depth, as one
time-ordered stream of small records with exact raw integers.

Sources:

* tardis.dev CSV exports (``trades``: ``timestamp,...,side,price,amount``; ``quotes``:
  ``ask_amount,ask_price,bid_price,bid_amount``; timestamps in microseconds) -- prices
  and sizes are read as text and converted exactly, never through a binary float;
* raw Binance websocket captures (``bot4.sim.binance_capture``): the depth snapshot and
  diffs go through Binance's documented sync procedure (``BinanceDepthSync``), so only
  diffs that continue the book in sequence are emitted; trades carry their aggressor.

Each record is stamped with the time bot4 would have seen it (tardis ``timestamp``,
the capture's local receive time).  ``merge_events`` interleaves several streams in
time order (ties keep stream order), which is what the tick backtest consumes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bot4.core.enums import OrderSide
from bot4.core.errors import ValidationError
from bot4.sim.binance_capture import (
    DepthDiff,
    DepthSnapshot,
    Trade,
    detect_market,
    parse_raw,
    read_capture,
)
from bot4.sim.l2_book import BinanceDepthSync, DiffOutcome

Level = tuple[int, int]


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """A public trade; ``aggressor`` is the taker's side (None if the data lacks it)."""

    ts_ns: int
    symbol: str
    price_raw: int
    qty_raw: int
    aggressor: OrderSide | None


@dataclass(frozen=True, slots=True)
class QuoteEvent:
    """The best bid and ask (L1) after a change."""

    ts_ns: int
    symbol: str
    bid_raw: int
    bid_qty_raw: int
    ask_raw: int
    ask_qty_raw: int


@dataclass(frozen=True, slots=True)
class DepthEvent:
    """Absolute quantities of the levels that changed (0 removes a level); with
    ``snapshot`` the levels replace the whole book."""

    ts_ns: int
    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    snapshot: bool = False


MarketEvent = TradeEvent | QuoteEvent | DepthEvent


def _read_csv(path: str | Path, columns: tuple[str, ...]) -> dict[str, list[str]]:
    """The named columns as text (exact numbers need the digits, not a float)."""
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValidationError(
            "data", f"a tardis CSV needs the columns {', '.join(missing)}", str(path)
        )
    return {c: frame[c].tolist() for c in columns}


def _symbol(cols: dict[str, list[str]], symbol: str | None, n: int) -> str:
    if symbol:
        return symbol.replace("/", "").upper()
    names = set(cols["symbol"]) if n else set()
    if len(names) != 1:
        raise ValidationError("symbol", "the file holds several symbols: name one", sorted(names))
    return names.pop().replace("/", "").upper()


def _timestamps(column: list[str]) -> list[int]:
    """tardis microsecond timestamps as ns, refusing text and time going backwards."""
    out = []
    last = 0
    for row, text in enumerate(column):
        if not text.isdigit():
            raise ValidationError("timestamp", f"row {row}: microseconds since the epoch", text)
        ts = int(text) * 1000
        if ts < last:
            raise ValidationError("timestamp", f"row {row}: earlier than the row before", ts)
        out.append(ts)
        last = ts
    return out


def load_tardis_trades(path: str | Path, symbol: str | None = None) -> list[TradeEvent]:
    """A tardis ``trades`` CSV: one ``TradeEvent`` per row, in file (time) order."""
    cols = _read_csv(path, ("symbol", "timestamp", "side", "price", "amount"))
    n = len(cols["timestamp"])
    sym = _symbol(cols, symbol, n)
    sides = {"buy": OrderSide.BUY, "sell": OrderSide.SELL}
    out = []
    for i, ts in enumerate(_timestamps(cols["timestamp"])):
        price = parse_raw(cols["price"][i], "price")
        qty = parse_raw(cols["amount"][i], "amount")
        if price <= 0 or qty <= 0:
            raise ValidationError("price", f"row {i}: price and amount must be > 0", price)
        out.append(TradeEvent(ts, sym, price, qty, sides.get(cols["side"][i].lower())))
    return out


def load_tardis_quotes(path: str | Path, symbol: str | None = None) -> list[QuoteEvent]:
    """A tardis ``quotes`` (book ticker) CSV: one ``QuoteEvent`` per row."""
    names = ("symbol", "timestamp", "bid_price", "bid_amount", "ask_price", "ask_amount")
    cols = _read_csv(path, names)
    n = len(cols["timestamp"])
    sym = _symbol(cols, symbol, n)
    out = []
    for i, ts in enumerate(_timestamps(cols["timestamp"])):
        bid, bid_qty = parse_raw(cols["bid_price"][i], "bid"), parse_raw(cols["bid_amount"][i], "")
        ask, ask_qty = parse_raw(cols["ask_price"][i], "ask"), parse_raw(cols["ask_amount"][i], "")
        if not 0 < bid < ask:
            raise ValidationError("bid_price", f"row {i}: need 0 < bid < ask", (bid, ask))
        out.append(QuoteEvent(ts, sym, bid, bid_qty, ask, ask_qty))
    return out


def capture_events(
    paths: str | Path | Iterable[str | Path], symbol: str | None = None
) -> Iterator[TradeEvent | DepthEvent]:
    """Trades and in-sequence book changes from raw Binance captures (one symbol).

    The book is emitted whole (a snapshot event) when it first becomes exact -- the REST
    snapshot bridged by a diff -- and after that as each diff's changed levels.  While
    the sequence is broken (a gap, until a later snapshot is bridged) no book event is
    emitted: the book would be wrong."""
    path_list = [paths] if isinstance(paths, str | Path) else list(paths)
    if not path_list:
        raise ValidationError("data", "no capture file", paths)
    sync = BinanceDepthSync(detect_market(path_list[0]))
    shown = False  # the consumer holds the exact book
    for msg in read_capture(path_list, (DepthSnapshot, DepthDiff, Trade)):
        if isinstance(msg, Trade):
            if symbol is None or msg.symbol == symbol:
                side = OrderSide.SELL if msg.buyer_is_maker else OrderSide.BUY
                yield TradeEvent(msg.local_ns, msg.symbol, msg.price, msg.qty, side)
            continue
        if isinstance(msg, DepthSnapshot):
            sync.on_snapshot(msg)
            ts, sym = msg.local_ns, symbol or ""
        elif isinstance(msg, DepthDiff):
            if symbol is not None and msg.symbol != symbol:
                continue
            outcome = sync.on_diff(msg)
            ts, sym = msg.local_ns, msg.symbol
            if shown and outcome is DiffOutcome.APPLIED:
                yield DepthEvent(ts, sym, msg.bids, msg.asks)
                continue
        if sync.is_live and not shown and sym:
            book = sync.book
            shown = True
            yield DepthEvent(
                ts,
                sym,
                tuple(book.depth(OrderSide.BUY)),
                tuple(book.depth(OrderSide.SELL)),
                snapshot=True,
            )
        elif not sync.is_live:
            shown = False


def tick_file_kind(path: str | Path) -> str | None:
    """``"tardis_trades"``, ``"tardis_quotes"``, ``"binance_capture"`` -- or None for
    anything else (bars), from the file's first line."""
    import gzip

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError):
        return None
    head, _, rest = first.partition(" ")
    if head.isdigit() and rest.lstrip().startswith("{"):
        return "binance_capture"
    columns = {c.strip() for c in first.split(",")}
    if {"timestamp", "price", "amount", "side"} <= columns:
        return "tardis_trades"
    if {"timestamp", "bid_price", "ask_price"} <= columns:
        return "tardis_quotes"
    return None


def load_tick_events(paths: Iterable[str | Path], symbol: str | None) -> list[MarketEvent]:
    """Tick files of any supported kind, merged into one time-ordered stream."""
    streams: list[Iterable[MarketEvent]] = []
    for path in paths:
        kind = tick_file_kind(path)
        if kind == "tardis_trades":
            streams.append(load_tardis_trades(path, symbol))
        elif kind == "tardis_quotes":
            streams.append(load_tardis_quotes(path, symbol))
        elif kind == "binance_capture":
            streams.append(list(capture_events(path)))
        else:
            raise ValidationError("data", "not a tick file this reader knows", str(path))
    return list(merge_events(*streams))


def merge_events(*streams: Iterable[MarketEvent]) -> Iterator[MarketEvent]:
    """Interleave time-ordered streams by ``ts_ns``; equal times keep stream order."""
    iters = [iter(s) for s in streams]
    heap: list[tuple[int, int, int, MarketEvent]] = []
    counter = 0
    for k, it in enumerate(iters):
        first = next(it, None)
        if first is not None:
            heap.append((first.ts_ns, k, counter, first))
            counter += 1
    heapq.heapify(heap)
    while heap:
        _, k, _, event = heapq.heappop(heap)
        yield event
        nxt = next(iters[k], None)
        if nxt is not None:
            counter += 1
            heapq.heappush(heap, (nxt.ts_ns, k, counter, nxt))
