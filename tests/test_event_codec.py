"""The journal's generated event encoders against their definition,
``json.dumps(ev.to_payload(), separators=(",", ":"))``: on every event class, with
values of the annotated types (the fast path) and values of other types (the general
path the encoders fall back to), and on arbitrary text and integers.  Both the
generated encoders (``*_py``, the reference) and ``payload_json`` / ``wal_line`` as in
use (the compiled encoder where it is built: tests/test_codec_compiled.py) are checked."""

from __future__ import annotations

import dataclasses
import json
import typing
from decimal import Decimal
from enum import Enum, StrEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot4.core import events as events_module
from bot4.core.enums import OrderSide, OrderType
from bot4.core.events import Event, OrderFilled, OrderInitialized
from bot4.oms.event_codec import (
    HEADER_FIELDS,
    field_plan,
    payload_json,
    payload_json_py,
    wal_line,
    wal_line_py,
)
from tests.test_journal_ahead import _sample

CLASSES = [
    c
    for c in vars(events_module).values()
    if isinstance(c, type) and issubclass(c, Event) and c is not Event
]


def general(ev: Event) -> str:
    return json.dumps(ev.to_payload(), separators=(",", ":"))


def check(ev: Event) -> None:
    try:
        text = general(ev)
    except TypeError:  # not JSON at all: the encoders refuse it too
        for encode in (payload_json, wal_line, payload_json_py, wal_line_py):
            with pytest.raises(TypeError):
                encode(ev)
        return
    line = f"{ev.seq}\t{ev.ts_event}\t{ev.ts_recv}\t{ev.kind}\t{text}"
    assert payload_json_py(ev) == text
    assert wal_line_py(ev) == line
    assert payload_json(ev) == text
    assert wal_line(ev) == line


def test_every_event_class_encodes_as_its_definition() -> None:
    assert len(CLASSES) > 10
    for cls in CLASSES:
        for variant in (0, 1):
            check(_sample(cls, variant))


class Side(StrEnum):  # a str that is not the annotated enum
    BUY = "BUY"


def test_values_of_other_types_take_the_general_path() -> None:
    for cls in CLASSES:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            t = hints[f.name]
            if t is int:
                odd: list[object] = [True, Decimal("1.5"), 2.5]
            elif t is bool:
                odd = [1, 0]
            elif t is str:
                odd = [Side.BUY, 7]
            elif isinstance(t, type) and issubclass(t, Enum):
                odd = [str(next(iter(t)).value), Side.BUY]
            else:
                odd = [["x"], ("a", 1)]
            for value in odd:
                ev = dataclasses.replace(_sample(cls, 0), **{f.name: value})
                check(ev)


@given(
    text=st.text(max_size=40),
    qty=st.integers(min_value=-(10**40), max_value=10**40),
    ids=st.lists(st.text(max_size=8), max_size=3),
)
def test_arbitrary_text_and_integers(text: str, qty: int, ids: list[str]) -> None:
    check(
        OrderInitialized(
            qty,
            2**63,
            1,
            text,
            text[::-1],
            OrderSide.SELL,
            OrderType.STOP_LIMIT,
            qty,
            -qty,
            linked_ids=tuple(ids),
            list_id=text,
        )
    )
    check(OrderFilled(1, 2, 3, text, text, qty, qty, qty, text))


def test_the_field_plan_follows_the_annotations() -> None:
    """What both encoders are built from: every non-header field in order, its kind,
    the key text before its value, every member of an enum with its JSON text."""
    for cls in CLASSES:
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.name not in HEADER_FIELDS]
        plan = field_plan(cls)
        assert [p[0] for p in plan] == names
        for i, (name, kind, key, enum_cls, texts) in enumerate(plan):
            assert key == ("{" if i == 0 else ",") + json.dumps(name) + ":"
            t = hints[name]
            if kind == "enum":
                assert enum_cls is t and texts is not None
                assert texts == {m: json.dumps(m.value) for m in t}
            else:
                assert enum_cls is None and texts is None
                expected = t.__name__ if t in (int, bool, str) else "other"
                assert kind == expected, (cls, name)
