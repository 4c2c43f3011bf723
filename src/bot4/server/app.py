"""The server: wiring, background tasks, graceful shutdown with the state file.

``ExchangeServer`` builds the exchange (restoring the state file if there is one),
the market source (market maker and/or replay), the REST API and both websocket hubs,
and serves them with aiohttp.  It prints one JSON line ``{"event": "listening", ...}``
with the bound port once it accepts connections (so ``--port 0`` works for tests and
scripts), and on SIGINT/SIGTERM stops the market, writes the state file, closes the
websockets (code 1001, "going away") and exits 0.

With ``--state`` the server is also write-through: every accepted command is appended to
``<state>.log`` before it is answered (``command_log``), so a SIGKILL loses nothing a
client was told; a start replays the log on top of the last snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot4.core.clock import Clock, LiveClock
from bot4.core.errors import ValidationError
from bot4.server import command_log, market_maker
from bot4.server import state as state_file
from bot4.server.auth import Authenticator, Credential
from bot4.server.bar_market import BarReplayer, load_raw_bars
from bot4.server.config import ServerConfig
from bot4.server.exchange import Exchange
from bot4.server.limits import OrderLimiter, WeightLimiter
from bot4.server.market_maker import MarketMaker
from bot4.server.replay import Replayer
from bot4.server.rest import RestApi, dumps
from bot4.server.streams import StreamHub
from bot4.server.user_stream import UserStreamHub

log = logging.getLogger(__name__)

WS_API_MESSAGES_PER_SECOND = 100  # the WebSocket API has request weights, not a 5/s cap


class _ClientErrors(logging.Filter):
    """Malformed HTTP is the client's fault: aiohttp logs each one as an ERROR with a
    traceback, which lets anyone fill the server's log (or block it on a full pipe).
    They are answered with 400 and dropped from the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, HttpProcessingError)


_http_log = logging.getLogger("bot4.server.http")
_http_log.addFilter(_ClientErrors())


