"""``GcPacer``: young garbage is collected before the survivors are frozen, frozen
garbage waits for the deep collection, and the older generations stay empty."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from bot4.core.errors import ValidationError
from bot4.live.gc_pacing import GcPacer, restore_gc, tune_gc


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


@pytest.fixture
def tuned() -> Iterator[None]:
    before = tune_gc()
    try:
        yield
    finally:
        restore_gc(before)


def test_a_step_frees_young_cycles_and_freezes_the_survivors(tuned: None) -> None:
    pacer = GcPacer(interval_s=0.05, deep_every_s=3600)
    kept = [Node() for _ in range(100)]
    garbage, ref = cycle()
    del garbage  # unreachable now, but a cycle: only a collection frees it
    assert ref() is not None
    frozen = gc.get_freeze_count()
    pacer.step()
    assert ref() is None, "a young cycle was frozen instead of collected"
    assert gc.get_freeze_count() >= frozen + len(kept)  # the survivors moved
    assert gc.get_count()[1:] == (0, 0)  # nothing left in the older generations
    assert pacer.stats.steps == 1 and pacer.stats.step_max_ms > 0


def test_a_cycle_frozen_alive_waits_for_the_deep_collection(tuned: None) -> None:
    pacer = GcPacer(interval_s=0.05, deep_every_s=3600)
    alive, ref = cycle()
    pacer.step()  # frozen while still referenced
    del alive
    for _ in range(3):
        pacer.step()
    assert ref() is not None, "frozen objects are not walked by the paced steps"
    assert pacer.deep() >= 2  # the two nodes (and their dicts)
    assert ref() is None
    assert pacer.stats.deep == 1 and pacer.stats.deep_found >= 2


def test_the_deep_collection_comes_when_due(tuned: None, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("bot4.live.gc_pacing.time.monotonic", lambda: clock[0])
    pacer = GcPacer(interval_s=0.05, deep_every_s=60)
    pacer.step()
    assert (pacer.stats.steps, pacer.stats.deep) == (1, 0)
    clock[0] += 60
    pacer.step()  # due: a deep collection instead of a young one
    assert (pacer.stats.steps, pacer.stats.deep) == (1, 1)
    clock[0] += 30
    pacer.step()
    assert (pacer.stats.steps, pacer.stats.deep) == (2, 1)


def test_it_stays_out_when_collection_is_off(tuned: None) -> None:
    pacer = GcPacer()
    gc.disable()
    try:
        frozen = gc.get_freeze_count()
        garbage, ref = cycle()
        del garbage
        pacer.step()
        assert ref() is not None and gc.get_freeze_count() == frozen
        assert pacer.stats.steps == 0
    finally:
        gc.enable()
        gc.collect()


def test_the_task_steps_on_the_event_loop(tuned: None) -> None:
    pacer = GcPacer(interval_s=0.01)

    async def session() -> None:
        task = asyncio.ensure_future(pacer.run())
        await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(session())
    assert pacer.stats.steps >= 3


@pytest.mark.parametrize("field", ["interval_s", "deep_every_s"])
@pytest.mark.parametrize("value", [0, -1.0, float("nan")])
def test_bad_intervals_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as err:
        GcPacer(**{field: value})
    assert err.value.field == field
