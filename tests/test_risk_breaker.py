"""The circuit breaker: exact thresholds and window expiry, OPEN / HALF_OPEN / CLOSED with
hysteresis, error classification, callbacks, runtime configuration, every way of using
it (decorator, ``with``, ``async with``, ``call``), a stateful comparison with a reference
model, and consistency under threads and interleaved asyncio tasks.

Time is the only thing faked (a ``TestClock``); everything else is the real breaker.
The regression tests at the end reproduce defects found (and fixed) in
``bot4.risk.breaker``: a listener deadlock and probe slots leaking across episodes.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from bot4.core.clock import TestClock
from bot4.core.errors import InstrumentRuleViolation, ValidationError
from bot4.risk.breaker import BreakerConfig, BreakerState, CircuitBreaker, CircuitOpen
from tests.conftest import T0

S = 10**9
CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
ALLOWED_TRANSITIONS = {(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (HALF_OPEN, CLOSED)}

assert T0 % S == 0  # T0 starts a 1 s bucket: bucket boundaries are T0 + k seconds


class Boom(ConnectionError):
    """A dependency failure (counts)."""


def probe_flags(b: CircuitBreaker) -> tuple[bool, ...]:
    """Whether each ``with`` block open in the current thread / task holds a half-open
    probe slot, innermost last (the one place that reads the breaker's internal,
    per-context stack)."""
    return tuple(token >= 0 for token in b._probe_stack.get())


def bad_input() -> ValidationError:
    return ValidationError("quantity", "must be > 0", 0)


@dataclass
class Rig:
    """A breaker with recorders for its callbacks."""

    breaker: CircuitBreaker
    clock: TestClock
    changes: list[tuple[str, BreakerState, BreakerState]] = field(default_factory=list)
    rejects: list[str] = field(default_factory=list)
    log: list[tuple[str, ...]] = field(default_factory=list)  # both, in order

    def run(self, outcome: str) -> str:
        """One call through ``call``: 'ok', 'fail' (Boom) or 'invalid' (ValidationError);
        returns what happened: the outcome, or 'refused'."""
        ran: list[bool] = []

        def fn() -> str:
            ran.append(True)
            if outcome == "fail":
                raise Boom("venue 503")
            if outcome == "invalid":
                raise bad_input()
            return "ok"

        try:
            self.breaker.call(fn)
        except CircuitOpen:
            assert not ran
            return "refused"
        except (Boom, ValidationError):
            pass
        assert ran == [True]
        return outcome

    def runs(self, *outcomes: str) -> list[str]:
        return [self.run(o) for o in outcomes]


def make(start: int = T0, **config: Any) -> Rig:
    clock = TestClock(start)
    rig = Rig(breaker=None, clock=clock)  # type: ignore[arg-type]

    def on_change(name: str, old: BreakerState, new: BreakerState) -> None:
        rig.changes.append((name, old, new))
        rig.log.append(("change", old.value, new.value))

    def on_reject(name: str) -> None:
        rig.rejects.append(name)
        rig.log.append(("reject", name))

    rig.breaker = CircuitBreaker(
        "venue",
        BreakerConfig(**config),
        clock=clock,
        on_state_change=on_change,
        on_reject=on_reject,
    )
    return rig


def open_breaker(p: Rig, fails: int = 10) -> None:
    assert p.runs(*["fail"] * fails) == ["fail"] * fails
    assert p.breaker.state is OPEN


# -- exact thresholds ---------------------------------------------------------------------
def test_four_failures_in_ten_calls_stay_closed() -> None:
    p = make()
    p.runs(*["ok"] * 6, *["fail"] * 4)  # the 10th call is a failure at 40 %
    assert p.breaker.state is CLOSED
    assert p.breaker.failure_rate() == 0.4
    assert p.changes == []


def test_five_failures_in_ten_calls_open_exactly_at_fifty_percent() -> None:
    p = make()
    p.runs(*["ok"] * 5, *["fail"] * 4)
    assert p.breaker.state is CLOSED  # 9 calls: below min_calls
    assert p.run("fail") == "fail"  # 10 calls, 5 failures: 50 % = open_at
    assert p.breaker.state is OPEN
    assert p.breaker.failure_rate() == 0.5
    assert p.changes == [("venue", CLOSED, OPEN)]


def test_fewer_than_min_calls_never_open() -> None:
    p = make()
    assert p.runs(*["fail"] * 9) == ["fail"] * 9
    assert p.breaker.state is CLOSED and p.breaker.failure_rate() == 1.0
    p.clock.advance(60 * S)  # the window empties: still fewer than 10 calls in it
    assert p.runs(*["fail"] * 9) == ["fail"] * 9
    assert p.breaker.state is CLOSED
    assert p.run("fail") == "fail"  # the 10th failure in the window
    assert p.breaker.state is OPEN


def test_a_window_that_reaches_min_calls_above_open_at_opens_even_on_a_success() -> None:
    """'When the window holds at least min_calls and the failure rate reaches open_at':
    the 10th call, a success, leaves 9 failures of 10 in the window."""
    p = make()
    p.runs(*["fail"] * 9)
    assert p.breaker.state is CLOSED
    p.run("ok")
    assert p.breaker.failure_rate() == 0.9
    assert p.breaker.state is OPEN


def test_min_calls_of_one_opens_on_the_first_failure() -> None:
    p = make(min_calls=1)
    p.run("fail")
    assert p.breaker.state is OPEN


@pytest.mark.parametrize(
    ("fail_at", "later", "counted"),
    [
        (0, 60 * S - 1, True),  # the last nanosecond of the window
        (0, 60 * S, False),  # the first nanosecond after it
        (S - 1, 60 * S - 1, True),  # last ns of bucket 0: still in the window ...
        (S - 1, 60 * S, False),  # ... and it leaves with its whole bucket at 60 s
        (S, 60 * S, True),  # bucket 1 is still in the window at 60 s ...
        (S, 61 * S - 1, True),
        (S, 61 * S, False),  # ... and leaves at 61 s
    ],
)
def test_failures_leave_the_window_with_their_bucket(
    fail_at: int, later: int, counted: bool
) -> None:
    """Buckets are fixed 1 s slots (60 s / 60): a failure counts until its slot
    leaves the window, exactly ``window_ns`` after the slot began."""
    p = make()
    p.clock.set(T0 + fail_at)
    assert p.runs(*["fail"] * 4) == ["fail"] * 4
    p.clock.set(T0 + later)
    assert p.breaker.failure_rate() == (1.0 if counted else 0.0)
    # Five successes and one failure more: with the four old failures that is 5 of 10
    # (open); without them 1 of 6 (below min_calls).
    p.runs(*["ok"] * 5, "fail")
    assert p.breaker.state is (OPEN if counted else CLOSED)
    assert p.breaker.failure_rate() == (0.5 if counted else 1 / 6)


def test_successes_leave_the_window_too() -> None:
    p = make()
    p.runs(*["ok"] * 6)
    p.clock.advance(30 * S)
    p.runs(*["fail"] * 4)  # 4 of 10: closed
    assert p.breaker.state is CLOSED
    p.clock.advance(30 * S)  # the six successes leave; the four failures stay
    assert p.breaker.failure_rate() == 1.0
    p.runs(*["ok"] * 5)
    assert p.run("fail") == "fail"  # 5 of 10
    assert p.breaker.state is OPEN


def test_a_long_gap_clears_the_whole_window() -> None:
    p = make()
    p.runs(*["fail"] * 9)
    p.clock.advance(10 * 60 * S + 123)
    assert p.breaker.failure_rate() == 0.0
    p.run("fail")
    assert p.breaker.state is CLOSED and p.breaker.failure_rate() == 1.0


# -- OPEN, cooldown, HALF_OPEN --------------------------------------------------------------
def test_open_refuses_at_once_without_calling() -> None:
    p = make()
    open_breaker(p)
    b = p.breaker
    calls: list[int] = []

    def dependency(x: int) -> int:
        calls.append(x)
        return x

    with pytest.raises(CircuitOpen) as err:
        b.call(dependency, 1)
    assert err.value.name == "venue" and err.value.state is OPEN
    assert err.value.code == "CIRCUIT_OPEN"
    with pytest.raises(CircuitOpen):
        b(dependency)(2)
    with pytest.raises(CircuitOpen), b:
        calls.append(3)
    assert calls == []
    assert b.rejected == 3 and p.rejects == ["venue"] * 3
    assert b.allow() is False
    assert b.rejected == 4


def test_open_turns_half_open_exactly_after_the_cooldown() -> None:
    p = make()
    open_breaker(p)
    opened = p.clock.now_ns()
    p.clock.set(opened + 30 * S - 1)
    assert p.breaker.state is OPEN
    assert p.run("ok") == "refused"
    p.clock.set(opened + 30 * S)
    assert p.breaker.state is HALF_OPEN
    assert p.changes == [("venue", CLOSED, OPEN), ("venue", OPEN, HALF_OPEN)]


def test_the_first_call_after_the_cooldown_is_a_probe() -> None:
    p = make(half_open_probes=1)
    open_breaker(p)
    p.clock.advance(30 * S)  # nobody has read the state: still OPEN inside
    with p.breaker:
        assert p.breaker._probes == 1
        assert p.breaker._state is HALF_OPEN
        assert probe_flags(p.breaker) == (True,)
        with pytest.raises(CircuitOpen) as err, p.breaker:
            pass
        assert err.value.state is HALF_OPEN
    assert p.breaker._probes == 0
    assert p.breaker.state is HALF_OPEN  # 10 failures + 1 success: 91 %


def test_half_open_admits_at_most_half_open_probes_at_a_time() -> None:
    p = make(half_open_probes=3)
    open_breaker(p)
    p.clock.advance(30 * S)
    b = p.breaker
    with ExitStack() as stack:
        for k in range(1, 4):
            stack.enter_context(b)
            assert b._probes == k
        for _ in range(3):
            assert p.run("ok") == "refused"
        assert b.allow() is False
        assert b.rejected == 4 and len(p.rejects) == 4
    # All three probes succeeded; 10 of 13 failed: still half-open, slots free again.
    assert b._probes == 0 and b.state is HALF_OPEN
    assert b.failure_rate() == 10 / 13
    with ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(b)
        assert b.allow() is False
    assert b._probes == 0


def test_a_failed_probe_reopens_and_restarts_the_cooldown() -> None:
    p = make()
    open_breaker(p)
    p.clock.advance(30 * S)
    assert p.breaker.state is HALF_OPEN
    p.clock.advance(5 * S)
    assert p.run("fail") == "fail"
    reopened = p.clock.now_ns()
    assert p.breaker.state is OPEN and p.breaker._probes == 0
    p.clock.set(reopened + 30 * S - 1)
    assert p.run("ok") == "refused"
    assert p.breaker.state is OPEN
    p.clock.set(reopened + 30 * S)
    assert p.breaker.state is HALF_OPEN
    assert [c[1:] for c in p.changes] == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
    ]


def test_a_failed_probe_reopens_even_below_open_at() -> None:
    p = make()
    p.runs(*["ok"] * 5, *["fail"] * 5)
    p.clock.advance(30 * S)
    p.runs("ok", "ok", "ok")  # 5 of 13 = 38 %: half-open
    assert p.breaker.state is HALF_OPEN
    assert p.run("fail") == "fail"  # 6 of 14 = 43 % < open_at, but a probe failed
    assert p.breaker.state is OPEN


@pytest.mark.parametrize(
    ("oks", "fails", "probes_to_close"),
    [
        (5, 5, 5),  # 5/11 .. 5/14 = 35.7 % stay half-open; 5/15 = 33.3 % closes
        (3, 7, 11),  # 7/20 = 35 % exactly is not "under 35 %": 7/21 closes
        (0, 10, 19),  # 10/29 = 34.5 %
    ],
)
def test_hysteresis_successful_probes_close_only_under_close_below(
    oks: int, fails: int, probes_to_close: int
) -> None:
    # The cooldown (30 s) is shorter than the window (60 s): the failures that opened
    # the breaker are still in the window while it probes.
    expected = next(
        k for k in range(1, 100) if Fraction(fails, oks + fails + k) < Fraction(35, 100)
    )
    assert expected == probes_to_close
    p = make()
    p.runs(*["ok"] * oks, *["fail"] * fails)
    assert p.breaker.state is OPEN
    p.clock.advance(30 * S)
    for k in range(1, probes_to_close):
        assert p.run("ok") == "ok"
        rate = p.breaker.failure_rate()
        assert rate == fails / (oks + fails + k)
        assert rate >= 0.35  # between close_below and open_at (or above): no change
        assert p.breaker.state is HALF_OPEN
    assert p.run("ok") == "ok"
    assert p.breaker.state is CLOSED
    assert p.breaker.failure_rate() < 0.35
    assert [c[1:] for c in p.changes] == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_closed_with_a_rate_between_the_thresholds_does_not_open() -> None:
    p = make()
    p.runs(*["ok"] * 12, *["fail"] * 8)  # 40 %: neither opens nor anything else
    assert p.breaker.state is CLOSED
    assert p.breaker.failure_rate() == 0.4


# -- error classification ---------------------------------------------------------------------
def test_validation_errors_do_not_count_as_failures() -> None:
    p = make()
    assert p.runs(*["invalid"] * 20) == ["invalid"] * 20
    assert p.breaker.state is CLOSED
    assert p.breaker.failure_rate() == 0.0
    err = InstrumentRuleViolation("quantity", "LOT_SIZE", "0.1")  # a subclass
    for _ in range(10):
        with pytest.raises(InstrumentRuleViolation), p.breaker:
            raise err
    assert p.breaker.state is CLOSED and p.breaker.failure_rate() == 0.0


def test_a_validation_error_probe_does_not_reopen_and_frees_its_slot() -> None:
    p = make(half_open_probes=1)
    open_breaker(p)
    p.clock.advance(30 * S)
    assert p.run("invalid") == "invalid"
    assert p.breaker.state is HALF_OPEN and p.breaker._probes == 0
    assert p.run("fail") == "fail"
    assert p.breaker.state is OPEN


def test_custom_is_failure_policy() -> None:
    seen: list[BaseException] = []

    def only_timeouts(exc: BaseException) -> bool:
        seen.append(exc)
        return isinstance(exc, TimeoutError)

    clock = TestClock(T0)
    b = CircuitBreaker("venue", BreakerConfig(), clock=clock, is_failure=only_timeouts)
    key_errors = [KeyError(i) for i in range(10)]
    for exc in key_errors:
        with pytest.raises(KeyError), b:
            raise exc
    assert seen == key_errors  # called with the very exception raised
    assert b.state is CLOSED and b.failure_rate() == 0.0
    # A ValidationError counts once the policy says so.
    b2 = CircuitBreaker("venue", BreakerConfig(min_calls=2), clock=clock, is_failure=lambda e: True)
    for _ in range(2):
        with pytest.raises(ValidationError), b2:
            raise bad_input()
    assert b2.state is OPEN
    for i in range(10):
        with pytest.raises(TimeoutError), b:
            raise TimeoutError(i)
    assert b.state is OPEN  # 10 timeouts of 20 calls


def test_record_failure_without_an_exception_counts() -> None:
    p = make(min_calls=3)
    p.breaker.record_success()
    p.breaker.record_failure()
    p.breaker.record_failure(bad_input())  # classified: not counted at all
    assert p.breaker.failure_rate() == 0.5 and p.breaker.state is CLOSED  # 2 calls
    p.breaker.record_failure()  # 2 of 3 calls
    assert p.breaker.state is OPEN


# -- callbacks ------------------------------------------------------------------------------
def test_callbacks_see_every_change_and_refusal_in_order() -> None:
    p = make(min_calls=2, half_open_probes=1, cooldown_ns=10 * S, window_ns=20 * S, buckets=20)
    p.runs("ok", "fail")  # 1 of 2 = 50 %: OPEN
    p.runs("ok", "ok")  # refused twice
    p.clock.advance(10 * S)
    with p.breaker:  # the probe; a second caller is refused meanwhile
        assert p.run("ok") == "refused"
    # 1 fail of 3: 33 % < 35 %: the probe closed it
    assert p.breaker.state is CLOSED
    p.runs("fail")  # 2 of 4: OPEN again
    p.clock.advance(10 * S)
    p.runs("fail")  # the probe fails: OPEN
    p.runs("ok")  # refused
    assert p.log == [
        ("change", "CLOSED", "OPEN"),
        ("reject", "venue"),
        ("reject", "venue"),
        ("change", "OPEN", "HALF_OPEN"),
        ("reject", "venue"),
        ("change", "HALF_OPEN", "CLOSED"),
        ("change", "CLOSED", "OPEN"),
        ("change", "OPEN", "HALF_OPEN"),
        ("change", "HALF_OPEN", "OPEN"),
        ("reject", "venue"),
    ]
    assert p.breaker.rejected == 4
    assert all(c[0] == "venue" for c in p.changes)


# -- configure at runtime -------------------------------------------------------------------
def test_configure_changes_thresholds_and_keeps_the_window() -> None:
    p = make()
    p.runs(*["ok"] * 7, *["fail"] * 2)
    p.breaker.configure(open_at=0.3, close_below=0.3)
    assert p.breaker.config.open_at == 0.3
    assert p.breaker.failure_rate() == 2 / 9  # same shape: the window is kept
    p.run("fail")  # 3 of 10 = 30 %
    assert p.breaker.state is OPEN


def test_configure_min_calls_cooldown_and_probes() -> None:
    p = make()
    p.runs(*["fail"] * 4)
    p.breaker.configure(min_calls=5)
    p.run("fail")
    assert p.breaker.state is OPEN
    opened = p.clock.now_ns()
    p.clock.set(opened + 5 * S)
    assert p.breaker.state is OPEN
    p.breaker.configure(cooldown_ns=5 * S)  # applies to the running cooldown
    assert p.breaker.state is HALF_OPEN
    p.breaker.configure(half_open_probes=1)
    with p.breaker:
        assert p.run("ok") == "refused"
    p.breaker.configure(half_open_probes=2)
    with p.breaker, p.breaker:
        assert p.run("ok") == "refused"
    assert p.breaker._probes == 0


def test_configure_a_new_window_shape_restarts_the_window() -> None:
    p = make()
    p.runs(*["ok"] * 5, *["fail"] * 4)
    p.breaker.configure(window_ns=60 * S, buckets=60)  # same shape: kept
    assert p.breaker.failure_rate() == 4 / 9
    p.breaker.configure(window_ns=30 * S)
    assert p.breaker.failure_rate() == 0.0
    p.run("fail")  # one call in the new window: no opening
    assert p.breaker.state is CLOSED and p.breaker.failure_rate() == 1.0
    p.runs(*["fail"] * 9)
    assert p.breaker.state is OPEN
    p.breaker.configure(buckets=10)  # the state stays: only the window restarts
    assert p.breaker.state is OPEN and p.breaker.failure_rate() == 0.0
    # The new width (3 s) is in force: a failure at 3 s x 10 later has left.
    p.clock.advance(30 * S)
    p.run("fail")  # half-open probe fails
    p.clock.advance(30 * S)
    assert p.breaker.failure_rate() == 0.0


@pytest.mark.parametrize(
    "changes",
    [
        {"open_at": 0.3},  # below close_below (0.35)
        {"close_below": 0.6},  # above open_at
        {"open_at": 1.01},
        {"close_below": 0.0},
        {"close_below": -0.1},
        {"window_ns": 0},
        {"buckets": 0},
        {"min_calls": 0},
        {"cooldown_ns": 0},
        {"cooldown_ns": -S},
        {"half_open_probes": 0},
        {"window_ns": 59, "buckets": 60},  # a bucket narrower than 1 ns
        {"min_calls": 3, "buckets": -1},  # one bad value spoils the whole change
    ],
)
def test_configure_refuses_invalid_config_and_changes_nothing(changes: dict[str, Any]) -> None:
    p = make()
    p.runs(*["ok"] * 5, *["fail"] * 4)
    before = p.breaker.config
    with pytest.raises(ValidationError):
        p.breaker.configure(**changes)
    assert p.breaker.config is before
    assert p.breaker.failure_rate() == 4 / 9
    assert p.breaker.state is CLOSED
    p.run("fail")  # behaves exactly as before: 5 of 10 opens
    assert p.breaker.state is OPEN


def test_configure_with_an_unknown_setting_changes_nothing() -> None:
    p = make()
    before = p.breaker.config
    with pytest.raises((TypeError, ValidationError)):
        p.breaker.configure(open_below=0.2)
    assert p.breaker.config is before


def test_an_invalid_initial_config_is_refused() -> None:
    with pytest.raises(ValidationError):
        CircuitBreaker("x", BreakerConfig(open_at=0.2), clock=TestClock(T0))


# -- the ways to use it -----------------------------------------------------------------------
def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never suspends (no real awaits) to its end."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("the coroutine suspended")


def test_decorator_on_a_sync_function() -> None:
    p = make(min_calls=3)
    err = Boom("down")

    @p.breaker
    def fetch(x: int, *, y: int = 0) -> int:
        """Fetch a thing."""
        if x < 0:
            raise err
        return x + y

    assert fetch.__name__ == "fetch" and fetch.__doc__ == "Fetch a thing."
    assert fetch(2, y=3) == 5
    with pytest.raises(Boom) as raised:
        fetch(-1)
    assert raised.value is err  # propagates unchanged
    with pytest.raises(Boom):
        fetch(-1)
    assert p.breaker.state is OPEN  # 2 of 3
    with pytest.raises(CircuitOpen):
        fetch(1)


def test_decorator_on_an_async_function() -> None:
    p = make(min_calls=3)
    err = Boom("down")

    @p.breaker
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        if x < 0:
            raise err
        return x * 2

    assert inspect.iscoroutinefunction(fetch) and fetch.__name__ == "fetch"

    async def main() -> None:
        assert await fetch(21) == 42
        with pytest.raises(Boom) as raised:
            await fetch(-1)
        assert raised.value is err
        assert await asyncio.gather(fetch(-1), return_exceptions=True) == [err]
        assert p.breaker.state is OPEN  # 2 of 3
        with pytest.raises(CircuitOpen):
            await fetch(1)

    asyncio.run(main())


def test_with_block_propagates_exceptions_unchanged() -> None:
    p = make()
    err = Boom("down")
    with p.breaker as b:
        assert b is p.breaker
    with pytest.raises(Boom) as raised, p.breaker:
        raise err
    assert raised.value is err and raised.value.__traceback__ is not None
    assert p.breaker._total_calls == 2 and p.breaker._total_fails == 1
    assert probe_flags(p.breaker) == ()


def test_async_with_block() -> None:
    p = make(min_calls=3)
    err = Boom("down")

    async def main() -> None:
        async with p.breaker as b:
            assert b is p.breaker
            await asyncio.sleep(0)
        with pytest.raises(Boom) as raised:
            async with p.breaker:
                await asyncio.sleep(0)
                raise err
        assert raised.value is err
        with pytest.raises(Boom):
            async with p.breaker:
                raise Boom("again")
        assert p.breaker.state is OPEN
        body: list[int] = []
        with pytest.raises(CircuitOpen):
            async with p.breaker:
                body.append(1)
        assert body == []

    asyncio.run(main())


def test_call_and_call_async_pass_arguments_and_results() -> None:
    p = make()

    def add(a: int, b: int, *, c: int = 0) -> int:
        return a + b + c

    async def amul(a: int, b: int) -> int:
        return a * b

    assert p.breaker.call(add, 1, 2, c=3) == 6
    assert run_sync(p.breaker.call_async(amul, 6, 7)) == 42
    err = Boom()

    async def afail() -> None:
        raise err

    with pytest.raises(Boom) as raised:
        run_sync(p.breaker.call_async(afail))
    assert raised.value is err
    assert p.breaker._total_calls == 3 and p.breaker._total_fails == 1


def test_nested_blocks_keep_their_own_probe_flags() -> None:
    p = make(half_open_probes=2)
    with p.breaker:  # admitted while CLOSED: not a probe
        open_breaker(p)
        p.clock.advance(30 * S)
        with p.breaker:  # a probe
            assert probe_flags(p.breaker) == (False, True)
            assert p.breaker._probes == 1
        assert p.breaker._probes == 0
        assert probe_flags(p.breaker) == (False,)
    assert p.breaker._probes == 0  # the outer, non-probe exit released nothing
    assert probe_flags(p.breaker) == ()


# -- a stateful comparison with a reference model ----------------------------------------------
@dataclass
class Model:
    """The breaker as the module docstring describes it, naively: every outcome kept
    with its time, the window recomputed from scratch.  Where the docstring leaves a
    choice open, the model takes the implementation's reading: the state is only
    re-evaluated when an outcome is recorded, and a non-counted error is recorded as a
    call that did not fail."""

    config: BreakerConfig
    now: int
    outcomes: list[tuple[int, bool]] = field(default_factory=list)
    state: BreakerState = CLOSED
    opened_at: int = 0
    rejected: int = 0
    changes: list[tuple[BreakerState, BreakerState]] = field(default_factory=list)

    @staticmethod
    def valid(c: BreakerConfig) -> bool:
        return (
            0 < c.close_below <= c.open_at <= 1
            and min(c.window_ns, c.buckets, c.min_calls, c.cooldown_ns, c.half_open_probes) > 0
            and c.window_ns >= c.buckets
        )

    def window(self) -> list[bool]:
        width = self.config.window_ns // self.config.buckets
        now_slot = self.now // width
        return [f for ts, f in self.outcomes if now_slot - ts // width < self.config.buckets]

    def rate(self) -> float:
        w = self.window()
        return sum(w) / len(w) if w else 0.0

    def set(self, new: BreakerState) -> None:
        if new is not self.state:
            self.changes.append((self.state, new))
            self.state = new
            if new is OPEN:
                self.opened_at = self.now

    def observe(self) -> BreakerState:
        if self.state is OPEN and self.now - self.opened_at >= self.config.cooldown_ns:
            self.set(HALF_OPEN)
        return self.state

    def admit(self) -> bool:
        """Sequential calls: at most one probe is ever in flight."""
        if self.observe() is OPEN:
            self.rejected += 1
            return False
        return True

    def record(self, failed: bool) -> None:
        self.outcomes.append((self.now, failed))
        w = self.window()
        rate = sum(w) / len(w)
        if self.state is HALF_OPEN:
            if failed:
                self.set(OPEN)
            elif rate < self.config.close_below:
                self.set(CLOSED)
        elif (
            self.state is CLOSED and len(w) >= self.config.min_calls and rate >= self.config.open_at
        ):
            self.set(OPEN)

    def configure(self, changes: dict[str, Any]) -> bool:
        new = replace(self.config, **changes)
        if not self.valid(new):
            return False
        if (new.window_ns, new.buckets) != (self.config.window_ns, self.config.buckets):
            self.outcomes.clear()
        self.config = new
        return True


SM_CONFIG = BreakerConfig(
    open_at=0.5,
    close_below=0.35,
    window_ns=10 * S,
    buckets=5,
    min_calls=4,
    cooldown_ns=3 * S,
    half_open_probes=2,
)
CONFIG_CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "open_at": st.sampled_from([0.25, 0.35, 0.5, 0.6, 1.0, 1.5]),
        "close_below": st.sampled_from([0.0, 0.2, 0.35, 0.5, 0.7]),
        "min_calls": st.integers(0, 8),
        "cooldown_ns": st.sampled_from([0, 1, S, 3 * S, 7 * S]),
        "half_open_probes": st.integers(0, 3),
        "window_ns": st.sampled_from([3, 4 * S, 10 * S, 10 * S + 7, 30 * S]),
        "buckets": st.sampled_from([1, 5, 7, 10]),
    },
)


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = TestClock(T0 + 123)
        self.changes: list[tuple[BreakerState, BreakerState]] = []
        self.rejects: list[str] = []
        self.breaker = CircuitBreaker(
            "sm",
            SM_CONFIG,
            clock=self.clock,
            on_state_change=lambda _n, old, new: self.changes.append((old, new)),
            on_reject=self.rejects.append,
        )
        self.model = Model(SM_CONFIG, self.clock.now_ns())

    def _advance(self, delta: int) -> None:
        self.clock.advance(delta)
        self.model.now = self.clock.now_ns()

    @rule(delta=st.integers(0, 25 * S))
    def advance_any(self, delta: int) -> None:
        self._advance(delta)

    @rule(
        edge_kind=st.sampled_from(["next_bucket", "cooldown_end", "window_end"]),
        offset=st.sampled_from([-1, 0, 1]),
    )
    def advance_to_a_boundary(self, edge_kind: str, offset: int) -> None:
        """Land just before, on or just after a bucket, cooldown or window edge."""
        c, now = self.model.config, self.model.now
        width = c.window_ns // c.buckets
        edge = {
            "next_bucket": (now // width + 1) * width,
            "cooldown_end": self.model.opened_at + c.cooldown_ns,
            "window_end": (now // width + c.buckets) * width,
        }[edge_kind]
        self._advance(max(edge + offset - now, 0))

    @rule(
        outcome=st.sampled_from(["ok", "fail", "invalid", "other"]),
        via=st.sampled_from(["call", "with", "decorator", "call_async", "async_with"]),
    )
    def call(self, outcome: str, via: str) -> None:
        b = self.breaker
        ran: list[bool] = []
        errors = {"fail": Boom(), "invalid": bad_input(), "other": TimeoutError()}

        def body() -> str:
            ran.append(True)
            if outcome in errors:
                raise errors[outcome]
            return "result"

        async def abody() -> str:
            return body()

        async def async_with() -> str:
            async with b:
                return body()

        def with_block() -> str:
            with b:
                return body()

        runners: dict[str, Callable[[], Any]] = {
            "call": lambda: b.call(body),
            "with": with_block,
            "decorator": lambda: b(body)(),
            "call_async": lambda: run_sync(b.call_async(abody)),
            "async_with": lambda: run_sync(async_with()),
        }
        admitted = self.model.admit()
        try:
            result = runners[via]()
        except CircuitOpen:
            assert not admitted, "refused a call the model admits"
            assert not ran
            return
        except (Boom, ValidationError, TimeoutError) as exc:
            assert exc is errors[outcome]
        else:
            assert result == "result" and outcome == "ok"
        assert admitted, "admitted a call the model refuses"
        assert ran == [True]
        if outcome != "invalid":  # our own bad input is not counted at all
            self.model.record(outcome in ("fail", "other"))

    @rule(outcome=st.sampled_from(["success", "failure", "classified"]))
    def record_directly(self, outcome: str) -> None:
        """record_success / record_failure without a call (e.g. reported outcomes)."""
        if outcome == "success":
            self.breaker.record_success()
        elif outcome == "failure":
            self.breaker.record_failure(Boom())
        else:
            self.breaker.record_failure(bad_input())
        if outcome != "classified":
            self.model.record(outcome == "failure")

    @rule(changes=CONFIG_CHANGES)
    def configure(self, changes: dict[str, Any]) -> None:
        before = self.breaker.config
        ok = self.model.configure(changes)
        if ok:
            self.breaker.configure(**changes)
            assert self.breaker.config == self.model.config
        else:
            with pytest.raises(ValidationError):
                self.breaker.configure(**changes)
            assert self.breaker.config is before

    @invariant()
    def agrees_with_the_model(self) -> None:
        b, m = self.breaker, self.model
        assert b.state is m.observe()
        assert b.failure_rate() == m.rate()
        assert b.rejected == m.rejected == len(self.rejects)
        assert self.changes == m.changes
        assert b._probes == 0
        assert probe_flags(b) == ()
        assert b._total_calls == len(m.window())
        assert b._total_fails == sum(m.window())


TestBreakerAgainstModel = BreakerMachine.TestCase


# -- concurrency --------------------------------------------------------------------------------
@contextmanager
def fast_thread_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def check_transitions(changes: list[tuple[str, BreakerState, BreakerState]]) -> None:
    state = CLOSED
    for _name, old, new in changes:
        assert old is state and (old, new) in ALLOWED_TRANSITIONS, changes
        state = new


# Failure probability per phase: opens, probes, recovers, flaps between thresholds.
PHASES = [0.9, 0.05, 0.05, 0.7, 0.0, 0.45, 0.9, 0.3, 0.05, 0.6, 0.0, 0.8, 0.2, 0.5, 0.05, 0.0]


def test_threads_hammering_one_breaker_keep_it_consistent() -> None:
    """8 threads, phases of random work on one breaker.  The clock moves (by the
    cooldown) only between phases, while no call is in flight."""
    limit = 3
    p = make(window_ns=2 * S, buckets=4, min_calls=20, cooldown_ns=S, half_open_probes=limit)
    b = p.breaker
    lock = threading.Lock()
    in_probe = 0
    max_in_probe = 0
    problems: list[str] = []
    totals: Counter[str] = Counter()

    def worker(seed: int, fail_p: float, n: int, phase: Counter[str]) -> None:
        nonlocal in_probe, max_in_probe
        rng = random.Random(seed)
        for _ in range(n):
            r = rng.random()
            outcome = "fail" if r < fail_p else "invalid" if r > 0.95 else "ok"
            try:
                with b:
                    probe = probe_flags(b)[-1]
                    with lock:
                        phase["executed"] += 1
                        if probe:
                            in_probe += 1
                            max_in_probe = max(max_in_probe, in_probe)
                        if not 0 <= b._probes <= limit:
                            problems.append(f"probes {b._probes}")
                    # Probes hold their slot a while (others contend for it); other
                    # calls sometimes give up the GIL in the middle of the block.
                    if probe:
                        time.sleep(0.0002)
                    elif rng.random() < 0.2:
                        time.sleep(0)
                    with lock:
                        if probe:
                            in_probe -= 1
                        if outcome == "fail":
                            phase["failed"] += 1
                        if outcome == "invalid":  # not counted by the breaker
                            phase["invalid"] += 1
                    if outcome == "fail":
                        raise Boom()
                    if outcome == "invalid":
                        raise bad_input()
            except CircuitOpen:
                with lock:
                    phase["refused"] += 1
            except (Boom, ValidationError):
                pass
            except Exception as exc:  # pragma: no cover - reported below
                problems.append(repr(exc))

    with fast_thread_switching():
        for k, fail_p in enumerate(PHASES):
            b.failure_rate()  # expire what the clock step pushed out of the window
            calls0, fails0, rejected0 = b._total_calls, b._total_fails, b.rejected
            phase: Counter[str] = Counter()
            threads = [
                threading.Thread(target=worker, args=(1000 * k + i, fail_p, 150, phase))
                for i in range(8)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
                assert not t.is_alive(), "a worker hung"
            assert problems == []
            # No call in flight, the clock has not moved: every executed call is in the
            # window exactly once, every refusal was counted and reported.
            assert b._total_calls - calls0 == phase["executed"] - phase["invalid"]
            assert b._total_fails - fails0 == phase["failed"]
            assert b.rejected - rejected0 == phase["refused"]
            assert phase["executed"] + phase["refused"] == 8 * 150
            assert 0 <= b._probes <= limit
            assert b._probes == 0  # nothing in flight: every slot was given back
            assert in_probe == 0
            totals.update(phase)
            totals[b._state.value] += 1
            p.clock.advance(S)  # the cooldown: OPEN turns HALF_OPEN on the next call

    assert 2 <= max_in_probe <= limit  # probes did run side by side, never too many
    assert len(p.rejects) == b.rejected == totals["refused"]
    check_transitions(p.changes)
    kinds = {(old, new) for _n, old, new in p.changes}
    assert kinds == ALLOWED_TRANSITIONS  # every transition happened under contention


def test_async_tasks_each_keep_their_own_probe_flag() -> None:
    """Calls admitted while CLOSED are still in flight when the breaker opens and
    turns half-open; their exits must not release the probes' slots."""
    p = make(half_open_probes=3)
    b = p.breaker
    gates = {name: asyncio.Event() for name in ("n1", "n2", "p1", "p2", "p3")}
    flags: dict[str, tuple[bool, ...]] = {}

    async def call(name: str) -> str:
        async with b:
            flags[name] = probe_flags(b)
            await gates[name].wait()
            assert probe_flags(b) == flags[name]  # nobody else's flag
        assert probe_flags(b) == ()
        return name

    async def main() -> None:
        normal = [asyncio.create_task(call(n)) for n in ("n1", "n2")]
        await asyncio.sleep(0)
        assert flags == {"n1": (False,), "n2": (False,)}
        for _ in range(10):
            b.record_failure(Boom())  # other callers' failures open it
        assert b.state is OPEN
        p.clock.advance(30 * S)
        probes = [asyncio.create_task(call(n)) for n in ("p1", "p2", "p3")]
        await asyncio.sleep(0)
        assert b.state is HALF_OPEN and b._probes == 3
        assert all(flags[n] == (True,) for n in ("p1", "p2", "p3"))
        with pytest.raises(CircuitOpen):
            async with b:
                pass
        for name in ("n2", "n1"):  # the old calls finish (10 of 12 failed)
            gates[name].set()
            await asyncio.sleep(0)
        assert await asyncio.gather(*normal) == ["n1", "n2"]
        assert b._probes == 3 and b.state is HALF_OPEN
        for k, name in enumerate(("p2", "p3", "p1"), start=1):
            gates[name].set()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert b._probes == 3 - k
        assert await asyncio.gather(*probes) == ["p1", "p2", "p3"]
        assert b.state is HALF_OPEN  # 10 of 15 failed
        assert b._probes == 0

    asyncio.run(main())


