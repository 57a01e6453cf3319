"""The SQLite store: ``store`` (records and queries), ``schema`` (tables, migrations), ``budgets``
(reservations, settles and billed costs)."""
