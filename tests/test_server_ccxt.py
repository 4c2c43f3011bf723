"""``bot4 exchange`` as a subprocess, driven by the real, unmodified ccxt.

One server for the module (market maker stepping every 50 ms so limit orders fill
quickly), one event loop, REST and websocket clients configured as in
binance-spot-subset.md.  Covers the calls a ccxt bot makes, the exact balances after
trading, and the rejections: each must carry Binance's code *and* make ccxt raise the
matching exception class.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from bot4.server.process import ServerProcess
from tests.test_server_support import (
    DEPOSITS,
    Loop,
    pro_client,
    rest_client,
    start_server,
)

BTC, ETH = "BTC/USDT", "ETH/USDT"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(
        tmp_path_factory.mktemp("ccxt"),
        "--mm-interval-ms",
        "50",
        "--mm-trade-probability",
        "0.5",
        "--weight-limit",
        "1000000",
        "--orders-per-10s",
        "100000",
    )
    try:
        yield srv
    finally:
        assert srv.alive(), f"the server died: {srv.stderr_text()}"
        assert srv.stop() == 0


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.close()


@pytest.fixture(scope="module")
def ex(server: ServerProcess, loop: Loop) -> Iterator[Any]:
    async def make() -> Any:
        # ccxt's own throttle would make the test measure ccxt; the server's limits are
        # what is under test (test_server_limits.py)
        client = rest_client(server.port, enableRateLimit=False)
        await client.load_markets()
        return client

    client = loop.run(make())
    yield client
    loop.run(client.close())


@pytest.fixture(scope="module")
def pro(server: ServerProcess, loop: Loop) -> Iterator[Any]:
    async def make() -> Any:
        client = pro_client(server.port)
        await client.load_markets()
        return client

    client = loop.run(make())
    yield client
    loop.run(client.close())


async def _wait_for_trades(ex: Any, symbol: str, n: int = 3) -> list[Any]:
    for _ in range(100):
        trades = await ex.fetch_trades(symbol, limit=50)
        if len(trades) >= n:
            return list(trades)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no market-maker trades on {symbol}")


# -- market data ----------------------------------------------------------------------------


def test_markets_ticker_book_ohlcv(ex: Any, loop: Loop) -> None:
    async def go() -> None:
        markets = ex.markets
        assert set(markets) == {BTC, ETH}
        btc = markets[BTC]
        assert btc["spot"] and btc["active"]
        assert btc["precision"]["price"] == 0.01 and btc["precision"]["amount"] == 0.00001
        assert btc["limits"]["cost"]["min"] == 5
        assert markets[ETH]["limits"]["amount"]["min"] == 0.001  # from the config file
        trades = await _wait_for_trades(ex, BTC)
        ids = [int(t["id"]) for t in trades]
        assert ids == sorted(ids)
        ticker = await ex.fetch_ticker(BTC)
        assert 0 < ticker["bid"] < ticker["ask"] and ticker["last"] > 0
        assert ticker["baseVolume"] > 0
        book = await ex.fetch_order_book(BTC, 1000)
        bids, asks = book["bids"], book["asks"]
        assert len(bids) >= 20 and len(asks) >= 20
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
        assert bids[0][0] < asks[0][0] and book["nonce"] > 0
        candles = await ex.fetch_ohlcv(BTC, "1m", limit=5)
        assert candles and all(len(c) == 6 for c in candles)
        o, h, low, c, v = candles[-1][1:]
        assert low <= min(o, c) <= max(o, c) <= h and v >= 0
        assert candles[-1][0] % 60_000 == 0
        assert (await ex.fetch_time()) == pytest.approx(time.time() * 1000, abs=5_000)

    loop.run(go())


# -- trading and exact balances ------------------------------------------------------------


def _exact(balance: dict[str, Any]) -> dict[str, tuple[Decimal, Decimal]]:
    """(free, locked) per asset from the venue's strings (ccxt's own fields are floats)."""
    return {
        b["asset"]: (Decimal(b["free"]), Decimal(b["locked"])) for b in balance["info"]["balances"]
    }


def test_order_lifecycle_and_exact_balances(ex: Any, loop: Loop) -> None:
    async def go() -> None:
        bal = _exact(await ex.fetch_balance())
        for asset, amount in DEPOSITS.items():
            assert bal[asset] == (Decimal(amount), 0)
        bid = (await ex.fetch_order_book(BTC, 5))["bids"][0][0]
        resting = await ex.create_order(BTC, "limit", "buy", 0.001, round(bid * 0.9, 2))
        assert resting["status"] == "open" and resting["filled"] == 0
        fetched = await ex.fetch_order(resting["id"], BTC)
        assert fetched["id"] == resting["id"] and fetched["status"] == "open"
        assert fetched["clientOrderId"] == resting["clientOrderId"]
        assert resting["id"] in [o["id"] for o in await ex.fetch_open_orders(BTC)]
        locked = Decimal(resting["info"]["price"]) * Decimal("0.001")
        assert _exact(await ex.fetch_balance())["USDT"][1] == locked
        canceled = await ex.cancel_order(resting["id"], BTC)
        assert canceled["status"] == "canceled"
        assert (await ex.fetch_order(resting["id"], BTC))["status"] == "canceled"
        assert resting["id"] not in [o["id"] for o in await ex.fetch_open_orders(BTC)]

        bought = await ex.create_order(BTC, "market", "buy", 0.01)
        assert bought["status"] == "closed" and bought["filled"] == 0.01
        assert bought["fee"]["currency"] == "BTC"
        sold = await ex.create_order(BTC, "market", "sell", 0.004)
        assert sold["status"] == "closed" and sold["fee"]["currency"] == "USDT"
        by_cost = await ex.create_order(ETH, "market", "buy", None, params={"quoteOrderQty": 100})
        assert by_cost["status"] == "closed"
        assert Decimal(by_cost["info"]["cummulativeQuoteQty"]) <= 100

        # a bid inside the spread fills when the market maker's sellers arrive
        maker = None
        for _ in range(20):  # post-only: refused if the book moved onto our price
            top = await ex.fetch_order_book(BTC, 5)
            try:
                maker = await ex.create_order(
                    BTC, "limit", "buy", 0.002, top["bids"][0][0] + 0.01, {"postOnly": True}
                )
                break
            except ccxt.OrderImmediatelyFillable:
                continue
        assert maker is not None and maker["info"]["type"] == "LIMIT_MAKER"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            state = await ex.fetch_order(maker["id"], BTC)
            if state["filled"] > 0:
                break
            await asyncio.sleep(0.2)
        assert state["filled"] > 0, "a limit order inside the spread never filled"
        if state["status"] == "open":
            await ex.cancel_order(maker["id"], BTC)
        assert await ex.fetch_open_orders(BTC) == [] and await ex.fetch_open_orders(ETH) == []

        trades = await ex.fetch_my_trades(BTC) + await ex.fetch_my_trades(ETH)
        assert any(t["takerOrMaker"] == "maker" for t in trades)
        assert {t["order"] for t in trades} >= {bought["id"], sold["id"], maker["id"]}
        expected = {a: Decimal(v) for a, v in DEPOSITS.items()}
        for t in trades:
            info = t["info"]
            base, quote = ex.markets[t["symbol"]]["base"], ex.markets[t["symbol"]]["quote"]
            qty, cost = Decimal(info["qty"]), Decimal(info["quoteQty"])
            assert cost == Decimal(info["price"]) * qty  # exact, no rounding anywhere
            sign = 1 if info["isBuyer"] else -1
            expected[base] += sign * qty
            expected[quote] -= sign * cost
            expected[info["commissionAsset"]] -= Decimal(info["commission"])
        final = _exact(await ex.fetch_balance())
        for asset, amount in expected.items():
            assert final[asset] == (amount, 0), asset

    loop.run(go(), timeout=60)


# -- websockets -------------------------------------------------------------------------------


def test_watch_order_book_stays_in_sequence(pro: Any, ex: Any, loop: Loop) -> None:
    async def go() -> None:
        nonces: list[int] = []
        matched = 0
        for _ in range(45):
            book = await pro.watch_order_book(BTC)  # a gap would raise ccxt's ChecksumError
            nonces.append(book["nonce"])
            bids, asks = book["bids"], book["asks"]
            assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
            assert bids[0][0] < asks[0][0]
            if matched < 3:
                rest = await ex.fetch_order_book(BTC, 1000)
                if rest["nonce"] == book["nonce"]:  # the same update id: the same book
                    assert rest["bids"] == book["bids"][: len(rest["bids"])]
                    assert rest["asks"] == book["asks"][: len(rest["asks"])]
                    matched += 1
        assert nonces == sorted(nonces) and len(set(nonces)) == len(nonces)
        assert nonces[-1] - nonces[0] >= 44
        assert matched >= 1, "never caught REST and stream at the same update id"

    loop.run(go(), timeout=60)


def test_watch_trades(pro: Any, loop: Loop) -> None:
    async def go() -> None:
        seen: list[Any] = []
        while len(seen) < 5:
            seen.extend(await pro.watch_trades(BTC))
        ids = [int(t["id"]) for t in seen]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert all(t["price"] > 0 and t["amount"] > 0 for t in seen)

    loop.run(go())


def test_watch_orders_and_balance(pro: Any, loop: Loop) -> None:
    async def go() -> None:
        watcher = asyncio.ensure_future(pro.watch_orders(BTC))
        await asyncio.sleep(0.3)
        book = await pro.fetch_order_book(BTC, 5)
        placed = await pro.create_order(
            BTC, "limit", "sell", 0.001, round(book["asks"][0][0] * 1.05, 2)
        )
        events = await asyncio.wait_for(watcher, 10)
        assert events[-1]["id"] == placed["id"] and events[-1]["status"] == "open"
        canceled = asyncio.ensure_future(pro.watch_orders(BTC))
        await pro.cancel_order(placed["id"], BTC)
        events = await asyncio.wait_for(canceled, 10)
        assert events[-1]["id"] == placed["id"] and events[-1]["status"] == "canceled"
        filled = asyncio.ensure_future(pro.watch_orders(BTC))
        balance = asyncio.ensure_future(pro.watch_balance())  # outboundAccountPosition
        await asyncio.sleep(0.3)
        market = await pro.create_order(BTC, "market", "buy", 0.001)
        for _ in range(5):
            events = await asyncio.wait_for(filled, 10)
            if events[-1]["id"] == market["id"] and events[-1]["status"] == "closed":
                break
            filled = asyncio.ensure_future(pro.watch_orders(BTC))
        assert events[-1]["id"] == market["id"] and events[-1]["status"] == "closed"
        assert events[-1]["filled"] == 0.001
        pushed = await asyncio.wait_for(balance, 10)
        rest = await pro.fetch_balance()
        assert pushed["BTC"]["free"] == rest["BTC"]["free"]
        assert pushed["USDT"]["free"] == rest["USDT"]["free"]

    loop.run(go(), timeout=60)


# -- rejections: Binance code and ccxt class -----------------------------------------------


async def _expect(client: Any, coro: Any, exc_class: type[Exception], code: int) -> str:
    """Await ``coro``; it must raise ``exc_class`` and the server's body must carry
    ``code`` (ccxt names the message, not always the code, in the exception)."""
    try:
        await coro
    except exc_class:
        body = json.loads(client.last_http_response)
        assert body["code"] == code, body
        return str(body["msg"])
    raise AssertionError(f"expected {exc_class.__name__} with code {code}")


def test_authentication_and_time_errors(server: ServerProcess, loop: Loop) -> None:
    async def go() -> None:
        clients = [
            rest_client(server.port, secret="wrong"),
            rest_client(server.port, key="unknown-key"),
            rest_client(server.port, options={"timeDifference": 120_000}),
        ]
        try:
            await _expect(clients[0], clients[0].fetch_balance(), ccxt.AuthenticationError, -1022)
            await _expect(clients[1], clients[1].fetch_balance(), ccxt.AuthenticationError, -2015)
            await _expect(clients[2], clients[2].fetch_balance(), ccxt.InvalidNonce, -1021)
        finally:
            for c in clients:
                await c.close()

    loop.run(go())


def test_order_rejections_change_nothing(server: ServerProcess, ex: Any, loop: Loop) -> None:
    async def go() -> None:
        bob = rest_client(server.port, key="bob-key", secret="bob-secret")
        try:
            await bob.load_markets()
            before = (
                (await bob.fetch_balance())["info"]["balances"],
                await bob.fetch_open_orders(BTC),
            )
            await _expect(
                bob, bob.create_order(BTC, "limit", "buy", 1, 50_000), ccxt.InsufficientFunds, -2010
            )
            await _expect(
                bob, bob.create_order(BTC, "market", "sell", 0.01), ccxt.InsufficientFunds, -2010
            )
            await _expect(
                bob, bob.create_order(ETH, "limit", "buy", 0.0005, 2000), ccxt.InvalidOrder, -1013
            )  # below the minimum quantity (LOT_SIZE)
            await _expect(
                bob,
                bob.private_post_order(
                    {
                        "symbol": "BTCUSDT",
                        "side": "BUY",
                        "type": "LIMIT",
                        "timeInForce": "GTC",
                        "quantity": "0.001",
                        "price": "60000.0000000001",
                    }
                ),
                ccxt.BadRequest,
                -1111,
            )
            text = await _expect(
                bob,
                bob.private_post_order(
                    {
                        "symbol": "BTCUSDT",
                        "side": "BUY",
                        "type": "LIMIT",
                        "timeInForce": "GTC",
                        "quantity": "0.001",
                        "price": "60000.015",
                    }
                ),
                ccxt.InvalidOrder,
                -1013,
            )
            assert "PRICE_FILTER" in text
            text = await _expect(
                bob, bob.create_order(BTC, "limit", "buy", 0.00001, 50_000), ccxt.BadRequest, -1013
            )
            assert "NOTIONAL" in text
            await _expect(bob, bob.public_get_depth({"symbol": "FOOBAR"}), ccxt.BadSymbol, -1121)
            await _expect(bob, bob.fetch_order("987654321", BTC), ccxt.OrderNotFound, -2013)
            await _expect(bob, bob.cancel_order("987654321", BTC), ccxt.OrderNotFound, -2011)
            after = (
                (await bob.fetch_balance())["info"]["balances"],
                await bob.fetch_open_orders(BTC),
            )
            assert after == before
        finally:
            await bob.close()

    loop.run(go())


def test_unknown_symbol_through_the_unified_api(ex: Any, loop: Loop) -> None:
    async def go() -> None:
        with pytest.raises(ccxt.BadSymbol):
            await ex.fetch_order_book("FOO/USDT")  # refused by ccxt itself: not listed
        await _expect(ex, ex.public_get_ticker_24hr({"symbol": "FOOUSDT"}), ccxt.BadSymbol, -1121)

    loop.run(go())
