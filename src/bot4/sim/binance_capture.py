"""Streaming reader of raw Binance websocket captures (the hftbacktest layout).

Each line of a capture is ``<local receive time, ns> <raw websocket JSON>``; the JSON is
either wrapped as a combined-stream message ``{"stream": ..., "data": ...}`` or bare
(the REST depth snapshot is bare).  The reader turns every line into one typed,
immutable message and never holds more than one line in memory, so a day of data
streams through in constant space.

Prices and quantities arrive as decimal strings and are converted to bot4's raw
integers (units of 1e-9, see ``bot4.core.numbers``) without ever passing through a
binary float: a float would round 0.1 + 0.2 and the rebuilt book would drift from the
exchange's.  The common case ``"61737.63000000"`` takes an exact integer fast path
(about 5x cheaper than ``Decimal``); anything unusual falls back to ``to_raw``.

Unknown or malformed lines raise ``CaptureFormatError`` naming the file and line, so
a damaged capture is noticed instead of silently producing a wrong book.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Generator, Iterable
from contextlib import closing
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from bot4.core.errors import Bot4Error
from bot4.core.numbers import PRECISION, SCALE, to_raw

__all__ = [
    "BookTicker",
    "CaptureFormatError",
    "CaptureMessage",
    "DepthDiff",
    "DepthSnapshot",
    "Level",
    "MarkPrice",
    "Market",
    "Trade",
    "detect_market",
    "parse_line",
    "parse_raw",
    "read_capture",
]

Level = tuple[int, int]
"""One price level: (price raw, quantity raw); quantity 0 means "remove the level"."""


class Market(StrEnum):
    """Which Binance market a capture comes from; the depth-sync rules differ."""

    SPOT = "SPOT"
    USDM = "USDM"  # USDT-margined futures: diffs carry ``pu`` (previous final update id)


class CaptureFormatError(Bot4Error):
    """A capture line that is not a message this reader understands."""

    code = "CAPTURE_FORMAT"

    def __init__(self, source: str, line_no: int, reason: str) -> None:
        self.source = source
        self.line_no = line_no
        self.reason = reason
        super().__init__(f"{source}:{line_no}: {reason}")


@dataclass(frozen=True, slots=True)
class DepthDiff:
    """A ``depthUpdate``: absolute quantities for the levels that changed between
    update ids ``first_update_id`` (U) and ``final_update_id`` (u)."""

    local_ns: int
    event_ms: int
    symbol: str
    first_update_id: int
    final_update_id: int
    prev_final_update_id: int | None  # ``pu``: futures only
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    transaction_ms: int | None = None  # ``T``: futures only


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """A REST ``GET depth`` answer: the book as of ``last_update_id``."""

    local_ns: int
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    event_ms: int | None = None  # futures snapshots carry E and T
    transaction_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Trade:
    """One maker/taker match.  ``buyer_is_maker`` True means the taker sold (hit the bid)."""

    local_ns: int
    event_ms: int
    trade_ms: int
    symbol: str
    trade_id: int
    price: int
    qty: int
    buyer_is_maker: bool
    kind: str = "MARKET"  # futures ``X``: MARKET, LIQUIDATION, INSURANCE_FUND, ADL ...


@dataclass(frozen=True, slots=True)
class BookTicker:
    """Best bid/ask after order-book update ``update_id`` (pushed on every change)."""

    local_ns: int
    update_id: int
    symbol: str
    bid_price: int
    bid_qty: int
    ask_price: int
    ask_qty: int
    event_ms: int | None = None  # futures only
    transaction_ms: int | None = None


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """A futures ``markPriceUpdate`` (``markPrice@1s``)."""

    local_ns: int
    event_ms: int
    symbol: str
    mark_price: int
    index_price: int
    funding_rate: str  # kept as the exchange's decimal string: it is a rate, not a price
    next_funding_ms: int


CaptureMessage = DepthDiff | DepthSnapshot | Trade | BookTicker | MarkPrice

_FRAC_PAD = "0" * PRECISION


def parse_raw(text: str, field: str) -> int:
    """Exact raw integer of a decimal string such as ``"61737.63000000"``.

    Fast path for plain non-negative ASCII decimals with at most nine fraction digits;
    everything else (exponents, signs, extra digits) goes through ``to_raw``, which
    either converts exactly or raises ``ValidationError``.
    """
    whole, _, frac = text.partition(".")
    if (
        whole.isascii()
        and whole.isdigit()
        and len(frac) <= PRECISION
        and (not frac or (frac.isascii() and frac.isdigit()))
    ):
        return int(whole) * SCALE + (int((frac + _FRAC_PAD)[:PRECISION]) if frac else 0)
    return to_raw(text, field)


def _levels(raw_levels: Any, field: str) -> tuple[Level, ...]:
    return tuple((parse_raw(p, field), parse_raw(q, field)) for p, q in raw_levels)


def _opt_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return None if value is None else int(value)


def _parse_data(local_ns: int, stream: str, data: dict[str, Any]) -> CaptureMessage | None:
    event = data.get("e")
    if event == "depthUpdate":
        return DepthDiff(
            local_ns=local_ns,
            event_ms=int(data["E"]),
            symbol=data["s"],
            first_update_id=int(data["U"]),
            final_update_id=int(data["u"]),
            prev_final_update_id=_opt_int(data, "pu"),
            bids=_levels(data["b"], "bid"),
            asks=_levels(data["a"], "ask"),
            transaction_ms=_opt_int(data, "T"),
        )
    if event == "trade":
        return Trade(
            local_ns=local_ns,
            event_ms=int(data["E"]),
            trade_ms=int(data["T"]),
            symbol=data["s"],
            trade_id=int(data["t"]),
            price=parse_raw(data["p"], "price"),
            qty=parse_raw(data["q"], "qty"),
            buyer_is_maker=bool(data["m"]),
            kind=str(data.get("X", "MARKET")),
        )
    # Spot bookTicker has no "e" field; recognise it by the stream name or its keys.
    if event == "bookTicker" or (
        event is None
        and (stream.endswith("@bookTicker") or {"u", "b", "B", "a", "A"} <= data.keys())
    ):
        return BookTicker(
            local_ns=local_ns,
            update_id=int(data["u"]),
            symbol=data["s"],
            bid_price=parse_raw(data["b"], "bid_price"),
            bid_qty=parse_raw(data["B"], "bid_qty"),
            ask_price=parse_raw(data["a"], "ask_price"),
            ask_qty=parse_raw(data["A"], "ask_qty"),
            event_ms=_opt_int(data, "E"),
            transaction_ms=_opt_int(data, "T"),
        )
    if event == "markPriceUpdate":
        return MarkPrice(
            local_ns=local_ns,
            event_ms=int(data["E"]),
            symbol=data["s"],
            mark_price=parse_raw(data["p"], "mark_price"),
            index_price=parse_raw(data["i"], "index_price"),
            funding_rate=str(data["r"]),
            next_funding_ms=int(data["T"]),
        )
    if "lastUpdateId" in data:
        return DepthSnapshot(
            local_ns=local_ns,
            last_update_id=int(data["lastUpdateId"]),
            bids=_levels(data["bids"], "bid"),
            asks=_levels(data["asks"], "ask"),
            event_ms=_opt_int(data, "E"),
            transaction_ms=_opt_int(data, "T"),
        )
    return None


def parse_line(line: str, source: str = "<line>", line_no: int = 0) -> CaptureMessage:
    """Parse one capture line; raise ``CaptureFormatError`` if it is not understood."""
    stamp, sep, payload = line.partition(" ")
    if not sep or not stamp.isdigit():
        raise CaptureFormatError(source, line_no, "expected '<local ns> <json>'")
    try:
        obj = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise CaptureFormatError(source, line_no, f"bad JSON: {exc.msg}") from None
    if not isinstance(obj, dict):
        raise CaptureFormatError(source, line_no, "JSON is not an object")
    stream = ""
    data: Any = obj
    if "stream" in obj and "data" in obj:
        stream = str(obj["stream"])
        data = obj["data"]
    if not isinstance(data, dict):
        raise CaptureFormatError(source, line_no, "message data is not an object")
    try:
        message = _parse_data(int(stamp), stream, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise CaptureFormatError(source, line_no, f"malformed message: {exc!r}") from None
    if message is None:
        raise CaptureFormatError(source, line_no, f"unknown message (stream {stream!r})")
    return message


def _open_text(path: Path) -> Generator[str, None, None]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            yield from fh
    else:
        with path.open("r", encoding="utf-8") as fh:
            yield from fh


def read_capture(
    paths: str | Path | Iterable[str | Path],
    kinds: tuple[type[CaptureMessage], ...] | None = None,
) -> Generator[CaptureMessage, None, None]:
    """Yield the messages of one or more consecutive capture files, in file order.

    ``kinds`` filters by message class (e.g. ``(Trade,)``); filtered-out lines are
    still checked cheaply for their kind but not fully parsed when the stream name tells
    the kind, which makes trade-only passes several times faster.
    """
    path_list = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    wanted_streams = _stream_markers(kinds)
    for path in path_list:
        for line_no, line in enumerate(_open_text(path), start=1):
            line = line.rstrip("\n")
            if not line:
                continue
            if wanted_streams is not None:
                head = line[:120]
                if '"stream"' in head and not any(m in head for m in wanted_streams):
                    continue
            message = parse_line(line, str(path), line_no)
            if kinds is None or isinstance(message, kinds):
                yield message


_MARKERS: dict[type[Any], str] = {
    DepthDiff: "@depth",
    Trade: "@trade",
    BookTicker: "@bookTicker",
    MarkPrice: "@markPrice",
}


def _stream_markers(kinds: tuple[type[CaptureMessage], ...] | None) -> tuple[str, ...] | None:
    if kinds is None:
        return None
    return tuple(_MARKERS[k] for k in kinds if k in _MARKERS)


def detect_market(path: str | Path) -> Market:
    """SPOT or USDM from the first depth diff of a capture (futures diffs carry ``pu``)."""
    with closing(read_capture(path, (DepthDiff,))) as messages:
        for message in messages:
            if isinstance(message, DepthDiff):
                return Market.SPOT if message.prev_final_update_id is None else Market.USDM
    raise CaptureFormatError(str(path), 0, "no depth diff in capture")
