"""The mapped layout of the journal's write-ahead file (``oms/wal_file.py``): lines, then
zero bytes to the end of a pre-sized region.  Torn appends as a kill inside a ``memcpy``
leaves them, reuse of the region after each ingestion, an append larger than the
region, files of the old layout (plain lines, no zero tail), durable mode, close.
Crashes are real ``SIGKILL``s of a forked writer, at a point chosen by the test (never
by a timer)."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.core.events import BalanceAdjusted, Event
from bot4.oms import wal_file
from bot4.oms.event_codec import wal_line
from bot4.oms.journal import WAL_SUFFIX, JournalLocked, SqlJournal
from bot4.oms.wal_file import PAGE, MappedWal
from tests.test_journal import T0, count_rows
from tests.test_journal_ahead import wal_data


def deposit(seq: int, reason: str = "deposit") -> BalanceAdjusted:
    return BalanceAdjusted(seq, T0 + seq, T0 + seq, "USDT", 10**18 * seq, reason)


def line(*evs: Event) -> bytes:
    """One append as the writer stores it."""
    return ("\x1f".join(wal_line(ev) for ev in evs) + "\n").encode()


def table(url: str) -> list[Event]:
    with SqlJournal(url) as journal:
        assert journal.verify() == []
        return list(journal.read())


@contextmanager
def journal_dir() -> Iterator[tuple[str, Path]]:
    """(url, write-ahead file) in a fresh directory (hypothesis runs many examples in
    one test, so not pytest's function-scoped ``tmp_path``)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "j.db"
        yield f"sqlite:///{db}", Path(f"{db}{WAL_SUFFIX}")


def killed_writer(url: str, body: Callable[[SqlJournal], None], wal_size: int = PAGE) -> None:
    """Run ``body`` on a write-ahead journal in a forked child, which then dies by
    SIGKILL: no close, no ingestion, no atexit -- what a kill -9 leaves."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            journal = SqlJournal(url, write_ahead=True, wal_size=wal_size)
            journal.max_pending = 10**12  # no ingestion unless the region is full
            body(journal)
        except BaseException:
            traceback.print_exc()
            os._exit(3)
        os.kill(os.getpid(), signal.SIGKILL)
        os._exit(4)
    deadline = time.monotonic() + 60  # a hung child fails the test instead of hanging it
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked writer hung")
        time.sleep(0.002)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status


def store(journal: SqlJournal, data: bytes, at: int | None = None) -> None:
    """Store bytes into the live writer's mapping without moving its position (a torn
    append: the kill landed inside the ``memcpy``)."""
    wal = journal._wal
    assert wal is not None and wal.mm is not None
    pos = wal.pos if at is None else at
    wal.mm[pos : pos + len(data)] = data


# -- torn appends ------------------------------------------------------------------------

TORN = line(deposit(4), deposit(5, "a torn append of two events"))
TORN_SHAPES = {
    # memcpy stopped part-way through an ascending copy
    "prefix": TORN[:37],
    # the tail (newline included) stored before the middle: a hole of zeros inside
    "hole": TORN[:20] + bytes(30) + TORN[50:],
    # only the last bytes, the newline among them, reached the page
    "tail only": bytes(len(TORN) - 9) + TORN[-9:],
    # everything but the newline
    "no newline": TORN[:-1],
}


@pytest.mark.parametrize("shape", TORN_SHAPES)
@pytest.mark.parametrize("recover_as_writer", [False, True])
def test_torn_append_in_the_mapped_layout_is_cut(
    tmp_path: Path, shape: str, recover_as_writer: bool
) -> None:
    db = tmp_path / "torn.db"
    url = f"sqlite:///{db}"
    wal = Path(f"{db}{WAL_SUFFIX}")

    def body(journal: SqlJournal) -> None:
        journal.append_many([deposit(1), deposit(2)])
        journal.append(deposit(3))
        store(journal, TORN_SHAPES[shape])

    killed_writer(url, body)
    good = line(deposit(1), deposit(2)) + line(deposit(3))
    assert wal.stat().st_size == PAGE  # the region, as the writer sized it
    assert wal.read_bytes()[: len(good)] == good
    assert count_rows(url) == 0
    with SqlJournal(url, write_ahead=recover_as_writer, wal_size=PAGE) as journal:
        assert [e.seq for e in journal.read()] == [1, 2, 3]  # the torn append cut
        assert journal.last_seq == 3
        if recover_as_writer:
            # The torn bytes (also those past the hole) are gone: the next appends
            # are followed by zeros only, so nothing stale can join a later line.
            assert wal.stat().st_size == PAGE and wal_data(wal) == b""
            journal.append_many([deposit(4), deposit(5)])
            assert wal_data(wal) == line(deposit(4), deposit(5))
    if not recover_as_writer:
        assert wal.stat().st_size == 0
    assert table(url) == [deposit(i) for i in (1, 2, 3)] + (
        [deposit(4), deposit(5)] if recover_as_writer else []
    )


def test_parse_stops_at_the_first_nul_or_the_end() -> None:
    a, b = line(deposit(1)), line(deposit(2), deposit(3))
    assert [r[0] for r in wal_file.parse_rows(a + b, "x")] == [1, 2, 3]  # old layout
    assert [r[0] for r in wal_file.parse_rows(a + b + bytes(100), "x")] == [1, 2, 3]
    assert [r[0] for r in wal_file.parse_rows(a + b[:-1] + bytes(100), "x")] == [1]
    assert [r[0] for r in wal_file.parse_rows(a + bytes(1) + b, "x")] == [1]  # not past NUL
    assert wal_file.parse_rows(bytes(PAGE), "x") == []
    assert wal_file.parse_rows(b"", "x") == []


# -- the old layout ----------------------------------------------------------------------


@pytest.mark.parametrize("recover_as_writer", [False, True])
def test_file_of_the_old_layout_is_recovered(tmp_path: Path, recover_as_writer: bool) -> None:
    """What the ``os.write`` writer left: plain lines, the size of the file the size of
    the data, a torn last line with no zero after it."""
    db = tmp_path / "old.db"
    url = f"sqlite:///{db}"
    wal = Path(f"{db}{WAL_SUFFIX}")
    with SqlJournal(url) as journal:
        journal.append_many([deposit(1), deposit(2)])  # already in the table
    old = line(deposit(1), deposit(2)) + line(deposit(3)) + line(deposit(4), deposit(5))
    wal.write_bytes(old + TORN[:30])
    with SqlJournal(url, write_ahead=recover_as_writer) as journal:
        assert journal.last_seq == 5
        if recover_as_writer:
            assert wal_data(wal) == b"" and wal.stat().st_size == journal.wal_size
            journal.append(deposit(6))
    assert table(url) == [deposit(i) for i in range(1, 6 + recover_as_writer)]
    assert wal.stat().st_size == 0


# -- reuse of the region, growth ---------------------------------------------------------


def test_region_is_reused_after_every_ingestion(tmp_path: Path) -> None:
    """One page, thousands of appends: each append that finds the region full ingests
    it first and writes from offset 0 again.  Every event reaches the table once, in
    order, and the region never grows."""
    url = f"sqlite:///{tmp_path / 'wrap.db'}"
    appended: list[Event] = []
    with SqlJournal(url, write_ahead=True, wal_size=PAGE) as journal:
        journal.max_pending = 10**12  # only a full region ingests
        wal = journal._wal
        assert wal is not None
        seq = 0
        for i in range(1500):
            evs = [deposit(seq + k + 1, "r" * (i % 7)) for k in range(1 + i % 3)]
            seq += len(evs)
            journal.append_many(evs)
            appended += evs
            assert wal.mm is not None and wal.mm[wal.pos :] == bytes(wal.size - wal.pos)
        assert journal.flushes > 50 and wal.size == PAGE
        assert count_rows(url) < len(appended)  # the last region is still waiting
    assert table(url) == appended


def test_append_larger_than_the_region_grows_it(tmp_path: Path) -> None:
    db = tmp_path / "grow.db"
    url = f"sqlite:///{db}"
    wal = Path(f"{db}{WAL_SUFFIX}")
    big = [deposit(i, "x" * 40) for i in range(3, 103)]
    assert len(line(*big)) > 2 * PAGE

    def body(journal: SqlJournal) -> None:
        journal.append_many([deposit(1), deposit(2)])
        journal.append_many(big)  # ingests the first, then grows, then stores
        assert journal._wal is not None and journal._wal.size >= len(line(*big))
        journal.append(deposit(103))

    killed_writer(url, body)  # the grown region is what recovery finds
    assert count_rows(url) == 2 and wal.stat().st_size > PAGE
    assert wal_data(wal) == line(*big) + line(deposit(103))
    with SqlJournal(url, write_ahead=True, wal_size=PAGE) as journal:
        assert journal.last_seq == 103
        assert journal._wal is not None and journal._wal.size == PAGE  # sized afresh
        journal.append_many([deposit(i) for i in range(104, 204)])  # in process too
    assert table(url) == [deposit(1), deposit(2), *big, deposit(103)] + [
        deposit(i) for i in range(104, 204)
    ]


def mapped_kib(path: Path) -> tuple[int, int]:
    """(size, resident) in KiB of this process's mapping of ``path``, from smaps."""
    size = rss = None
    in_it = False
    for text in Path("/proc/self/smaps").read_text().splitlines():
        fields = text.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            in_it = fields[-1] == str(path)
        elif in_it and fields[0] == "Size:":
            size = int(fields[1])
        elif in_it and fields[0] == "Rss:":
            rss = int(fields[1])
    assert size is not None and rss is not None, f"{path} is not mapped"
    return size, rss


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_open_maps_every_page_of_the_region(tmp_path: Path) -> None:
    """No append takes the first fault of a page: all of them are resident at open
    (and after growing)."""
    db = tmp_path / "fault.db"
    wal = Path(f"{db}{WAL_SUFFIX}")
    with SqlJournal(f"sqlite:///{db}", write_ahead=True, wal_size=64 * PAGE) as journal:
        assert mapped_kib(wal) == (64 * PAGE // 1024, 64 * PAGE // 1024)
        journal.append_many([deposit(i, "y" * 50) for i in range(1, 3000)])  # > 64 pages
        assert journal._wal is not None
        size = journal._wal.size // 1024
        assert size > 64 * PAGE // 1024 and mapped_kib(wal) == (size, size)


# -- durable mode ------------------------------------------------------------------------


def test_durable_mode_syncs_every_append_and_the_zeroing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[int, int]] = []
    real = wal_file._msync

    def spy(mm: object, start: int, end: int) -> None:
        synced.append((start, end))
        real(mm, start, end)  # type: ignore[arg-type]  # msync wants a page-aligned start

    monkeypatch.setattr(wal_file, "_msync", spy)
    url = f"sqlite:///{tmp_path / 'durable.db'}"
    wal_path = Path(f"{tmp_path / 'durable.db'}{WAL_SUFFIX}")
    expected: list[tuple[int, int]] = []
    with SqlJournal(url, durable=True, write_ahead=True, wal_size=2 * PAGE) as journal:
        pos = 0
        for seq in range(1, 60):  # ~110 bytes each: crosses the page boundary
            journal.append(deposit(seq))
            end = pos + len(line(deposit(seq)))
            expected.append((pos, end))
            pos = end
        assert synced == expected
        assert wal_data(wal_path) == b"".join(line(deposit(s)) for s in range(1, 60))
        assert journal.flush() == 59
        assert synced[-1] == (0, pos)  # the zeroed range, before the next append
    assert table(url) == [deposit(s) for s in range(1, 60)]


