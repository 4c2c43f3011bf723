"""The journal's write-ahead file (``SqlJournal(write_ahead=True)``, the live runner's
journal): an append is on disk (page cache) before it returns and reaches the SQL table
later; a writer killed between the two loses nothing; one writer at a time; a failed
ingestion fails the journal closed and keeps the file for recovery.  Real processes and
SQLite files, as in ``test_journal.py``."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import typing
from enum import Enum
from pathlib import Path

import pytest

from bot4.core import events as events_module
from bot4.core.events import BalanceAdjusted, Event
from bot4.oms.journal import WAL_SUFFIX, JournalLocked, SqlJournal, payload_json, replay
from tests.test_journal import CHILD, INSTRUMENTS, T0, count_rows, roundtrip, run_and_kill


def _deposit(seq: int) -> BalanceAdjusted:
    return BalanceAdjusted(seq, T0 + seq, T0 + seq, "USDT", 10**18 * seq)


def wal_data(wal: Path | str) -> bytes:
    """What the write-ahead file holds: its bytes without the zero tail of the region
    (the file is pre-sized and zero past the writer's position)."""
    return Path(wal).read_bytes().rstrip(b"\0")


def _sample(cls: type[Event], variant: int) -> Event:
    """An instance with every field set from its annotation (two variants)."""
    hints = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if t is int:
            values[f.name] = -(10**30) if variant else 7
        elif t is bool:
            values[f.name] = bool(variant)
        elif t is str:
            values[f.name] = 'q"\\é\t\n\x1f€' if variant else "B4x-1"
        elif isinstance(t, type) and issubclass(t, Enum):
            values[f.name] = list(t)[-1 if variant else 0]
        elif typing.get_origin(t) is tuple:
            values[f.name] = ("a", "é\t") if variant else ()
        else:
            values[f.name] = None if variant else 0
    return cls(**values)


def test_fast_payload_is_exactly_the_general_one() -> None:
    classes = [
        c
        for c in vars(events_module).values()
        if isinstance(c, type) and issubclass(c, Event) and c is not Event
    ]
    assert len(classes) > 10
    for cls in classes:
        for variant in (0, 1):
            ev = _sample(cls, variant)
            assert payload_json(ev) == json.dumps(ev.to_payload(), separators=(",", ":")), cls


def test_write_ahead_roundtrip_and_lag(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'j.db'}"
    roundtrip(url)  # the whole scenario on a plain journal first: the baseline
    url2 = f"sqlite:///{tmp_path / 'ahead.db'}"
    with SqlJournal(url2, write_ahead=True) as journal:
        journal.append_many([_deposit(1), _deposit(2)])
        journal.append(_deposit(3))
        assert journal.last_seq == 3
        assert count_rows(url2) == 0  # in the file, not yet in the table
        with SqlJournal(url2) as reader:  # a reader beside a live writer does not ingest
            assert reader.last_seq == 0
        assert [e.seq for e in journal.read()] == [1, 2, 3]  # a read flushes first
        assert count_rows(url2) == 3
        wal = f"{tmp_path / 'ahead.db'}{WAL_SUFFIX}"
        assert wal_data(wal) == b""  # ingested: the region is zero again ...
        assert os.path.getsize(wal) == journal.wal_size  # ... and stays mapped
        journal.append(_deposit(4))
        assert wal_data(wal).startswith(b"4\t")  # written from the start again
    assert count_rows(url2) == 4  # close ingests
    assert os.path.getsize(wal) == 0  # and leaves an empty file
    with SqlJournal(url2, write_ahead=True) as journal:
        assert journal.last_seq == 4
        state = replay(journal.read(), INSTRUMENTS)
        assert state.account.balances["USDT"].free == 10 * 10**18


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    with SqlJournal(url, write_ahead=True), pytest.raises(JournalLocked, match="another"):
        SqlJournal(url, write_ahead=True, lock_wait_s=0.2)


def test_kill_9_between_append_and_ingestion_loses_nothing(tmp_path: Path) -> None:
    """The writer of ``test_journal``'s kill test, on a write-ahead journal with no event
    loop and no ingestion in the writer (``max_pending`` out of reach, so however late
    the kill lands, events are waiting only in the file).  Every event the child
    reported as written is in the table after recovery."""
    script = tmp_path / "writer.py"
    child = CHILD.replace("(sys.argv[1])", "(sys.argv[1], write_ahead=True)")
    child = child.replace("state = replay(", "journal.max_pending = 10**12\nstate = replay(", 1)
    assert "max_pending" in child
    script.write_text(child)
    db = tmp_path / "killed.db"
    url = f"sqlite:///{db}"
    previous = 0
    for kill_after in (700, 1900):
        start, last_reported = run_and_kill(script, url, kill_after, tmp_path / "err.log")
        assert start == previous
        wal = Path(f"{db}{WAL_SUFFIX}")
        data = wal_data(wal)
        assert data  # events were waiting in the file
        pending = count_rows(url)
        assert pending < last_reported  # ... and not in the table yet
        with wal.open("r+b") as fh:  # a torn append (never returned) where the next goes
            fh.seek(len(data))
            fh.write(b"999999\t1\t1\tBalanceAdjusted\t{")
        with SqlJournal(url) as journal:  # recovery: no writer holds the lock
            assert journal.verify() == []
            assert last_reported <= journal.last_seq <= last_reported + 13
            assert count_rows(url) == journal.last_seq
            state = replay(journal.read(), INSTRUMENTS)
            assert state.last_seq == journal.last_seq
            previous = journal.last_seq
        assert wal.stat().st_size == 0


def test_failed_ingestion_fails_closed_and_keeps_the_file(tmp_path: Path) -> None:
    db = tmp_path / "fail.db"
    url = f"sqlite:///{db}"
    journal = SqlJournal(url, write_ahead=True)
    journal.append_many([_deposit(1), _deposit(2)])
    journal._raw.close()  # the SQL side dies
    assert journal.flush() == 0 and journal.failed is not None
    with pytest.raises(OSError, match="journal failed"):
        journal.append(_deposit(3))
    journal._raw = None
    journal._raw_fairy.invalidate()  # its pool would roll back the closed connection
    journal.close()
    assert wal_data(f"{db}{WAL_SUFFIX}").startswith(b"1\t")  # the file keeps both events
    with SqlJournal(url) as reader:  # the next start recovers what the file kept
        assert [e.seq for e in reader.read()] == [1, 2]


def test_child_process_sigkill_right_after_append(tmp_path: Path) -> None:
    """The narrowest window: the process dies the instant ``append`` returned."""
    db = tmp_path / "instant.db"
    code = (
        "import os, signal, sys\n"
        "from bot4.oms.journal import SqlJournal\n"
        "from tests.test_journal_ahead import _deposit\n"
        "j = SqlJournal(sys.argv[1], write_ahead=True)\n"
        "j.append_many([_deposit(1), _deposit(2)])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{db}"], cwd=root, timeout=30, capture_output=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with SqlJournal(f"sqlite:///{db}") as journal:
        assert [e.seq for e in journal.read()] == [1, 2]
