"""A store written as a user of the library would write one: to the documented protocols only.

:class:`DictBudgetStore` implements ``UsageStore`` (records) and ``SupportsBudgets`` (budgets), in memory
behind one lock, and nothing else: no ``settles``, no SQL, nothing private. The budget suites
(``tests/storage/test_budget_store.py``, ``tests/wire/test_budget_calls.py``) run against it beside
SQLite and PostgreSQL, so a guard that needs more than the protocol fails there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from openrouter_attribution.usage import BudgetUsage, MemoryUsageStore, UsageRecord
from openrouter_attribution.usage.budgets.budget import BudgetCheck, Reservation

__all__ = ["DictBudgetStore"]


@dataclass(frozen=True)
class _Held:
    """A reservation (``record_id`` None), or one call of a settled one whose record is not stored yet."""

    user: str | None
    amount: Decimal
    slots: int
    created_at: float
    expires_at: float
    record_id: str | None = None


class DictBudgetStore:
    """Records (in a :class:`MemoryUsageStore`) and budget reservations (in a dictionary) behind one lock, so
    a check and its reservation are atomic for the threads of this process, and no record lands between
    the two reads of a check (the store is not shared between processes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records = MemoryUsageStore()
        self._held: dict[str, _Held] = {}
        self.asked_slots: list[int] = []
        """The ``slots`` of every reservation asked for (tests read it)."""

    # -- UsageStore ---------------------------------------------------------------------------------

    def write_many(self, records: Sequence[UsageRecord]) -> None:
        """Store records, ignoring ids already present."""
        with self._lock:
            self._records.write_many(records)

    def iter_records(
        self, since: float | None = None, until: float | None = None, user: str | None = None
    ) -> Iterator[UsageRecord]:
        """Matching records ordered by time, then record id."""
        return self._records.iter_records(since, until, user)

    def close(self) -> None:
        """Refuse further use (every method then raises ``UsageStoreError``)."""
        self._records.close()

    # -- SupportsBudgets ----------------------------------------------------------------------------

    def budget_reserve(self, reservation: Reservation, *, settle_all: bool = False) -> BudgetCheck:
        """Check and reserve under the lock (settles are applied at once: ``settle_all`` changes nothing)."""
        r = reservation
        with self._lock:
            self.asked_slots.append(r.slots)
            self._sweep(r.user, r.now)
            usage = self._usage(r.user, r.since, r.now)

            def fits(n: int) -> bool:
                cost_ok = r.max_cost is None or usage.spent + usage.reserved + n * r.amount <= r.max_cost
                return cost_ok and (r.max_requests is None or usage.requests + usage.in_flight + n <= r.max_requests)

            slots = r.slots if r.slots > 1 and fits(2 * r.slots) else 1 if fits(1) else 0
            if not slots:
                return BudgetCheck(spent=usage.spent, requests=usage.requests, reserved=usage.reserved,
                                   in_flight=usage.in_flight, granted=False)  # fmt: skip
            self._held[r.id] = _Held(r.user, r.amount, slots, r.now, r.expires_at)
            return BudgetCheck(granted=True, slots=slots)

    def budget_settle(self, reservation: Reservation, record_ids: Sequence[str], *, after: float = 0.0) -> None:
        """Release the reservation; each call whose record is not stored yet keeps counting, linked to it."""
        r = reservation
        with self._lock:
            self._held.pop(r.id, None)
            stored = self._stored()
            for i, record_id in enumerate(record_ids):
                if record_id not in stored:
                    self._held[f"{r.id}.{i}"] = _Held(r.user, r.amount, 1, r.now, r.expires_at, record_id)

    def budget_usage(self, user: str | None, since: float, now: float) -> BudgetUsage:
        """Records and reservations of ``user`` in the window."""
        with self._lock:
            return self._usage(user, since, now)

    # -- helpers (callers hold the lock) ------------------------------------------------------------

    def _stored(self) -> set[str]:
        return {rec.record_id for rec in self._records.iter_records()}

    def _usage(self, user: str | None, since: float, now: float) -> BudgetUsage:
        records = [rec for rec in self._records.iter_records(since) if rec.user == user]
        stored = self._stored()
        held = [h for h in self._held.values() if h.user == user and h.created_at >= since and h.expires_at > now
                and h.record_id not in stored]  # fmt: skip
        return BudgetUsage(spent=sum((rec.cost or Decimal(0) for rec in records), Decimal(0)),
                           requests=len(records), reserved=sum((h.amount * h.slots for h in held), Decimal(0)),
                           in_flight=sum(h.slots for h in held))  # fmt: skip

    def _sweep(self, user: str | None, now: float) -> None:
        """Forget the user's reservations that can never count again (expired, or their record is stored)."""
        stored = self._stored()
        gone = [k for k, h in self._held.items() if h.user == user and (h.expires_at <= now or h.record_id in stored)]
        for key in gone:
            del self._held[key]

    def __repr__(self) -> str:
        return "DictBudgetStore()"
