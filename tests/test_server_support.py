"""Shared helpers for the exchange-server tests (this module holds no tests).

``Loop`` runs coroutines on one event loop for a whole test module, so the ccxt
clients (whose aiohttp sessions belong to a loop) are created once; every call has a
timeout, so a hung server fails the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro

from bot4.server.process import ServerProcess, ccxt_options, point_ccxt

T = TypeVar("T")
KEY, SECRET = "test-key", "test-secret"
DEPOSITS = {"USDT": "1000000", "BTC": "10", "ETH": "100"}
CONFIG = """
[[accounts]]
name = "bob"
api_key = "bob-key"
api_secret = "bob-secret"
balances = { USDT = "100", BTC = "0.001" }

[[accounts]]
name = "fuzz"
api_key = "fuzz-key"
api_secret = "fuzz-secret"
balances = { USDT = "1000", BTC = "0.1", ETH = "1" }

[symbols.ETHUSDT]
min_qty = "0.001"
"""


class Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


def server_args(tmp: Path, *extra: str) -> list[str]:
    cfg = tmp / "exchange.toml"
    cfg.write_text(CONFIG)
    balances = ",".join(f"{a}={v}" for a, v in DEPOSITS.items())
    return [
        "--api-key",
        KEY,
        "--api-secret",
        SECRET,
        "--balances",
        balances,
        "--config",
        str(cfg),
        "--seed",
        "1",
        *extra,
    ]


def start_server(tmp: Path, *extra: str) -> ServerProcess:
    return ServerProcess(server_args(tmp, *extra)).start()


def rest_client(port: int, key: str = KEY, secret: str = SECRET, **extra: Any) -> Any:
    return point_ccxt(ccxt_async.binance(ccxt_options(key, secret, **extra)), port)


def pro_client(port: int, key: str = KEY, secret: str = SECRET, **extra: Any) -> Any:
    return point_ccxt(ccxt_pro.binance(ccxt_options(key, secret, **extra)), port)
