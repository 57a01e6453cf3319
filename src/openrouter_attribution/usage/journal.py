"""The journal: where a durable record is written before its call returns, until the store has it.

A durable ``record()`` appends the record to this process's journal file with one ``write()`` and
returns; the writer thread commits what the journal holds to the store every ``commit_interval``
seconds, in one transaction, and then empties the file. A record in the journal is in the operating
system's file cache: it survives the process being killed (SIGKILL, SIGTERM, a crash), as a commit of
SQLite in WAL mode with ``synchronous=NORMAL`` does; a power loss may lose the last moments.

Files are named ``journal-<pid>-<random>.rows`` and live in the spool folder. An entry holds one
record: its length (4 bytes, little-endian), then the tuple of its column values
(:data:`~openrouter_attribution.usage.rows.COLUMNS`) in :mod:`marshal` format, which holds only
strings, numbers, booleans and ``None`` and takes a fraction of a microsecond to write (a JSON line
takes several times as long, and this runs in every call). An entry cut short (a power loss) ends the
file's replay with a warning. Files are locked as spool files are
(:mod:`~openrouter_attribution.usage.spool`): the process that writes a file holds an exclusive
``flock`` on it, and the files of processes that are gone are committed (and removed) by the next
ledger that opens on the same folder, or by a live one within its next orphan scan (every few
seconds). Record ids keep a record that is committed twice (the store answered, then the process died
before it emptied its journal) to one row.

Under steady load the file may never be empty when a commit ends: once it passes ``rotate_at`` bytes
the journal moves on to a new file, and the full one is removed once everything in it is committed.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import operator
import os
import struct
from collections.abc import Iterator, Sequence

from openrouter_attribution.usage.records import UsageRecord
from openrouter_attribution.usage.rows import COLUMNS, from_row
from openrouter_attribution.usage.spool import Spool, process_id

__all__ = ["Journal", "decode_entries", "encode_entries", "encode_entry"]

logger = logging.getLogger("openrouter_attribution.usage")

ROTATE_AT = 8 << 20
"""Bytes after which the journal moves on to a new file."""
_LENGTH = struct.Struct("<I")
_MARSHAL_VERSION = 4


_COST = COLUMNS.index("cost")
_OTHERS = operator.attrgetter(*(c for c in COLUMNS if c != "cost"))


def encode_entry(rec: UsageRecord) -> bytes:
    """One record as a journal entry (see the module docstring); runs in every durable call."""
    cost = rec.cost
    data = marshal.dumps((_OTHERS(rec), None if cost is None else str(cost)), _MARSHAL_VERSION)
    return _LENGTH.pack(len(data)) + data


def encode_entries(records: Sequence[UsageRecord]) -> bytes:
    """Records as journal entries."""
    return b"".join([encode_entry(rec) for rec in records])


def decode_entries(data: bytes) -> Iterator[UsageRecord]:
    """The records of journal entries; stops at an entry cut short, skips one that does not decode."""
    at, end = 0, len(data)
    while at < end:
        if at + 4 > end or at + 4 + _LENGTH.unpack_from(data, at)[0] > end:
            logger.warning("usage journal: skipped an entry cut short (%d bytes)", end - at)
            return
        size = _LENGTH.unpack_from(data, at)[0]
        chunk = data[at + 4 : at + 4 + size]
        at += 4 + size
        try:
            others, cost = marshal.loads(chunk)
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
        rotate_at: Bytes after which a new file is started.

    Example:
        >>> import tempfile
        >>> from openrouter_attribution.usage import UsageRecord
        >>> journal = Journal(tempfile.mkdtemp())
        >>> journal.write(encode_entries([UsageRecord(user="app_1", record_id="r1")]), 1)
        >>> os.path.getsize(journal.path) > 0
        True
        >>> journal.release(1)  # record 1 is committed: the file is emptied
        >>> os.path.getsize(journal.path)
        0
        >>> journal.close()
    """

    PREFIX = "journal-"
    SUFFIX = ".rows"

    def __init__(self, folder: str | os.PathLike[str], *, rotate_at: int = ROTATE_AT) -> None:
        super().__init__(folder)
        self._rotate_at = rotate_at
        self._last = 0
        """Sequence number of the last record written to the current file."""
        self._full: list[tuple[int, str, int]] = []
        """Files moved on from: (sequence number of their last record, path, descriptor)."""

    def _own_fd(self) -> int:
        if self._pid != process_id():
            self._full = []  # a forked child: those files (and their locks) are its parent's
        return super()._own_fd()

    def write(self, data: bytes, last: int) -> None:
        """Append ``data`` (encoded records, the last of them numbered ``last``) with one ``write()``.

        In a forked child call :meth:`write_forked` instead (this one does not look at the process id).

        Raises:
            OSError: the folder is not writable, the disk is full, ...
        """
        fd = self._fd
        if fd is None:
            fd = self._own_fd()
        written = os.write(fd, data)
        while written < len(data):  # a short write (a signal, a full disk): the rest, or OSError
            written += os.write(fd, data[written:])
        self._size += len(data)
        self._last = last
        if self._size >= self._rotate_at and self._path is not None:
            self._full.append((last, self._path, fd))
            self._fd = self._path = None  # the next write starts a new file

    def write_forked(self, data: bytes) -> None:
        """:meth:`write` in a process that may be a forked child: its own file, never its parent's."""
        if self._pid != process_id():
            self._own_fd()
        self.write(data, 0)

    def release(self, done: int) -> None:
        """Records up to sequence number ``done`` are in the store: remove or empty what only holds those."""
        if self._pid != process_id():
            return  # a forked child: the files are its parent's
        while self._full and self._full[0][0] <= done:
            _, path, fd = self._full.pop(0)
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)
        if self._fd is not None and self._size and self._last <= done:
            os.ftruncate(self._fd, 0)  # O_APPEND: the next write starts at 0 again
            self._size = 0

    def close(self) -> None:
        """Close this process's files; emptied ones are removed, the others wait for a replay."""
        if self._pid == process_id():
            for _, _, fd in self._full:
                os.close(fd)
            self._full.clear()
        super().close()

    @staticmethod
    def _decode(data: bytes) -> Iterator[UsageRecord]:
        return decode_entries(data)

    def __repr__(self) -> str:
        return f"Journal({self.folder!r})"
