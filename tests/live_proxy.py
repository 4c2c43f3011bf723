"""A fault-injecting reverse proxy between ccxt and the exchange server (tests only).

REST requests are forwarded as they are; a queue of faults decides what happens to the
next ``POST /api/v3/order`` (or ``DELETE``): answer a timeout, a 5xx or a 429 *after*
the server executed it, or drop it before the server sees it.  Websocket connections
are proxied too, so a test can drop them all at once (``drop_websockets``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import aiohttp
from aiohttp import web

HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = f"http://127.0.0.1:{upstream_port}"
        self.faults: dict[str, deque[str]] = {"POST": deque(), "DELETE": deque()}
        self.seen: list[tuple[str, str, str]] = []  # (method, path, fault)
        self.sockets: set[web.WebSocketResponse] = set()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def inject(self, method: str, *faults: str) -> None:
        """Faults for the next order requests: 'timeout' (executed, answer late),
        '5xx' (executed, 503), 'reset' (executed, connection closed), '429' (not
        executed, Retry-After 1), 'lost' (not executed, 503)."""
        self.faults[method].extend(faults)

    async def start(self) -> FaultProxy:
        app = web.Application()
        app.router.add_route("*", "/api/v3/{tail:.*}", self._rest)
        app.router.add_get("/ws/{tail:.*}", self._ws)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/ws-api/v3", self._ws)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def close(self) -> None:
        await self.drop_websockets()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        fault = ""
        queue = self.faults.get(request.method)
        if queue and request.path.endswith("/order"):
            fault = queue.popleft()
        self.seen.append((request.method, request.path, fault))
        if fault == "429":
            return web.Response(
                status=429,
                text='{"code":-1003,"msg":"Too many requests."}',
                headers={"Retry-After": "1"},
                content_type="application/json",
            )
        if fault == "lost":
            return web.Response(status=503, text="Service Unavailable")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        url = self.upstream + request.path_qs
        async with self._session.request(
            request.method, url, data=body or None, headers=headers
        ) as up:
            text = await up.read()
            status = up.status
            out_headers = {k: v for k, v in up.headers.items() if k.lower() not in HOP}
        if fault == "timeout":
            await asyncio.sleep(3.0)  # longer than the client's timeout
        elif fault == "5xx":
            return web.Response(status=503, text="Service Unavailable")
        elif fault == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        return web.Response(status=status, body=text, headers=out_headers)

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        client = web.WebSocketResponse()
        await client.prepare(request)
        self.sockets.add(client)
        url = self.upstream.replace("http", "ws") + request.path_qs
        try:
            async with self._session.ws_connect(url) as upstream:

                async def pump(src: Any, dst: Any) -> None:
                    async for msg in src:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            await dst.send_str(msg.data)
                        elif msg.type == aiohttp.WSMsgType.BINARY:
                            await dst.send_bytes(msg.data)
                        else:
                            break

                tasks = [
                    asyncio.ensure_future(pump(client, upstream)),
                    asyncio.ensure_future(pump(upstream, client)),
                ]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in tasks:
                    t.cancel()
        except aiohttp.ClientError:
            pass
        finally:
            self.sockets.discard(client)
            with contextlib.suppress(Exception):
                await client.close()
        return client

    async def drop_websockets(self) -> int:
        n = len(self.sockets)
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1006, message=b"dropped by the test")
        return n
