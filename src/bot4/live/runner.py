"""Paper and live trading: the backtest's order path with a wall clock and a venue.

The same strategy, risk engine and order manager as ``bot4.backtest.engine``; three
things differ (ARCHITECTURE.md): the clock is a ``LiveClock``, market data comes from
the venue (trades -> reference prices and ``on_trade``; closed candles, polled, ->
``on_bar``), and orders leave through ``CcxtVenue``.

Crash-only: the journal is the state.  On start the runner replays it into the order
manager (``OrderManager(state=replay(...))``), so client ids continue where they
stopped, and the session's start-up reconciliation settles whatever happened at the
venue meanwhile before the strategy may add risk.  Client ids carry a prefix derived
from the journal's first event (``B4<base36 ms>-N``): unique per journal, identical on
every replay, so a new journal on an old account never collides with old orders.

A clean stop (Ctrl-C, SIGTERM, ``duration_s``) calls the strategy's ``on_stop``, cancels
every open order unless ``keep_orders``, waits (bounded) until the venue confirmed,
and closes the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot4.core.clock import LiveClock
from bot4.core.errors import Bot4Error
from bot4.core.events import Event, OrderFilled, OrderInitialized, TradingStateChanged
from bot4.core.instrument import Instrument
from bot4.core.numbers import from_raw, money_from_raw, to_raw
from bot4.live.gc_pacing import GcPacer, restore_gc, tune_gc
from bot4.live.status import StatusLine, snapshot
from bot4.oms.journal import SqlJournal
from bot4.oms.manager import OrderManager
from bot4.oms.state import TradingState
from bot4.risk.engine import RiskEngine
from bot4.risk.profile import RiskProfile
from bot4.strategy.base import Bar, Strategy, StrategyContext
from bot4.strategy.market_data import Quote, Tick
from bot4.strategy.positions import position_changed
from bot4.venues.backoff import Backoff
from bot4.venues.ccxt_config import Credentials, VenueConfig, make_client
from bot4.venues.ccxt_session import VenueSession
from bot4.venues.ccxt_venue import CcxtVenue
from bot4.venues.ccxt_wire import load_instruments
from bot4.venues.rate_limit import LimiterRegistry, VenueLimiter
from bot4.venues.reconcile import Reconciler

log = logging.getLogger("bot4.live")
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def journal_prefix(first_ts_ns: int) -> str:
    """``B4`` + the journal's first event time in base-36 milliseconds."""
    n = first_ts_ns // 1_000_000
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = _B36[r] + out
    return "B4" + (out or "0")


@dataclass(slots=True)
class RunnerConfig:
    venue: VenueConfig
    symbols: list[str]
    strategy: type[Strategy]
    params: dict[str, Any] = field(default_factory=dict)
    journal_url: str = "sqlite:///bot4-live.db"
    risk_profile: RiskProfile | None = None
    keep_orders: bool = False
    bar_interval: str = "1m"
    bar_poll_s: float = 2.0
    warmup_bars: int = 500  # closed candles that warm the indicators at the start
    status_interval_s: float = 5.0
    duration_s: float | None = None
    seed: int | None = None
    connection_grace_s: float = 30.0
    audit_interval_s: float = 5.0
    ready_timeout_s: float = 60.0
    resend_after_restart: bool = False
    registry: LimiterRegistry | None = None
    limiter: VenueLimiter | None = None  # overrides the registry's (benchmarks)
    # where the credentials came from, read again if the venue refuses them (rotation)
    reload_credentials: Callable[[], Credentials] | None = None
    status: bool = True
    books: bool = False  # stream order books to Strategy.on_book (websockets only)
    control_path: str | None = None  # operator requests (default: next to a SQLite journal)
    tune_gc: bool = True  # gc.freeze() after start-up, rarer young collections (tune_gc)
    gc_pacing_s: float = 0.05  # with tune_gc: young collection + freeze this often (GcPacer)
    gc_deep_every_s: float = 3600.0  # ... and a full collection this often


