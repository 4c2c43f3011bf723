"""The journal's write-ahead file as a shared memory mapping (``SqlJournal(write_ahead=True)``).

Why a mapping.  The order path journals every order before it is sent.  An ``os.write``
of one line costs a system call: ~1.4 µs at the median and 5-11 µs in the tail on this
VM.  A store into a ``MAP_SHARED`` mapping of the same file is a ``memcpy`` into the
page cache (~0.1-0.3 µs): when it returns, the bytes are in the kernel's copy of the
file, visible to any other process at once and kept by the kernel when this process is
killed -- the same durability class as the ``write`` (a kill -9 loses nothing; a power
loss or kernel crash may, unless ``durable``).  This is how Chronicle Queue and Aeron
journal.

Layout.  The file is pre-sized (``DEFAULT_SIZE``) and zero past the write position:
``<line>\\n<line>\\n...<line>\\n`` then NUL bytes to the end.  A line is the events of one
append (``event_codec.wal_line`` each, joined by ``\\x1f``) and never holds a NUL (the
payload is ASCII JSON, which escapes control characters).  So the valid data ends at
the first NUL (or at the end of the file: a file of the old layout, plain lines written
by ``os.write``, is read the same way) and then back to the last newline.  A kill inside
an append's ``memcpy`` leaves some of that append's bytes written and, because the
region was zero, the rest zero -- in whatever order ``memcpy`` stores them (it may store
the tail, newline included, before the middle): the reader stops at the first NUL, which
lies inside the torn append, and cuts back to the newline before it.  Nothing of a torn
append is read, nothing before it is lost.  Bytes left after that NUL are garbage of the
torn append; they are never read, and the file is emptied after recovery.

Page faults.  A first store into a page of a shared file mapping takes a fault (the
kernel allocates the page cache page and marks it writable-dirty), a few µs.  ``open``
writes every page once (``MAP_POPULATE`` would only map the pages read-only, the first
store would still fault), so appends find them mapped and dirty.  The blocks are
allocated first (``posix_fallocate``): a full disk raises ``OSError`` at start-up, never
a ``SIGBUS`` on a store in the middle of a session.  The kernel writes dirty pages back
every few seconds and then write-protects them, so the next store into such a page
faults once more (no allocation then): a few faults per writeback cycle, out of
thousands of appends.

Ingestion (by ``SqlJournal.flush``, off the order path) reads ``[0, pos)``, commits it
to SQL, then zeroes ``[0, pos)`` and writes from offset 0 again.  A kill between the
commit and the zeroing leaves rows that are already in the table: recovery skips them.
"""

from __future__ import annotations

import logging
import mmap
import os

log = logging.getLogger(__name__)

Row = tuple[int, int, int, str, str]  # seq, ts_event, ts_recv, kind, payload
DEFAULT_SIZE = 4 << 20  # ~14,000 two-event appends between ingestions (every 50 ms)
PAGE = mmap.PAGESIZE


def parse_rows(data: bytes, path: str) -> list[Row]:
    """The rows of every complete line before the first NUL (or the end of ``data``).

    A last line without its newline is a torn append (the writer was killed inside it,
    the append never returned, its order was never sent): it is dropped, with a
    warning."""
    stop = data.find(b"\0")
    if stop < 0:
        stop = len(data)
    end = data.rfind(b"\n", 0, stop) + 1
    if end < stop:
        log.warning("%s: dropping a torn last line (%d bytes)", path, stop - end)
    if stop < len(data) and data.count(0, stop) != len(data) - stop:
        log.warning("%s: ignoring the bytes of a torn append past its first NUL", path)
    rows = []
    for line in data[:end].decode().split("\n")[:-1]:
        for item in line.split("\x1f"):
            seq, ts_event, ts_recv, kind, payload = item.split("\t", 4)
            rows.append((int(seq), int(ts_event), int(ts_recv), kind, payload))
    return rows


def read_rows(fd: int, path: str) -> list[Row]:
    """The rows of the file behind ``fd`` (recovery: what a killed writer left, in the
    mapped or the old layout)."""
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return parse_rows(b"".join(chunks), path)


