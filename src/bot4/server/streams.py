"""Market streams on ``/ws`` (raw) and ``/stream`` (combined): depth, trades, tickers.

What ccxt relies on (binance-spot-subset.md): any path suffix is accepted (it opens
``/ws/<n>``, one connection per subscription); ``SUBSCRIBE`` is acknowledged with
``{"result": null, "id": id}`` before it fetches the REST snapshot; diff events carry
``U``/``u`` on the same update-id sequence as REST depth, and consecutive events on a
connection continue it (``U`` = previous ``u`` + 1).

Streams: ``<s>@depth``/``@depth@1000ms`` and ``@depth@100ms`` (diffs, flushed by one
timer per speed from ``exchange.DepthWindow``), ``<s>@trade``, ``<s>@aggTrade``,
``<s>@bookTicker``.  Each event is serialised once and queued to every subscriber; a
connection whose queue overflows is a slow consumer and is closed (Binance does the
same), so one stuck client can neither stall the others nor grow memory.  Binance's
connection limits apply: at most ``ws_messages_per_second`` incoming messages a second
(more closes the connection) and ``ws_max_streams`` streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Iterable
from typing import Any, Final

from aiohttp import WSMsgType, web

from bot4.core.errors import ValidationError
from bot4.server.exchange import Bbo, Exchange
from bot4.server.formats import fmt_raw, ms
from bot4.server.outbox import Outbox
from bot4.sim.matching_types import Trade

log = logging.getLogger(__name__)

STREAM_RE: Final = re.compile(
    r"([a-z0-9]{1,20})@(trade|aggTrade|bookTicker|depth(?:@100ms|@1000ms)?)", re.ASCII
)
_SPEEDS: Final = {"depth": 1, "depth@1000ms": 1, "depth@100ms": 0}  # -> DepthWindow index


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


class Subscriber:
    """One websocket connection: its streams and its outbox."""

    __slots__ = ("combined", "out", "streams")

    def __init__(self, out: Outbox, combined: bool) -> None:
        self.out = out
        self.combined = combined
        self.streams: set[str] = set()

    def push(self, text: str) -> bool:
        return self.out.push(text)


class StreamHub:
    """Subscriptions and fan-out of the public market streams."""

    def __init__(
        self, ex: Exchange, msg_rate: int = 5, max_streams: int = 1024, heartbeat: float = 20.0
    ) -> None:
        self.ex = ex
        self.msg_rate = msg_rate
        self.max_streams = max_streams
        self.heartbeat = heartbeat
        self.subs: dict[str, set[Subscriber]] = {}
        self.conns: set[Subscriber] = set()
        self.known = {s.lower(): s for s in ex.instruments}
        # test control (``--test-controls``): diff events to swallow, per (symbol, speed)
        self.drop_depth: dict[tuple[str, int], int] = {}
        self.dropped_depth = 0
        ex.trade_sink = self.on_trade
        ex.bbo_sink = self.on_bbo

    # -- publishing ----------------------------------------------------------------------
    def publish(self, stream: str, payload: dict[str, Any]) -> None:
        subs = self.subs.get(stream)
        if not subs:
            return
        raw = _dumps(payload)
        wrapped: str | None = None
        for sub in list(subs):
            if sub.combined:
                if wrapped is None:
                    wrapped = _dumps({"stream": stream, "data": payload})
                ok = sub.push(wrapped)
            else:
                ok = sub.push(raw)
            if not ok:
                log.warning("closing a slow market-stream consumer")
                self._drop(sub)

    def on_trade(self, t: Trade) -> None:
        low = t.symbol.lower()
        now = self.ex.now_ms()
        T = ms(t.ts)
        p, q = fmt_raw(t.price_raw), fmt_raw(t.qty_raw)
        self.publish(
            f"{low}@trade",
            {
                "e": "trade",
                "E": now,
                "s": t.symbol,
                "t": t.trade_id,
                "p": p,
                "q": q,
                "T": T,
                "m": t.buyer_is_maker,
                "M": True,
            },
        )
        self.publish(
            f"{low}@aggTrade",
            {
                "e": "aggTrade",
                "E": now,
                "s": t.symbol,
                "a": t.trade_id,
                "p": p,
                "q": q,
                "f": t.trade_id,
                "l": t.trade_id,
                "T": T,
                "m": t.buyer_is_maker,
                "M": True,
            },
        )

    def on_bbo(self, symbol: str, update_id: int, bbo: Bbo) -> None:
        bid, bid_qty, ask, ask_qty = bbo
        self.publish(
            f"{symbol.lower()}@bookTicker",
            {
                "u": update_id,
                "s": symbol,
                "b": fmt_raw(bid),
                "B": fmt_raw(bid_qty),
                "a": fmt_raw(ask),
                "A": fmt_raw(ask_qty),
            },
        )

    def flush_depth(self, speed: int) -> None:
        """Emit one diff event per symbol with changes since the last flush of this speed."""
        now = self.ex.now_ms()
        names = ("depth@100ms",) if speed == 0 else ("depth", "depth@1000ms")
        for symbol, state in self.ex.depth.items():
            event = state.windows[speed].drain(state.book, state.update_id)
            if event is None:
                continue
            first, last, bids, asks = event
            if self.drop_depth.get((symbol, speed)):  # a lost message: the next one gaps
                self.drop_depth[symbol, speed] -= 1
                self.dropped_depth += 1
                continue
            low = symbol.lower()
            payload = {
                "e": "depthUpdate",
                "E": now,
                "s": symbol,
                "U": first,
                "u": last,
                "b": [[fmt_raw(p), fmt_raw(q)] for p, q in bids],
                "a": [[fmt_raw(p), fmt_raw(q)] for p, q in asks],
            }
            for name in names:
                self.publish(f"{low}@{name}", payload)

    def gap(self, symbol: str, count: int = 1) -> dict[str, Any]:
        """Test control: swallow the next ``count`` diff events of ``symbol`` on every
        speed, as a lossy feed would.  Update ids run on, so the next event a client
        gets starts past its book's update id + 1: a sequence gap."""
        if symbol not in self.ex.depth:
            raise ValidationError("symbol", "not a served symbol", symbol)
        if not 1 <= count <= 100:
            raise ValidationError("count", "must be 1..100", count)
        for speed in range(len(self.ex.depth[symbol].windows)):
            self.drop_depth[symbol, speed] = self.drop_depth.get((symbol, speed), 0) + count
        return {"symbol": symbol, "update_id": self.ex.depth[symbol].update_id, "drop": count}

    async def run_depth_timer(self, speed: int, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                self.flush_depth(speed)
            except Exception:  # never let one bad flush stop the stream
                log.exception("depth flush failed")

    # -- subscriptions -------------------------------------------------------------------
    def _valid(self, name: object) -> str | None:
        if not isinstance(name, str):
            return None
        m = STREAM_RE.fullmatch(name)
        if m is None or m.group(1) not in self.known:
            return None
        return name

    def subscribe(self, sub: Subscriber, names: Iterable[str]) -> None:
        for name in names:
            sub.streams.add(name)
            self.subs.setdefault(name, set()).add(sub)

    def unsubscribe(self, sub: Subscriber, names: Iterable[str]) -> None:
        for name in names:
            sub.streams.discard(name)
            subs = self.subs.get(name)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self.subs[name]

    def _drop(self, sub: Subscriber) -> None:
        self.unsubscribe(sub, list(sub.streams))
        self.conns.discard(sub)

    # -- the connection ------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        combined = request.path.startswith("/stream")
        ws = web.WebSocketResponse(heartbeat=self.heartbeat, max_msg_size=65_536)
        await ws.prepare(request)
        sub = Subscriber(Outbox(ws, self.msg_rate), combined)
        self.conns.add(sub)
        if combined:
            initial = request.query.get("streams", "").split("/")
        else:
            tail = request.match_info.get("tail", "")
            initial = tail.split("/") if "@" in tail else []
        valid = [n for n in (self._valid(x) for x in initial if x) if n is not None]
        self.subscribe(sub, valid[: self.max_streams])
        code, why = 1000, b""
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    if not sub.out.allow():
                        code, why = 1008, b"Too many messages"
                        break
                    reply = self.on_message(sub, msg.data)
                    if reply is not None and not sub.push(_dumps(reply)):
                        break
                elif msg.type is WSMsgType.BINARY:
                    sub.push(
                        _dumps(_error(3, "Invalid JSON: binary frames are not accepted", None))
                    )
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            self._drop(sub)
            await sub.out.finish(code, why)
        return ws

    def on_message(self, sub: Subscriber, text: str) -> dict[str, Any] | None:
        """Binance's stream control messages; returns the reply."""
        try:
            req = json.loads(text)
        except ValueError:
            return _error(3, "Invalid JSON: expected value", None)
        if not isinstance(req, dict):
            return _error(2, "Invalid request: request must be an object", None)
        rid = req.get("id")
        if rid is not None and (
            isinstance(rid, bool)
            or not isinstance(rid, int | str)
            or (isinstance(rid, int) and not 0 <= rid < 2**63)
        ):
            return _error(1, "Invalid value type: expected u64 or string for 'id'", None)
        method = req.get("method")
        unknown = set(req) - {"method", "params", "id"}
        if unknown:
            return _error(0, f"Unknown property: {sorted(unknown)[0]}", rid)
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            params = req.get("params")
            if not isinstance(params, list) or not params:
                return _error(2, "Invalid request: params must be a non-empty array", rid)
            names = [self._valid(x) for x in params]
            if any(n is None for n in names):
                return _error(2, "Invalid request: invalid stream name", rid)
            valid = [n for n in names if n is not None]
            if method == "SUBSCRIBE":
                if len(sub.streams | set(valid)) > self.max_streams:
                    return _error(2, f"Invalid request: at most {self.max_streams} streams", rid)
                self.subscribe(sub, valid)
            else:
                self.unsubscribe(sub, valid)
            return {"result": None, "id": rid}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(sub.streams), "id": rid}
        if method == "SET_PROPERTY":
            return {"result": None, "id": rid}
        if method == "GET_PROPERTY":
            return {"result": sub.combined, "id": rid}
        return _error(2, "Invalid request: unknown method", rid)

    async def close_all(self) -> None:
        for sub in list(self.conns):
            with contextlib.suppress(Exception):
                await sub.out.ws.close(code=1001, message=b"server shutdown")


def _error(code: int, msg: str, rid: object) -> dict[str, Any]:
    return {"error": {"code": code, "msg": msg}, "id": rid}