class ExchangeServer:
    def __init__(self, config: ServerConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else LiveClock()
        self.exchange = ex = Exchange(config.symbols, self.clock)
        saved: dict[str, Any] | None = None
        path = config.state_path
        if path is not None and path.exists():
            saved = state_file.load(path)
            state_file.restore(ex, saved)
        for account in config.accounts:
            ex.open_account(account)
        self.replayer: Replayer | None = None
        if config.replay:
            self.replayer = Replayer(ex, config.replay, config.replay_speed, config.replay_loop)
        replayed = self.replayer.symbol if self.replayer is not None else None
        self.bars: BarReplayer | None = None
        if config.bars is not None:
            symbol = config.bars_symbol or config.symbols[0].symbol
            raw = load_raw_bars(config.bars, symbol, config.bars_start, config.bars_count)
            self.bars = BarReplayer(ex, symbol, raw, config.bars_warm)
        driven = {replayed, self.bars.symbol if self.bars is not None else None}
        maker_symbols = [s for s in config.symbols if s.symbol not in driven]
        self.maker: MarketMaker | None = None
        if config.maker.enabled and maker_symbols:
            self.maker = MarketMaker(ex, maker_symbols, config.maker, config.seed)
            if saved is not None and "market_maker" in saved:
                self.maker.load_state(saved["market_maker"])
        self.log: command_log.CommandLog | None = None
        self.replayed = 0
        self._open_log(saved)
        limits = config.limits
        creds = [Credential(a.api_key, a.api_secret.encode(), a.name) for a in config.accounts]
        self.auth = Authenticator(creds, self.clock)
        self.weights = WeightLimiter(
            self.clock, limits.weight_per_minute, limits.ban_after, limits.ban_seconds
        )
        self.order_limits = OrderLimiter(self.clock, limits.orders_per_10s, limits.orders_per_day)
        self.hub = StreamHub(
            ex, limits.ws_messages_per_second, limits.ws_max_streams, config.heartbeat_seconds
        )
        ws_api_rate = max(limits.ws_messages_per_second, WS_API_MESSAGES_PER_SECOND)
        self.users = UserStreamHub(ex, self.auth, ws_api_rate, config.heartbeat_seconds)
        self.rest = RestApi(ex, self.auth, self.weights, self.order_limits)
        self.app = self._build_app()
        self._tasks: list[asyncio.Task[None]] = []

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[_json_errors], client_max_size=64 * 1024)
        self.rest.register(app)
        app.router.add_get("/ws", self.hub.handle)
        app.router.add_get("/ws/{tail:.*}", self.hub.handle)
        app.router.add_get("/stream", self.hub.handle)
        app.router.add_get("/ws-api/v3", self.users.handle)
        if self.bars is not None:
            bars = self.bars
            for name, fn in (("step", bars.step), ("walk", bars.walk), ("close", bars.close)):
                app.router.add_post(f"/bot4/bars/{name}", functools.partial(self._bars, fn))
        if self.config.test_controls:
            app.router.add_post("/bot4/test/depth-gap", self._depth_gap)
        return app

    async def _depth_gap(self, request: web.Request) -> web.Response:
        """Test control (not Binance, only with ``--test-controls``): lose the next diff
        event(s) of a symbol's depth stream: ``?symbol=BTCUSDT&count=1``."""
        q = request.query
        try:
            count_text = q.get("count", "1")
            if not count_text.isdigit():
                raise ValidationError("count", "must be an integer", count_text)
            out = self.hub.gap(q.get("symbol", "").upper(), int(count_text))
        except ValidationError as exc:
            body = dumps({"code": -1100, "msg": str(exc)})
            return web.Response(text=body, status=400, content_type="application/json")
        return web.Response(text=dumps(out), content_type="application/json")

    async def _bars(self, fn: Callable[[], dict[str, Any]], request: web.Request) -> web.Response:
        """Test-peer control (not Binance): walk and/or publish the next recorded bar."""
        try:
            out = fn()
        except ValidationError as exc:
            return web.Response(text=dumps({"code": -1, "msg": str(exc)}), status=409)
        return web.Response(text=dumps(out), content_type="application/json")

    # -- state ---------------------------------------------------------------------------
    def capture(self) -> dict[str, Any]:
        extra = {"market_maker": self.maker.to_state()} if self.maker is not None else {}
        return state_file.capture(self.exchange, extra)

    def save_state(self) -> None:
        """Snapshot, then start the command log over (the snapshot holds its entries)."""
        if self.config.state_path is not None:
            data = self.capture()
            if self.log is not None:
                data["log_seq"] = self.log.seq
            state_file.save(self.config.state_path, data)
            if self.log is not None:
                self.log.truncate()

    def _open_log(self, saved: dict[str, Any] | None) -> None:
        """Replay what the log holds after the snapshot, then record every command."""
        path = self.config.state_path
        if path is None:
            return
        lpath = command_log.log_path(path)
        after = int(saved.get("log_seq", 0)) if saved is not None else 0
        entries = command_log.read_log(lpath, after)
        notes = self.exchange.replay(entries)
        if self.maker is not None and market_maker.NOTE in notes:
            self.maker.load_refs(notes[market_maker.NOTE])
        self.replayed = len(entries)
        seq = entries[-1][0] if entries else after
        self.log = command_log.CommandLog(
            lpath, command_log.sync_policy(self.config.state_sync), seq
        )
        self.exchange.recorder = self.log.append

    # -- background tasks ----------------------------------------------------------------
    def _spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def _every(self, period: float, fn: Callable[[], None], what: str) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                fn()
            except Exception:
                log.exception("%s failed", what)

    def start_market(self) -> None:
        self._spawn(self.hub.run_depth_timer(0, 0.1))
        self._spawn(self.hub.run_depth_timer(1, 1.0))
        if self.maker is not None:
            self.maker.start()
            self._spawn(self._every(self.config.maker.interval_ms / 1000, self.maker.step, "maker"))
        if self.replayer is not None:
            self._spawn(self.replayer.run())
        if self.bars is not None:
            self.bars.start()
            if self.config.bars_period_ms > 0:
                self._spawn(self.bars.run(self.config.bars_period_ms / 1000))
        if self.config.state_path is not None and self.config.autosave_seconds > 0:
            self._spawn(self._every(self.config.autosave_seconds, self.save_state, "autosave"))

    async def stop_market(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    # -- serving -------------------------------------------------------------------------
    async def serve(self, stop: asyncio.Event) -> None:
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=3.0,  # a stuck client must not hold a shutdown for 60 s
            keepalive_timeout=75.0,
            logger=_http_log,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port, reuse_address=True)
            await site.start()
            host, port = runner.addresses[0][:2]
            self.start_market()
            ready = {"event": "listening", "host": host, "port": port, "replayed": self.replayed}
            print(dumps(ready), flush=True)
            await stop.wait()
        finally:
            await self.stop_market()
            self.save_state()
            if self.log is not None:
                self.log.close()
            await self.hub.close_all()
            await self.users.close_all()
            await runner.cleanup()
        print(dumps({"event": "stopped", "state": str(self.config.state_path or "")}), flush=True)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Routing and protocol errors (404, 405, 413, a bad websocket handshake) as
    Binance-style JSON bodies instead of aiohttp's text pages."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = -1020 if exc.status in (404, 405) else -1000
        msg = "This operation is not supported." if code == -1020 else exc.reason
        return web.Response(
            text=json.dumps({"code": code, "msg": msg}, separators=(",", ":")),
            status=exc.status,
            content_type="application/json",
        )


async def _main(server: ExchangeServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if server.config.stop_on_stdin_eof:
        _stop_when_stdin_closes(loop, stop)
    await server.serve(stop)


def _stop_when_stdin_closes(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Stop gracefully once standard input reaches its end.

    The owner (``ServerProcess(tied=True)``: ``bot4 paper``'s embedded exchange) holds
    the pipe's write end and never writes to it.  The kernel closes that end when the
    owner exits in any way -- a kill -9 included, which no signal handler of the owner
    sees -- so the exchange stops with it, saving its state, instead of living on as an
    orphan that holds the port and the state file.  Anything written is read and ignored.
    """
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)


def run(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM; the state file is written on the way out."""
    server = ExchangeServer(config)
    try:
        asyncio.run(_main(server))
    except OSError as exc:  # e.g. the port is taken
        print(f"bot4 exchange: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
