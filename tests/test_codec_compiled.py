"""The compiled event encoder (``bot4.oms._fastcodec``) against the generated Python
encoders it replaces (``event_codec.wal_line_py`` / ``payload_json_py``, the reference)
and the general definition they equal (``json.dumps(ev.to_payload())``): random values
of every field's annotated type must be encoded by the compiled path itself and give
the same text; values of any other type, subclasses, unset slots and unprintable ints
must go to the reference and give its text or its exception (docs/live.md, "The
journal's write-ahead file")."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from enum import Enum, IntEnum, StrEnum
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4._compiled import FORCE_PURE
from bot4.core.enums import OrderSide, OrderType
from bot4.core.events import (
    EVENT_TYPES,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderInitialized,
    OrderSubmitted,
)
from bot4.oms import event_codec
from bot4.oms.event_codec import (
    _general_line,
    general_payload,
    payload_json_py,
    wal_line_py,
)
from tests.test_journal_ahead import _sample

CLASSES = list(EVENT_TYPES.values())
ORDER_PATH = [
    OrderInitialized,
    OrderSubmitted,
    OrderAccepted,
    OrderFilled,
    OrderCanceled,
    OrderExpired,
]


def test_the_compiled_encoder_is_built_and_in_use() -> None:
    if FORCE_PURE:
        pytest.skip("BOT4_PURE_SIM is set: the pure encoders are in use on purpose")
    from bot4.oms import _fastcodec

    assert _fastcodec.__file__ is not None
    assert not _fastcodec.__file__.endswith((".py", ".pyx"))
    assert event_codec.wal_line is _fastcodec.wal_line, "bot4.oms._fastcodec is not built"
    assert event_codec.payload_json is _fastcodec.payload_json
    # Every event class is taken (every field a slot of the class, every kind known):
    # one that drops out must be noticed, not silently go pure.
    assert event_codec.COMPILED_CLASSES == CLASSES
    assert set(_fastcodec.compiled_classes()) == set(CLASSES)
    for cls in ORDER_PATH:
        assert _fastcodec.line_or_none(_sample(cls, 0)) is not None, cls


@pytest.fixture(scope="module")
def fast() -> ModuleType:
    if not event_codec.COMPILED_CLASSES:
        pytest.skip("the compiled encoder is not in use")
    from bot4.oms import _fastcodec

    return _fastcodec


def _outcome(encode: Callable[[Event], str], ev: Event) -> tuple[str, object]:
    try:
        return ("text", encode(ev))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def same_as_reference(fast: ModuleType, ev: Event) -> None:
    """``wal_line`` / ``payload_json`` give the reference's text or exception."""
    assert _outcome(event_codec.wal_line, ev) == _outcome(wal_line_py, ev)
    assert _outcome(event_codec.payload_json, ev) == _outcome(payload_json_py, ev)
    assert event_codec.wal_line is fast.wal_line


def compiled_equals_all(fast: ModuleType, ev: Event) -> None:
    """The compiled path encodes ``ev`` itself, as the reference and the definition."""
    line = fast.line_or_none(ev)
    payload = fast.payload_or_none(ev)
    assert line is not None and payload is not None, ev
    assert line == wal_line_py(ev) == _general_line(ev)
    assert payload == payload_json_py(ev) == general_payload(ev)
    assert event_codec.wal_line(ev) == line
    assert event_codec.payload_json(ev) == payload
    assert line.isascii() and "\n" not in line and "\x1f" not in line


# -- values of the annotated types -----------------------------------------------------
BIG = 10**40
ints = st.one_of(
    st.integers(min_value=-1000, max_value=1000),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, -(2**64), 0, -1]),
    st.integers(min_value=-BIG, max_value=BIG),
)
# Every code point (surrogates and controls included) and the characters JSON escapes.
texts = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec=None, categories=None), max_size=30),
    st.text(st.sampled_from('"\\/\x00\x1f\x7f\t\n\r\x08\x0c é€\ud800\U0001f600~ aZ'), max_size=12),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)


def _strategy(t: Any) -> st.SearchStrategy[Any]:
    if t is int:
        return ints
    if t is bool:
        return st.booleans()
    if t is str:
        return texts
    if isinstance(t, type) and issubclass(t, Enum):
        return st.sampled_from(list(t))
    if typing.get_origin(t) is tuple:
        return st.lists(texts, max_size=4).map(tuple)
    raise AssertionError(f"no strategy for {t!r}")


@st.composite
def events(draw: st.DrawFn, cls: type[Event]) -> Event:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: draw(_strategy(hints[f.name])) for f in dataclasses.fields(cls)})


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_values_of_the_annotated_types(
    fast: ModuleType, cls: type[Event], data: st.DataObject
) -> None:
    compiled_equals_all(fast, data.draw(events(cls)))


