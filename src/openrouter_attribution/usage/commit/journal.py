"""The journal: where a durable record is written before its call returns, until the store has it.

A durable ``record()`` copies the record into this process's journal file, which is mapped into memory
(``mmap``, shared with the file), and returns; the writer thread commits what the journal holds to the
store every ``commit_interval`` seconds, in one transaction, and then empties the file. Pages of a
shared mapping are the file's pages in the operating system's cache, as pages written by ``write()``
are: a record in the journal survives the process being killed (SIGKILL, SIGTERM, a crash), as a
commit of SQLite in WAL mode with ``synchronous=NORMAL`` does; a power loss may lose the last moments.
Copying into the mapping costs a call about a third of a ``write()`` system call.

Files are named ``journal-<pid>-<random>.rows`` and live in the spool folder. Each is allocated on
disk (``posix_fallocate``) when it is created, so that a full disk is an error then (the calls commit
to the store instead, as ``durability="committed"`` does) and never a fault at a later copy. An entry
holds one record: its length (4 bytes, little-endian), then the tuple of its column values
(:data:`~openrouter_attribution.usage.stores.rows.COLUMNS`) in :mod:`marshal` format, which holds only
strings, numbers, booleans and ``None`` and takes a fraction of a microsecond to write (a JSON line
takes several times as long, and this runs in every call). A length of 0 ends the entries; an entry
cut short (a power loss) ends the file's replay with a warning. Files are locked as spool files are
(:mod:`~openrouter_attribution.usage.commit.spool`): the process that writes a file holds an exclusive
``flock`` on it, and the files of processes that are gone are committed (and removed) by the next
ledger that opens on the same folder, or by a live one within its next orphan scan (every few
seconds). Record ids keep a record that is committed twice (the store answered, then the process died
before it emptied its journal) to one row.

Under steady load the file may never be empty when a commit ends: once it is full the journal moves
on to a new file, and the full one is removed once everything in it is committed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import marshal
import mmap
import operator
import os
import secrets
import struct
import time
from collections.abc import Iterator, Sequence

from openrouter_attribution.usage.commit.spool import Spool, _fsync_folder, process_id
from openrouter_attribution.usage.records import FIELDS, UsageRecord
from openrouter_attribution.usage.stores.rows import COLUMNS, from_row

__all__ = ["Journal", "decode_entries", "encode_entries", "encode_entry"]

logger = logging.getLogger("openrouter_attribution.usage")

SEGMENT = 1 << 20
"""Bytes of a journal file; a process moves on to a new one when it is full."""
RETRY_AFTER = 5.0
"""Seconds before a journal that could not create a file tries again (calls commit meanwhile)."""
_LENGTH = struct.Struct("<I")
_MARSHAL_VERSION = 4


_COST = COLUMNS.index("cost")
_OTHERS = operator.itemgetter(*(FIELDS.index(c) for c in COLUMNS if c != "cost"))


def _payload(rec: UsageRecord) -> bytes:
    """An entry's bytes after its length: the record's column values, cost as decimal text."""
    cost = rec.cost
    return marshal.dumps((_OTHERS(rec), None if cost is None else str(cost)), _MARSHAL_VERSION)


def encode_entry(rec: UsageRecord) -> bytes:
    """One record as a journal entry (see the module docstring)."""
    data = _payload(rec)
    return _LENGTH.pack(len(data)) + data


def encode_entries(records: Sequence[UsageRecord]) -> bytes:
    """Records as journal entries."""
    return b"".join([encode_entry(rec) for rec in records])


def decode_entries(data: bytes) -> Iterator[UsageRecord]:
    """The records of journal entries; stops at an entry cut short, skips one that does not decode."""
    at, end = 0, len(data)
    while at + 4 <= end:
        size = _LENGTH.unpack_from(data, at)[0]
        if size == 0:
            return  # the end of the entries: the rest of the file is zeros
        if at + 4 + size > end:
            logger.warning("usage journal: skipped an entry cut short (%d bytes)", end - at)
            return
        chunk = data[at + 4 : at + 4 + size]
        at += 4 + size
        try:
            others, cost = marshal.loads(chunk)
            if isinstance(others, tuple) and len(others) == len(COLUMNS) - 2:
                others += (None,)  # written before records kept their metadata (the last column)
            if not (isinstance(others, tuple) and len(others) == len(COLUMNS) - 1):
                raise ValueError("not a row")
            yield from_row((*others[:_COST], cost, *others[_COST:]))
        except (ValueError, TypeError, EOFError):
            logger.warning("usage journal: skipped an unreadable entry (%d bytes)", size)


class Journal(Spool):
    """This process's journal files in ``folder`` (see the module docstring).

    Not thread-safe by itself: the ledger's writer calls it under its own lock, which also orders the
    records in the file as they are queued.

    Args:
        folder: The spool folder (created if missing, mode 0700).
        segment: Bytes of each journal file (allocated on disk when the file is created).

    Example:
        >>> import tempfile
        >>> from openrouter_attribution.usage import UsageRecord
        >>> journal = Journal(tempfile.mkdtemp())
        >>> journal.write(encode_entries([UsageRecord(user="app_1", record_id="r1")]), 1)
        >>> [r.record_id for r in decode_entries(open(journal.path, "rb").read())]
        ['r1']
        >>> journal.release(1)  # record 1 is committed: the file is emptied
        >>> list(decode_entries(open(journal.path, "rb").read()))
        []
        >>> journal.close()
    """

    PREFIX = "journal-"
    SUFFIX = ".rows"

    def __init__(self, folder: str | os.PathLike[str], *, segment: int = SEGMENT) -> None:
        super().__init__(folder)
        self._segment = segment
        self._map: mmap.mmap | None = None
        self._pos = 0
        """Bytes of entries in the current file."""
        self._cap = 0
        """Bytes of the current file."""
        self._last = 0
        """Sequence number of the last record written to the current file."""
        self._full: list[tuple[int, str, int, mmap.mmap]] = []
        """Files moved on from: (sequence number of their last record, path, descriptor, mapping)."""
        self._retry_at = 0.0

    def write(self, data: bytes, last: int) -> None:
        """Copy ``data`` (encoded records, the last of them numbered ``last``) into the journal file.

        In a forked child call :meth:`write_forked` instead (this one does not look at the process id).

        Raises:
            OSError: a new file could not be created or allocated (the folder is not writable, the disk
                is full, the file system cannot allocate ahead); nothing was written.
        """
        at = self._pos
        end = at + len(data)
        if end > self._cap:
            self._next_file(len(data))
            at, end = 0, len(data)
        self._map[at:end] = data  # type: ignore[index]
        self._pos = end
        self._last = last

    def _next_file(self, need: int) -> None:
        """Move on to a new file that holds at least ``need`` bytes (the full one waits for release)."""
        if time.monotonic() < self._retry_at:
            raise OSError(errno.EAGAIN, "the journal could not allocate a file a moment ago")
        size = max(self._segment, need)
        path = os.path.join(self.folder, f"{self.PREFIX}{self._pid}-{secrets.token_hex(4)}{self.SUFFIX}")
        try:
            # Locked and allocated under a name other processes do not look at, then renamed: a process
            # looking for the journals of processes that are gone never finds this one unlocked. Blocks
            # are allocated now, so that a full disk is an error here, not a SIGBUS at a later copy.
            fd = os.open(path + ".new", os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.posix_fallocate(fd, 0, size)
                mapped = mmap.mmap(fd, size)
                os.rename(path + ".new", path)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(path + ".new")
                raise
        except OSError:
            self._retry_at = time.monotonic() + RETRY_AFTER
            raise
        _fsync_folder(self.folder)  # the new file's name survives a power loss too
        if self._map is not None:
            if self._pos:
                self._full.append((self._last, self._path, self._fd, self._map))  # type: ignore[arg-type]
            else:
                self._drop(self._path, self._fd, self._map)  # type: ignore[arg-type]
        self._map, self._fd, self._path, self._pos, self._cap = mapped, fd, path, 0, size

    def write_record(self, rec: UsageRecord, last: int) -> None:
        """:meth:`write` of one record, numbered ``last``: what a durable call does, so it is kept short
        (the entry is encoded and copied straight into the mapped file)."""
        data = _payload(rec)
        at = self._pos
        end = at + 4 + len(data)
        if end > self._cap:
            self.write(_LENGTH.pack(len(data)) + data, last)
            return
        mapped = self._map
        mapped[at + 4 : end] = data  # type: ignore[index]
        _LENGTH.pack_into(mapped, at, len(data))  # type: ignore[arg-type]
        self._pos = end
        self._last = last

    def write_forked(self, data: bytes) -> None:
        """:meth:`write` in a process that may be a forked child: its own file, never its parent's."""
        if self._pid != process_id():
            # The mappings and locks are the parent's: forget them (the parent still holds them).
            self._pid = process_id()
            self._full, self._map, self._fd, self._path, self._pos, self._cap = [], None, None, None, 0, 0
        self.write(data, 0)

    def release(self, done: int) -> None:
        """Records up to sequence number ``done`` are in the store: remove or empty what only holds those."""
        if self._pid != process_id():
            return  # a forked child: the files are its parent's
        while self._full and self._full[0][0] <= done:
            _, path, fd, mapped = self._full.pop(0)
            self._drop(path, fd, mapped)
        if self._map is not None and self._pos and self._last <= done:
            self._map[0:4] = bytes(4)  # the first entry's length first: from here on it reads as empty
            self._map[4 : self._pos] = bytes(self._pos - 4)
            self._pos = 0

    @staticmethod
    def _drop(path: str, fd: int, mapped: mmap.mmap) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)
        mapped.close()
        os.close(fd)

    def close(self) -> None:
        """Close this process's files; emptied ones are removed, the others wait for a replay."""
        if self._pid != process_id():
            return
        for _, _, fd, mapped in self._full:
            mapped.close()
            os.close(fd)
        self._full.clear()
        if self._map is not None:
            if self._pos == 0:
                self._drop(self._path, self._fd, self._map)  # type: ignore[arg-type]
            else:
                self._map.close()
                os.close(self._fd)  # type: ignore[arg-type]
            self._map = self._fd = self._path = None
            self._pos = self._cap = 0

    @staticmethod
    def _decode(data: bytes) -> Iterator[UsageRecord]:
        return decode_entries(data)

    def __repr__(self) -> str:
        return f"Journal({self.folder!r})"
