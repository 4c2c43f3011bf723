"""``--replay``: drive a symbol's book from a recorded raw Binance capture.

The capture (``../shared/data/orderbook/hftbacktest_binance_raw/*.gz``, read by
``bot4.sim.binance_capture``) is synchronised exactly as Binance documents (REST
snapshot + diffs, ``bot4.sim.l2_book.BinanceDepthSync``).  A replay account then mirrors
the recorded book in the matching engine with one or more resting orders per level:

* a level that grows gets an extra order for the difference (at the back of the queue,
  as a new order on Binance would be);
* a level that shrinks is reduced from its newest orders first (amend keeps priority);
* recorded trades are replayed as IOC orders of the replay account at the recorded price
  and quantity.  They match in queue order, so they first take the replay's own level
  (a self-trade that prints the recorded trade) and reach a client's order only where
  the recorded volume really traded through it.

So clients trade against the recorded market: a limit order fills when the recorded
book or trades cross it.  Pacing follows the capture's receive timestamps divided by
``speed``; at the end the capture starts over if ``loop`` (the next snapshot resets the
book).  Crossed moments of the raw feed can make the replay account trade with itself;
its next update restores the recorded quantities.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Final

from bot4.core.enums import OrderSide, OrderType, TimeInForce
from bot4.server.exchange import Exchange
from bot4.sim.binance_capture import (
    CaptureMessage,
    DepthDiff,
    DepthSnapshot,
    Market,
    Trade,
    read_capture,
)
from bot4.sim.errors import BinanceError
from bot4.sim.l2_book import BinanceDepthSync
from bot4.sim.matching_types import NewOrder

log = logging.getLogger(__name__)

ACCOUNT: Final = "__replay__"
DEEP_POCKETS: Final = 10**12 * 10**18


def capture_symbol(paths: Sequence[Path]) -> str:
    """The symbol a capture records (from its first diff or trade)."""
    for msg in read_capture(paths, (DepthDiff, Trade)):
        if isinstance(msg, DepthDiff | Trade):
            return msg.symbol
    raise ValueError(f"no depth diff or trade in {paths}")


class Replayer:
    """Mirrors a recorded book into the engine through the replay account."""

    def __init__(
        self,
        ex: Exchange,
        paths: Sequence[Path],
        speed: Decimal = Decimal(1),
        loop: bool = True,
        account: str = ACCOUNT,
    ) -> None:
        self.ex = ex
        self.paths = [Path(p) for p in paths]
        self.symbol = capture_symbol(self.paths)
        if self.symbol not in ex.instruments:
            raise ValueError(f"the capture records {self.symbol}, which is not served")
        if speed <= 0:
            raise ValueError("replay speed must be > 0")
        self.speed = speed
        self.loop = loop
        self.account = account
        inst = ex.instruments[self.symbol]
        self.tick, self.step = inst.tick_raw, inst.step_raw
        self.min_qty = max(inst.min_qty_raw, inst.step_raw)
        ex.open_internal(account, (inst.base, inst.quote), DEEP_POCKETS)
        self.sync = BinanceDepthSync(Market.SPOT)
        self.levels: dict[tuple[bool, int], list[int]] = {}  # (is_buy, price) -> order ids
        self.messages = 0
        self.errors = 0
        self.adopt_orders()

    def adopt_orders(self) -> None:
        self.levels.clear()
        for o in self.ex.engine.open_orders_of(self.account, self.symbol):
            self.levels.setdefault((o.is_buy, o.price), []).append(o.order_id)

    # -- one message ---------------------------------------------------------------------
    def apply(self, msg: CaptureMessage) -> None:
        """Feed one capture message and mirror what changed."""
        self.messages += 1
        if isinstance(msg, DepthSnapshot):
            if not self.sync.is_live:
                self.sync.on_snapshot(msg)
                self._mirror_all()
        elif isinstance(msg, DepthDiff):
            if msg.symbol != self.symbol:
                return
            was_live = self.sync.is_live
            before = self.sync.last_update_id
            self.sync.on_diff(msg)
            if self.sync.last_update_id == before:
                return
            if was_live:
                self._mirror([(True, p) for p, _ in msg.bids] + [(False, p) for p, _ in msg.asks])
            else:
                self._mirror_all()
        elif isinstance(msg, Trade) and msg.symbol == self.symbol and self.sync.is_live:
            self._trade(msg)

    def _mirror_all(self) -> None:
        book = self.sync.book
        wanted = {(True, p) for p in book.bids} | {(False, p) for p in book.asks}
        self._mirror(sorted(wanted | set(self.levels)))

    def _mirror(self, levels: Sequence[tuple[bool, int]]) -> None:
        """Make the replay account's quantity at each level equal the recorded one:
        shrink first (so a growing level never crosses a stale one), then grow."""
        book = self.sync.book
        grow: list[tuple[bool, int, int]] = []
        open_orders = self.ex.engine.open_orders
        for is_buy, price in levels:
            target = (book.bids if is_buy else book.asks).get(price, 0)
            target -= target % self.step
            if price % self.tick:
                target = 0
            ids = [i for i in self.levels.get((is_buy, price), []) if i in open_orders]
            have = sum(open_orders[i].leaves_qty for i in ids)
            while have > target and ids:
                oid = ids[-1]
                leaves = open_orders[oid].leaves_qty
                keep = leaves - (have - target)
                try:
                    if keep >= self.min_qty:
                        self.ex.amend(
                            self.account,
                            self.symbol,
                            oid,
                            open_orders[oid].orig_qty - leaves + keep,
                        )
                        have = target
                        break
                    self.ex.cancel(self.account, self.symbol, oid)
                except BinanceError:
                    self.errors += 1
                    break
                ids.pop()
                have -= leaves
            if ids:
                self.levels[(is_buy, price)] = ids
            else:
                self.levels.pop((is_buy, price), None)
            if target - have >= self.min_qty:
                grow.append((is_buy, price, target - have))
        for is_buy, price, qty in grow:
            side = OrderSide.BUY if is_buy else OrderSide.SELL
            req = NewOrder(self.account, self.symbol, side, OrderType.LIMIT, qty, price)
            try:
                reports = self.ex.submit(req)
            except BinanceError:
                self.errors += 1
                continue
            oid = reports[0].order_id
            if oid in open_orders:
                self.levels.setdefault((is_buy, price), []).append(oid)

    def _trade(self, t: Trade) -> None:
        qty = t.qty - t.qty % self.step
        if qty < self.min_qty or t.price % self.tick:
            return
        side = OrderSide.SELL if t.buyer_is_maker else OrderSide.BUY
        req = NewOrder(
            self.account,
            self.symbol,
            side,
            OrderType.LIMIT,
            qty,
            t.price,
            time_in_force=TimeInForce.IOC,
        )
        try:
            self.ex.submit(req)
        except BinanceError:
            self.errors += 1

    # -- the paced loop ------------------------------------------------------------------
    def _messages(self) -> Iterator[CaptureMessage]:
        while True:
            yield from read_capture(self.paths, (DepthDiff, DepthSnapshot, Trade))
            if not self.loop:
                return
            self.sync = BinanceDepthSync(Market.SPOT)  # the next snapshot resets the book

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start_wall = loop.time()
        start_ns: int | None = None
        offset = 0.0
        last_ns = 0
        speed = float(self.speed)
        for msg in self._messages():
            if start_ns is None:
                start_ns = msg.local_ns
            if msg.local_ns < last_ns:  # the capture started over: keep time moving
                offset += (last_ns - start_ns) / 1e9 / speed
                start_ns = msg.local_ns
            last_ns = msg.local_ns
            due = start_wall + offset + (msg.local_ns - start_ns) / 1e9 / speed
            delay = due - loop.time()
            if delay > 0.001:
                await asyncio.sleep(delay)
            elif self.messages % 200 == 0:
                await asyncio.sleep(0)  # behind schedule: still let requests through
            try:
                self.apply(msg)
            except Exception:
                self.errors += 1
                log.exception("replay message failed")
        log.info("replay finished: %d messages", self.messages)