# -- close -------------------------------------------------------------------------------


def test_close_unmaps_closes_and_unlocks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'close.db'}"
    journal = SqlJournal(url, write_ahead=True)
    journal.append(deposit(1))
    wal = journal._wal
    assert isinstance(wal, MappedWal) and wal.mm is not None
    mm, fd = wal.mm, wal.fd
    journal.close()
    assert journal._wal is None and wal.mm is None and mm.closed
    with pytest.raises(OSError):
        os.fstat(fd)  # the descriptor is closed ...
    with SqlJournal(url, write_ahead=True, lock_wait_s=0) as second:  # ... the lock free
        assert second.last_seq == 1


def test_second_writer_refused_while_the_first_holds_the_mapping(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'two.db'}"
    with SqlJournal(url, write_ahead=True) as first:
        first.append(deposit(1))
        with pytest.raises(JournalLocked):
            SqlJournal(url, write_ahead=True, lock_wait_s=0)
        first.append(deposit(2))  # the refused writer did not touch the file
    assert table(url) == [deposit(1), deposit(2)]


# -- any sequence of appends, ingestions and kills ---------------------------------------

reasons = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60)
ops = st.lists(
    st.one_of(
        st.lists(reasons, min_size=1, max_size=50).map(lambda rs: ("append", rs)),
        st.just(("flush", [])),
    ),
    max_size=30,
)