def test_every_enum_member_and_both_booleans(fast: ModuleType) -> None:
    for cls in CLASSES:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            t = hints[f.name]
            if isinstance(t, type) and issubclass(t, Enum):
                values: list[object] = list(t)
            elif t is bool:
                values = [True, False]
            else:
                continue
            for value in values:
                for variant in (0, 1):
                    ev = dataclasses.replace(_sample(cls, variant), **{f.name: value})
                    compiled_equals_all(fast, ev)


def test_long_text_outgrows_the_stack_buffer(fast: ModuleType) -> None:
    for text in ("x" * 5000, '"\\' * 700, "é" * 900, "a" * 510):
        ev = OrderInitialized(
            1, 2, 3, text, text, OrderSide.BUY, OrderType.LIMIT, 10**300, -(10**300),
            list_id=text, linked_ids=(text,) * 5, parent_id=text,
        )  # fmt: skip
        compiled_equals_all(fast, ev)
        assert len(fast.line_or_none(ev)) > 5000


# -- values of other types: the reference -----------------------------------------------
class IntSub(int):
    pass


class StrSub(str):
    __slots__ = ()


class TupleSub(tuple):  # type: ignore[type-arg]
    __slots__ = ()


class Level(IntEnum):
    ONE = 1


class Side(StrEnum):
    BUY = "BUY"


def _off_type(t: Any, sample: object) -> list[object]:
    if t is int:
        return [True, False, IntSub(5), Level.ONE, None, 2.5, "7"]
    if t is bool:
        return [1, 0, None, IntSub(1)]
    if t is str:
        return [StrSub("x"), Side.BUY, None, 7, b"x"]
    if isinstance(t, type) and issubclass(t, Enum):
        return [str(sample), Side.BUY, None, 0]
    return [[], ["a"], TupleSub(), TupleSub(("a",)), None, "ab", 0]


def test_values_of_other_types_go_to_the_reference(fast: ModuleType) -> None:
    for cls in CLASSES:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            for variant in (0, 1):
                base = _sample(cls, variant)
                for value in _off_type(hints[f.name], getattr(base, f.name)):
                    ev = dataclasses.replace(base, **{f.name: value})
                    assert fast.line_or_none(ev) is None, (cls, f.name, value)
                    if f.name not in event_codec.HEADER_FIELDS:
                        assert fast.payload_or_none(ev) is None, (cls, f.name, value)
                    same_as_reference(fast, ev)
    # A tuple holding other things than strings: the compiled path writes what the
    # reference's value encoder writes, and one that is not JSON raises as it does.
    for ids in [("a", 1), (None, True, 2.5), (("x",), ["y"]), (Side.BUY,), (object(),)]:
        ev = dataclasses.replace(_sample(OrderInitialized, 1), linked_ids=ids)
        same_as_reference(fast, ev)
        line = fast.line_or_none(ev)
        assert line is None or ("text", line) == _outcome(wal_line_py, ev)
    # Header fields are not in the payload: the compiled payload stays in use.
    ev = dataclasses.replace(_sample(OrderSubmitted, 0), seq=True)
    assert fast.payload_or_none(ev) == payload_json_py(ev)


def test_a_subclass_goes_to_the_reference(fast: ModuleType) -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Extra(OrderSubmitted):
        note: str = "n"

    class Plain(OrderInitialized):  # no slots: a __dict__, the same fields
        pass

    for ev in (Extra(1, 2, 3, "c"), Plain(**dataclasses.asdict(_sample(OrderInitialized, 1)))):
        assert fast.line_or_none(ev) is None
        assert fast.payload_or_none(ev) is None
        assert event_codec.wal_line(ev) == wal_line_py(ev) == _general_line(ev)
        assert event_codec.payload_json(ev) == payload_json_py(ev) == general_payload(ev)


def test_an_unset_slot_raises_as_the_reference(fast: ModuleType) -> None:
    ev = OrderSubmitted.__new__(OrderSubmitted)
    assert fast.line_or_none(ev) is None
    assert _outcome(event_codec.wal_line, ev)[0] == "AttributeError"
    same_as_reference(fast, ev)


def test_an_int_too_long_for_str_raises_as_the_reference(fast: ModuleType) -> None:
    ev = dataclasses.replace(_sample(OrderFilled, 0), qty_raw=10**5000)
    assert fast.line_or_none(ev) is None
    assert _outcome(event_codec.wal_line, ev)[0] == "ValueError"
    same_as_reference(fast, ev)
    ev = dataclasses.replace(_sample(OrderFilled, 0), seq=-(10**5000))
    assert _outcome(event_codec.wal_line, ev)[0] == "ValueError"
    same_as_reference(fast, ev)
