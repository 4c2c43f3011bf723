"""The engine's message bus: topics, per-symbol sequencing, bounded queues.

Two dispatch modes share one subscription registry, so the same wiring code serves
backtest, paper and live:

* ``MessageBus.publish`` is synchronous direct dispatch: a dict lookup and a loop over a
  cached tuple of handlers.  Backtests use it because they are single-threaded and
  deterministic by construction: a message is fully handled before ``publish`` returns,
  so there is nothing to queue, reorder or lose.
* ``AsyncMessageBus`` wraps a ``MessageBus`` for paper and live trading.  Each symbol
  (a *lane*) has its own bounded queue drained by its own asyncio task, so a slow
  handler for BTC never delays ETH, while the events of one symbol are handled strictly
  one at a time, in publish order.

Topics are dotted strings (``"data.bar.BTCUSDT"``, ``"order.filled"``).  A subscription
either names a topic exactly or ends in ``*`` to match every topic with that prefix
(``"data.bar.*"``, ``"*"``).  Handlers run in subscription order.

Backpressure (async mode only) is decided per *message class*, the longest dotted
prefix rule that matches the topic (``"data.book"`` matches ``"data.book.BTCUSDT"``):

* ``Backpressure.CONFLATE``: snapshot-like market data (the latest book or quote).  A
  newer message replaces a still-queued one with the same topic on the same lane; the
  replaced one is counted as conflated.  Only for messages where the latest fully
  supersedes the earlier ones, never for book *deltas*.
* ``Backpressure.DROP_OLDEST``: market data that loses value with age (trades, bars).
* ``Backpressure.BLOCK``: critical messages (orders, fills, anything unknown).  Never
  dropped: when the lane is full, ``await publish(...)`` waits for room.

When a lane is full, room is made by dropping the *oldest droppable* (non-critical)
message on that lane, whatever the class of the newcomer, so stale market data never
delays a fill.  Only when the lane holds nothing but critical messages does a critical
publisher wait, and a non-critical newcomer is dropped (it is the only droppable one).
Every drop and conflation is counted per ``(symbol, kind)``; see ``BusStats``.

Unknown topics default to ``BLOCK`` (fail closed: a message is lost only where a rule
says it may be), and any ``bot4.core.events.Event`` is critical whatever its topic,
because events are facts that the journal and the portfolio fold over.

Ordering guarantee: on each lane, the messages that are delivered are delivered one at
a time, in the order their ``publish`` calls began; dropped or conflated messages leave
gaps but never reorder the rest.  A conflated message moves to the tail of its lane
rather than taking its predecessor's place, because delivering the newer book before a
fill that was published ahead of it would show the strategy a state from its future.
There is no ordering between lanes: choose the lane (``symbol=``) by what must stay in
order; events about one symbol's orders and its market data belong to that symbol's
lane.  The lane is always given explicitly, never guessed from the message, because a
guess (``msg.symbol``) would send ``OrderInitialized`` (which has a symbol) and
``OrderFilled`` (which has none) down different lanes and let them overtake each other.

Everything async runs on one event loop; call the async bus from that loop's thread
only (use ``loop.call_soon_threadsafe`` from other threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Final

from bot4.core.events import Event

__all__ = [
    "DEFAULT_POLICIES",
    "GLOBAL_LANE",
    "AsyncMessageBus",
    "Backpressure",
    "BusClosed",
    "BusFull",
    "BusStats",
    "ErrorCallback",
    "Handler",
    "HandlerError",
    "MessageBus",
    "ShutdownReport",
    "reraise",
]

_log = logging.getLogger(__name__)

Handler = Callable[[Any], object]
"""A subscriber: called with the message.  In async mode it may return an awaitable,
which is awaited before the lane moves on."""

GLOBAL_LANE: Final = ""
"""The lane for messages that belong to no symbol (account, balances, the kill switch)."""


class Backpressure(Enum):
    """What a full lane does with a message of a given class."""

    BLOCK = "block"
    """Critical: never dropped; the publisher waits for room (``await publish``)."""
    DROP_OLDEST = "drop_oldest"
    """When full, the oldest droppable message on the lane makes room."""
    CONFLATE = "conflate"
    """Only the latest per topic and lane is kept; when full, as ``DROP_OLDEST``."""


DEFAULT_POLICIES: Final[Mapping[str, Backpressure]] = MappingProxyType(
    {
        "data.book": Backpressure.CONFLATE,
        "data.quote": Backpressure.CONFLATE,
        "data.trade": Backpressure.DROP_OLDEST,
        "data.bar": Backpressure.DROP_OLDEST,
    }
)
"""Market data may be thinned; everything else (orders, fills, account) is critical.
Override per bus (``AsyncMessageBus(policies=...)``), for instance to make bars
``BLOCK`` for a strategy whose indicators cannot tolerate a gap."""


class BusClosed(RuntimeError):
    """The async bus is stopping or stopped: it accepts no new message."""


class BusFull(RuntimeError):
    """``publish_nowait`` of a critical message found its lane full.  Nothing was lost:
    the message was not accepted, and the caller can ``await publish`` it instead."""


@dataclass(frozen=True, slots=True)
class HandlerError:
    """A handler raised.  ``symbol`` is the lane, or ``None`` for synchronous dispatch."""

    topic: str
    symbol: str | None
    message: Any
    handler: Handler
    exception: Exception


ErrorCallback = Callable[[HandlerError], None]


def reraise(error: HandlerError) -> None:
    """An error callback for fail-fast backtests: synchronous ``publish`` raises the
    handler's exception (the remaining handlers of that message do not run).  In async
    mode a raising callback is logged instead, since a lane must outlive its handlers."""
    raise error.exception


def _is_async_callable(handler: Handler) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004  (async __call__ objects)
    )


def _check_pattern(topic: str) -> None:
    if not topic:
        raise ValueError("a topic cannot be empty")
    if "*" in topic[:-1]:
        raise ValueError(f"'*' may only end a topic pattern: {topic!r}")


class MessageBus:
    """Topic registry and synchronous direct dispatch.

    ``publish`` runs every matching handler before it returns, in subscription order.
    A handler that publishes is dispatched depth-first (the nested message is fully
    handled before the outer one reaches its next handler), which is what a backtest's
    single call stack means.  A handler that raises is counted (``errors``) and passed to
    ``on_error`` (default: logged), and the remaining handlers still run; pass
    ``on_error=reraise`` to stop at the first failure instead.
    """

    __slots__ = ("_async_ok", "_on_error", "_subs", "_sync", "errors")

    def __init__(self, on_error: ErrorCallback | None = None) -> None:
        self._subs: list[tuple[str, Handler]] = []
        # topic -> handlers, resolved once per topic and dropped on every (un)subscribe:
        # wildcard matching stays off the hot path.
        self._sync: dict[str, tuple[Handler, ...]] = {}
        self._async_ok: dict[str, tuple[Handler, ...]] = {}
        self._on_error = on_error
        self.errors = 0
        """Handler failures reported so far (sync and async dispatch together)."""

    # -- subscriptions ------------------------------------------------------------------
    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call ``handler(msg)`` for every message on ``topic`` (or, if it ends in
        ``*``, on every topic with that prefix).  Subscribing the same handler to the
        same topic twice is a no-op, so it keeps its original place in the order."""
        _check_pattern(topic)
        if (topic, handler) in self._subs:
            return
        self._subs.append((topic, handler))
        self._invalidate()

    def unsubscribe(self, topic: str, handler: Handler) -> bool:
        """Remove one subscription; ``False`` if there was none.  Messages already
        queued in async mode are dispatched to the handlers subscribed at dispatch time."""
        try:
            self._subs.remove((topic, handler))
        except ValueError:
            return False
        self._invalidate()
        return True

    def subscriptions(self) -> list[tuple[str, Handler]]:
        """``(topic pattern, handler)`` pairs in dispatch order."""
        return list(self._subs)

    def handlers(self, topic: str) -> tuple[Handler, ...]:
        """The handlers a message on ``topic`` reaches, in order (may be async)."""
        found = self._async_ok.get(topic)
        if found is None:
            found = self._async_ok[topic] = self._match(topic)
        return found

    def _invalidate(self) -> None:
        self._sync.clear()
        self._async_ok.clear()

    def _match(self, topic: str) -> tuple[Handler, ...]:
        return tuple(
            handler
            for pattern, handler in self._subs
            if pattern == topic or (pattern[-1] == "*" and topic.startswith(pattern[:-1]))
        )

    def _sync_handlers(self, topic: str) -> tuple[Handler, ...]:
        found = self._match(topic)
        for handler in found:
            if _is_async_callable(handler):
                raise TypeError(
                    f"async handler {handler!r} on {topic!r} needs AsyncMessageBus; "
                    "synchronous publish cannot await it"
                )
        self._sync[topic] = found
        return found

    # -- dispatch -----------------------------------------------------------------------
    def publish(self, topic: str, msg: Any) -> None:
        """Dispatch ``msg`` to every handler of ``topic`` now, in subscription order."""
        handlers = self._sync.get(topic)
        if handlers is None:
            handlers = self._sync_handlers(topic)
        for handler in handlers:
            try:
                handler(msg)
            except Exception as exc:
                self.report_error(HandlerError(topic, None, msg, handler, exc))

    def report_error(self, error: HandlerError) -> None:
        """Count a handler failure and pass it to the error callback (or the log)."""
        self.errors += 1
        if self._on_error is None:
            _log.error(
                "handler %r failed on %s (lane %r)",
                error.handler,
                error.topic,
                error.symbol,
                exc_info=error.exception,
            )
        else:
            self._on_error(error)


