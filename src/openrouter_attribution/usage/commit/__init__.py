"""How a record reaches a store: the writer thread, the journal of durable records, the spool of
records a store could not take, and the leftovers of processes that are gone."""