def test_many_interleaved_async_tasks_keep_the_breaker_consistent() -> None:
    limit = 3
    p = make(window_ns=2 * S, buckets=4, min_calls=20, cooldown_ns=S, half_open_probes=limit)
    b = p.breaker
    state = {"in_probe": 0, "max_in_probe": 0}
    totals: Counter[str] = Counter()

    async def task(seed: int, fail_p: float, n: int, phase: Counter[str]) -> None:
        rng = random.Random(seed)
        for _ in range(n):
            outcome = "fail" if rng.random() < fail_p else "ok"
            try:
                async with b:
                    mine = probe_flags(b)
                    assert len(mine) == 1
                    phase["executed"] += 1
                    if mine[-1]:
                        state["in_probe"] += 1
                        state["max_in_probe"] = max(state["max_in_probe"], state["in_probe"])
                    assert 0 <= b._probes <= limit
                    for _ in range(rng.randint(0, 3)):
                        await asyncio.sleep(0)
                    assert probe_flags(b) == mine
                    if mine[-1]:
                        state["in_probe"] -= 1
                    if outcome == "fail":
                        phase["failed"] += 1
                        raise Boom()
            except CircuitOpen:
                phase["refused"] += 1
            except Boom:
                pass
            assert probe_flags(b) == ()
            await asyncio.sleep(0)

    async def main() -> None:
        for k, fail_p in enumerate(PHASES):
            b.failure_rate()
            calls0, fails0, rejected0 = b._total_calls, b._total_fails, b.rejected
            phase: Counter[str] = Counter()
            await asyncio.gather(*(task(100 * k + i, fail_p, 40, phase) for i in range(25)))
            assert b._total_calls - calls0 == phase["executed"] - phase["invalid"]
            assert b._total_fails - fails0 == phase["failed"]
            assert b.rejected - rejected0 == phase["refused"]
            assert phase["executed"] + phase["refused"] == 25 * 40
            assert 0 <= b._probes <= limit
            assert b._probes == 0  # nothing in flight: every slot was given back
            assert state["in_probe"] == 0
            totals.update(phase)
            p.clock.advance(S)

    asyncio.run(main())
    assert 1 <= state["max_in_probe"] <= limit
    assert len(p.rejects) == b.rejected == totals["refused"]
    check_transitions(p.changes)
    assert {(old, new) for _n, old, new in p.changes} == ALLOWED_TRANSITIONS


