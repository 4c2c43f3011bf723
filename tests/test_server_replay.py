"""``bot4 exchange --replay``: the BTCUSDT book follows a recorded raw Binance capture
(20x speed) while the market maker runs ETHUSDT; ccxt watches both through the same
streams.  (That the mirrored book equals the recorded one level for level is checked in
process in test_server_core.py.)"""

from __future__ import annotations

from pathlib import Path

from bot4.server.process import ServerProcess
from bot4.sim.binance_capture import DepthSnapshot, read_capture
from tests.conftest import SHARED_DATA
from tests.test_server_support import Loop, pro_client, server_args

CAPTURE = SHARED_DATA / "orderbook" / "hftbacktest_binance_raw" / "spot_btcusdt_20240808.gz"


def test_replayed_book_through_ccxt(tmp_path: Path) -> None:
    assert CAPTURE.is_file(), f"missing shared data file {CAPTURE}"
    snapshot = next(m for m in read_capture(CAPTURE, (DepthSnapshot,)))
    assert isinstance(snapshot, DepthSnapshot)
    lo, hi = snapshot.bids[-1][0] / 1e9 * 0.99, snapshot.asks[-1][0] / 1e9 * 1.01
    srv = ServerProcess(
        [*server_args(tmp_path), "--replay", str(CAPTURE), "--replay-speed", "20"]
    ).start()
    loop = Loop()
    try:

        async def go() -> None:
            pro = pro_client(srv.port)
            try:
                await pro.load_markets()
                nonces = []
                for _ in range(30):
                    book = await pro.watch_order_book("BTC/USDT")  # ChecksumError on a gap
                    nonces.append(book["nonce"])
                    bid, ask = book["bids"][0][0], book["asks"][0][0]
                    assert lo < bid < ask < hi, (bid, ask)
                    assert len(book["bids"]) >= 20 and len(book["asks"]) >= 20
                assert nonces == sorted(nonces) and nonces[-1] > nonces[0]
                trades = []
                while len(trades) < 20:
                    trades.extend(await pro.watch_trades("BTC/USDT"))
                assert all(lo < t["price"] < hi for t in trades)
                eth = await pro.watch_order_book("ETH/USDT")  # the market maker's symbol
                assert 2000 < eth["bids"][0][0] < eth["asks"][0][0] < 4000
            finally:
                await pro.close()

        loop.run(go(), timeout=60)
        assert srv.alive(), srv.stderr_text()
    finally:
        loop.close()
        assert srv.stop() == 0
