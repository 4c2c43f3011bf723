"""Write-through persistence of the exchange: every accepted change, appended as it happens.

A real exchange does not forget an order it acknowledged because its process died.  The
state file (``state.py``) is a snapshot, written on SIGTERM and every ``autosave``
seconds; between two snapshots every command the engine *accepted* -- a new order, a
cancel, a cancel-all, an amend, a last-price move, from a client or from the market
source -- is appended to ``<state>.log`` as one JSON line, together with the time the
engine used for it.  Restore = load the snapshot, then replay the log's entries after
the snapshot's ``log_seq`` through the same ``Exchange`` methods with the clock pinned
at each entry's time.  The matching engine is deterministic given its commands and
their times (ids are counters, time comes from the injected clock), so the replay ends
in the exact state the killed process had: the same order ids, queue places, fills,
trade ids, balances, client histories and depth update ids.

Ordering.  The entry is written right after the engine accepted the command and before
anything about it is published (the HTTP answer, the user stream, the depth diff): the
server runs on one thread and the append is synchronous, so nothing a client can see is
missing from the log.  A command the engine refused changed nothing and is not logged.

Durability (``sync``):

* ``write`` (default): ``os.write`` on an ``O_APPEND`` descriptor.  The bytes are in the
  kernel's page cache when the answer leaves, so they survive the process being killed
  (SIGKILL, a crash, an OOM kill), not a power loss or a kernel crash.  This is the
  durability class of SQLite WAL with ``synchronous=NORMAL``.  Each snapshot is
  fsync'ed, so a power loss loses at most what came after the last snapshot.
* ``fsync``: ``fsync`` after every entry: also survives a power loss, at the cost of
  one disk flush per accepted command (milliseconds on most disks).

A snapshot records the log sequence number it includes and then truncates the log;
entries at or below that number (left by a crash between the snapshot's rename and the
truncation) are skipped on replay, and a gap in the numbers refuses the start.  A last
line without its newline is a write torn by the crash: the command was never answered,
so it is dropped (and cut off the file).  A log that cannot be written stops the server
(exit 70) rather than let it run ahead of its own record.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal

from bot4.core.enums import OrderSide, OrderType, TimeInForce
from bot4.core.errors import ValidationError
from bot4.sim.matching_types import NewOrder, SelfTradePrevention

log = logging.getLogger(__name__)

SyncPolicy = Literal["write", "fsync"]
SYNC_POLICIES: Final = ("write", "fsync")
EXIT_LOG_FAILED: Final = 70  # EX_SOFTWARE

# entry kinds
SUBMIT: Final = "s"
CANCEL: Final = "c"
CANCEL_ALL: Final = "C"
AMEND: Final = "a"
LAST_PRICE: Final = "p"
NOTE: Final = "n"  # a market source's own state (e.g. the maker's reference prices)


class LogError(Exception):
    """A command log that cannot be replayed (a gap, a corrupt line, an unknown entry)."""


def log_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".log")


def sync_policy(value: str) -> SyncPolicy:
    """Parse ``--state-sync`` (a typed error naming the field otherwise)."""
    if value not in SYNC_POLICIES:
        raise ValidationError("state_sync", f"expected one of {', '.join(SYNC_POLICIES)}", value)
    return "fsync" if value == "fsync" else "write"


def order_entry(t_ns: int, req: NewOrder) -> list[Any]:
    return [
        SUBMIT,
        t_ns,
        req.account,
        req.symbol,
        req.side.value,
        req.order_type.value,
        req.quantity_raw,
        req.price_raw,
        req.trigger_raw,
        req.time_in_force.value,
        req.post_only,
        req.display_qty_raw,
        req.client_order_id,
        req.stp.value if req.stp is not None else None,
        req.quote_qty_raw,
    ]


def order_from_entry(v: list[Any]) -> NewOrder:
    (account, symbol, side, otype, qty, price, trigger, tif, post_only, display, cid, stp, qq) = v
    return NewOrder(
        account,
        symbol,
        OrderSide(side),
        OrderType(otype),
        int(qty),
        int(price),
        int(trigger),
        TimeInForce(tif),
        bool(post_only),
        int(display),
        cid,
        SelfTradePrevention(stp) if stp is not None else None,
        int(qq),
    )


class CommandLog:
    """The append side: one ``os.write`` per accepted command, numbered from ``seq``."""

    def __init__(
        self,
        path: Path,
        sync: SyncPolicy = "write",
        seq: int = 0,
        on_failure: Callable[[OSError], None] | None = None,
    ) -> None:
        self.path = path
        self.sync = sync
        self.seq = seq
        self.appended = 0
        self._on_failure = on_failure if on_failure is not None else _fail_stop
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._fd: int | None = os.open(path, flags, 0o600)

    def append(self, entry: list[Any]) -> None:
        """Write one entry (kind, time, arguments) before the caller publishes it."""
        fd = self._fd
        if fd is None:
            return
        seq = self.seq + 1
        data = (json.dumps([seq, *entry], separators=(",", ":")) + "\n").encode()
        try:
            while data:
                n = os.write(fd, data)
                data = data[n:]
            if self.sync == "fsync":
                os.fsync(fd)
        except OSError as exc:
            self._on_failure(exc)
            return
        self.seq = seq
        self.appended += 1

    def note(self, name: str, value: Any) -> None:
        self.append([NOTE, 0, name, value])

    def truncate(self) -> None:
        """After a snapshot that holds everything up to ``seq``: start the file over."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _fail_stop(exc: OSError) -> None:
    """The engine already applied a command the log could not record: stop at once,
    before the answer or any stream message leaves.  The log on disk is consistent up to
    the previous command, and the client of this one sees its connection fail (an
    unknown outcome that it resolves by asking, and that a restart answers "not here")."""
    log.critical("exchange command log write failed: %s; stopping", exc)
    print(f"bot4 exchange: command log write failed: {exc}", file=sys.stderr, flush=True)
    os._exit(EXIT_LOG_FAILED)


def read_log(path: Path, after_seq: int) -> list[list[Any]]:
    """The entries to replay on top of a snapshot holding ``after_seq``.  Cuts a torn
    last line off the file; refuses a gap or a corrupt line in the middle."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc}") from None
    good_end = raw.rfind(b"\n") + 1
    if good_end < len(raw):
        log.warning("%s: dropping a torn last entry (%d bytes)", path, len(raw) - good_end)
        with path.open("r+b") as fh:
            fh.truncate(good_end)
            os.fsync(fh.fileno())
    out: list[list[Any]] = []
    expected = after_seq + 1
    for n, line in enumerate(raw[:good_end].splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            raise LogError(f"{path}: line {n} is not JSON") from None
        if not isinstance(entry, list) or len(entry) < 3 or not isinstance(entry[0], int):
            raise LogError(f"{path}: line {n} is not a log entry")
        seq = entry[0]
        if seq <= after_seq:
            continue  # already in the snapshot
        if seq != expected:
            raise LogError(f"{path}: line {n} has seq {seq}, expected {expected} (a gap)")
        expected += 1
        out.append(entry)
    return out
