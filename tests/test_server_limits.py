"""Rate limits end to end: a server with a small weight budget, driven by ccxt.

Bursting past the limit gives HTTP 429 (code -1003, ``Retry-After``), continuing gives
HTTP 418 (banned); ccxt raises DDoSProtection for both.  The order-count limit answers
-1015.  (The limiter's arithmetic is unit-tested with a test clock in
test_server_rules.py; this shows the wire behaviour.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ccxt

from tests.test_server_support import Loop, rest_client, start_server


def test_burst_gets_429_then_418(tmp_path: Path) -> None:
    srv = start_server(
        tmp_path,
        "--weight-limit",
        "60",
        "--ban-after",
        "2",
        "--orders-per-10s",
        "3",
        "--no-market-maker",
    )
    loop = Loop()
    try:

        async def go() -> None:
            ex: Any = rest_client(srv.port, enableRateLimit=False)
            try:
                await ex.load_markets()  # exchangeInfo: weight 20
                assert ex.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "20"
                for _ in range(3):
                    await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 50_000)
                assert ex.last_response_headers["X-MBX-ORDER-COUNT-10S"] == "3"
                try:
                    await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 50_000)
                    raise AssertionError("a fourth order in 10 s was accepted")
                except ccxt.DDoSProtection:
                    assert json.loads(ex.last_http_response)["code"] == -1015
                statuses: list[int] = []
                for _ in range(40):
                    try:
                        await ex.fetch_ticker("BTC/USDT")  # weight 2
                        statuses.append(200)
                    except ccxt.DDoSProtection as exc:
                        status = 418 if " 418 " in str(exc) else 429
                        statuses.append(status)
                        assert json.loads(ex.last_http_response)["code"] == -1003
                        assert int(ex.last_response_headers["Retry-After"]) > 0
                        if status == 418:
                            break
                first_429 = statuses.index(429)
                assert set(statuses[:first_429]) == {200}
                assert statuses[first_429:] == [429, 429, 418], statuses
                try:  # banned: even a ping is refused now
                    await ex.public_get_ping()
                    raise AssertionError("a banned IP was served")
                except ccxt.DDoSProtection as exc:
                    assert " 418 " in str(exc)
            finally:
                await ex.close()

        loop.run(go())
        assert srv.alive()
    finally:
        loop.close()
        srv.stop()