class LiveRunner:
    def __init__(self, cfg: RunnerConfig) -> None:
        self.cfg = cfg
        self.clock = LiveClock()
        self.errors: list[str] = []
        self.timers: list[asyncio.Task[None]] = []
        self.last_bar_ms: dict[str, int] = {}
        self.started_ns = 0
        self.gc_pacer: GcPacer | None = None
        self.journal_failed: str | None = None
        self._stop = asyncio.Event()
        self._gc_before: tuple[int, int, int] | None = None

    # -- wiring ---------------------------------------------------------------------------
    async def setup(self) -> None:
        """Connect far enough to know the instruments, then wire everything."""
        cfg = self.cfg
        client = make_client(cfg.venue)
        self.journal = SqlJournal(cfg.journal_url, write_ahead=True)
        events = list(self.journal.read())
        wanted = list(cfg.symbols)
        known = {s.replace("/", "").upper() for s in wanted}
        for ev in events:  # a replay needs every instrument the journal traded
            if isinstance(ev, OrderInitialized) and ev.symbol not in known:
                known.add(ev.symbol)
                wanted.append(ev.symbol)
        instruments, ccxt_of = await load_instruments(client, wanted)
        self.wire(client, instruments, ccxt_of, events)

    def wire(
        self,
        client: Any,
        instruments: dict[str, Instrument],
        ccxt_of: dict[str, str],
        events: list[Event],
    ) -> None:
        """Journal replay -> order manager -> risk engine -> venue, session, strategy.
        No I/O (the journal aside): the benchmark wires a runner to a stand-in client."""
        cfg = self.cfg
        self.client = client
        if not hasattr(self, "journal"):
            self.journal = SqlJournal(cfg.journal_url, write_ahead=True)
        self.instruments = instruments
        state = TradingState(instruments).replay(events) if events else None
        self.om = om = OrderManager(
            instruments.values(), clock=self.clock, journal=self.journal, state=state
        )
        self.fresh = not events
        if self.fresh:
            om.record(TradingStateChanged, trading_state="ACTIVE", reason="journal opened")
        first = events[0] if events else next(iter(self.journal.read()))
        om.id_prefix = journal_prefix(first.ts_event)
        self.risk = risk = RiskEngine(om, cfg.risk_profile or RiskProfile.default())
        self.venue = CcxtVenue(
            client,
            om,
            risk,
            ccxt_of,
            credentials=cfg.venue.credentials,
            reload_credentials=cfg.reload_credentials,
            limiter=cfg.limiter,
            registry=cfg.registry,
            recv_window_ms=cfg.venue.recv_window_ms,
            clock=self.clock,
        )
        self._wants_quotes = cfg.strategy.on_quote is not Strategy.on_quote
        self._last_quote: dict[str, tuple[Any, ...]] = {}
        self.session = VenueSession(
            self.venue,
            Reconciler(self.venue, resend_after_restart=cfg.resend_after_restart),
            websockets=cfg.venue.websockets,
            backoff=Backoff(seed=cfg.seed),
            poll_interval_s=cfg.venue.poll_interval_s,
            audit_interval_s=cfg.audit_interval_s,
            connection_grace_s=cfg.connection_grace_s,
            fresh_journal=self.fresh,
            on_tick=self.on_tick,
            # the book stream feeds on_book, and on_quote (its best levels) if overridden
            on_book=self.on_book if cfg.books or self._wants_quotes else None,
        )
        self.strategy = strategy = cfg.strategy(**cfg.params)
        default = next(iter(instruments))
        self.ctx = StrategyContext(
            risk, self.clock, instruments, default, self.venue.kick, self.set_timer
        )
        strategy._bind(self.ctx)
        # a handler the strategy does not override is not called (on every order event)
        self._calls_on_order = type(strategy).on_order is not Strategy.on_order
        self._calls_on_fill = type(strategy).on_fill is not Strategy.on_fill
        self._calls_on_position = type(strategy).on_position is not Strategy.on_position
        # positions as the journal left them: the first fill's change is from there
        self._position_qty = {s: p.qty_raw for s, p in om.state.positions.items()}
        # Without on_order it reads only fills (on_fill, on_position) and cancels (a
        # close waiting for its exits to be released).
        om.subscribe(
            self._on_event, None if self._calls_on_order else ("OrderFilled", "OrderCanceled")
        )

    # -- market data ----------------------------------------------------------------------
    def on_tick(self, symbol: str, price: Decimal, ts_ns: int) -> None:
        """A trade from the venue: the reference price, then the strategy."""
        self.risk.update_price_raw(symbol, to_raw(price, "price"), ts_ns)
        if self.started_ns:
            self._guard(self.strategy.on_trade, Tick(symbol, price, ts_ns))

    def on_book(self, symbol: str, book: Any) -> None:
        """An order-book update (ccxt's book: ``bids``/``asks`` lists, ``nonce``); its
        best levels, when they changed, are the strategy's ``on_quote``."""
        if not self.started_ns:
            return
        if self.cfg.books:
            self._guard(self.strategy.on_book, book)
        if self._wants_quotes:
            bids, asks = book.get("bids"), book.get("asks")
            if bids and asks:
                top = (bids[0][0], bids[0][1], asks[0][0], asks[0][1])
                if top != self._last_quote.get(symbol):
                    self._last_quote[symbol] = top
                    bid, bid_qty, ask, ask_qty = (Decimal(str(x)) for x in top)
                    quote = Quote(symbol, self.clock.now_ns(), bid, bid_qty, ask, ask_qty)
                    self._guard(self.strategy.on_quote, quote)

    async def _bars(self) -> None:
        """Closed candles, polled: each one once, in order, after its close."""
        venue = self.venue
        interval_ms = int(self.client.parse_timeframe(self.cfg.bar_interval) * 1000)
        while True:
            for symbol, sym in venue.ccxt_of.items():
                if not venue.ready.is_set():
                    break
                first = symbol not in self.last_bar_ms
                limit = max(self.cfg.warmup_bars, 1) if first else 5
                try:
                    rows = await venue.call(
                        "ohlcv", self.client.fetch_ohlcv, sym, self.cfg.bar_interval, None, limit
                    )
                except Exception as exc:
                    log.info("bars: %s", venue.text(exc))
                    continue
                now_ms = self.clock.now_ns() // 1_000_000
                closed = [r for r in rows if int(r[0]) + interval_ms <= now_ms]
                last = self.last_bar_ms.get(symbol)
                if last is None:  # history warms the indicators; on_bar from the next close
                    self._warm(
                        symbol, closed[-self.cfg.warmup_bars :] if self.cfg.warmup_bars else []
                    )
                    self.last_bar_ms[symbol] = (
                        int(closed[-1][0]) if closed else now_ms - interval_ms
                    )
                    continue
                for r in closed:
                    if int(r[0]) > last:
                        self.last_bar_ms[symbol] = int(r[0])
                        self._bar(symbol, r)
            await asyncio.sleep(self.cfg.bar_poll_s)

    def _warm(self, symbol: str, rows: list[list[Any]]) -> None:
        """Feed past closes to the symbol's indicators only: a strategy starts with
        warm indicators (as in a backtest) but never trades on a bar that is history."""
        updates = [ind.update for sym, ind in self.strategy._indicators if sym == symbol]
        for r in rows:
            close = float(r[4])
            for update in updates:
                update(close)

    def _bar(self, symbol: str, r: list[Any]) -> None:
        o, h, lo, c, v = (float(x) if x is not None else 0.0 for x in r[1:6])
        bar = Bar(symbol, int(r[0]) * 1_000_000, o, h, lo, c, v)
        for sym, ind in self.strategy._indicators:
            if sym == symbol:
                ind.update(c)
        self._guard(self.strategy.on_bar, bar)

    # -- strategy plumbing ----------------------------------------------------------------
    def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        """A strategy callback: its exception is logged and counted, never fatal (the
        order path it used has already been checked and journaled).  After a journal
        failure the strategy is no longer called: every action would be refused."""
        if self.journal_failed:
            return
        try:
            fn(*args)
        except Exception as exc:
            self._strategy_error(exc)
        self.venue.kick()

    def _strategy_error(self, exc: BaseException) -> None:
        self.errors.append(f"{type(exc).__name__}: {exc}")
        log.error("strategy error: %s: %s", type(exc).__name__, exc)

    def set_timer(self, name: str, interval_ns: int) -> None:
        if interval_ns <= 0:
            raise ValueError("interval_ns must be > 0")

        async def tick() -> None:
            while True:
                await asyncio.sleep(interval_ns / 1e9)
                self._guard(self.strategy.on_timer, name)

        self.timers.append(asyncio.ensure_future(tick()))

    def _on_event(self, event: Event) -> None:
        kind = event.kind
        cid = getattr(event, "client_order_id", None)
        if not cid or kind in ("OrderInitialized", "OrderDenied"):
            return
        order = self.om.state.orders.get(cid)
        if order is None or not self.started_ns:
            return
        if isinstance(event, OrderFilled):
            if self._calls_on_fill:
                self._guard(self.strategy.on_fill, order, event)
            if self._calls_on_position:
                pos = self.om.state.positions.get(order.symbol)
                before = self._position_qty.get(order.symbol, 0)
                if pos is not None and pos.qty_raw != before:
                    self._position_qty[order.symbol] = pos.qty_raw
                    change = position_changed(pos, before, event.ts_event)
                    self._guard(self.strategy.on_position, change)
        if self._calls_on_order:
            self._guard(self.strategy.on_order, order)
        if kind == "OrderCanceled" and self.ctx.pending_close:
            for sym in list(self.ctx.pending_close):
                self.ctx.pending_close.discard(sym)
                self._guard(self.strategy.close_position, sym)

    # -- run ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> dict[str, Any]:
        """Trade until ``stop`` is set or ``duration_s`` passes; returns the summary."""
        stop = self._stop = stop or asyncio.Event()
        tasks: list[asyncio.Task[Any]] = []
        status: StatusLine | None = None
        try:
            await self.setup()
            self.session.start()
            status = StatusLine(self) if self.cfg.status else None
            ready = asyncio.ensure_future(self.venue.ready.wait())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                [ready, stopped],
                timeout=self.cfg.ready_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            ready.cancel()
            stopped.cancel()
            if not stop.is_set():
                await self._trade(stop, status, tasks)
        finally:
            for task in tasks + self.timers:
                task.cancel()
            await self.shutdown()
            if status is not None:
                status.close()
            if self._gc_before is not None:
                restore_gc(self._gc_before)
                self._gc_before = None
        return self.summary()

    async def _trade(
        self, stop: asyncio.Event, status: StatusLine | None, tasks: list[asyncio.Task[Any]]
    ) -> None:
        if not self.venue.ready.is_set():
            raise Bot4Error("the venue did not become ready")
        self.started_ns = self.clock.now_ns()
        if self.cfg.tune_gc and self._gc_before is None:
            self._gc_before = tune_gc()
            if self.cfg.gc_pacing_s > 0:
                self.gc_pacer = GcPacer(self.cfg.gc_pacing_s, self.cfg.gc_deep_every_s)
                tasks.append(asyncio.ensure_future(self.gc_pacer.run()))
        self._guard(self.strategy.on_start)
        tasks.append(asyncio.ensure_future(self._bars()))
        tasks.append(asyncio.ensure_future(self._heartbeat()))
        tasks.append(asyncio.ensure_future(self._control()))
        if status is not None:
            tasks.append(asyncio.ensure_future(status.run(self.cfg.status_interval_s)))
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait([waiter], timeout=self.cfg.duration_s)
        waiter.cancel()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            failed = self.om.failed or self.journal.failed
            if failed is not None and not self.journal_failed:
                # Fail closed and stay up: the manager now refuses every command and the
                # adapter has stopped sending, so nothing leaves that is not journaled;
                # the process keeps the status line and the market data for the operator
                # (the journal's file is the state: restart once it is writable again).
                self.journal_failed = f"{failed!r}"[:200]
                log.critical("journal failed (%s): trading stopped", failed)
                self.errors.append(f"journal failed: {self.journal_failed}")
                self.venue.closed = True
            try:
                self.risk.heartbeat()
            except Bot4Error as exc:
                log.warning("heartbeat: %s", exc)
            self.venue.kick()

    async def _control(self) -> None:
        """Operator requests (``bot4 risk reset|halt``): see ``bot4.live.control``."""
        from bot4.live.control import POLL_S, ControlChannel, control_path

        try:
            path = Path(self.cfg.control_path or control_path(self.cfg.journal_url))
        except Bot4Error as exc:
            log.info("no operator control channel: %s", exc)
            return
        self.control = channel = ControlChannel(self, path)
        with contextlib.suppress(OSError):
            path.unlink()  # a request older than this session is not for it
        while True:
            await asyncio.sleep(POLL_S)
            answer = channel.poll()
            if answer is not None:
                log.warning("operator request: %s", answer)

    async def shutdown(self) -> None:
        """on_stop, cancel open orders (unless keep_orders), drain, close."""
        if self.started_ns:
            self._guard(self.strategy.on_stop)
        if self.journal_failed:
            log.critical("journal failed: open orders left as they are (nothing can be journaled)")
        elif not self.cfg.keep_orders and hasattr(self, "venue"):
            for order in list(self.om.state.open_orders.values()):
                if order.status.value != "PENDING_CANCEL":
                    try:
                        self.risk.cancel(order.client_order_id)
                    except Bot4Error as exc:
                        log.warning("cancel %s: %s", order.client_order_id, exc)
            for order in list(self.om.state.orders.values()):  # unreleased bracket exits
                if order.status.value == "INITIALIZED":
                    with contextlib.suppress(Bot4Error):
                        self.risk.cancel(order.client_order_id)
            if self.venue.ready.is_set() and not await self.venue.drain(10.0):
                log.warning("open orders left: the venue did not confirm every cancel")
        if hasattr(self, "venue") and self.venue.ready.is_set() and not self.journal_failed:
            try:  # a last look: fills that landed while the orders were cancelled
                await asyncio.wait_for(self.session.reconciler.sync(), 10.0)
            except Exception as exc:
                log.warning("final reconciliation failed: %s", self.venue.text(exc))
        if hasattr(self, "session"):
            await self.session.close()
        if hasattr(self, "client"):
            with contextlib.suppress(Exception):
                await self.client.close()
        if hasattr(self, "journal"):
            self.journal.close()

    # -- reporting ------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        om, venue, session = self.om, self.venue, self.session
        fills = [
            {
                "cid": e.client_order_id,
                "symbol": om.state.orders[e.client_order_id].symbol,
                "trade_id": e.trade_id,
                "qty": str(from_raw(e.qty_raw)),
                "price": str(from_raw(e.price_raw)),
                "fee": str(money_from_raw(e.fee_money)),
                "fee_asset": e.fee_asset,
            }
            for e in _journal_fills(self.cfg.journal_url)
        ]
        return {
            "id_prefix": om.id_prefix,
            "orders": len(om.state.orders),
            "open_orders": sorted(om.state.open_orders),
            "fills": fills,
            "positions": {
                s: str(from_raw(p.qty_raw)) for s, p in sorted(om.state.positions.items())
            },
            "balances": {
                a: str(money_from_raw(b.total))
                for a, b in sorted(om.state.account.balances.items())
            },
            "stats": dict(venue.stats),
            "gc": self.gc_pacer.stats.as_dict() if self.gc_pacer is not None else None,
            "alerts": list(venue.alerts),
            "balance_stream": dict(session.balance_stats),
            "market_data": {
                "trades_delivered": dict(session.delivered_trades),
                "trades_conflated": dict(session.conflated_trades),
            },
            "strategy_errors": list(self.errors),
            "denied": self.risk.denied,
            "trading_state": om.state.trading_state,
            "recoveries": [
                {
                    "lost_ns": r.lost_ns,
                    "back_ns": r.back_ns,
                    "ready_ns": r.ready_ns,
                    "recovery_s": round(r.recovery_s, 4),
                    "probes": r.probes,
                    "orders_checked": r.report.orders_checked,
                    "fills_applied": r.report.fills_applied,
                    "lost_orders": r.report.lost_orders,
                    "balance_adjustments": {
                        k: str(v) for k, v in r.report.balance_adjustments.items()
                    },
                }
                for r in session.recoveries
            ],
            "status": snapshot(self),
        }


def _journal_fills(url: str) -> list[OrderFilled]:
    with SqlJournal(url) as j:
        return [e for e in j.read() if isinstance(e, OrderFilled)]
