"""How budgets are keyed in a store's budget tables (``budget_spend``, ``budget_reservations``, ``budget_alerts``).

A user's budget is keyed by the user id as sent, as it always was; a budget of another scope
(``metadata.<key>``) by the scope and the value after :data:`SCOPE_MARK`, a control character no user id
as sent contains, so a tenant never shares a key with a user of the same name. Reservations add the
budget's period (:func:`held_key`). The SQL stores' spend triggers write the same keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openrouter_attribution.usage.budgets.budget import Reservation

__all__ = ["SCOPE_MARK", "held_key", "key_from_store", "store_key"]

SCOPE_MARK = "\x1f"
"""Starts the store key of a budget of another scope than ``"user"`` (see :func:`store_key`): a control
character, which no user id as sent contains (the identity policy refuses them), so such a key never
collides with a user's."""


def store_key(scope: str, key: str | None) -> str:
    """The key of a budget in the store's budget tables: a user id as sent (``""`` for the shared
    unattributed budget) for ``scope="user"``; for another scope the scope and the value after
    :data:`SCOPE_MARK`, e.g. ``"\\x1fmetadata.tenant\\x1facme"`` (``"\\x1fmetadata.tenant"`` for the calls
    whose metadata lacks the key). The spend triggers of the SQL stores write the same keys.

    Examples:
        >>> store_key("user", "app_42"), store_key("metadata.tenant", "acme")
        ('app_42', '\\x1fmetadata.tenant\\x1facme')
    """
    if scope == "user":
        return key or ""
    return f"{SCOPE_MARK}{scope}" if key is None else f"{SCOPE_MARK}{scope}{SCOPE_MARK}{key}"


def held_key(reservation: Reservation) -> str:
    """The key of a reservation in the store: its budget's :func:`store_key` and period after
    :data:`SCOPE_MARK`. Each period of a key holds its own reservations, so a call reserved in a user's
    daily and monthly budget counts once in each; the records count in every budget of their key."""
    return f"{store_key(reservation.scope, reservation.user)}{SCOPE_MARK}{reservation.period}"


def key_from_store(stored: str) -> tuple[str, str | None]:
    """``(scope, key)`` of a :func:`store_key` (``key`` ``None`` for a shared budget of calls without one)."""
    if not stored.startswith(SCOPE_MARK):
        return "user", stored or None
    scope, _, key = stored[1:].partition(SCOPE_MARK)
    return scope, key if SCOPE_MARK in stored[1:] else None