def planned(todo: list[tuple[str, list[str]]]) -> list[list[Event]]:
    """The appends of ``todo``, in order (seq 1 on)."""
    appends: list[list[Event]] = []
    seq = 0
    for op, rs in todo:
        if op == "append":
            appends.append([deposit(seq + 1 + i, r) for i, r in enumerate(rs)])
            seq += len(rs)
    return appends


def run_ops(journal: SqlJournal, todo: list[tuple[str, list[str]]]) -> list[Event]:
    """Do ``todo`` on ``journal``; the events appended."""
    appends = iter(planned(todo))
    appended: list[Event] = []
    for op, _rs in todo:
        if op == "flush":
            journal.flush()
        else:
            evs = next(appends)
            journal.append_many(evs)
            appended += evs
    return appended


@settings(max_examples=60)
@given(todo=ops, size=st.sampled_from([PAGE, 2 * PAGE]))
def test_any_appends_and_ingestions_reach_the_table_exactly(
    todo: list[tuple[str, list[str]]], size: int
) -> None:
    with journal_dir() as (url, _wal):
        with SqlJournal(url, write_ahead=True, wal_size=size) as journal:
            journal.max_pending = 10**12
            appended = run_ops(journal, todo)
        assert table(url) == appended


@settings(max_examples=40)
@given(
    todo=ops,
    torn=st.one_of(st.none(), st.tuples(st.integers(1, 10), st.floats(0, 1), st.floats(0, 1))),
    recover_as_writer=st.booleans(),
)
def test_kill_9_after_any_appends_loses_no_returned_append(
    todo: list[tuple[str, list[str]]],
    torn: tuple[int, float, float] | None,
    recover_as_writer: bool,
) -> None:
    """A writer on a one-page region does the appends and ingestions, optionally leaves
    a torn append (a prefix of the next line plus its tail, a hole between), and is
    killed.  Recovery finds exactly the appends that returned."""
    with journal_dir() as (url, _wal):

        def body(journal: SqlJournal) -> None:
            run_ops(journal, todo)
            if torn is not None:
                n, head, tail = torn
                data = line(*(deposit(journal.last_seq + 1 + i) for i in range(n)))
                wal = journal._wal
                assert wal is not None
                data = data[: wal.size - wal.pos]  # it did not fit: only what would
                if not data:
                    return
                cut = int(head * (len(data) - 1))  # bytes stored from the start ...
                back = int(tail * (len(data) - cut - 1))  # ... and from the end: >= 1 missing
                store(journal, data[:cut])
                store(journal, data[len(data) - back :], wal.pos + len(data) - back)

        killed_writer(url, body)
        with SqlJournal(url, write_ahead=recover_as_writer, wal_size=PAGE):
            pass
        assert table(url) == [ev for evs in planned(todo) for ev in evs]
