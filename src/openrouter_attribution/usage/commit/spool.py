"""The spool: an append-only, fsynced file of records the store could not take in time.

Each process writes its own file, ``spool-<pid>-<random>.jsonl`` in the spool folder, and holds an
exclusive ``flock`` on it for as long as it lives; one JSON object per line (:meth:`UsageRecord.to_dict`),
each append followed by ``fsync``, so a record in the spool survives a killed process and a power loss.

Replay reads the lines in order and hands them to the store in batches; record ids make replays
idempotent (a record both spooled and committed, or replayed twice, is stored once). A process replays
its own file when the store answers again, and the files of processes that are gone (their lock is
free) when it opens the ledger and every few seconds after, deleting each file once all of it is
committed. A live process's file is never replayed by another process: its lock is held, and a new file
is locked before it gets its name. A last line cut short by a crash mid-append was never acknowledged
to a caller and is skipped. :class:`~openrouter_attribution.usage.commit.journal.Journal` files share this
locking and replay, with their own format.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence

from openrouter_attribution.usage.records import UsageRecord

__all__ = ["Spool", "encode", "process_id"]

logger = logging.getLogger("openrouter_attribution.usage")

_PREFIX = "spool-"
_SUFFIX = ".jsonl"
_REPLAY_BATCH = 1000
_PID = [os.getpid()]


def _forked() -> None:
    _PID[0] = os.getpid()


os.register_at_fork(after_in_child=_forked)


def process_id() -> int:
    """This process's id, kept up to date across ``fork`` without a system call per use."""
    return _PID[0]


