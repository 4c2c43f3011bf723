"""Order round trips through ccxt against ``bot4 exchange`` on loopback.

    python benchmarks/exchange_server.py            # full run (about 10 seconds)
    python benchmarks/exchange_server.py --quick    # smoke run (a few seconds)

Starts the server as a subprocess on 127.0.0.1 (market maker running, limits raised so
that the benchmark measures the server, not Binance's rate limits) and drives it with
the unmodified ``ccxt.async_support.binance`` client (its own throttle off).  One round
trip is one signed order request through ccxt, from the call to the parsed response:
``create_order`` of a post-only limit order 2 % below the market (it rests), then
``cancel_order`` of it, alternately, each timed on its own.  ``--concurrency N`` runs N
such loops at once on one client connection pool.

Reported: round trips per second (all requests / wall time), p50 and p99 latency in
ms, for creates and cancels separately too.  The whole path is measured, ccxt's
signing and parsing included: that is what a ccxt bot sees.  A short table goes to
stdout; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async

from bot4.server.process import ServerProcess, ccxt_options, point_ccxt

KEY, SECRET = "bench-key", "bench-secret"
SYMBOL = "BTC/USDT"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _loop(ex: Any, price: float, n: int, creates: list[float], cancels: list[float]) -> None:
    for _ in range(n):
        t0 = time.perf_counter()
        order = await ex.create_order(SYMBOL, "limit", "buy", 0.001, price, {"postOnly": True})
        t1 = time.perf_counter()
        await ex.cancel_order(order["id"], SYMBOL)
        t2 = time.perf_counter()
        creates.append((t1 - t0) * 1000)
        cancels.append((t2 - t1) * 1000)


async def run(port: int, pairs: int, concurrency: int, warmup: int) -> dict[str, Any]:
    ex = point_ccxt(ccxt_async.binance(ccxt_options(KEY, SECRET, enableRateLimit=False)), port)
    try:
        await ex.load_markets()
        bid = (await ex.fetch_order_book(SYMBOL, 5))["bids"][0][0]
        price = float(ex.price_to_precision(SYMBOL, bid * 0.98))
        await _loop(ex, price, warmup, [], [])
        creates: list[float] = []
        cancels: list[float] = []
        per_task = max(1, pairs // concurrency)
        started = time.perf_counter()
        await asyncio.gather(
            *(_loop(ex, price, per_task, creates, cancels) for _ in range(concurrency))
        )
        elapsed = time.perf_counter() - started
    finally:
        await ex.close()
    both = creates + cancels
    return {
        "round_trips": len(both),
        "elapsed_s": round(elapsed, 3),
        "round_trips_per_sec": round(len(both) / elapsed, 1),
        "p50_ms": round(_pct(both, 0.50), 3),
        "p99_ms": round(_pct(both, 0.99), 3),
        "create_p50_ms": round(_pct(creates, 0.50), 3),
        "create_p99_ms": round(_pct(creates, 0.99), 3),
        "cancel_p50_ms": round(_pct(cancels, 0.50), 3),
        "cancel_p99_ms": round(_pct(cancels, 0.99), 3),
        "mean_ms": round(statistics.fmean(both), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a much smaller smoke run")
    parser.add_argument("--concurrency", type=int, default=1, help="parallel order loops")
    parser.add_argument("--pairs", type=int, default=None, help="create+cancel pairs")
    args = parser.parse_args(argv)
    pairs = args.pairs or (150 if args.quick else 5000)
    server = ServerProcess(
        [
            "--api-key",
            KEY,
            "--api-secret",
            SECRET,
            "--balances",
            "USDT=100000000,BTC=100",
            "--weight-limit",
            "100000000",
            "--orders-per-10s",
            "100000000",
            "--seed",
            "1",
        ]
    )
    with server:
        result = asyncio.run(run(server.port, pairs, args.concurrency, 20 if args.quick else 100))
        alive = server.alive()
    if not alive:
        print("the server died during the benchmark", file=sys.stderr)
        return 1
    result.update(
        quick=args.quick,
        concurrency=args.concurrency,
        python=platform.python_version(),
        cpus=os.cpu_count(),
        host="127.0.0.1",
    )
    print(f"bot4 exchange server through ccxt ({'quick' if args.quick else 'full'} run)")
    print(f"  order round trips / s : {result['round_trips_per_sec']:>10,.1f}")
    print(f"  latency p50 / p99 ms  : {result['p50_ms']:>10.3f} / {result['p99_ms']:.3f}")
    for kind in ("create", "cancel"):
        p50, p99 = result[f"{kind}_p50_ms"], result[f"{kind}_p99_ms"]
        print(f"  {kind} p50 / p99 ms   : {p50:>10.3f} / {p99:.3f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    raise SystemExit(main())
