"""Per-user budgets: ``budget`` (``UserBudget``, windows, the store protocols), ``guard`` (the step on
the call path: reservations and leases), ``settles`` (reservations ended in the background)."""
