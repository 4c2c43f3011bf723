"""Fuzzing the server's inputs with hypothesis: REST parameters and bodies, raw request
bytes, websocket messages.  Whatever arrives, the server answers with an error (never a
5xx, never silence) and stays up; a rejected request changes no state (the account's
balances and open orders are compared before and after every signed attempt)."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4.server.process import ServerProcess
from tests.test_server_support import Loop, start_server

KEY, SECRET = "fuzz-key", b"fuzz-secret"
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(
        tmp_path_factory.mktemp("fuzz"),
        "--weight-limit",
        "10000000",
        "--orders-per-10s",
        "1000000",
        "--ws-messages-per-second",
        "100000",
    )
    try:
        yield srv
    finally:
        assert srv.alive(), f"the server died: {srv.stderr_text()}"
        assert srv.stop() == 0


class Http:
    """A keep-alive HTTP/1.1 client that sends exactly the bytes it is given."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        hdrs = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                if attempt:
                    raise
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw

    def signed(
        self, method: str, path: str, params: dict[str, str], in_body: bool
    ) -> tuple[int, Any]:
        query = urlencode(
            {**params, "timestamp": str(int(time.time() * 1000)), "recvWindow": "10000"}
        )
        sig = hmac.new(SECRET, query.encode(), hashlib.sha256).hexdigest()
        payload = f"{query}&signature={sig}"
        headers = {"X-MBX-APIKEY": KEY}
        if in_body:
            return self.request(method, "/api/v3/" + path, payload.encode(), headers)
        return self.request(method, f"/api/v3/{path}?{payload}", b"", headers)


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Http:
    return Http(server.port)


def _is_error(status: int, body: Any) -> bool:
    assert status < 500, (status, body)
    if status == 200:
        return False
    assert isinstance(body, dict) and set(body) == {"code", "msg"}, body
    assert isinstance(body["code"], int) and body["code"] < 0 and isinstance(body["msg"], str)
    return True


def _state(client: Http) -> Any:
    status, account = client.signed("GET", "account", {}, False)
    assert status == 200, account
    opened = []
    for symbol in ("BTCUSDT", "ETHUSDT"):
        status, orders = client.signed("GET", "openOrders", {"symbol": symbol}, False)
        assert status == 200, orders
        opened.extend(orders)
    return account["balances"], opened


def _cancel_all(client: Http) -> None:
    for symbol in ("BTCUSDT", "ETHUSDT"):
        client.signed("DELETE", "openOrders", {"symbol": symbol}, False)


weird_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "NaN",
            "Infinity",
            "-0",
            "1e400",
            "0x1F",
            "１２",
            "1_000",
            "٣",
            "0.000000001",
            "1" * 25,
            "99999999999999999999.99999999",
            "null",
            "[]",
            "BTCUSDT",
            "ETHUSDT",
            "btcusdt",
            "BUY",
            "SELL",
            "LIMIT",
            "MARKET",
            "GTC",
            "LIMIT_MAKER",
            "STOP_LOSS_LIMIT",
            "IOC",
            "FOK",
            "FULL",
            "ACK",
        ]
    ),
    st.integers(-(10**40), 10**40).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=10).map(str),
)
param_names = st.sampled_from(
    [
        "symbol",
        "side",
        "type",
        "timeInForce",
        "quantity",
        "quoteOrderQty",
        "price",
        "stopPrice",
        "icebergQty",
        "newClientOrderId",
        "newOrderRespType",
        "selfTradePreventionMode",
        "limit",
        "orderId",
        "origClientOrderId",
        "interval",
        "startTime",
        "endTime",
        "fromId",
        "symbols",
    ]
)
params = st.dictionaries(st.one_of(param_names, st.text(max_size=10)), weird_text, max_size=8)
near_orders = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(["BTCUSDT", "ETHUSDT", "XRPUSDT", "btcusdt"]),
        "side": st.sampled_from(["BUY", "SELL", "HOLD"]),
        "type": st.sampled_from(
            ["LIMIT", "MARKET", "LIMIT_MAKER", "STOP_LOSS", "TAKE_PROFIT_LIMIT", "OCO"]
        ),
        "quantity": st.sampled_from(["0.001", "0", "1e3", "100000", "0.0000001", "-1", "50"]),
    },
    optional={
        "price": st.sampled_from(["1", "30000.01", "60000", "3000.5", "0.001", "1" * 21, "9e9"]),
        "timeInForce": st.sampled_from(["GTC", "IOC", "FOK", "GTD"]),
        "stopPrice": st.sampled_from(["50000", "0", "abc"]),
        "quoteOrderQty": st.sampled_from(["10", "1000000000", "0.1"]),
        "newClientOrderId": st.sampled_from(["ok-1", "not ok", "é", "x" * 40]),
        "icebergQty": st.sampled_from(["0.0001", "1"]),
    },
)


@FUZZ
@given(
    path=st.sampled_from(
        [
            "depth",
            "klines",
            "aggTrades",
            "trades",
            "ticker/24hr",
            "ticker/price",
            "ticker/bookTicker",
            "exchangeInfo",
            "avgPrice",
            "time",
            "nope",
        ]
    ),
    query=params,
)
def test_public_endpoints_answer_every_query(
    client: Http, path: str, query: dict[str, str]
) -> None:
    status, body = client.request("GET", f"/api/v3/{path}?{urlencode(query)}")
    _is_error(status, body)