# -- regressions: defects found in bot4.risk.breaker, fixed ------------------------------------
def test_a_state_listener_may_read_the_breaker() -> None:
    seen: list[tuple[BreakerState, float]] = []
    holder: list[CircuitBreaker] = []

    def listener(_name: str, _old: BreakerState, _new: BreakerState) -> None:
        seen.append((holder[0].state, holder[0].failure_rate()))

    b = CircuitBreaker("venue", BreakerConfig(min_calls=1), TestClock(T0), on_state_change=listener)
    holder.append(b)
    worker = threading.Thread(target=b.record_failure, daemon=True)  # never joined if stuck
    worker.start()
    worker.join(1.0)
    assert not worker.is_alive(), "record_failure deadlocked in the state listener"
    assert seen == [(OPEN, 1.0)]


def test_a_probe_from_an_earlier_half_open_episode_frees_no_slot_of_the_next() -> None:
    p = make(min_calls=1, cooldown_ns=10 * S, half_open_probes=2, window_ns=600 * S)
    b = p.breaker
    gates = {name: asyncio.Event() for name in "ABCDE"}
    in_flight: set[str] = set()
    max_in_flight = 0

    async def probe(name: str, fail: bool) -> None:
        nonlocal max_in_flight
        async with b:
            in_flight.add(name)
            max_in_flight = max(max_in_flight, len(in_flight))
            await gates[name].wait()
            in_flight.discard(name)
            if fail:
                raise Boom()

    async def main() -> None:
        p.run("fail")  # OPEN
        p.clock.advance(10 * S)
        a = asyncio.create_task(probe("A", fail=False))
        bb = asyncio.create_task(probe("B", fail=True))
        await asyncio.sleep(0)
        gates["B"].set()  # B fails: OPEN again while A is still in flight
        with pytest.raises(Boom):
            await bb
        assert b.state is OPEN
        p.clock.advance(10 * S)
        c = asyncio.create_task(probe("C", fail=False))  # the next episode's probe
        await asyncio.sleep(0)
        gates["A"].set()
        await a  # the stale probe finishes: it held no slot of this episode
        probes_after_a = b._probes
        d = asyncio.create_task(probe("D", fail=False))
        e = asyncio.create_task(probe("E", fail=False))
        await asyncio.sleep(0)
        for name in "CDE":
            gates[name].set()
        await asyncio.gather(c, d, e, return_exceptions=True)
        problems = []
        if probes_after_a != 1:
            problems.append(f"C holds the only slot, but the count is {probes_after_a}")
        if max_in_flight > 2:
            problems.append(f"{max_in_flight} probes ran at once (half_open_probes=2)")
        if b._probes != 0:
            problems.append(f"probe count {b._probes} after every call ended")
        assert problems == []

    asyncio.run(main())


