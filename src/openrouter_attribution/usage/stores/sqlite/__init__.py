"""The SQLite store: ``store`` (records and queries), ``schema`` (tables, migrations), ``backend``
(reservations, settles and billed costs)."""