# -- async mode ---------------------------------------------------------------------------
_ACCEPTED: Final = 0
_DROPPED: Final = 1
_WAIT: Final = 2

_BLOCK: Final = Backpressure.BLOCK
_CONFLATE: Final = Backpressure.CONFLATE

_YIELD_EVERY: Final = 64
"""A lane whose handlers never suspend yields to the loop after this many messages, so
one busy symbol cannot starve the others or the publishers."""


class _Entry:
    """One queued message.  ``seq`` keys it in its lane's ordered dicts."""

    __slots__ = ("kind", "msg", "policy", "seq", "topic")

    def __init__(self, seq: int, topic: str, msg: Any, kind: str, policy: Backpressure) -> None:
        self.seq = seq
        self.topic = topic
        self.msg = msg
        self.kind = kind
        self.policy = policy


class _Lane:
    """One symbol's queue and worker.

    ``queue`` holds the pending messages in order.  ``droppable`` is the subsequence of
    non-critical ones, so the oldest droppable message is found in O(1); ``latest`` maps
    a topic to its pending ``CONFLATE`` message.  Ordered dicts (not a deque) because
    conflation and eviction remove from the middle.  ``waiters`` are critical publishers
    waiting for room, in arrival order; the worker hands a freed slot straight to the
    first of them, so a newcomer can never take it and overtake a waiting message.
    """

    __slots__ = (
        "delivered",
        "droppable",
        "in_flight",
        "latest",
        "max_depth",
        "name",
        "queue",
        "task",
        "waiters",
        "wakeup",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.queue: OrderedDict[int, _Entry] = OrderedDict()
        self.droppable: OrderedDict[int, _Entry] = OrderedDict()
        self.latest: dict[str, _Entry] = {}
        self.waiters: deque[tuple[_Entry, asyncio.Future[None]]] = deque()
        self.wakeup: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.in_flight: _Entry | None = None
        self.max_depth = 0
        self.delivered = 0


@dataclass(frozen=True, slots=True)
class BusStats:
    """A snapshot of the async bus's counters.

    ``dropped`` and ``conflated`` are keyed by ``(symbol, kind)``, where ``kind`` is the
    policy rule that classified the topic (``"data.book"``).  Once the bus is idle,
    ``published == delivered + total_dropped + total_conflated + discarded +
    interrupted + abandoned``.
    """

    published: int
    """``publish`` calls accepted for consideration (the bus was open)."""
    delivered: int
    """Messages whose handlers all ran (including ones where a handler raised)."""
    dropped: Mapping[tuple[str, str], int]
    conflated: Mapping[tuple[str, str], int]
    errors: int
    """Handler failures in async dispatch."""
    publisher_waits: int
    """Critical publishes that found their lane full and waited."""
    discarded: int
    """Queued or waiting messages thrown away by a cancelling ``stop``."""
    interrupted: int
    """Messages whose handlers a cancelling ``stop`` cut short."""
    abandoned: int
    """Critical publishes whose publisher was cancelled while waiting for room."""
    depth: Mapping[str, int]
    """Messages queued per lane now."""
    max_depth: Mapping[str, int]
    """The deepest each lane's queue has been."""

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def total_conflated(self) -> int:
        return sum(self.conflated.values())


@dataclass(frozen=True, slots=True)
class ShutdownReport:
    """What ``stop`` did.  ``drained`` messages were delivered while stopping;
    ``discarded`` (queued, or waiting publishers, which get ``BusClosed``) and
    ``interrupted`` (handler cancelled mid-message) never will be."""

    drained: int
    discarded: int
    interrupted: int
    timed_out: bool
    discarded_by_symbol: Mapping[str, int]


class AsyncMessageBus:
    """Per-symbol lanes with bounded queues and per-class backpressure, over asyncio.

    ``capacity`` bounds each lane's queue (messages waiting, not counting the one being
    handled).  ``policies`` maps dotted topic prefixes to a ``Backpressure``; topics no
    rule matches, and every ``Event``, are ``BLOCK``.  Handlers come from ``bus`` (a new
    ``MessageBus`` if none is given), resolved when a message is dispatched; failures
    are reported through ``bus.report_error`` and never stop a lane.

    Lanes start lazily on the first publish to a symbol, on the running loop, and live
    until ``stop``.  Handlers must not block the loop: a synchronous handler that sleeps
    stalls every lane; do slow work in an ``async`` handler.
    """

    __slots__ = (
        "_abandoned",
        "_capacity",
        "_classes",
        "_closing",
        "_conflated",
        "_delivered",
        "_discarded",
        "_dropped",
        "_errors",
        "_interrupted",
        "_joiners",
        "_lanes",
        "_policies",
        "_published",
        "_seq",
        "_stopped",
        "_unfinished",
        "_waits",
        "bus",
    )

    def __init__(
        self,
        bus: MessageBus | None = None,
        *,
        capacity: int = 1024,
        policies: Mapping[str, Backpressure] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        rules = dict(DEFAULT_POLICIES if policies is None else policies)
        for rule, policy in rules.items():
            if not rule or rule.endswith(".") or "*" in rule:
                raise ValueError(f"a policy rule is a dotted topic prefix, got {rule!r}")
            if not isinstance(policy, Backpressure):
                raise TypeError(f"policy for {rule!r} must be a Backpressure, got {policy!r}")
        self.bus = MessageBus() if bus is None else bus
        self._capacity = capacity
        self._policies = rules
        self._classes: dict[str, tuple[Backpressure, str]] = {}
        self._lanes: dict[str, _Lane] = {}
        self._seq = 0
        self._closing = False
        self._stopped = False
        self._unfinished = 0  # accepted (queued, waiting or in flight), not yet settled
        self._joiners: list[asyncio.Future[None]] = []
        self._published = 0
        self._delivered = 0
        self._errors = 0
        self._waits = 0
        self._discarded = 0
        self._interrupted = 0
        self._abandoned = 0
        self._dropped: dict[tuple[str, str], int] = {}
        self._conflated: dict[tuple[str, str], int] = {}

    # -- configuration ------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def closed(self) -> bool:
        return self._closing

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Shorthand for ``self.bus.subscribe``."""
        self.bus.subscribe(topic, handler)

    def unsubscribe(self, topic: str, handler: Handler) -> bool:
        """Shorthand for ``self.bus.unsubscribe``."""
        return self.bus.unsubscribe(topic, handler)

    def classify(self, topic: str) -> tuple[Backpressure, str]:
        """``(policy, kind)`` for a topic: the longest matching rule, else ``BLOCK``
        with the topic itself as the kind."""
        found = self._classes.get(topic)
        if found is None:
            best = ""
            for rule in self._policies:
                if len(rule) > len(best) and (
                    topic == rule or (topic.startswith(rule) and topic[len(rule)] == ".")
                ):
                    best = rule
            found = (self._policies[best], best) if best else (_BLOCK, topic)
            self._classes[topic] = found
        return found

    # -- publishing ---------------------------------------------------------------------
    async def publish(self, topic: str, msg: Any, symbol: str = GLOBAL_LANE) -> bool:
        """Queue ``msg`` on ``symbol``'s lane.

        Returns ``True`` if it was queued (possibly conflating an older one), ``False``
        if it was dropped on arrival (non-critical, and its lane is full of critical
        messages).  A critical message is never dropped: if its lane is full this waits
        until the lane's worker frees a slot.  Raises ``BusClosed`` once ``stop`` began,
        or if ``stop`` cancels while this waits (the message is then counted discarded).

        It suspends only to wait for room, so a producer that loops without awaiting
        anything else (unlike a feed, which awaits its socket) should ``await
        asyncio.sleep(0)`` now and then, or the lanes never get to run and its market
        data is thinned by drop/conflation instead of delivered.
        """
        entry, lane = self._prepare(topic, msg, symbol)
        outcome = self._offer(lane, entry)
        if outcome == _WAIT:
            await self._wait(lane, entry)
        return outcome != _DROPPED

    def publish_nowait(self, topic: str, msg: Any, symbol: str = GLOBAL_LANE) -> bool:
        """``publish`` for synchronous callers on the loop (a websocket callback).

        Market data behaves exactly as with ``publish``.  A critical message that finds
        its lane full raises ``BusFull`` instead of waiting; it was not accepted, so
        nothing is lost, and the caller decides (``await publish`` it, or fail closed).
        """
        entry, lane = self._prepare(topic, msg, symbol)
        outcome = self._offer(lane, entry)
        if outcome == _WAIT:
            self._published -= 1
            raise BusFull(f"lane {symbol!r} is full ({self._capacity}) for {topic!r}")
        return outcome != _DROPPED

    def _prepare(self, topic: str, msg: Any, symbol: str) -> tuple[_Entry, _Lane]:
        if self._closing:
            raise BusClosed("the message bus is stopping")
        lane = self._lanes.get(symbol)
        if lane is None:
            lane = self._open_lane(symbol)
        found = self._classes.get(topic)
        policy, kind = self.classify(topic) if found is None else found
        if policy is not _BLOCK and isinstance(msg, Event):
            policy = _BLOCK
        self._seq += 1
        self._published += 1
        return _Entry(self._seq, topic, msg, kind, policy), lane

    def _open_lane(self, symbol: str) -> _Lane:
        loop = asyncio.get_running_loop()  # raises outside a loop, before any state changes
        lane = _Lane(symbol)
        lane.task = loop.create_task(self._run(lane), name=f"bus-lane-{symbol or 'global'}")
        self._lanes[symbol] = lane
        return lane

    def _offer(self, lane: _Lane, entry: _Entry) -> int:
        """Admit, drop or defer one message; never suspends."""
        if lane.waiters:
            # Critical publishers are already waiting: the lane is full of critical
            # messages, and anything admitted now would overtake them.
            if entry.policy is _BLOCK:
                return _WAIT
            self._count(self._dropped, lane.name, entry.kind)
            return _DROPPED
        queue = lane.queue
        if entry.policy is _CONFLATE:
            older = lane.latest.get(entry.topic)
            if older is not None:
                del queue[older.seq]
                del lane.droppable[older.seq]
                self._count(self._conflated, lane.name, older.kind)
                self._unfinished -= 1
                self._put(lane, entry)
                return _ACCEPTED
        if len(queue) >= self._capacity:
            if lane.droppable:
                _, victim = lane.droppable.popitem(last=False)
                del queue[victim.seq]
                if victim.policy is _CONFLATE:
                    del lane.latest[victim.topic]
                self._count(self._dropped, lane.name, victim.kind)
                self._unfinished -= 1
            elif entry.policy is _BLOCK:
                return _WAIT
            else:
                self._count(self._dropped, lane.name, entry.kind)
                return _DROPPED
        self._put(lane, entry)
        return _ACCEPTED

    def _put(self, lane: _Lane, entry: _Entry) -> None:
        queue = lane.queue
        queue[entry.seq] = entry
        policy = entry.policy
        if policy is not _BLOCK:
            lane.droppable[entry.seq] = entry
            if policy is _CONFLATE:
                lane.latest[entry.topic] = entry
        self._unfinished += 1
        depth = len(queue)
        if depth > lane.max_depth:
            lane.max_depth = depth
        wakeup = lane.wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _wait(self, lane: _Lane, entry: _Entry) -> None:
        """Wait for the worker to move ``entry`` into the queue (see ``_admit``)."""
        admitted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.waiters.append((entry, admitted))
        self._waits += 1
        try:
            await admitted
        except asyncio.CancelledError:
            if not admitted.done() or admitted.cancelled():
                # Our publisher was cancelled before the worker took the message.
                with contextlib.suppress(ValueError):
                    lane.waiters.remove((entry, admitted))
                self._abandoned += 1
            raise

    def _admit(self, lane: _Lane) -> None:
        """Hand freed slots to waiting publishers, first come first served."""
        waiters = lane.waiters
        while waiters and len(lane.queue) < self._capacity:
            entry, admitted = waiters.popleft()
            if admitted.done():  # its publisher was cancelled; it counts itself
                continue
            # Waiters are not in ``_unfinished``: a lane only has waiters while its queue
            # is full, and the worker admits them before settling the message it popped,
            # so ``join`` cannot return while one waits.
            self._put(lane, entry)
            admitted.set_result(None)

    @staticmethod
    def _count(counter: dict[tuple[str, str], int], symbol: str, kind: str) -> None:
        key = (symbol, kind)
        counter[key] = counter.get(key, 0) + 1

    def _settle(self) -> None:
        """One accepted message will never be pending again."""
        self._unfinished -= 1
        if not self._unfinished and self._joiners:
            self._wake_joiners()

    def _wake_joiners(self) -> None:
        joiners, self._joiners = self._joiners, []
        for joiner in joiners:
            if not joiner.done():
                joiner.set_result(None)

    # -- the lane worker ----------------------------------------------------------------
    async def _run(self, lane: _Lane) -> None:
        """Deliver one lane's messages, one at a time, until the bus stops."""
        loop = asyncio.get_running_loop()
        queue = lane.queue
        bus = self.bus
        streak = 0
        while True:
            if not queue:
                if self._closing and not lane.waiters:
                    return
                streak = 0
                lane.wakeup = loop.create_future()
                await lane.wakeup
                lane.wakeup = None
                continue
            seq, entry = queue.popitem(last=False)
            if entry.policy is not _BLOCK:
                del lane.droppable[seq]
                if entry.policy is _CONFLATE:
                    del lane.latest[entry.topic]
            if lane.waiters:
                self._admit(lane)
            lane.in_flight = entry
            msg = entry.msg
            for handler in bus.handlers(entry.topic):
                try:
                    result = handler(msg)
                    if result is not None and inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    self._report(HandlerError(entry.topic, lane.name, msg, handler, exc))
            lane.in_flight = None
            lane.delivered += 1
            self._delivered += 1
            self._settle()
            streak += 1
            if streak >= _YIELD_EVERY:
                streak = 0
                await asyncio.sleep(0)

    def _report(self, error: HandlerError) -> None:
        self._errors += 1
        try:
            self.bus.report_error(error)
        except Exception:
            # The callback itself failed (or re-raised on purpose, as ``reraise`` does):
            # a lane must survive it, so the failure goes to the log.
            _log.exception("error callback failed for %s on lane %r", error.topic, error.symbol)

    # -- observation and shutdown -------------------------------------------------------
    async def join(self) -> None:
        """Wait until every accepted message is delivered (or dropped, or discarded)."""
        while self._unfinished:
            joiner: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._joiners.append(joiner)
            await joiner

    def symbols(self) -> tuple[str, ...]:
        """The lanes opened so far, in opening order."""
        return tuple(self._lanes)

    def stats(self) -> BusStats:
        lanes = self._lanes.values()
        return BusStats(
            published=self._published,
            delivered=self._delivered,
            dropped=MappingProxyType(dict(self._dropped)),
            conflated=MappingProxyType(dict(self._conflated)),
            errors=self._errors,
            publisher_waits=self._waits,
            discarded=self._discarded,
            interrupted=self._interrupted,
            abandoned=self._abandoned,
            depth=MappingProxyType({lane.name: len(lane.queue) for lane in lanes}),
            max_depth=MappingProxyType({lane.name: lane.max_depth for lane in lanes}),
        )

    async def stop(self, drain: bool = True, timeout: float | None = None) -> ShutdownReport:
        """Stop accepting messages, then end every lane.

        With ``drain`` (the default) each lane first delivers what it holds, including
        the messages of publishers already waiting for room; after ``timeout`` seconds
        (``None``: no limit) whatever is left is cancelled.  Without ``drain`` the lanes
        are cancelled at once.  Cancelling discards queued messages, fails waiting
        publishers with ``BusClosed`` and interrupts running handlers; all of it is
        counted in the report.  While draining, a handler that publishes gets
        ``BusClosed`` (reported like any handler error): what is already queued is
        finished, nothing new starts.  Must not be awaited from a handler (its own lane
        could never finish); schedule it as a task instead.
        """
        if self._stopped:
            return ShutdownReport(0, 0, 0, False, MappingProxyType({}))
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if asyncio.current_task() in tasks:
            raise RuntimeError("stop() awaited from a bus handler would wait for itself")
        self._closing = True
        delivered_before = self._delivered
        timed_out = False
        if drain and tasks:
            for lane in self._lanes.values():
                if lane.wakeup is not None and not lane.wakeup.done():
                    lane.wakeup.set_result(None)
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            timed_out = bool(pending)
        discarded_by: dict[str, int] = {}
        interrupted = 0
        for lane in self._lanes.values():
            lost = len(lane.queue)
            for _, admitted in lane.waiters:
                if not admitted.done():
                    admitted.set_exception(BusClosed("the message bus stopped"))
                    lost += 1
            lane.waiters.clear()
            lane.queue.clear()
            lane.droppable.clear()
            lane.latest.clear()
            if lost:
                discarded_by[lane.name] = lost
            if lane.task is not None and not lane.task.done():
                if lane.in_flight is not None:
                    interrupted += 1
                lane.task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        discarded = sum(discarded_by.values())
        self._discarded += discarded
        self._interrupted += interrupted
        self._stopped = True
        self._unfinished = 0
        self._wake_joiners()
        return ShutdownReport(
            drained=self._delivered - delivered_before,
            discarded=discarded,
            interrupted=interrupted,
            timed_out=timed_out,
            discarded_by_symbol=MappingProxyType(discarded_by),
        )