def test_probes_in_flight_when_it_closes_release_their_slots() -> None:
    p = make(min_calls=1, cooldown_ns=20 * S, window_ns=10 * S, buckets=10, half_open_probes=2)
    b = p.breaker

    async def main() -> None:
        p.run("fail")
        p.clock.advance(20 * S)  # the failure has left the window
        gate = asyncio.Event()

        async def slow() -> None:
            async with b:
                await gate.wait()

        slow_task = asyncio.create_task(slow())
        await asyncio.sleep(0)
        async with b:  # a quick probe succeeds: 0 % failures, CLOSED
            pass
        assert b.state is CLOSED
        gate.set()
        await slow_task
        assert b._probes == 0, f"{b._probes} probe slot(s) leaked after every call ended"

    asyncio.run(main())


def test_state_changes_reach_the_listener_in_the_order_they_happened() -> None:
    # CI caught OPEN->HALF_OPEN delivered before CLOSED->OPEN: each thread drained its own
    # batch after releasing the lock.  Here the first delivery stalls between leaving the
    # lock and recording; a second thread's transition must wait behind it, not overtake.
    stall = threading.Event()
    entered = threading.Event()
    changes: list[tuple[BreakerState, BreakerState]] = []

    def listener(_name: str, old: BreakerState, new: BreakerState) -> None:
        if not changes and not entered.is_set():
            entered.set()
            assert stall.wait(5.0)
        changes.append((old, new))

    clock = TestClock(T0)
    b = CircuitBreaker(
        "venue", BreakerConfig(min_calls=1, cooldown_ns=10 * S), clock, on_state_change=listener
    )
    first = threading.Thread(target=b.record_failure, daemon=True)
    first.start()
    assert entered.wait(5.0)
    clock.advance(10 * S)
    assert b.state is HALF_OPEN  # this thread's transition, queued behind the first
    assert changes == []
    stall.set()
    first.join(5.0)
    assert not first.is_alive()
    assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]  # both delivered, in order
