"""One websocket connection's outgoing side, shared by both stream hubs.

Events are produced synchronously (inside an engine command) but sent asynchronously,
so each connection has a bounded queue drained by its own writer task: a slow client
delays only itself, and one that falls ``QUEUE_SIZE`` messages behind is disconnected
(Binance does the same) instead of growing the server's memory.  ``finish`` lets the
writer deliver what is already queued (up to a second) before closing, so a client that
is disconnected for breaking a rule still receives the replies it was owed.

The incoming side is rate limited per connection (Binance: 5 messages a second on the
market streams): ``allow`` is a sliding one-second window.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from aiohttp import web

QUEUE_SIZE: Final = 4096


class Outbox:
    __slots__ = ("closing", "msg_rate", "queue", "times", "writer", "ws")

    def __init__(self, ws: web.WebSocketResponse, msg_rate: int) -> None:
        self.ws = ws
        self.msg_rate = msg_rate
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_SIZE)
        self.times: list[float] = []
        self.closing = False
        self.writer = asyncio.get_running_loop().create_task(self._write())

    def push(self, text: str) -> bool:
        """Queue one message; False (and the connection is being closed) if it is full."""
        if self.closing:
            return False
        try:
            self.queue.put_nowait(text)
            return True
        except asyncio.QueueFull:
            self.closing = True
            task = asyncio.get_running_loop().create_task(self.ws.close(code=1008))
            task.add_done_callback(lambda _t: None)
            return False

    def allow(self) -> bool:
        """Count one incoming message; False once the rate is exceeded."""
        now = asyncio.get_running_loop().time()
        times = [t for t in self.times if now - t < 1.0]
        times.append(now)
        self.times = times
        return len(times) <= self.msg_rate

    async def _write(self) -> None:
        ws = self.ws
        while True:
            text = await self.queue.get()
            if text is None or ws.closed:
                return
            await ws.send_str(text)

    async def finish(self, code: int = 1000, message: bytes = b"") -> None:
        """Deliver what is queued (at most a second), then close the connection."""
        self.closing = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, Exception):
            await asyncio.wait_for(asyncio.shield(self.writer), 1.0)
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.writer
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, message=message)
