"""Market streams on the wire (aiohttp client, Binance's raw protocol): path and
combined subscriptions, the control messages, ping/pong, the 100 ms / 1000 ms diff
streams continuing one update-id sequence, and the 5-messages-a-second limit."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from bot4.server.process import ServerProcess
from tests.test_server_support import Loop, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path_factory.mktemp("streams"), "--mm-interval-ms", "50")
    try:
        yield srv
    finally:
        assert srv.stop() == 0


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.close()


async def _next_json(ws: aiohttp.ClientWebSocketResponse) -> Any:
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


def test_control_messages_and_ping(server: ServerProcess, loop: Loop) -> None:
    async def go() -> None:
        async with (
            aiohttp.ClientSession() as s,
            s.ws_connect(f"{server.ws}/ws/3", autoping=False) as ws,
        ):
            await ws.ping(b"hi")
            msg = await ws.receive(timeout=5)
            assert msg.type is aiohttp.WSMsgType.PONG and msg.data == b"hi"
            await ws.send_str(
                json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 7})
            )
            assert await _next_json(ws) == {"result": None, "id": 7}
            await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": "x"}))
            reply = await _next_json(ws)
            while "e" in reply:  # trades may already be flowing
                reply = await _next_json(ws)
            assert reply == {"result": ["ethusdt@trade"], "id": "x"}
            await ws.send_str(
                json.dumps({"method": "SUBSCRIBE", "params": ["foousdt@trade"], "id": 8})
            )
            reply = await _next_json(ws)
            while "e" in reply:
                reply = await _next_json(ws)
            assert reply["id"] == 8 and reply["error"]["code"] == 2

    loop.run(go())


def test_path_and_combined_streams(server: ServerProcess, loop: Loop) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"{server.ws}/ws/btcusdt@trade") as ws:
                event = await _next_json(ws)
                assert event["e"] == "trade" and event["s"] == "BTCUSDT"
                assert set(event) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
            url = f"{server.ws}/stream?streams=btcusdt@depth@100ms/btcusdt@depth@1000ms"
            async with s.ws_connect(url) as ws:
                last: dict[str, int] = {}
                counts = {"btcusdt@depth@100ms": 0, "btcusdt@depth@1000ms": 0}
                started = time.monotonic()
                while counts["btcusdt@depth@1000ms"] < 3:
                    wrapped = await _next_json(ws)
                    stream, data = wrapped["stream"], wrapped["data"]
                    assert data["e"] == "depthUpdate" and data["U"] <= data["u"]
                    if stream in last:
                        assert data["U"] == last[stream] + 1, "the update ids skipped"
                    last[stream] = data["u"]
                    counts[stream] += 1
                elapsed = time.monotonic() - started
                assert counts["btcusdt@depth@100ms"] >= 5 * counts["btcusdt@depth@1000ms"] - 5
                assert elapsed > 1.5  # one event a second on the slow stream

    loop.run(go(), timeout=30)


def test_too_many_messages_close_the_connection(server: ServerProcess, loop: Loop) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(f"{server.ws}/ws") as ws:
            for i in range(8):  # Binance allows 5 incoming messages a second
                await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            replies = 0
            while True:
                msg = await ws.receive(timeout=5)
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                replies += 1
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1008 and replies == 5

    loop.run(go())
