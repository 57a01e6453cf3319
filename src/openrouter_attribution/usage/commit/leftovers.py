"""What processes that are gone left behind for a ledger: committed before a read, or counted.

A durable process killed right after its calls returned keeps their records in its journal (and a
store outage keeps them in its spool); the next :class:`~openrouter_attribution.usage.UsageLedger` that
opens on the same spool folder commits them. A tool that only reads the store (``openrouter-attribution
report``, ``export``, ``budget``) would not see them: :func:`commit_gone` commits them first, through
that same ledger replay, or counts them when it cannot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from openrouter_attribution.usage.commit.journal import Journal
from openrouter_attribution.usage.commit.spool import Spool
from openrouter_attribution.usage.ledger import UsageLedger, default_spool_folder
from openrouter_attribution.usage.records import UsageRecord
from openrouter_attribution.usage.stores.protocol import UsageStore

__all__ = ["GoneRecords", "commit_gone"]


@dataclass(frozen=True)
class GoneRecords:
    """What processes that are gone left in a location's spool folder (see :func:`commit_gone`)."""

    folder: str | None
    """The spool folder looked in (``None``: the location has none)."""
    committed: int = 0
    """Records of their journals and spool files that were committed now."""
    waiting: int = 0
    """Records of theirs that the store does not have and that could not be committed here."""
    writable: bool = True
    """False when the folder is not writable here (no commit was tried); True with ``waiting`` > 0: the
    store did not take them."""


def commit_gone(location: str | os.PathLike[str], store: UsageStore) -> GoneRecords:
    """Commit to ``store`` (open, at ``location``) what processes that are gone left in the location's
    spool folder, as a :class:`UsageLedger` that opens does (its writer thread replays their journals
    and spool files); or, when the folder is not writable here or the store does not take them, count
    their records the store does not have. Opens nothing when the folder holds no such file.

    Example:
        >>> import tempfile
        >>> from openrouter_attribution.usage import SQLiteUsageStore
        >>> path = tempfile.mkdtemp() + "/usage.db"
        >>> store = SQLiteUsageStore(path)
        >>> commit_gone(path, store).committed  # nobody died here
        0
        >>> store.close()
    """
    folder = default_spool_folder(location)
    if folder is None or not os.path.isdir(folder) or not (found := _gone(folder)):
        return GoneRecords(folder)
    writable = os.access(folder, os.W_OK | os.X_OK)  # False on a read-only mount or an immutable folder, for root too
    left, committed = found, 0
    if writable:
        with UsageLedger(store, spool=folder) as ledger:  # a store passed in stays open
            ledger.flush()
        left = _gone(folder)
        committed = len(found) - len(left)
    if left:  # a record committed just before its process died is in the store already: it does not wait
        stored = {rec.record_id for rec in store.iter_records(since=min(rec.time for rec in left))}
        left = [rec for rec in left if rec.record_id not in stored]
    return GoneRecords(folder, committed=committed, waiting=len(left), writable=writable)


def _gone(folder: str) -> list[UsageRecord]:
    """The records in the journals and spool files of processes that are gone (read only)."""
    return [*Spool(folder).orphan_records(), *Journal(folder).orphan_records()]
