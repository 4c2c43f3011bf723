"""Event text for the journal: the JSON payload column and the write-ahead line.

Both are on the order path of a live process ("journaled before sent"), so each event
class gets its encoders generated once: every field is read once, its type checked
against the class's annotation, and the whole text built by one f-string.  A value that
is not of its annotated type (a bug elsewhere, a subclass) goes through the general
definition, ``json.dumps(ev.to_payload(), separators=(",", ":"))``, so the text is that
definition's in every case (tested on every event class); the fast path only skips work.

Where the compiled encoder (``bot4.oms._fastcodec``, Cython) is built, ``wal_line`` and
``payload_json`` are its functions: the same text from the same per-field description
(``field_plan``) with no interpreter work per field -- the events of every order go
through here before the order reaches the venue.  The generated encoders stay the
reference it calls for anything it does not handle (a value off its type, a subclass),
so the text is theirs in every case (``tests/test_codec_compiled.py``);
``BOT4_PURE_SIM=1`` keeps the pure ones (``wal_line_py``, ``payload_json_py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields
from enum import Enum
from json.encoder import encode_basestring_ascii
from typing import Any, get_type_hints

from bot4.core.events import EVENT_TYPES, Event

HEADER_FIELDS = frozenset({"seq", "ts_event", "ts_recv"})
_encode = json.JSONEncoder(separators=(",", ":")).encode
_escape: Callable[[str], str] = encode_basestring_ascii

Encoder = Callable[[Any], str]


def general_payload(ev: Event) -> str:
    """The definition of the payload text."""
    return _encode(ev.to_payload())


def _json_value(value: Any) -> str:
    """One payload value as ``to_payload`` + ``json.dumps`` would write it."""
    if isinstance(value, Enum):
        value = value.value
    elif isinstance(value, tuple):
        value = list(value)
    return _encode(value)


def _general_line(ev: Event) -> str:
    return f"{ev.seq}\t{ev.ts_event}\t{ev.ts_recv}\t{ev.kind}\t{general_payload(ev)}"


def _literal(text: str) -> str:
    """``text`` as literal f-string content (no quotes or backslashes occur in field
    names and class names, which are identifiers)."""
    return text.replace("{", "{{").replace("}", "}}")


FieldPlan = tuple[str, str, str, type[Enum] | None, dict[Enum, str] | None]


def field_plan(cls: type[Event]) -> list[FieldPlan]:
    """Per non-header field of ``cls``, in order: (name, kind, the text before its value,
    its enum class, {member: JSON text}); kind is "int", "bool", "str", "enum" or
    "other" (from the annotation).  Both encoders, generated and compiled, follow it."""
    hints = get_type_hints(cls)
    plan: list[FieldPlan] = []
    sep = "{"
    for f in fields(cls):
        if f.name in HEADER_FIELDS:
            continue
        t = hints.get(f.name)
        key = f"{sep}{_escape(f.name)}:"
        sep = ","
        if t is int or t is bool or t is str:
            plan.append((f.name, t.__name__, key, None, None))
        elif isinstance(t, type) and issubclass(t, Enum):
            plan.append((f.name, "enum", key, t, {m: _encode(m.value) for m in t}))
        else:
            plan.append((f.name, "other", key, None, None))
    return plan


def compile_encoders(cls: type[Event]) -> tuple[Encoder, Encoder]:
    """(payload, write-ahead line) encoders for events of ``cls``."""
    loads: list[str] = []  # v<i> = ev.<field>
    guards: list[str] = []
    body = ""
    scope: dict[str, Any] = {
        "escape": _escape,
        "value": _json_value,
        "general_payload": general_payload,
        "general_line": _general_line,
        "T": "true",
        "F": "false",
        "EMPTY": "[]",
    }
    plan = field_plan(cls)
    for i, (name, kind, key, enum_cls, texts) in enumerate(plan):
        var = f"v{i}"
        loads.append(f"{var} = ev.{name}")
        if kind == "int":
            guards.append(f"type({var}) is int")
            expr = var
        elif kind == "bool":
            guards.append(f"type({var}) is bool")
            expr = f"(T if {var} else F)"
        elif kind == "str":
            guards.append(f"type({var}) is str")
            expr = f"escape({var})"
        elif kind == "enum":
            scope[f"E{i}"] = enum_cls
            scope[f"M{i}"] = texts
            guards.append(f"type({var}) is E{i}")
            expr = f"M{i}[{var}]"
        else:
            # Anything else (a tuple of ids): the general value encoder, which handles
            # whatever it holds; the list form of an empty tuple without a call.
            expr = f"(EMPTY if {var} == () else value({var}))"
        body += _literal(key) + "{" + expr + "}"
    body += _literal("}" if plan else "{}")
    head = "{ev.seq}\\t{ev.ts_event}\\t{ev.ts_recv}\\t" + _literal(cls.kind) + "\\t"
    check = " and ".join(guards) or "True"
    indent = "\n    "
    src = (
        "def payload(ev):"
        + "".join(indent + x for x in loads)
        + f"{indent}if {check}:{indent}    return f'{body}'"
        + f"{indent}return general_payload(ev)\n"
        "def line(ev):"
        + "".join(indent + x for x in loads)
        + f"{indent}if {check} and type(ev.seq) is int and type(ev.ts_event) is int"
        " and type(ev.ts_recv) is int:"
        f"{indent}    return f'{head}{body}'"
        f"{indent}return general_line(ev)\n"
    )
    exec(src, scope)
    return scope["payload"], scope["line"]


_ENCODERS: dict[type, tuple[Encoder, Encoder]] = {}


def _encoders(cls: type[Event]) -> tuple[Encoder, Encoder]:
    pair = _ENCODERS.get(cls)
    if pair is None:
        pair = _ENCODERS[cls] = compile_encoders(cls)
    return pair


def payload_json_py(ev: Event) -> str:
    """``json.dumps(ev.to_payload(), separators=(",", ":"))``, several times faster."""
    pair = _ENCODERS.get(type(ev))
    return (pair or _encoders(type(ev)))[0](ev)


def wal_line_py(ev: Event) -> str:
    """seq, ts_event, ts_recv, kind, payload, tab-separated: one event of a write-ahead
    line (JSON never holds a raw tab, newline or control character)."""
    pair = _ENCODERS.get(type(ev))
    return (pair or _encoders(type(ev)))[1](ev)


payload_json: Encoder = payload_json_py
wal_line: Encoder = wal_line_py


def _install_compiled() -> list[type[Event]]:
    """Make ``payload_json`` and ``wal_line`` the compiled encoder's where it is built
    (and not switched off with ``BOT4_PURE_SIM=1``), for every event class it can take;
    the classes it took (none: the pure encoders are in use)."""
    global payload_json, wal_line
    from bot4._compiled import compiled

    fast = compiled("_fastcodec", "bot4.oms")
    if fast is None:
        return []
    fast.install(_json_value, payload_json_py, wal_line_py)
    taken = [cls for cls in EVENT_TYPES.values() if fast.add(cls, cls.kind, field_plan(cls))]
    if taken:
        payload_json, wal_line = fast.payload_json, fast.wal_line
    return taken


COMPILED_CLASSES = _install_compiled()
