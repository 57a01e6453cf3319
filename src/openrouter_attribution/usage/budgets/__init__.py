"""Budgets: ``budget`` (``UserBudget``, windows, the store protocols), ``group`` (a model's budgets, by user
or metadata value), ``keys`` (how budgets are keyed in a store), ``guard`` (the step on the call path:
reservations and leases), ``settles`` (reservations ended in the background), ``alerts`` (``BudgetAlert``,
the alerts thread, ``alerts_fired``), ``webhook`` (a signed-webhook ``on_alert``) and ``windows`` (every
key's window, for dashboards)."""
