"""Peer measurement: NautilusTrader's L3 order book on the Bitfinex raw feed.

    /path/to/nautilus-venv/bin/python benchmarks/peer_nautilus_l3.py [--repeats N] [--path FILE]

It runs in an interpreter that has ``nautilus_trader`` (1.221.0 measured; its pins, e.g.
``pandas<3``, keep it out of bot4's environment), so it imports only the standard library
and nautilus, never bot4: ``benchmarks/matching.py`` can start it as a child process and
put its rate next to bot4's.  Exit code 3 (one line on stderr): nautilus not importable.

Counted, as in bot4's ``l3_messages_per_sec``: every message of the parsed JSON list
(``len(messages)``, 100,001 on the default file, event dicts and heartbeats included)
over the time from that list to the finished book; ``json.load`` is not timed and the
input is ``gc.freeze()``-d first.  Each figure is the median of ``--repeats`` runs.

* ``full``: per message, choose the action, build an ``OrderBookDelta`` and apply it
  (``OrderBook.apply_delta``, ``L3_MBO``) at once, as a live feed does.  The fastest
  build in 1.221 is ``OrderBookDelta(iid, action, BookOrder(side, price, size, id), ...)``
  with ``Price``/``Quantity`` cached per distinct JSON value (immutable); it beat
  ``OrderBookDelta.from_raw`` with cached raw ints by 10-15 % here (twelve boxed
  arguments a call), and batching everything into one ``OrderBookDeltas`` did not help.
* ``apply``: ``OrderBook.apply_deltas`` on one prebuilt ``OrderBookDeltas`` (built
  untimed): the Rust book's own loop.  ``apply_loop``: the same deltas through
  ``apply_delta``, one Python call each.

Exactness: ``Price(x, 8)`` silently rounds a float to 8 decimals, so each distinct value
is checked once, on its cache miss: for |x| < 1e6, ``round(x * 1e8) / 1e8 == x`` holds
exactly when ``x`` is the float nearest to a number of at most 8 decimals, which NT's
rounding then returns exactly (16-decimal raw ints).  Anything else is refused.

Bitfinex R0 semantics are bot4's (``bot4.sim.l3_feed``), mapped onto NT's actions with
each live order's last (price, amount) kept in a dict, since NT's ladders cannot answer
what the mapping needs.  Amount > 0 bid, < 0 ask; price 0 deletes (an unknown id is
ignored; NT's DELETE needs the side); a new id is an ADD; a known one an UPDATE, which
NT requeues at a new price and keeps in place at the same one -- bot4's rule for a
partial fill; but bot4, like the exchange, requeues an order whose amount grows, so that
case and a side flip (an UPDATE would leave the order on the old side) are DELETE + ADD.
Non-order messages are skipped; a snapshot's orders are applied as updates.  That state
costs ~20 %: a stateless mapping (UPDATE, or DELETE on the amount's sign) ran ~1.3 M/s
to this ~1.05 M/s and ends in the same book on this file, but mishandles both cases.
Unlike bot4's loop this does not count crossed/locked messages (NT accepts a crossed book).
``book_sha256`` hashes every resting order in priority order (side, id, price, size) so
a test can compare it with bot4's book; on the default file the book must be bot4's
(38 orders, 61391 x 1 / 61405.27923706 x 0.12227) or no rate is printed.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

try:
    import nautilus_trader
    from nautilus_trader.model.book import OrderBook
    from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas
    from nautilus_trader.model.enums import BookAction, BookType, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.model.objects import Price, Quantity
except ImportError as exc:  # the caller reports "peer not installed"
    IMPORT_ERROR: ImportError | None = exc
else:
    IMPORT_ERROR = None

DEFAULT_FILE = (
    Path(__file__).resolve().parents[2]
    / "shared/data/orderbook/misc/bitfinex_tBTCUSD_raw_L3_book_R0.json"
)
# bot4's final book on DEFAULT_FILE: orders, best bid, its size, best ask, its size.
REFERENCE = (38, "61391", "1", "61405.27923706", "0.12227")
PREC = 8  # Bitfinex prices and amounts here have at most 8 decimals
LIMIT = 1e6  # below it, round(x * 1e8) / 1e8 == x tests "at most 8 decimals" exactly


def checked(x: float) -> float:
    """``x`` if ``Price``/``Quantity`` at 8 decimals hold it exactly, else an error."""
    if type(x) is int or (-LIMIT < x < LIMIT and round(x * 1e8) / 1e8 == x):
        return x
    raise ValueError(f"{x!r}: more than {PREC} decimals or out of range")


def replay(messages: list[Any], sink: Callable[[Any], None]) -> None:
    """Turn the feed into deltas, passing each to ``sink`` as soon as it is built."""
    iid = InstrumentId.from_str("BTCUSD.BITFINEX")
    add, update, delete = BookAction.ADD, BookAction.UPDATE, BookAction.DELETE
    buy, sell = OrderSide.BUY, OrderSide.SELL
    no_p, no_q = Price(0, PREC), Quantity(0, PREC)
    delta, order = OrderBookDelta, BookOrder
    live: dict[int, tuple[float, float]] = {}  # id -> (price, amount) as last sent
    prices: dict[float, Any] = {}
    sizes: dict[float, Any] = {}

    def run(msgs: list[Any]) -> None:
        for msg in msgs:
            try:
                oid, price, amount = msg[1]
            except (KeyError, ValueError, TypeError, IndexError):
                oid = None  # an event dict, a heartbeat or a snapshot
            if oid is None or type(oid) is list:
                body = msg[1] if type(msg) is list and len(msg) > 1 else None
                if type(body) is list and body and type(body[0]) is list:
                    if not all(row[1] for row in body):
                        raise ValueError("a snapshot lists live orders only")
                    run([[msg[0], row] for row in body])  # its orders, as updates
            elif not price:
                gone = live.pop(oid, None)  # bot4 ignores an unknown id, too
                if gone is not None:
                    side = buy if gone[1] > 0 else sell
                    sink(delta(iid, delete, order(side, no_p, no_q, oid), 0, 0, 0, 0))
            else:
                p = prices.get(price)
                if p is None:
                    p = prices[price] = Price(checked(price), PREC)
                q = sizes.get(amount)
                if q is None:
                    q = sizes[amount] = Quantity(checked(abs(amount)), PREC)
                old = live.get(oid)
                live[oid] = (price, amount)
                if old is None:
                    action = add
                elif (amount > 0) == (old[1] > 0) and (
                    old[0] != price or abs(amount) <= abs(old[1])
                ):
                    action = update  # NT keeps its place at the same price
                else:  # a side flip, or a larger amount at the same price: requeue
                    side = buy if old[1] > 0 else sell
                    sink(delta(iid, delete, order(side, no_p, no_q, oid), 0, 0, 0, 0))
                    action = add
                side = buy if amount > 0 else sell
                sink(delta(iid, action, order(side, p, q, oid), 0, 0, 0, 0))

    run(messages)


def new_book() -> Any:
    return OrderBook(InstrumentId.from_str("BTCUSD.BITFINEX"), BookType.L3_MBO)


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    gc.freeze()  # the parsed JSON (and prebuilt deltas) are input, not the book's work
    t = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - t
    gc.unfreeze()
    return elapsed, result


def run_full(messages: list[Any]) -> Any:
    book = new_book()
    replay(messages, book.apply_delta)
    return book


def plain(value: Any) -> str:
    return format(value.normalize(), "f")


def summary(book: Any) -> dict[str, Any]:
    """The final book: order count, best levels (total size), a hash of every order."""
    digest, count = hashlib.sha256(), 0
    for tag, levels in (("B", book.bids()), ("A", book.asks())):
        for o in (o for level in levels for o in level.orders()):
            count += 1
            size = plain(o.size.as_decimal())
            digest.update(f"{tag} {o.order_id} {plain(o.price.as_decimal())} {size}\n".encode())
    result: dict[str, Any] = {"final_orders": count}
    for name, levels in (("best_bid", book.bids()), ("best_ask", book.asks())):
        top = levels[0] if levels else None
        size = sum((o.size.as_decimal() for o in top.orders()), Decimal(0)) if top else None
        result[name] = plain(top.price.as_decimal()) if top else None
        result[f"{name}_size"] = plain(size) if top else None
    return {**result, "book_sha256": digest.hexdigest()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure")
    parser.add_argument("--path", type=Path, default=DEFAULT_FILE, help="raw Bitfinex JSON")
    args = parser.parse_args(argv)
    if IMPORT_ERROR is not None:
        print(
            f"peer not installed: nautilus_trader not importable ({IMPORT_ERROR})", file=sys.stderr
        )
        return 3
    with args.path.open("rb") as fh:
        messages = json.load(fh)
    if not isinstance(messages, list):
        raise SystemExit(f"{args.path}: a raw Bitfinex capture is a JSON list")
    n, repeats = len(messages), max(1, args.repeats)

    full = [timed(lambda: run_full(messages)) for _ in range(repeats)]
    deltas: list[Any] = []
    replay(messages, deltas.append)
    if not deltas:
        raise SystemExit(f"{args.path}: no orders in the feed")
    batch = OrderBookDeltas(deltas[0].instrument_id, deltas)

    def apply_batch() -> Any:
        book = new_book()
        book.apply_deltas(batch)
        return book

    def apply_loop() -> Any:
        book = new_book()
        apply = book.apply_delta
        for d in deltas:
            apply(d)
        return book

    applied = [timed(apply_batch) for _ in range(repeats)]
    looped = [timed(apply_loop) for _ in range(repeats)]
    result = summary(full[0][1])
    if any(summary(book) != result for _, book in full[1:] + applied + looped):
        raise SystemExit("peer_nautilus_l3: the runs ended in different books")
    keys = ("final_orders", "best_bid", "best_bid_size", "best_ask", "best_ask_size")
    got = tuple(result[k] for k in keys)
    if args.path.resolve() == DEFAULT_FILE.resolve() and got != REFERENCE:
        raise SystemExit(f"peer_nautilus_l3: final book {got} is not bot4's {REFERENCE}")

    def rate(runs: list[tuple[float, Any]]) -> float:
        return round(n / statistics.median(elapsed for elapsed, _ in runs), 1)

    full_rate, apply_rate, loop_rate = rate(full), rate(applied), rate(looped)
    print(
        f"nautilus_trader {nautilus_trader.__version__} L3_MBO: full {full_rate:,.0f} msg/s, "
        f"apply {apply_rate:,.0f} msg/s (batch), {loop_rate:,.0f} (per delta); {n:,} "
        f"messages -> {got[0]} orders, bid {got[1]} x {got[2]}, ask {got[3]} x {got[4]}"
    )
    out = {"peer": "nautilus_trader", "version": nautilus_trader.__version__}
    out |= {"full_messages_per_sec": full_rate, "apply_messages_per_sec": apply_rate}
    out |= {"apply_loop_messages_per_sec": loop_rate, "messages": n, "deltas": len(deltas)}
    print(json.dumps({**out, **result, "repeats": repeats}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