def encode(records: Sequence[UsageRecord]) -> bytes:
    """Records as spool lines: one compact JSON object (:meth:`UsageRecord.to_dict`) per line."""
    return b"".join(
        json.dumps(rec.to_dict(), ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for rec in records
    )


def _decode(data: bytes) -> Iterator[UsageRecord]:
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            yield UsageRecord.from_dict(json.loads(line))
        except (ValueError, TypeError):
            # A line cut short by a crash mid-append: its caller never got an acknowledgement.
            logger.warning("usage spool: skipped an unreadable line (%d bytes)", len(line))


class Spool:
    """This process's spool file in ``folder``, plus replay of every spool file found there.

    Args:
        folder: The spool folder (created if missing, mode 0700).

    Example:
        >>> import tempfile
        >>> from openrouter_attribution.usage import MemoryUsageStore
        >>> spool = Spool(tempfile.mkdtemp())
        >>> spool.append([UsageRecord(user="app_1", record_id="r1")])
        >>> store = MemoryUsageStore()
        >>> spool.replay(store.write_many)
        1
        >>> [r.record_id for r in store.iter_records()], spool.pending
        (['r1'], 0)
        >>> spool.close()
    """

    PREFIX = _PREFIX
    """File names of this kind start with it (orphans are found by it)."""
    SUFFIX = _SUFFIX
    """... and end with it."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = os.fspath(folder)
        """Where the spool files live."""
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        self._replay_lock = threading.Lock()
        self._fd: int | None = None
        self._path: str | None = None
        self._size = 0
        self._replayed = 0
        self._pid = _PID[0]

    @property
    def path(self) -> str | None:
        """This process's spool file, once something was spooled."""
        return self._path

    @property
    def pending(self) -> int:
        """Bytes in this process's spool file not yet replayed."""
        return self._size - self._replayed

    def _own_fd(self) -> int:
        if self._fd is not None and self._pid == _PID[0]:
            return self._fd
        # First use, or a forked child: never share the parent's file (and its lock).
        self._pid = _PID[0]
        path = os.path.join(self.folder, f"{self.PREFIX}{self._pid}-{secrets.token_hex(4)}{self.SUFFIX}")
        # Locked under a name other processes do not look at, then renamed: another process looking for
        # the files of processes that are gone never finds this one unlocked.
        fd = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(path + ".new", path)
        _fsync_folder(self.folder)  # the new file's name survives a power loss too
        self._fd, self._path, self._size, self._replayed = fd, path, 0, 0
        return fd

    def append(self, records: Sequence[UsageRecord]) -> None:
        """Append ``records`` and ``fsync``; returns once they are on disk.

        Raises:
            OSError: the folder is not writable, the disk is full, ...
        """
        data = encode(records)
        with self._lock:
            fd = self._own_fd()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            self._size += len(data)

    def replay(self, write: Callable[[Sequence[UsageRecord]], None], *, others: bool = False) -> int:
        """Hand what this process spooled (and, with ``others``, the files of processes that are gone)
        to ``write`` in order; returns the number of records handed over.

        ``write`` raising stops the replay; what was not written stays spooled for the next attempt.
        """
        with self._replay_lock:
            count = self._replay_own(write)
            if others:
                for path in self._orphans():
                    count += self._replay_orphan(path, write)
            return count

    def replay_orphans(self, write: Callable[[Sequence[UsageRecord]], None]) -> int:
        """Hand the files of processes that are gone to ``write``, in order; returns the record count."""
        with self._replay_lock:
            return sum(self._replay_orphan(path, write) for path in self._orphans())

    def orphan_records(self) -> list[UsageRecord]:
        """The records in the files of processes that are gone, read without changing anything (for a
        reader that cannot write here; a file whose process is alive, or being replayed, is left out)."""
        found: list[UsageRecord] = []
        for path in self._orphans():
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # replayed and removed meanwhile
            with contextlib.closing(os.fdopen(fd, "rb")) as fh:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                found.extend(self._decode(fh.read()))
        return found

    def _replay_own(self, write: Callable[[Sequence[UsageRecord]], None]) -> int:
        with self._lock:
            if self._path is None or self._pid != _PID[0] or self._size == self._replayed:
                return 0
            start, end = self._replayed, self._size
            with open(self._path, "rb") as fh:
                fh.seek(start)
                data = fh.read(end - start)
        records = list(self._decode(data))
        for batch in _batches(records):
            write(batch)
        with self._lock:
            self._replayed = end
            if self._replayed == self._size and self._fd is not None:
                os.ftruncate(self._fd, 0)  # O_APPEND: the next append starts at 0 again
                os.fsync(self._fd)
                self._size = self._replayed = 0
        return len(records)

    def _orphans(self) -> list[str]:
        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return []
        prefix, suffix = self.PREFIX, self.SUFFIX
        paths = (os.path.join(self.folder, n) for n in names if n.startswith(prefix) and n.endswith(suffix))
        return [path for path in paths if path != self._path]

    def _replay_orphan(self, path: str, write: Callable[[Sequence[UsageRecord]], None]) -> int:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0  # replayed and removed by another process meanwhile
        with contextlib.closing(os.fdopen(fd, "rb")) as fh:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # its process is alive (or another one is replaying it)
            try:
                if os.fstat(fd).st_ino != os.stat(path).st_ino:
                    return 0
            except FileNotFoundError:
                return 0  # removed between open and lock: already replayed
            records = list(self._decode(fh.read()))
            for batch in _batches(records):
                write(batch)
            os.unlink(path)
            _fsync_folder(self.folder)
            return len(records)

    def close(self) -> None:
        """Close this process's file; an empty file is removed, a non-empty one waits for a replay."""
        with self._lock:
            if self._fd is None or self._pid != _PID[0]:
                return
            if self._size == self._replayed and self._path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._path)
            os.close(self._fd)
            self._fd = self._path = None

    @staticmethod
    def _decode(data: bytes) -> Iterator[UsageRecord]:
        return _decode(data)

    def __repr__(self) -> str:
        return f"Spool({self.folder!r})"


def _batches(records: list[UsageRecord]) -> Iterator[list[UsageRecord]]:
    for i in range(0, len(records), _REPLAY_BATCH):
        yield records[i : i + _REPLAY_BATCH]


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
