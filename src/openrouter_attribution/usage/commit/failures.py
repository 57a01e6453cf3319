"""Failures of a ledger's writer: counted (records lost, storage errors) and logged once per kind.

Nothing that takes a record to the store raises into a model call: whatever fails says so here. The
first failure of a kind (a stage and an error, such as ``write:SQLITE_BUSY``) is logged at WARNING, later
ones at DEBUG. Log lines hold the error's text only where it cannot hold a record's values
(:func:`error_text`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from openrouter_attribution.usage.records import UsageStoreError

__all__ = ["Failures", "error_text"]

logger = logging.getLogger("openrouter_attribution.usage")


def _error_kind(err: BaseException) -> str:
    if isinstance(err, sqlite3.Error):
        # The SQLite result code by name (SQLITE_FULL, SQLITE_BUSY, SQLITE_READONLY, ...).
        return str(getattr(err, "sqlite_errorname", None) or type(err).__name__)
    if isinstance(err, OSError) and err.errno is not None:
        return type(err).__name__ + f"[errno {err.errno}]"
    return type(err).__name__


def error_text(err: BaseException) -> str:
    """What a log line may say about ``err``."""
    # SQLite, OS and store messages never contain bound values (store messages are already stripped of
    # passwords); other exceptions might, so only their type is logged.
    if isinstance(err, (sqlite3.Error, OSError, UsageStoreError)):
        return f"{type(err).__name__}: {err}"
    return type(err).__name__


class Failures:
    """The failure counts of one ledger, and its log lines about them.

    The counts are guarded by the writer's lock (:attr:`CommitQueue.lock`), which is also held across
    ``fork()``: a lock of their own could be inherited held by a thread the child lacks.
    """

    def __init__(self, lock: threading.Lock, *, name: str, spool_folder: str | None) -> None:
        self._lock = lock
        self._name = name
        self._spool_folder = spool_folder
        self.dropped = 0
        """Records lost (see :attr:`UsageLedger.dropped`)."""
        self.errors = 0
        """Storage failures (see :attr:`UsageLedger.errors`)."""
        self._logged: set[str] = set()

    def fail(self, stage: str, err: BaseException, *, dropped: int) -> None:
        """Count and log a failure (once per kind at WARNING, then at DEBUG); caller does not hold the lock."""
        kind = f"{stage}:{_error_kind(err)}"
        self.note(kind, f"{stage} failed ({error_text(err)})", dropped=dropped, error=True)

    def note(self, kind: str, message: str, *, dropped: int, error: bool) -> None:
        """Count and log an event that loses records (``dropped``) or may (``error``)."""
        with self._lock:
            self.dropped += dropped
            self.errors += error
            first = kind not in self._logged
            self._logged.add(kind)
        level = logging.WARNING if first else logging.DEBUG
        later = "; later occurrences are logged at DEBUG level" if first else ""
        if dropped:
            logger.log(level, "usage ledger %s: %s; %d record(s) dropped%s", self._name, message, dropped, later)
        elif self._spool_folder is not None and error:
            logger.log(level, "usage ledger %s: %s; records wait in the spool %s%s", self._name, message,
                       self._spool_folder, later)  # fmt: skip
        else:
            logger.log(level, "usage ledger %s: %s%s", self._name, message, later)
