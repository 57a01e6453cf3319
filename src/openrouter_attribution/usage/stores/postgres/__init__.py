"""The PostgreSQL store: ``store`` (records and queries, schema and migrations), ``insert`` (prepared
multi-row inserts), ``budgets`` (reservations, settles and billed costs)."""
