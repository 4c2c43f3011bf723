"""The venue adapter over ccxt: the far end of the order path in paper and live.

The order manager journals every order (``Initialized`` + ``Submitted``, with its
deterministic client order id) before it puts a ``SubmitOrder`` in ``om.outbox``; this
adapter drains the outbox, sends, and turns what the venue says into ``om.on_*`` calls.
Every request waits in the venue's shared ``VenueLimiter`` and runs inside the risk
engine's ``venue_breaker``; every error goes through ``classify``.

No lost and no doubled orders:

* the client order id travels with the order (Binance ``newClientOrderId``), so the
  venue can always be asked about it;
* a create whose fate is unknown (timeout, connection lost after sending, a 5xx) is
  never resent blindly: the adapter asks the venue by client order id until it finds
  the order (then applies what the venue says) or until the receive window of the
  original request has passed -- a signed request older than ``recvWindow`` is refused
  by the venue, so after that, "not found" is proof -- and only then resends, under the
  same client id (a venue refuses a duplicate id among open orders);
* a connection refused before anything was sent is provably not at the venue: the
  order waits for the reconnect and goes out then;
* a 429/418 is never repeated before the Retry-After instant (the limiter blocks).

Reports arrive from the create/cancel responses, the user stream (``watch_orders`` +
``watch_my_trades``) or REST polling, and again from reconciliation; they may repeat and
race each other.  That is safe because the order manager treats repeated reports as
no-ops and de-duplicates fills by the venue's trade id.  When a venue says an order has
filled more than the fills bot4 holds, the missing trades are fetched by order.

The connection itself (reconnects, subscriptions, reconciliation) is
``bot4.venues.ccxt_session``; the adapter's requests are what it drives.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import ccxt

from bot4.core.clock import Clock, LiveClock
from bot4.core.enums import OrderStatus
from bot4.core.errors import Bot4Error, JournalUnavailable
from bot4.core.numbers import from_raw, to_raw
from bot4.core.order import Order
from bot4.oms.manager import OrderManager
from bot4.oms.requests import CancelOrder, ModifyOrder, SubmitOrder
from bot4.risk.breaker import CircuitOpen
from bot4.risk.engine import RiskEngine
from bot4.venues.ccxt_config import Credentials, RedactFilter, redact
from bot4.venues.ccxt_parse import VenueFill, VenueOrder, VenueStatus, parse_fill, parse_order
from bot4.venues.ccxt_wire import (
    MS,
    is_connect_failure,
    is_connection_loss,
    order_args,
    request_weights,
)
from bot4.venues.client_ids import ClientIdCodec
from bot4.venues.errors import ErrorAction, classify, counts_against_venue
from bot4.venues.rate_limit import DEFAULT_REGISTRY, LimiterRegistry, RateLimited, VenueLimiter

log = logging.getLogger("bot4.venues.ccxt")


class CcxtVenue:
    """Orders, cancels and reports between one OrderManager and one ccxt exchange."""

    def __init__(
        self,
        client: Any,
        om: OrderManager,
        risk: RiskEngine,
        ccxt_symbols: dict[str, str],
        credentials: Credentials | None = None,
        limiter: VenueLimiter | None = None,
        registry: LimiterRegistry | None = None,
        recv_window_ms: int = 5_000,
        max_in_flight: int = 16,
        resend_unknown: bool = True,
        clock: Clock | None = None,
        reload_credentials: Callable[[], Credentials] | None = None,
    ) -> None:
        self.ex = client
        self.om = om
        self.risk = risk
        self.name = str(client.id)
        self.binance = self.name.startswith("binance")
        self.ccxt_of = dict(ccxt_symbols)
        self.bot4_of = {v: k for k, v in self.ccxt_of.items()}
        self.secrets = (credentials or Credentials()).values()
        # Where the credentials came from (env, file): read again when the venue says
        # they no longer work (rotated keys), then the refused request is retried once.
        self.reload_credentials = reload_credentials
        key = hashlib.sha256(self.secrets[0].encode()).hexdigest()[:8] if self.secrets else ""
        self.limiter = limiter or (registry or DEFAULT_REGISTRY).for_venue(
            self.name, float(getattr(client, "rateLimit", 100) or 100), key
        )
        self.breaker = risk.kill_switch.venue_breaker
        self.recv_window_ns = recv_window_ms * MS
        self.resend_unknown = resend_unknown
        self.clock: Clock = clock if clock is not None else LiveClock()
        # the names sent for client ids (unchanged, or UUID5 where the venue's rules say)
        self.ids = ClientIdCodec(self.name)
        self.ids.learn(om.state.orders)
        self.venue_ids: dict[str, str] = {}  # venue order id -> client order id
        for order in om.state.orders.values():
            if order.venue_order_id:
                self.venue_ids[order.venue_order_id] = order.client_order_id
        self.sent: set[str] = set()  # client ids this process has sent (or tried to)
        self.inflight: dict[str, asyncio.Task[Any]] = {}  # the last command per order
        self.resolvers: dict[str, asyncio.Task[Any]] = {}  # searches for unknown outcomes
        self.unknown: dict[str, int] = {}  # client id -> send time, outcome unknown
        self.deferred: list[str] = []  # creates that never left: resend when connected
        self.alerts: list[str] = []
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "requests",
                "creates",
                "cancels",
                "rejected",
                "unknown_outcomes",
                "resolved_found",
                "resent",
                "fills",
                "catch_ups",
                "errors",
            ),
            0,
        )
        self.connected = asyncio.Event()  # set by the session while the venue answers
        self.ready = asyncio.Event()  # connected and reconciled: the outbox may flow
        self.on_lost: Callable[[BaseException], None] | None = None
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    # -- requests ---------------------------------------------------------------------------
    def weights(self, op: str) -> dict[str, int]:
        return request_weights(self.binance, self.limiter.buckets, op)

    async def call(self, op: str, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> Any:
        """One venue request: rate limiter, then the circuit breaker; the venue's verdict
        on a 429/418 goes back to the limiter, a lost connection to the session."""
        await self.limiter.acquire(self.weights(op), max_wait_ns=30 * 10**9)
        self.stats["requests"] += 1
        refused: BaseException | None = None
        try:
            async with self.breaker:
                try:
                    return await fn(*args, **kw)
                except ccxt.BaseError as exc:
                    if counts_against_venue(exc):
                        raise
                    refused = exc  # the venue answered: healthy, our request was refused
        except (ccxt.BaseError, OSError) as exc:
            self.stats["errors"] += 1
            if isinstance(exc, ccxt.DDoSProtection):
                self._throttled(exc)
            if is_connection_loss(exc) and self.on_lost is not None:
                self.on_lost(exc)
            raise
        assert refused is not None
        raise refused

    def _throttled(self, exc: BaseException) -> None:
        headers = getattr(self.ex, "last_response_headers", None) or {}
        retry_after: float | None = None
        for k, v in dict(headers).items():
            if str(k).lower() == "retry-after":
                try:
                    retry_after = float(v)
                except ValueError:
                    retry_after = None
        banned = "banned" in str(exc).lower() or "418" in str(exc)
        self.limiter.on_response(418 if banned else 429, retry_after)

    def text(self, exc: BaseException) -> str:
        return redact(f"{type(exc).__name__}: {exc}", self.secrets)[:300]

    def alert(self, message: str) -> None:
        self.alerts.append(message)
        log.warning("%s: %s", self.name, message)

    def _om(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """An order-manager call from a venue report: a report that does not fit (an
        illegal transition, an over-fill) is an alert for reconciliation, not a crash.
        A journal failure is fatal: the manager has already stopped itself."""
        try:
            return fn(*args, **kw)
        except JournalUnavailable:
            raise
        except Bot4Error as exc:
            self.alert(f"report refused by the order manager: {exc}")
            return None

    # -- the outbox -------------------------------------------------------------------------
    def kick(self) -> None:
        """Wake the sender: the order manager's outbox has work."""
        self._wake.set()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._task_done)
        return task

    def spawn_for(self, cid: str, make: Callable[[], Awaitable[None]]) -> None:
        """Run ``make()`` after everything already queued or resolving for order ``cid``:
        a cancel never overtakes its order's create (or the search for it)."""
        prev = self.inflight.get(cid)
        task = self.spawn(self._chain(prev, cid, make))
        self.inflight[cid] = task
        task.add_done_callback(lambda t: self._clear(self.inflight, cid, t))

    @staticmethod
    def _clear(tasks: dict[str, asyncio.Task[Any]], cid: str, task: asyncio.Task[Any]) -> None:
        if tasks.get(cid) is task:
            del tasks[cid]

    async def _chain(
        self, prev: asyncio.Task[Any] | None, cid: str, make: Callable[[], Awaitable[None]]
    ) -> None:
        if prev is not None and not prev.done():
            await asyncio.wait([prev])
        while (r := self.resolvers.get(cid)) is not None and not r.done():
            await asyncio.wait([r])
        async with self._slots:
            await make()

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            if isinstance(exc, JournalUnavailable):
                self.alert(f"journal failed, stopping: {exc}")
                self.closed = True
            else:
                self.alert(f"venue task failed: {self.text(exc)}")

    async def sender(self) -> None:
        """Drain ``om.outbox`` whenever the venue is ready: each command becomes its own
        task (up to ``max_in_flight``), and commands of one order run in order."""
        outbox = self.om.outbox
        while not self.closed:
            await self._wake.wait()
            self._wake.clear()
            while outbox and self.ready.is_set() and not self.closed:
                self.dispatch(outbox.popleft())

    def dispatch(self, cmd: SubmitOrder | CancelOrder | ModifyOrder) -> None:
        cid = cmd.client_order_id
        if isinstance(cmd, SubmitOrder):
            self.sent.add(cid)
            self.spawn_for(cid, functools.partial(self.submit, cid))
        elif isinstance(cmd, CancelOrder):
            self.spawn_for(cid, functools.partial(self.cancel, cid))
        else:
            self.alert(
                f"{cid}: amend to {from_raw(cmd.quantity_raw)} not sent: spot venues have "
                "no amend; the order keeps its venue quantity (emulated OCO)"
            )

    # -- create -----------------------------------------------------------------------------
    def order_args(self, order: Order) -> tuple[str, str, str, str, str | None, dict[str, Any]]:
        args = order_args(order, self.ccxt_of[order.symbol])
        args[5]["clientOrderId"] = self.ids.encode(order.client_order_id)
        return args

    async def submit(self, cid: str) -> None:
        """Send one order; whatever happens, the order manager hears the outcome or the
        order is queued for the resolver / the next connection."""
        order = self.om.state.orders[cid]
        if order.is_closed or order.status not in (
            OrderStatus.SUBMITTED,
            OrderStatus.PENDING_CANCEL,
        ):
            return
        if order.status is OrderStatus.PENDING_CANCEL and not order.venue_order_id:
            # cancelled before it was ever sent: nothing to send, nothing to cancel
            self._om(self.om.on_canceled, cid, reason="canceled before sending")
            return
        sent_ns = self.clock.now_ns()
        self.stats["creates"] += 1
        reauthed = False
        for _ in range(5):  # only WAIT and one re-authentication (not executed) loop
            try:
                resp = await self.call("create", self.ex.create_order, *self.order_args(order))
            except (CircuitOpen, RateLimited) as exc:
                self.stats["rejected"] += 1
                self._om(self.om.on_rejected, cid, f"not sent: {exc}")
                return
            except (ccxt.BaseError, OSError) as exc:
                action = classify(exc, write=True)
                if action is ErrorAction.WAIT:
                    continue  # the limiter now holds every request until Retry-After
                if action is ErrorAction.REAUTHENTICATE and not reauthed and self.reauth():
                    reauthed = True
                    continue  # refused before execution: safe to send again
                await self._create_failed(cid, exc, action, sent_ns)
                return
            await self.apply_order(self.parse_order(resp), order.symbol)
            return
        self._om(self.om.on_rejected, cid, "not sent: throttled five times")

    def reauth(self) -> bool:
        """Load the credentials again; True if they changed and the client now uses
        them (ccxt signs every request with its current ``apiKey``/``secret``)."""
        if self.reload_credentials is None:
            return False
        try:
            creds = self.reload_credentials()
        except (Bot4Error, OSError) as exc:
            self.alert(f"re-authentication: cannot load credentials: {exc}")
            return False
        if not creds.present or creds.values() == self.secrets:
            return False
        for filt in getattr(self.ex.logger, "filters", ()):
            if isinstance(filt, RedactFilter):
                filt.add(creds.values())
        self.ex.apiKey, self.ex.secret = creds.api_key, creds.secret
        if creds.password:
            self.ex.password = creds.password
        self.secrets = creds.values()
        self.stats["reauthenticated"] = self.stats.get("reauthenticated", 0) + 1
        self.alert("re-authenticated with reloaded credentials")
        return True

    async def _create_failed(
        self, cid: str, exc: BaseException, action: ErrorAction, sent_ns: int
    ) -> None:
        reason = self.text(exc)
        if action is ErrorAction.UNKNOWN_OUTCOME and is_connect_failure(exc):
            self.deferred.append(cid)  # never left this host: resend once connected
            return
        if "Duplicate order" in str(exc) or action in (
            ErrorAction.UNKNOWN_OUTCOME,
            ErrorAction.RETRY,
            ErrorAction.RESYNC,
        ):
            if isinstance(exc, ccxt.InvalidNonce):
                await self._resync_time()
            self.stats["unknown_outcomes"] += 1
            self.unknown[cid] = sent_ns
            task = self.spawn(self.resolve(cid))
            self.resolvers[cid] = task
            task.add_done_callback(lambda t: self._clear(self.resolvers, cid, t))
            return
        self.stats["rejected"] += 1
        self._om(self.om.on_rejected, cid, reason)
        if action in (ErrorAction.STOP_TRADING, ErrorAction.REAUTHENTICATE):
            self.risk.kill_switch.trigger(f"venue: {reason}")

    async def _resync_time(self) -> None:
        loader = getattr(self.ex, "load_time_difference", None)
        if loader is not None:
            try:
                await self.call("ping", loader)
            except (ccxt.BaseError, OSError) as exc:
                self.alert(f"time resync failed: {self.text(exc)}")

    async def resolve(self, cid: str, resend: bool | None = None) -> None:
        """A create with an unknown outcome: find the order at the venue, or prove it is
        not there (its receive window has passed) before sending it again (``resend``,
        default ``resend_unknown``) -- or, without resending, reject it."""
        resend = self.resend_unknown if resend is None else resend
        order = self.om.state.orders[cid]
        deadline = self.unknown.get(cid, self.clock.now_ns()) + self.recv_window_ns + 500 * MS
        delay = 0.05
        while not self.closed:
            await self.connected.wait()
            try:
                found = await self.query(cid, order.symbol)
            except (ccxt.BaseError, OSError, CircuitOpen, RateLimited) as exc:
                if not isinstance(exc, ccxt.OrderNotFound):
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                found = None
            if found is not None:
                self.unknown.pop(cid, None)
                self.stats["resolved_found"] += 1
                await self.apply_order(found, order.symbol)
                return
            if self.clock.now_ns() >= deadline:
                self.unknown.pop(cid, None)
                if order.is_closed:
                    return
                if order.status is OrderStatus.PENDING_CANCEL:
                    self._om(self.om.on_canceled, cid, reason="never reached the venue")
                    return
                if not resend:
                    self.stats["rejected"] += 1
                    self._om(self.om.on_rejected, cid, "LOST: never reached the venue")
                    return
                self.stats["resent"] += 1
                log.info("%s: %s is provably not at the venue: resending", self.name, cid)
                await self.submit(cid)
                return
            await asyncio.sleep(min(0.25, max((deadline - self.clock.now_ns()) / 1e9, 0.01)))

    def _cid_params(self, cid: str) -> dict[str, str]:
        sent = self.ids.encode(cid)
        return {"origClientOrderId": sent} if self.binance else {"clientOrderId": sent}

    def parse_order(self, order: Mapping[str, Any]) -> VenueOrder:
        """A ccxt order, with bot4's client id (the venue knows the name sent)."""
        vo = parse_order(order)
        cid = self.ids.decode(vo.client_order_id)
        fills = tuple(self._with_cid(f) for f in vo.fills)
        if cid == vo.client_order_id and fills == vo.fills:
            return vo
        return replace(vo, client_order_id=cid, fills=fills)

    def parse_fill(self, trade: Mapping[str, Any]) -> VenueFill:
        return self._with_cid(parse_fill(trade))

    def _with_cid(self, fill: VenueFill) -> VenueFill:
        cid = self.ids.decode(fill.client_order_id)
        return fill if cid == fill.client_order_id else replace(fill, client_order_id=cid)

    async def query(self, cid: str, symbol: str) -> VenueOrder | None:
        """The venue's view of one order by client order id; None if it has none."""
        sym = self.ccxt_of[symbol]
        params = self._cid_params(cid)
        try:
            order = await self.call("order", self.ex.fetch_order, None, sym, params)
        except ccxt.OrderNotFound:
            return None
        except ccxt.BadRequest:
            if self.binance:
                raise
            return await self._scan_for(cid, sym)
        vo = self.parse_order(order)
        if vo.client_order_id and vo.client_order_id != cid:
            return None
        return vo

    async def _scan_for(self, cid: str, sym: str) -> VenueOrder | None:
        """Venues that cannot look an order up by client id: search open, then recent
        closed orders."""
        for op, name, has in (
            ("open_orders", "fetch_open_orders", "fetchOpenOrders"),
            ("order", "fetch_closed_orders", "fetchClosedOrders"),
        ):
            if not self.ex.has.get(has):
                continue
            for o in await self.call(op, getattr(self.ex, name), sym):
                if o.get("clientOrderId") == self.ids.encode(cid):
                    return self.parse_order(o)
        return None

    # -- cancel -----------------------------------------------------------------------------
    async def cancel(self, cid: str) -> None:
        """Cancel at the venue; an unclear answer is settled by asking about the order."""
        delay = 0.05
        while not self.closed:
            order = self.om.state.orders[cid]
            if order.is_closed or order.status is not OrderStatus.PENDING_CANCEL:
                return
            if cid not in self.sent and not order.venue_order_id and cid not in self.unknown:
                # from an earlier process: ask first (the reconciler usually has)
                found = await self._query_quiet(cid, order.symbol)
                if found is None:
                    self._om(self.om.on_canceled, cid, reason="not at the venue")
                    return
            await self.connected.wait()
            self.stats["cancels"] += 1
            sym = self.ccxt_of[order.symbol]
            params = self._cid_params(cid)
            try:
                resp = await self.call(
                    "cancel", self.ex.cancel_order, order.venue_order_id or None, sym, params
                )
            except ccxt.OrderNotFound:
                found = await self._query_quiet(cid, order.symbol)
                if found is None:
                    self._om(self.om.on_canceled, cid, reason="not at the venue")
                else:
                    await self.apply_order(found, order.symbol)
                    if found.status.is_open:  # not cancellable yet: try again shortly
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 1.0)
                        continue
                return
            except (ccxt.BaseError, OSError, CircuitOpen, RateLimited) as exc:
                action = classify(exc, write=True)
                if action is ErrorAction.REFUSE:
                    self._om(self.om.on_cancel_rejected, cid, self.text(exc))
                    return
                await asyncio.sleep(delay)  # unknown or transient: ask, then maybe again
                delay = min(delay * 2, 1.0)
                found = await self._query_quiet(cid, order.symbol)
                if found is not None:
                    await self.apply_order(found, order.symbol)
                continue
            await self.apply_order(self.parse_order(resp), order.symbol)
            return

    async def _query_quiet(self, cid: str, symbol: str) -> VenueOrder | None:
        try:
            return await self.query(cid, symbol)
        except (ccxt.BaseError, OSError, CircuitOpen, RateLimited):
            return None

    # -- reports ----------------------------------------------------------------------------
    def resolve_cid(self, vo_cid: str, venue_order_id: str) -> str | None:
        if vo_cid and vo_cid in self.om.state.orders:
            return vo_cid
        return self.venue_ids.get(venue_order_id)

    async def apply_order(self, vo: VenueOrder, symbol: str, wait_fills: bool = True) -> None:
        """Apply the venue's view of an order: acceptance, the fills it carries, missing
        fills (fetched), then its end (cancel, expiry, rejection)."""
        cid = self.resolve_cid(vo.client_order_id, vo.venue_order_id)
        if cid is None:
            return  # not ours (manual orders on the same account)
        order = self.om.state.orders[cid]
        if vo.venue_order_id and vo.venue_order_id != "None":
            self.venue_ids[vo.venue_order_id] = cid
        if vo.status is VenueStatus.REJECTED and not vo.filled:
            self._om(self.om.on_rejected, cid, vo.reason or "rejected by the venue")
            return
        if order.status in (OrderStatus.SUBMITTED, OrderStatus.PENDING_CANCEL):
            self._om(self.om.on_accepted, cid, vo.venue_order_id)
        for fill in vo.fills:
            self.apply_fill(fill, cid)
        if to_raw(vo.filled, "filled") > order.filled_qty_raw and wait_fills:
            await self.catch_up(cid, symbol, vo.venue_order_id)
        if vo.status is VenueStatus.CANCELED:
            self._om(self.om.on_canceled, cid, reason="venue")
        elif vo.status is VenueStatus.EXPIRED:
            self._om(self.om.on_expired, cid)

    def apply_fill(self, f: VenueFill, cid: str | None = None) -> bool:
        cid = cid or self.resolve_cid(f.client_order_id, f.venue_order_id)
        if cid is None or f.qty <= 0:
            return False
        if f.venue_order_id:
            self.venue_ids.setdefault(f.venue_order_id, cid)
            if self.om.state.orders[cid].status is OrderStatus.SUBMITTED:
                # a trade can overtake the acknowledgement (another stream, a REST
                # answer): acknowledge first, so the journal keeps the venue's order id
                self._om(self.om.on_accepted, cid, f.venue_order_id)
        applied = self._om(
            self.om.on_fill,
            cid,
            f.trade_id,
            f.qty,
            f.price,
            f.fee,
            f.fee_asset,
            f.liquidity,
            ts_event=f.ts_ms * MS if f.ts_ms else None,
        )
        if applied:
            self.stats["fills"] += 1
        return bool(applied)

    async def catch_up(self, cid: str, symbol: str, venue_order_id: str) -> None:
        """Fetch the trades of one order and apply those bot4 has not seen."""
        self.stats["catch_ups"] += 1
        sym = self.ccxt_of[symbol]
        order = self.om.state.orders[cid]
        try:
            if self.binance:
                trades = await self.call(
                    "my_trades",
                    self.ex.fetch_my_trades,
                    sym,
                    None,
                    None,
                    {"orderId": venue_order_id},
                )
            elif self.ex.has.get("fetchOrderTrades"):
                trades = await self.call(
                    "my_trades", self.ex.fetch_order_trades, venue_order_id, sym
                )
            else:
                since = order.ts_init // MS - 60_000
                trades = await self.call("my_trades", self.ex.fetch_my_trades, sym, since)
        except (ccxt.BaseError, OSError, CircuitOpen, RateLimited) as exc:
            self.alert(f"{cid}: missing fills not fetched yet: {self.text(exc)}")
            return
        for t in trades:
            f = self.parse_fill(t)
            if f.venue_order_id == venue_order_id:
                self.apply_fill(f, cid)

    # -- shutdown ---------------------------------------------------------------------------
    async def drain(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty and nothing is in flight (True) or time is up."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.kick()
            pending_cancel = any(
                o.status is OrderStatus.PENDING_CANCEL for o in self.om.state.open_orders.values()
            )
            busy = self.om.outbox or self.inflight or self.resolvers
            if not busy and not pending_cancel:
                return True
            await asyncio.sleep(0.02)
        return False

    async def close(self) -> None:
        self.closed = True
        self._wake.set()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
