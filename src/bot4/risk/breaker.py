"""Circuit breakers around every call to a venue or other dependency.

CLOSED: calls pass and their outcomes fill a sliding time window (fixed buckets, O(1)
per call).  When the window holds at least ``min_calls`` and the failure rate reaches
``open_at`` (50 %), the breaker OPENs: calls are refused with ``CircuitOpen`` at once,
without touching the dependency.  After ``cooldown_ns`` it goes HALF_OPEN and lets at
most ``half_open_probes`` calls through at a time.  A failed probe re-opens it; it closes
only once the window's failure rate is under ``close_below`` (35 %) -- the gap between
50 % and 35 % is the hysteresis that stops a flaky dependency from flapping.

Which errors count is a policy (``is_failure``): bad input from our side
(``ValidationError``) says nothing about the dependency's health and does not count.
Config can change while running (``configure``); telemetry callbacks see every state
change and every refused call.  Works as a context manager or a decorator, for sync and
async code; a lock makes it safe across threads, and no lock is held across an await.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from bot4.core.clock import Clock, LiveClock
from bot4.core.errors import Bot4Error, ValidationError

P = ParamSpec("P")
R = TypeVar("R")


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class CircuitOpen(Bot4Error):
    code = "CIRCUIT_OPEN"

    def __init__(self, name: str, state: BreakerState) -> None:
        self.name = name
        self.state = state
        super().__init__(f"circuit {name!r} is {state.value}: call refused")


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    open_at: float = 0.5
    close_below: float = 0.35
    window_ns: int = 60 * 10**9
    buckets: int = 60
    min_calls: int = 10
    cooldown_ns: int = 30 * 10**9
    half_open_probes: int = 3

    def validate(self) -> None:
        if not 0 < self.close_below <= self.open_at <= 1:
            raise ValidationError(
                "close_below", "0 < close_below <= open_at <= 1", (self.close_below, self.open_at)
            )
        for name in ("window_ns", "buckets", "min_calls", "cooldown_ns", "half_open_probes"):
            if getattr(self, name) <= 0:
                raise ValidationError(name, "must be > 0", getattr(self, name))
        if self.window_ns < self.buckets:
            raise ValidationError("window_ns", "must be >= buckets", self.window_ns)


def _default_is_failure(exc: BaseException) -> bool:
    """Errors of the dependency count; our own bad input (ValidationError) and a
    cancellation or interrupt (not an ``Exception``) say nothing about its health."""
    return isinstance(exc, Exception) and not isinstance(exc, ValidationError)


StateListener = Callable[[str, BreakerState, BreakerState], None]


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        clock: Clock | None = None,
        is_failure: Callable[[BaseException], bool] = _default_is_failure,
        on_state_change: StateListener | None = None,
        on_reject: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.clock: Clock = clock if clock is not None else LiveClock()
        self.is_failure = is_failure
        self.on_state_change = on_state_change
        self.on_reject = on_reject
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._opened_at = 0
        self._probes = 0  # probe slots taken in the current epoch
        self.rejected = 0
        # Whether each open ``with`` block holds a half-open probe slot; a context
        # variable, so interleaved asyncio tasks and threads each see their own.
        self._epoch = 0
        self._notices: list[tuple[BreakerState, BreakerState]] = []
        self._delivering = threading.Lock()  # held by the one thread running listeners
        self._probe_stack: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar(
            f"bot4-breaker-{name}-{id(self)}", default=()
        )
        self._apply_config(config or BreakerConfig())

    # -- config ---------------------------------------------------------------------------
    def _apply_config(self, config: BreakerConfig) -> None:
        config.validate()
        self.config = config
        self._width = config.window_ns // config.buckets
        self._calls = [0] * config.buckets
        self._fails = [0] * config.buckets
        self._total_calls = 0
        self._total_fails = 0
        self._head = self.clock.now_ns() // self._width

    def configure(self, **changes: Any) -> None:
        """Change settings while running; the window restarts if its shape changes."""
        with self._lock:
            new = replace(self.config, **changes)
            new.validate()
            if (new.window_ns, new.buckets) != (self.config.window_ns, self.config.buckets):
                self._apply_config(new)
            else:
                self.config = new

    # -- window ---------------------------------------------------------------------------
    def _advance(self, now: int) -> int:
        idx = now // self._width
        head = self._head
        if idx > head:
            n = self.config.buckets
            for k in range(head + 1, min(idx, head + n) + 1):
                slot = k % n
                self._total_calls -= self._calls[slot]
                self._total_fails -= self._fails[slot]
                self._calls[slot] = 0
                self._fails[slot] = 0
            self._head = idx
        return idx % self.config.buckets

    def failure_rate(self) -> float:
        with self._lock:
            self._advance(self.clock.now_ns())
            return self._total_fails / self._total_calls if self._total_calls else 0.0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._maybe_half_open(self.clock.now_ns())
            state = self._state
        self._notify()
        return state

    # -- transitions ----------------------------------------------------------------------
    # Every transition starts a new epoch and frees all probe slots; a probe's token is
    # the epoch that admitted it, so a late outcome from an earlier half-open period (or
    # from before the breaker closed) cannot release a slot it does not hold.  State-change
    # callbacks are queued under the lock and run after it is released, so a listener may
    # call back into the breaker.
    def _set(self, new: BreakerState) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        self._epoch += 1
        self._probes = 0
        if new is BreakerState.OPEN:
            self._opened_at = self.clock.now_ns()
        if self.on_state_change is not None:
            self._notices.append((old, new))

    def _notify(self) -> None:
        # One thread delivers at a time, in the order the transitions happened: two
        # threads each draining their own batch could otherwise hand the listener
        # OPEN->HALF_OPEN before CLOSED->OPEN.  A thread that finds delivery taken (or a
        # listener calling back into the breaker) leaves its notices to the deliverer,
        # which drains until the queue is empty and re-checks after letting go.
        while self._notices:
            if not self._delivering.acquire(blocking=False):
                return
            try:
                while True:
                    with self._lock:
                        notices, self._notices = self._notices, []
                    if not notices:
                        break
                    listener = self.on_state_change
                    if listener is not None:
                        for old, new in notices:
                            listener(self.name, old, new)
            finally:
                self._delivering.release()

    def _maybe_half_open(self, now: int) -> None:
        if self._state is BreakerState.OPEN and now - self._opened_at >= self.config.cooldown_ns:
            self._set(BreakerState.HALF_OPEN)

    def _current(self) -> BreakerState:
        return self._state

    def _admit(self) -> int | None:
        """Permission for one call: None = refused, -1 = a normal call (CLOSED), else
        the token (epoch) of a half-open probe slot."""
        if self._state is BreakerState.CLOSED:
            return -1
        with self._lock:
            self._maybe_half_open(self.clock.now_ns())
            state = self._current()  # re-read: another thread may have closed it
            if state is BreakerState.CLOSED:
                token: int | None = -1
            elif state is BreakerState.HALF_OPEN and self._probes < self.config.half_open_probes:
                self._probes += 1
                token = self._epoch
            else:
                self.rejected += 1
                token = None
        self._notify()
        if token is None and self.on_reject is not None:
            self.on_reject(self.name)
        return token

    def allow(self) -> bool:
        """Take permission for one call (a probe slot when half-open).  Report its
        outcome with ``record_success``/``record_failure(probe=...)``."""
        return self._admit() is not None

    def _record(self, failed: bool | None, token: int) -> None:
        """``failed`` None: an outcome that says nothing about the dependency (it only
        frees the probe slot)."""
        with self._lock:
            probe = token >= 0 and token == self._epoch and self._state is BreakerState.HALF_OPEN
            if probe:
                self._probes -= 1
            if failed is not None:
                slot = self._advance(self.clock.now_ns())
                self._calls[slot] += 1
                self._total_calls += 1
                if failed:
                    self._fails[slot] += 1
                    self._total_fails += 1
                rate = self._total_fails / self._total_calls
                if self._state is BreakerState.HALF_OPEN:
                    if failed:
                        self._set(BreakerState.OPEN)
                    elif rate < self.config.close_below:
                        self._set(BreakerState.CLOSED)
                elif (
                    self._state is BreakerState.CLOSED
                    and self._total_calls >= self.config.min_calls
                    and rate >= self.config.open_at
                ):
                    self._set(BreakerState.OPEN)
        self._notify()

    def _token(self, probe: bool) -> int:
        return self._epoch if probe else -1

    def record_success(self, probe: bool = False) -> None:
        self._record(False, self._token(probe))

    def record_failure(self, exc: BaseException | None = None, probe: bool = False) -> None:
        """Count a failure unless the classification says ``exc`` is not one (then the
        call is not counted at all: our own bad input says nothing of the dependency)."""
        failed = True if exc is None else (True if self.is_failure(exc) else None)
        self._record(failed, self._token(probe))

    # -- use ------------------------------------------------------------------------------
    def _enter(self) -> int:
        token = self._admit()
        if token is None:
            raise CircuitOpen(self.name, self._state)
        return token

    def _exit(self, token: int, exc: BaseException | None) -> None:
        if exc is None:
            self._record(False, token)
        else:
            self._record(True if self.is_failure(exc) else None, token)

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        token = self._enter()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._exit(token, exc)
            raise
        self._exit(token, None)
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        token = self._enter()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._exit(token, exc)
            raise
        self._exit(token, None)
        return result

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function."""
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.call_async(afn, *args, **kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return self.call(fn, *args, **kwargs)

        return wrapper

    def __enter__(self) -> CircuitBreaker:
        self._probe_stack.set((*self._probe_stack.get(), self._enter()))
        return self

    def __exit__(
        self, _t: type[BaseException] | None, exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        stack = self._probe_stack.get()
        self._probe_stack.set(stack[:-1])
        self._exit(stack[-1], exc)

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(
        self, t: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(t, exc, tb)