def empty_file(fd: int, durable: bool) -> None:
    """Empty the file once its rows are in the table (no mapping of it may exist)."""
    os.ftruncate(fd, 0)
    if durable:
        os.fsync(fd)


def _allocate(fd: int, size: int) -> None:
    """Make the file ``size`` bytes, its blocks allocated (``posix_fallocate``: a full
    disk is an ``OSError`` here, not a ``SIGBUS`` on a later store into a hole); a plain
    ``ftruncate`` where the call does not exist (macOS)."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        fallocate(fd, 0, size)
    elif os.fstat(fd).st_size < size:
        os.ftruncate(fd, size)


def _msync(mm: mmap.mmap, start: int, end: int) -> None:
    """Write ``[start, end)`` of the mapping to the disk and wait (``msync(MS_SYNC)``,
    which wants a page-aligned start)."""
    lo = start - start % PAGE
    mm.flush(lo, end - lo)


def _map(fd: int, size: int, prefault_from: int) -> mmap.mmap:
    """Map ``size`` bytes of the file and take the write fault of every page from
    ``prefault_from`` on now (storing the zero the page already holds)."""
    mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        for offset in range(prefault_from, size, PAGE):
            mm[offset] = 0
    except BaseException:
        mm.close()
        raise
    return mm


class MappedWal:
    """The writer's view of the write-ahead file: a mapping and a write position.

    Owns ``fd`` (locked by the caller, who ingested what it held) from construction
    on; ``close`` closes it, which drops the lock.  After ``close`` the mapping is
    gone (``mm`` is None): nothing touches it again."""

    __slots__ = ("durable", "fd", "mm", "path", "pos", "size")

    def __init__(self, fd: int, path: str, size: int = DEFAULT_SIZE, durable: bool = False):
        size = max(PAGE, -(-size // PAGE) * PAGE)
        # Empty the file (its old rows are in the table; garbage of a torn append may
        # lie past the first NUL), then give it ``size`` zero bytes, allocated.
        os.ftruncate(fd, 0)
        _allocate(fd, size)
        if durable:
            os.fsync(fd)
        self.mm: mmap.mmap | None = _map(fd, size, 0)
        self.fd = fd
        self.path = path
        self.size = size
        self.pos = 0
        self.durable = durable

    def write(self, data: bytes) -> bool:
        """Store one append at the write position; False (nothing written) if it does
        not fit in what is left of the region."""
        pos = self.pos
        end = pos + len(data)
        if end > self.size:
            return False
        mm = self.mm
        assert mm is not None
        mm[pos:end] = data
        self.pos = end
        if self.durable:
            _msync(mm, pos, end)
        return True

    def rows(self) -> list[Row]:
        """The rows written since the last ``clear``."""
        assert self.mm is not None
        return parse_rows(self.mm[: self.pos], self.path)

    def clear(self) -> None:
        """Zero what was written (its rows are in the table) and write from 0 again."""
        mm = self.mm
        assert mm is not None
        used = self.pos
        if used:
            mm[:used] = bytes(used)
            if self.durable:
                # Without it a power loss could leave old lines on the disk right after
                # the new ones (where a page boundary ends them) for recovery to read.
                _msync(mm, 0, used)
        self.pos = 0

    def grow(self, need: int) -> None:
        """Make the region at least ``need`` bytes: one append larger than the region.
        The written bytes stay; the new part is allocated and pre-faulted, mapped
        before the old mapping is released (a failure leaves the old one in use)."""
        old = self.mm
        assert old is not None
        size = max(2 * self.size, -(-need // PAGE) * PAGE)
        _allocate(self.fd, size)
        if self.durable:
            os.fsync(self.fd)
        self.mm = _map(self.fd, size, self.size)
        self.size = size
        old.close()

    def close(self, empty: bool) -> None:
        """Unmap and close the file (dropping the lock); ``empty``: everything was
        ingested, leave an empty file rather than ``size`` zero bytes."""
        mm, self.mm = self.mm, None
        try:
            if mm is not None:
                mm.close()
            if empty:
                empty_file(self.fd, self.durable)
        finally:
            os.close(self.fd)
