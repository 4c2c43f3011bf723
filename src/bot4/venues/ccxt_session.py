"""Keeping a ccxt venue connected: probe, subscribe, reconcile, trade; repeat on loss.

The session is a small state machine, and the risk engine's holds follow it:

    DOWN ──probe ok──► RECONCILING ──reconciled──► UP ──connection lost──► DOWN
    hold "venue-down"   hold "reconciling"          no hold

* DOWN: nothing is sent; probes (``fetch_time``, weight 1) run with exponential
  backoff and seeded jitter (``Backoff``).  A venue down for longer than
  ``connection_grace_s`` trips the kill switch (``set_connected(False)``); a short
  outage -- a restart, a dropped socket -- only holds new risk and heals by itself.
* RECONCILING: the user and market streams are (re)subscribed first, so no event is
  missed after the snapshot; then ``Reconciler.run`` compares and applies.  ccxt's own
  websocket dial backoff is cleared: this session already paced the probes, and ccxt's
  would add up to seconds to the recovery.
* UP: the outbox flows; deferred creates (connection refused, provably never sent) go
  out; every ``audit_interval_s`` a light reconciliation runs, and without websockets
  (``websockets=False`` or a venue without ccxt.pro support) it runs every
  ``poll_interval_s`` with ticker polling: the REST fallback.

Each recovery is recorded (``Recovery``): when the loss was seen, when the venue first
answered again, when new orders were allowed -- the figure the chaos tests report.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

import ccxt

from bot4.risk.breaker import CircuitOpen
from bot4.venues.backoff import Backoff
from bot4.venues.ccxt_parse import dec, parse_balances, trade_price
from bot4.venues.ccxt_venue import CcxtVenue
from bot4.venues.rate_limit import RateLimited
from bot4.venues.reconcile import Reconciler, ReconcileReport

log = logging.getLogger("bot4.venues.session")

HOLD_DOWN = "venue-down"
HOLD_RECONCILING = "reconciling"
HOLD_BOOK = "book-resync"  # + " <symbol>"
_ERRORS = (ccxt.BaseError, OSError, CircuitOpen, RateLimited)
TickHandler = Callable[[str, Decimal, int], None]  # (bot4 symbol, price, ts ns)
BookHandler = Callable[[str, Any], None]  # (bot4 symbol, ccxt order book)


class SessionState(StrEnum):
    DOWN = "DOWN"
    RECONCILING = "RECONCILING"
    UP = "UP"
    CLOSED = "CLOSED"


@dataclass(frozen=True, slots=True)
class Recovery:
    lost_ns: int  # the loss was noticed (or the session started)
    back_ns: int  # the first probe the venue answered
    ready_ns: int  # reconciled: new orders allowed again
    probes: int
    report: ReconcileReport

    @property
    def recovery_s(self) -> float:
        """From the venue answering again to new orders allowed."""
        return (self.ready_ns - self.back_ns) / 1e9


@dataclass(frozen=True, slots=True)
class BookResync:
    """An order-book sequence gap and its repair: new risk was held in between."""

    symbol: str
    gap_ns: int  # ccxt refused a diff (its U did not follow the book's nonce)
    synced_ns: int  # the first book from the new snapshot: the hold is released
    nonce: int  # that book's update id

    @property
    def held_s(self) -> float:
        return (self.synced_ns - self.gap_ns) / 1e9


class VenueSession:
    def __init__(
        self,
        venue: CcxtVenue,
        reconciler: Reconciler | None = None,
        websockets: bool = True,
        backoff: Backoff | None = None,
        poll_interval_s: float = 0.5,
        audit_interval_s: float = 5.0,
        connection_grace_s: float = 30.0,
        fresh_journal: bool = False,
        on_tick: TickHandler | None = None,
        on_book: BookHandler | None = None,
    ) -> None:
        self.venue = venue
        self.reconciler = reconciler or Reconciler(venue)
        has_ws = bool(getattr(venue.ex, "has", {}).get("watchOrders"))
        self.websockets = websockets and has_ws
        self.backoff = backoff or Backoff()
        self.poll_interval_s = poll_interval_s
        self.audit_interval_s = audit_interval_s
        self.grace_ns = int(connection_grace_s * 1e9)
        self.fresh = fresh_journal
        self.on_tick = on_tick
        self.on_book = on_book
        self.state = SessionState.DOWN
        self.recoveries: list[Recovery] = []
        self.book_resyncs: list[BookResync] = []
        self.book_resync_timeout_s = 5.0  # a resync slower than this: reconnect everything
        self._resyncing: dict[str, int] = {}  # symbol -> when the gap was seen
        self.last_tick_ns: dict[str, int] = {}
        # Market-data backpressure, counted: the trade stream hands over every trade
        # since the last read, and only the newest reaches the strategy (conflation; the
        # reference price needs no more).  ccxt.pro's caches bound what waits unread.
        self.conflated_trades: dict[str, int] = {}
        self.delivered_trades: dict[str, int] = {}
        # the venue's balances as pushed by the user stream (free, locked); see _balance_once
        self.venue_balances: dict[str, tuple[Decimal, Decimal]] = {}
        self.balance_stats = {"pushes": 0, "compared": 0, "mismatches": 0, "polled": 0}
        self.balance_settle_s = 0.05  # between comparisons
        self.balance_persist_s = 0.5  # a difference must stay this long to count
        self.balance_poll_s = 10.0  # REST fallback without websockets
        self._balance_task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._streams: list[asyncio.Task[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        venue.on_lost = self.lost
        venue.risk.hold(HOLD_DOWN)

    # -- control ----------------------------------------------------------------------------
    def start(self) -> None:
        self._sender = asyncio.ensure_future(self.venue.sender())
        self._task = asyncio.ensure_future(self.run())

    def lost(self, exc: BaseException) -> None:
        """The venue (or a stream) is gone: reconnect, resubscribe, reconcile."""
        if self.state is SessionState.UP or self.state is SessionState.RECONCILING:
            if not self._lost.is_set():
                log.warning("venue connection lost: %s", self.venue.text(exc))
            self._lost.set()

    async def wait_ready(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self.venue.ready.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self.state = SessionState.CLOSED
        await self._stop_streams()
        for task in (self._task, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.venue.close()

    # -- the state machine ------------------------------------------------------------------
    async def run(self) -> None:
        venue, risk = self.venue, self.venue.risk
        first = True
        while self.state is not SessionState.CLOSED:
            lost_ns = venue.clock.now_ns()
            probes = await self._probe(lost_ns)
            back_ns = venue.clock.now_ns()
            self._lost.clear()
            venue.connected.set()
            self.state = SessionState.RECONCILING
            risk.hold(HOLD_RECONCILING)
            risk.release(HOLD_DOWN)
            try:
                await self._start_streams()
                report = await self.reconciler.run(startup=first, fresh=first and self.fresh)
                await self._ticks()
            except Exception as exc:  # a venue error or a report that does not fit
                log.warning("reconciliation failed: %s", venue.text(exc))
                await self._go_down()
                await asyncio.sleep(self.backoff.next_delay())  # no tight retry loop
                continue
            if self._lost.is_set():
                await self._go_down()
                continue
            first = False
            self.backoff.reset()
            self.state = SessionState.UP
            venue.ready.set()
            risk.release(HOLD_RECONCILING)
            risk.kill_switch.set_connected(True)  # a trip it caused still needs a reset
            ready_ns = venue.clock.now_ns()
            self.recoveries.append(Recovery(lost_ns, back_ns, ready_ns, probes, report))
            log.info(
                "venue ready: %.3f s after it answered (reconciled %d orders, %d fills)",
                (ready_ns - back_ns) / 1e9,
                report.orders_checked,
                report.fills_applied,
            )
            deferred, venue.deferred = venue.deferred, []
            for cid in deferred:
                venue.spawn_for(cid, functools.partial(venue.submit, cid))
            venue.kick()
            await self._serve()
            await self._go_down()

    async def _probe(self, lost_ns: int) -> int:
        """Until the venue answers: backoff with jitter; trip after the grace period."""
        venue = self.venue
        probes = 0
        while True:
            probes += 1
            try:
                await venue.call("ping", venue.ex.fetch_time)
                return probes
            except _ERRORS as exc:
                down_for = venue.clock.now_ns() - lost_ns
                if down_for > self.grace_ns and venue.risk.kill_switch.connected:
                    venue.alert(f"venue down for {down_for / 1e9:.0f} s: {venue.text(exc)}")
                    venue.risk.kill_switch.set_connected(False)
            await asyncio.sleep(self.backoff.next_delay())

    async def _serve(self) -> None:
        """UP: wait for a loss; meanwhile audit (or poll, without websockets)."""
        period = self.audit_interval_s if self.websockets else self.poll_interval_s
        last_balances = self.venue.clock.now_ns()
        while self.state is SessionState.UP:
            try:
                await asyncio.wait_for(self._lost.wait(), period)
                return
            except TimeoutError:
                pass
            try:
                await self.reconciler.sync()
                await self._ticks(stale_only=self.websockets)
                now = self.venue.clock.now_ns()
                if not self.websockets and now - last_balances >= self.balance_poll_s * 1e9:
                    last_balances = now  # no balance stream: compare over REST now and then
                    self.balance_stats["polled"] += 1
                    await self.reconciler.balances(ReconcileReport(False), fresh=False)
            except Exception as exc:
                log.info("audit failed: %s", self.venue.text(exc))

    async def _go_down(self) -> None:
        venue = self.venue
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.DOWN
        venue.ready.clear()
        venue.connected.clear()
        venue.risk.hold(HOLD_DOWN)
        await self._stop_streams()

    # -- streams ----------------------------------------------------------------------------
    async def _start_streams(self) -> None:
        if not self.websockets:
            return
        ex = self.venue.ex
        with contextlib.suppress(AttributeError):
            ex.ws_dial_backoff = {}
        self._streams = [
            asyncio.ensure_future(self._stream(self._orders_once)),
            asyncio.ensure_future(self._stream(self._my_trades_once)),
        ]
        if ex.has.get("watchBalance"):
            self._streams.append(asyncio.ensure_future(self._stream(self._balance_once)))
        if self.on_book is not None:
            for symbol in self.venue.ccxt_of:
                self._streams.append(
                    asyncio.ensure_future(self._stream(functools.partial(self._book_once, symbol)))
                )
        if self.on_tick is not None:
            for symbol in self.venue.ccxt_of:
                self._streams.append(
                    asyncio.ensure_future(
                        self._stream(functools.partial(self._trades_once, symbol))
                    )
                )
        await asyncio.sleep(0.05)  # let the subscriptions go out before the snapshot

    async def _stop_streams(self) -> None:
        for symbol in self._resyncing:  # the reconnect's own holds take over
            self.venue.risk.release(f"{HOLD_BOOK} {symbol}")
        self._resyncing.clear()
        streams, self._streams = self._streams, []
        for task in streams:
            task.cancel()
        for task in streams:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _stream(self, once: Callable[[], Any]) -> None:
        while self.state is not SessionState.CLOSED:
            try:
                await once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, ccxt.ChecksumError):
                    continue  # an order-book gap: the next watch resyncs from a snapshot
                self.lost(exc)
                return

    async def _orders_once(self) -> None:
        venue = self.venue
        for o in await venue.ex.watch_orders():
            symbol = venue.bot4_of.get(str(o.get("symbol")))
            if symbol is None:
                continue
            vo = self.venue.parse_order(o)
            await venue.apply_order(vo, symbol, wait_fills=False)
            cid = venue.resolve_cid(vo.client_order_id, vo.venue_order_id)
            if cid is not None and vo.filled > 0:
                venue.spawn(self._check_fills(cid, symbol, vo.venue_order_id, vo.filled))

    async def _check_fills(self, cid: str, symbol: str, vid: str, filled: Decimal) -> None:
        """An order update said more was filled than bot4 holds: the trade events are
        probably on their way on the same stream; if not, fetch them."""
        from bot4.core.numbers import to_raw

        await asyncio.sleep(0.3)
        order = self.venue.om.state.orders[cid]
        if to_raw(filled, "filled") > order.filled_qty_raw:
            await self.venue.catch_up(cid, symbol, vid)

    async def _my_trades_once(self) -> None:
        for t in await self.venue.ex.watch_my_trades():
            self.venue.apply_fill(self.venue.parse_fill(t))

    async def _balance_once(self) -> None:
        """One balance push (Binance ``outboundAccountPosition``, after the reports that
        moved the balances).  A push is a detector, never adopted as it is: fills of the
        same moment may still be on their way to the journal on the trade stream, so a
        difference counts only when the *same* difference is seen again at least
        ``balance_persist_s`` later (an in-flight fill makes a difference that changes
        or vanishes; money moved outside bot4 makes one that stays).  Only then does the
        reconciler's balance pass run (REST, quiet snapshot, journaled
        ``BalanceAdjusted`` with an alert)."""
        venue = self.venue
        pushed = parse_balances(await venue.ex.watch_balance())
        if not pushed:
            return
        self.venue_balances.update(pushed)
        self.balance_stats["pushes"] += 1
        if self._balance_task is None or self._balance_task.done():
            self._balance_task = venue.spawn(self._compare_balances())

    def _balance_diff(self) -> tuple[tuple[str, Decimal], ...]:
        account = self.venue.om.state.account
        return tuple(
            (asset, free + locked - account.total(asset))
            for asset, (free, locked) in sorted(self.venue_balances.items())
            if asset in self.reconciler.assets and free + locked != account.total(asset)
        )

    async def _compare_balances(self) -> None:
        venue = self.venue
        first_seen: dict[tuple[tuple[str, Decimal], ...], int] = {}
        persist_ns = int(self.balance_persist_s * 1e9)
        while self.state is SessionState.UP:
            await asyncio.sleep(self.balance_settle_s)
            self.balance_stats["compared"] += 1
            diff = self._balance_diff()
            if not diff:
                return  # agreed: done until the next push
            now = venue.clock.now_ns()
            seen = first_seen.setdefault(diff, now)
            if now - seen < persist_ns:
                if len(first_seen) > 256:
                    first_seen = {diff: seen}
                continue
            self.balance_stats["mismatches"] += 1
            log.info("pushed balances differ from the journal %s: reconciling", diff)
            try:
                await self.reconciler.balances(ReconcileReport(False), fresh=False)
            except _ERRORS as exc:
                log.info("balance reconciliation failed: %s", venue.text(exc))
            return

    async def _book_once(self, symbol: str) -> None:
        """One order-book update.  ccxt keeps the book from a REST snapshot plus the
        diff stream; on a sequence gap (a diff whose ``U`` is not the book's update id
        + 1) it raises ``ChecksumError`` and drops the book, and the next call here
        subscribes again and starts from a fresh snapshot (``_stream``).  Between the
        two, the book bot4 would trade on is wrong: new risk is held (the risk engine
        denies with RECONCILING) until the first book of the new snapshot arrives; a
        resync slower than ``book_resync_timeout_s`` counts as a lost connection."""
        venue = self.venue
        since = self._resyncing.get(symbol)
        watch = venue.ex.watch_order_book(venue.ccxt_of[symbol])
        try:
            if since is None:
                book = await watch
            else:
                book = await asyncio.wait_for(watch, self.book_resync_timeout_s)
        except ccxt.ChecksumError as exc:
            if since is None:
                self._resyncing[symbol] = venue.clock.now_ns()
                venue.risk.hold(f"{HOLD_BOOK} {symbol}")
                log.warning("order book %s: sequence gap, resyncing (%s)", symbol, exc)
            raise
        if since is not None:
            del self._resyncing[symbol]
            venue.risk.release(f"{HOLD_BOOK} {symbol}")
            now = venue.clock.now_ns()
            nonce = int(book.get("nonce") or 0)
            self.book_resyncs.append(BookResync(symbol, since, now, nonce))
            log.info("order book %s: resynced in %.3f s", symbol, (now - since) / 1e9)
        if self.on_book is not None:
            self.on_book(symbol, book)

    async def _trades_once(self, symbol: str) -> None:
        trades = await self.venue.ex.watch_trades(self.venue.ccxt_of[symbol])
        if trades and self.on_tick is not None:
            self.conflated_trades[symbol] = self.conflated_trades.get(symbol, 0) + len(trades) - 1
            self.delivered_trades[symbol] = self.delivered_trades.get(symbol, 0) + 1
            last = trades[-1]
            price = trade_price(last)
            if price is not None and price > 0:
                self._tick(symbol, price, int(last.get("timestamp") or 0))

    def _tick(self, symbol: str, price: Decimal, ts_ms: int) -> None:
        now = self.venue.clock.now_ns()
        self.last_tick_ns[symbol] = now
        if self.on_tick is not None:
            self.on_tick(symbol, price, now)

    async def _ticks(self, stale_only: bool = False) -> None:
        """Last prices over REST: at (re)connect, when polling, or when a symbol's
        stream has been quiet for 10 s."""
        if self.on_tick is None:
            return
        venue = self.venue
        now = venue.clock.now_ns()
        for symbol, sym in venue.ccxt_of.items():
            if stale_only and now - self.last_tick_ns.get(symbol, 0) < 10 * 10**9:
                continue
            ticker = await venue.call("ticker", venue.ex.fetch_ticker, sym)
            info = ticker.get("info") or {}
            price = dec(info.get("lastPrice")) or dec(ticker.get("last"))
            if price is not None and price > 0:
                self._tick(symbol, price, int(ticker.get("timestamp") or 0))
