"""Graceful shutdown and restart: SIGTERM writes the state file; a new server started
with it has the client's open orders (same ids, same queue places), balances, trade
history and every sequence where they were, and a reconnecting ccxt client reconciles."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot4.server.process import ServerProcess
from tests.test_server_support import Loop, pro_client, rest_client, server_args

BTC = "BTC/USDT"


def _view(order: dict[str, Any]) -> tuple[Any, ...]:
    return (
        order["id"],
        order["clientOrderId"],
        order["price"],
        order["amount"],
        order["filled"],
        order["status"],
        order["side"],
    )


async def _snapshot(ex: Any) -> dict[str, Any]:
    orders = await ex.fetch_open_orders(BTC)
    balances = (await ex.fetch_balance())["info"]["balances"]
    return {
        "orders": sorted(_view(o) for o in orders),
        "balances": {b["asset"]: (Decimal(b["free"]), Decimal(b["locked"])) for b in balances},
        "trades": [t["info"] for t in await ex.fetch_my_trades(BTC)],
    }


def test_sigterm_persists_and_restart_restores(tmp_path: Path) -> None:
    state = tmp_path / "exchange-state.json"
    args = [
        *server_args(tmp_path),
        "--state",
        str(state),
        "--autosave",
        "0",
        "--weight-limit",
        "1000000",
    ]
    loop = Loop()
    first = ServerProcess(args).start()
    try:

        async def trade() -> dict[str, Any]:
            ex = rest_client(first.port, enableRateLimit=False)
            try:
                await ex.load_markets()
                book = await ex.fetch_order_book(BTC, 5)
                bid, ask = book["bids"][0][0], book["asks"][0][0]
                await ex.create_order(BTC, "market", "buy", 0.01)
                low = await ex.create_order(
                    BTC, "limit", "buy", 0.003, round(bid * 0.9, 2), {"clientOrderId": "keep-bid"}
                )
                await ex.create_order(
                    BTC, "limit", "sell", 0.002, round(ask * 1.1, 2), {"clientOrderId": "keep-ask"}
                )
                snap = await _snapshot(ex)
                snap["low"] = low
                snap["depth_id"] = (await ex.fetch_order_book(BTC))["nonce"]
                snap["trade_id"] = int((await ex.fetch_trades(BTC, limit=1))[-1]["id"])
                return snap
            finally:
                await ex.close()

        before = loop.run(trade())
        assert len(before["orders"]) == 2 and before["trades"]
    finally:
        code = first.stop()
    assert code == 0, first.stderr_text()
    assert any('"stopped"' in line for line in first.lines)
    saved = json.loads(state.read_text())
    assert saved["version"] == 1 and saved["orders"]

    second = ServerProcess(args).start()
    try:

        async def check() -> None:
            ex = rest_client(second.port, enableRateLimit=False)
            pro = pro_client(second.port)
            try:
                await ex.load_markets()
                after = await _snapshot(ex)
                assert after["orders"] == before["orders"]
                assert after["balances"] == before["balances"]
                assert after["trades"] == before["trades"]
                low = before["low"]
                book = await ex.fetch_order_book(BTC, 5000)
                assert book["nonce"] >= before["depth_id"]  # update ids continue
                level = dict(book["bids"]).get(low["price"], 0)
                assert level >= 0.003  # the restored order rests in the book again
                await asyncio.sleep(0.5)
                trades = await ex.fetch_trades(BTC, limit=5)
                assert int(trades[-1]["id"]) > before["trade_id"]  # trade ids continue
                fresh = await ex.create_order(BTC, "limit", "buy", 0.001, round(low["price"], 2))
                assert int(fresh["id"]) > max(int(o[0]) for o in before["orders"])
                # a reconnecting websocket client sees the restored order's updates
                await pro.load_markets()
                watcher = asyncio.ensure_future(pro.watch_orders(BTC))
                await asyncio.sleep(0.3)
                await ex.cancel_order(low["id"], BTC)
                events = await asyncio.wait_for(watcher, 10)
                assert events[-1]["id"] == low["id"] and events[-1]["status"] == "canceled"
                assert events[-1]["clientOrderId"] == "keep-bid"
            finally:
                await ex.close()
                await pro.close()

        loop.run(check(), timeout=60)
    finally:
        loop.close()
        assert second.stop() == 0


def test_sigkill_loses_no_accepted_change(tmp_path: Path) -> None:
    """No graceful shutdown at all: the state file was never written, and the restarted
    server still has every order, fill, balance and counter the clients were told of
    (the write-through command log, replayed on start)."""
    state = tmp_path / "exchange-state.json"
    args = [*server_args(tmp_path), "--state", str(state), "--autosave", "0"]
    args += ["--weight-limit", "1000000", "--mm-interval-ms", "20"]
    loop = Loop()
    first = ServerProcess(args).start()
    try:

        async def trade() -> dict[str, Any]:
            ex = rest_client(first.port, enableRateLimit=False)
            try:
                await ex.load_markets()
                book = await ex.fetch_order_book(BTC, 5)
                bid, ask = book["bids"][0][0], book["asks"][0][0]
                for i in range(5):
                    await ex.create_order(BTC, "market", "buy" if i % 2 else "sell", 0.002)
                    await ex.create_order(
                        BTC, "limit", "buy", 0.001, round(bid * (0.95 - i / 100), 2),
                        {"clientOrderId": f"rest-{i}"},
                    )  # fmt: skip
                await ex.create_order(BTC, "limit", "sell", 0.002, round(ask * 1.1, 2))
                await ex.cancel_order(None, BTC, {"origClientOrderId": "rest-2"})
                await asyncio.sleep(0.5)  # the market maker keeps trading meanwhile
                snap = await _snapshot(ex)
                snap["depth_id"] = (await ex.fetch_order_book(BTC))["nonce"]
                snap["trade_id"] = int((await ex.fetch_trades(BTC, limit=1))[-1]["id"])
                first.kill()  # SIGKILL right after the last answer
                return snap
            finally:
                await ex.close()

        before = loop.run(trade())
        assert len(before["orders"]) == 5 and len(before["trades"]) >= 5
    finally:
        first.kill()
        first.close()
    assert first.proc is not None and first.proc.returncode == -9
    assert not state.exists()  # nothing was saved on the way out
    second = ServerProcess(args).start()
    try:
        ready = json.loads(next(x for x in second.lines if '"listening"' in x))
        assert ready["replayed"] > 20

        async def check() -> None:
            ex = rest_client(second.port, enableRateLimit=False)
            try:
                await ex.load_markets()
                after = await _snapshot(ex)
                assert after["orders"] == before["orders"]
                assert after["balances"] == before["balances"]
                assert after["trades"] == before["trades"]
                assert (await ex.fetch_order_book(BTC))["nonce"] >= before["depth_id"]
                assert int((await ex.fetch_trades(BTC, limit=1))[-1]["id"]) >= before["trade_id"]
                fresh = await ex.create_order(BTC, "market", "buy", 0.001)
                assert int(fresh["id"]) > max(int(o[0]) for o in before["orders"])
            finally:
                await ex.close()

        loop.run(check(), timeout=30)
    finally:
        loop.close()
        assert second.stop() == 0
    # SIGTERM snapshotted and started the log over: a third start replays nothing
    assert json.loads(state.read_text())["log_seq"] > 0
    assert (tmp_path / "exchange-state.json.log").read_bytes() == b""
