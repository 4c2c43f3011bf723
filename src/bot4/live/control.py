"""Operator actions on a running session: reset or trip the kill switch.

A tripped kill switch (a drawdown, the venue down too long, a manual halt) stops new
risk until a person resets it -- and the person is at another terminal, not inside the
trading process.  ``bot4 risk reset --journal FILE`` (or ``halt``) drops a request file
next to the session's journal; the runner picks it up within ``POLL_S``, applies it
through the kill switch's own ``reset``/``trigger`` (so the usual rules hold: a reset
is refused while a trip condition other than the drawdown still holds) and writes an
answer file that the command waits for and prints.

Why files: the journal's directory is already the session's private place (the journal
and the simulator's state live there), it works the same for ``bot4 paper`` and
``bot4 live``, needs no open port, and a request left behind by a command that gave up
is answered -- or replaced by the next one -- never applied twice (each carries an id,
and the runner deletes a request before applying it).  Every change is journaled by
the kill switch (``TradingStateChanged``) and shown on the status line.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot4.core.errors import Bot4Error, ValidationError

if TYPE_CHECKING:
    from bot4.live.runner import LiveRunner

POLL_S = 0.2
ACTIONS = ("reset", "halt")


def control_path(journal_url: str) -> Path:
    """The request file of the session that journals to ``journal_url`` (SQLite: next
    to the database file; other databases name it with ``--control``)."""
    prefix = "sqlite:///"
    if not journal_url.startswith(prefix) or journal_url == prefix + ":memory:":
        raise ValidationError(
            "journal", "a SQLite journal file (or pass --control FILE)", journal_url
        )
    return Path(journal_url[len(prefix) :] + ".control")


def answer_path(path: Path) -> Path:
    return path.with_name(path.name + ".answer")


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    action: str
    staged: bool = False
    reason: str = ""

    @classmethod
    def parse(cls, data: Any) -> Request:
        if not isinstance(data, dict):
            raise ValidationError("request", "a JSON object", data)
        action = data.get("action")
        if action not in ACTIONS:
            raise ValidationError("action", f"one of {', '.join(ACTIONS)}", action)
        rid = data.get("id")
        if not isinstance(rid, str) or not rid:
            raise ValidationError("id", "a non-empty string", rid)
        return cls(rid, action, bool(data.get("staged", False)), str(data.get("reason", "")))


def send(path: Path, action: str, staged: bool, reason: str, wait_s: float) -> dict[str, Any]:
    """Drop a request and wait for the running session's answer."""
    if action not in ACTIONS:
        raise ValidationError("action", f"one of {', '.join(ACTIONS)}", action)
    if wait_s <= 0:
        raise ValidationError("wait", "must be > 0", wait_s)
    rid = secrets.token_hex(8)
    request = {"id": rid, "action": action, "staged": staged, "reason": reason}
    _write_atomic(path, request)
    answer = answer_path(path)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            data = json.loads(answer.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("id") == rid:
            return data
        time.sleep(0.05)
    with contextlib.suppress(OSError, ValueError):  # nobody answered: take it back
        if json.loads(path.read_text(encoding="utf-8")).get("id") == rid:
            path.unlink()
    raise Bot4Error(f"no running session answered within {wait_s:g} s ({path})")


class ControlChannel:
    """The runner's side: poll, apply, answer."""

    def __init__(self, runner: LiveRunner, path: Path) -> None:
        self.runner = runner
        self.path = path
        self.answer = answer_path(path)
        self.applied: list[dict[str, Any]] = []

    def poll(self) -> dict[str, Any] | None:
        """Apply a waiting request, if any; returns the answer written."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            return self._answer({"id": "", "ok": False, "error": f"unreadable: {exc}"})
        try:
            self.path.unlink()  # taken: never applied twice
        except FileNotFoundError:
            return None  # raced with the sender taking it back
        try:
            req = Request.parse(json.loads(text))
        except (ValueError, ValidationError) as exc:
            return self._answer({"id": "", "ok": False, "error": str(exc)})
        return self._answer(self.apply(req))

    def apply(self, req: Request) -> dict[str, Any]:
        risk = self.runner.risk
        who = f"operator: {req.reason}" if req.reason else "operator"
        out: dict[str, Any] = {"id": req.id, "action": req.action}
        try:
            if req.action == "reset":
                risk.kill_switch.reset(staged=req.staged, reason=f"reset by {who}")
            else:
                risk.kill_switch.trigger(who)
        except Bot4Error as exc:
            out.update(ok=False, error=str(exc))
        else:
            out.update(ok=True)
        out["trading_state"] = risk.trading_state
        self.runner.venue.kick()  # a halt's cancels go out now
        return out

    def _answer(self, data: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(data)
        with contextlib.suppress(OSError):  # applied; only the answer is lost (logged)
            _write_atomic(self.answer, data)
        return data
