"""The store protocol and its backends, the only place SQL is written: SQLite (``stores.sqlite``) and
PostgreSQL (``stores.postgres``), each with its schema and its budget and reconciliation backend."""
