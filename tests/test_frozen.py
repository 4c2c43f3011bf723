"""``fast_frozen_init``: the same constructor as the dataclass's own, still frozen."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from bot4.core.frozen import fast_frozen_init


@dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: str = "x"
    c: tuple[int, ...] = ()


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Fast:
    a: int
    b: str = "x"
    c: tuple[int, ...] = ()


@pytest.mark.parametrize(
    "args, kwargs",
    [((1,), {}), ((1, "y"), {}), ((1,), {"c": (2,)}), ((), {"a": 3, "b": "z", "c": (4, 5)})],
)
def test_same_values_defaults_and_equality_as_the_dataclass_init(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    slow, fast = Plain(*args, **kwargs), Fast(*args, **kwargs)
    assert dataclasses.astuple(slow) == dataclasses.astuple(fast)
    assert repr(fast).replace("Fast", "Plain") == repr(slow)


def test_still_frozen_and_refuses_wrong_calls() -> None:
    fast = Fast(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.a = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Fast(1, d=2)  # type: ignore[call-arg]


def test_refuses_fields_it_cannot_build() -> None:
    @dataclass(frozen=True, slots=True)
    class WithFactory:
        a: list[int] = field(default_factory=list)

    with pytest.raises(TypeError, match="only plain fields"):
        fast_frozen_init(WithFactory)