@FUZZ
@given(order=st.one_of(near_orders, params), in_body=st.booleans())
def test_signed_orders_change_nothing_when_rejected(
    client: Http, order: dict[str, str], in_body: bool
) -> None:
    before = _state(client)
    status, body = client.signed("POST", "order", order, in_body)
    if _is_error(status, body):
        assert _state(client) == before, body
    else:
        _cancel_all(client)


@FUZZ
@given(
    path=st.sampled_from(["order", "order/test", "account", "myTrades", "openOrders"]),
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    body=st.binary(max_size=300),
    key=st.sampled_from([KEY, "", "unknown", "k" * 300, "é"]),
)
def test_raw_bodies_and_keys_are_refused(
    client: Http, path: str, method: str, body: bytes, key: str
) -> None:
    before = _state(client)
    headers = {"X-MBX-APIKEY": key} if key.isascii() else {}
    status, answer = client.request(method, "/api/v3/" + path, body, headers)
    assert _is_error(status, answer)
    assert _state(client) == before


@FUZZ
@given(raw=st.binary(min_size=1, max_size=200))
def test_raw_request_bytes_do_not_hurt(server: ServerProcess, client: Http, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /api/v3/depth?symbol=BTCUSDT&" + raw + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        try:
            head = sock.recv(64)
        except TimeoutError:
            head = b""
    assert head == b"" or head.startswith(b"HTTP/1."), head
    if head:
        assert int(head.split()[1]) < 500
    assert client.request("GET", "/api/v3/ping") == (200, {})


def test_oversized_body_and_huge_numbers(client: Http) -> None:
    status, body = client.request(
        "POST", "/api/v3/order", b"a=" + b"9" * 200_000, {"X-MBX-APIKEY": KEY}
    )
    assert status == 413 and body["code"] < 0
    huge = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "9" * 20,
        "price": "9" * 20 + "." + "9" * 8,
    }
    status, body = client.signed("POST", "order", huge, True)
    assert _is_error(status, body) and body["code"] in (-1013, -2010)
    status, body = client.request("GET", "/api/v3/depth?symbol=BTCUSDT&limit=" + "9" * 30)
    assert _is_error(status, body) and body["code"] == -1100


# -- websockets ------------------------------------------------------------------------------


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**30), 10**30),
        st.text(max_size=20),
        st.floats(allow_nan=False),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ws_messages = st.one_of(
    json_values.map(json.dumps),
    st.text(max_size=100),
    st.fixed_dictionaries(
        {
            "method": st.sampled_from(
                [
                    "SUBSCRIBE",
                    "UNSUBSCRIBE",
                    "LIST_SUBSCRIPTIONS",
                    "PING",
                    "userDataStream.subscribe.signature",
                    "ping",
                    "time",
                ]
            ),
            "params": json_values,
            "id": json_values,
        },
    ).map(json.dumps),
)


class WsProbe:
    def __init__(self, loop: Loop, url: str) -> None:
        self.loop = loop
        self.url = url
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def _ensure(self) -> aiohttp.ClientWebSocketResponse:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        if self.ws is None or self.ws.closed:
            self.ws = await self.session.ws_connect(self.url)
        return self.ws

    def exchange(self, text: str) -> Any:
        async def go() -> Any:
            ws = await self._ensure()
            await ws.send_str(text)
            while True:
                msg = await ws.receive(timeout=5)
                assert msg.type is aiohttp.WSMsgType.TEXT, msg
                reply = json.loads(msg.data)
                if isinstance(reply, dict) and ("id" in reply or "error" in reply):
                    return reply  # market data may arrive first on a subscribed stream

        return self.loop.run(go())

    def close(self) -> None:
        async def go() -> None:
            if self.ws is not None:
                await self.ws.close()
            if self.session is not None:
                await self.session.close()

        self.loop.run(go())


@pytest.fixture(scope="module")
def probes(server: ServerProcess) -> Iterator[tuple[WsProbe, WsProbe]]:
    loop = Loop()
    market = WsProbe(loop, f"{server.ws}/ws/7")
    user = WsProbe(loop, f"{server.ws}/ws-api/v3")
    yield market, user
    market.close()
    user.close()
    loop.close()


@FUZZ
@given(text=ws_messages)
def test_market_stream_messages(probes: tuple[WsProbe, WsProbe], text: str) -> None:
    reply = probes[0].exchange(text)
    assert set(reply) <= {"result", "id", "error"}
    if "error" in reply:
        assert isinstance(reply["error"]["code"], int) and isinstance(reply["error"]["msg"], str)


@FUZZ
@given(text=ws_messages)
def test_user_stream_messages(probes: tuple[WsProbe, WsProbe], client: Http, text: str) -> None:
    before = _state(client)
    reply = probes[1].exchange(text)
    assert "status" in reply and "id" in reply
    if reply["status"] != 200:
        assert reply["error"]["code"] < 0 and isinstance(reply["error"]["msg"], str)
    assert _state(client) == before
