"""Forks: a forked child inherits a ledger but not its writer thread, nor a usable store connection.

:data:`generation` counts the forks between the first process and this one; a writer notes it when it
is created and uses its thread and store only while it is unchanged (:meth:`CommitQueue.live`). Each
writer's lock is held across ``fork()``, so that the child never inherits one held by a thread it lacks.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Protocol

__all__ = ["generation", "hold_across_fork"]

generation = 0
"""Forks since the first process (read it as ``forks.generation``: it changes)."""


class _Locked(Protocol):
    lock: threading.Lock


_OWNERS: weakref.WeakSet[_Locked] = weakref.WeakSet()
_HELD: list[threading.Lock] = []


def hold_across_fork(owner: _Locked) -> None:
    """Hold ``owner.lock`` across every ``fork()`` while ``owner`` lives."""
    _OWNERS.add(owner)


def _before_fork() -> None:
    _HELD[:] = [owner.lock for owner in list(_OWNERS)]
    for lock in _HELD:
        lock.acquire()


def _after_fork() -> None:
    for lock in _HELD:
        lock.release()
    _HELD.clear()


def _forked() -> None:
    global generation
    generation += 1
    _after_fork()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_forked)
