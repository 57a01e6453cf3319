"""The PostgreSQL store: ``store`` (records and queries, schema and migrations), ``insert`` (prepared
multi-row inserts), ``backend`` (reservations, settles and billed costs)."""
