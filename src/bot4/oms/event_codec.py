"""Event text for the journal: the JSON payload column and the write-ahead line.

Both are on the order path of a live process ("journaled before sent"), so each event
class gets its encoders generated once: every field is read once, its type checked
against the class's annotation, and the whole text built by one f-string.  A value that
is not of its annotated type (a bug elsewhere, a subclass) goes through the general
definition, ``json.dumps(ev.to_payload(), separators=(",", ":"))``, so the text is that
definition's in every case (tested on every event class); the fast path only skips work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields
from enum import Enum
from json.encoder import encode_basestring_ascii
from typing import Any, get_type_hints

from bot4.core.events import Event

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


def compile_encoders(cls: type[Event]) -> tuple[Encoder, Encoder]:
    """(payload, write-ahead line) encoders for events of ``cls``."""
    hints = get_type_hints(cls)
    loads: list[str] = []  # v<i> = ev.<field>
    guards: list[str] = []
    body = ""
    sep = "{"
    scope: dict[str, Any] = {
        "escape": _escape,
        "value": _json_value,
        "general_payload": general_payload,
        "general_line": _general_line,
        "T": "true",
        "F": "false",
        "EMPTY": "[]",
    }
    for i, f in enumerate(fields(cls)):
        if f.name in HEADER_FIELDS:
            continue
        var, t = f"v{i}", hints.get(f.name)
        loads.append(f"{var} = ev.{f.name}")
        if t is int:
            guards.append(f"type({var}) is int")
            expr = var
        elif t is bool:
            guards.append(f"type({var}) is bool")
            expr = f"(T if {var} else F)"
        elif t is str:
            guards.append(f"type({var}) is str")
            expr = f"escape({var})"
        elif isinstance(t, type) and issubclass(t, Enum):
            scope[f"E{i}"] = t
            scope[f"M{i}"] = {m: _encode(m.value) for m in t}
            guards.append(f"type({var}) is E{i}")
            expr = f"M{i}[{var}]"
        else:
            # Anything else (a tuple of ids): the general value encoder, which handles
            # whatever it holds; the list form of an empty tuple without a call.
            expr = f"(EMPTY if {var} == () else value({var}))"
        body += _literal(f"{sep}{_escape(f.name)}:") + "{" + expr + "}"
        sep = ","
    body += _literal("}" if sep == "," else "{}")
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


def payload_json(ev: Event) -> str:
    """``json.dumps(ev.to_payload(), separators=(",", ":"))``, several times faster."""
    pair = _ENCODERS.get(type(ev))
    return (pair or _encoders(type(ev)))[0](ev)


def wal_line(ev: Event) -> str:
    """seq, ts_event, ts_recv, kind, payload, tab-separated: one event of a write-ahead
    line (JSON never holds a raw tab, newline or control character)."""
    pair = _ENCODERS.get(type(ev))
    return (pair or _encoders(type(ev)))[1](ev)
