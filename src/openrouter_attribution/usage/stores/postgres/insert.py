"""Inserting records into PostgreSQL through psycopg's libpq layer: prepared, binary, with a deadline.

psycopg exposes libpq itself as ``Connection.pgconn`` (https://www.psycopg.org/psycopg3/docs/api/pq.html)
"to send low level commands to PostgreSQL". The ledger's inserts go through it because they are the
one statement run once per model call: two statements are prepared on each new connection (one row,
and a batch of rows as one array per column, whose SQL text never changes with the batch size), and
each insert is a single ``Bind/Execute/Sync`` message with binary parameters. That costs a fraction of
the client CPU of ``Connection.execute`` (no cursor, no query conversion, no adapter lookup) and lets
the caller bound its wait: the socket is polled until a deadline, which ``Connection.execute`` has no
way to do. A record the encoders below do not take (a value of an unexpected type) makes
:func:`encode` return ``None``, and the caller falls back to ``Connection.execute`` and its adapters.
"""

from __future__ import annotations

import math
import select
import struct
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from openrouter_attribution.usage.records import UsageRecord
from openrouter_attribution.usage.stores.rows import COLUMNS, to_row

__all__ = ["MANY", "ONE", "encode", "prepare", "run"]

ONE = b"openrouter_usage_insert_one"
"""Name of the prepared one-row insert."""
MANY = b"openrouter_usage_insert_many"
"""Name of the prepared many-row insert."""

_TEXT, _FLOAT8, _INT8, _NUMERIC, _BOOL = 25, 701, 20, 1700, 16  # type OIDs (pg_type)
_ARRAY_OF = {_TEXT: 1009, _FLOAT8: 1022, _INT8: 1016, _NUMERIC: 1231, _BOOL: 1000}
_TYPES: dict[str, int] = {
    "record_id": _TEXT, "time": _FLOAT8, "user": _TEXT, "session_id": _TEXT, "model_requested": _TEXT,
    "model_used": _TEXT, "provider": _TEXT, "prompt_tokens": _INT8, "completion_tokens": _INT8,
    "cached_tokens": _INT8, "reasoning_tokens": _INT8, "cost": _NUMERIC, "latency_s": _FLOAT8, "ttft_s": _FLOAT8,
    "generation_id": _TEXT, "streamed": _BOOL, "outcome": _TEXT, "framework": _TEXT, "kind": _TEXT, "metadata": _TEXT,
}  # fmt: skip
assert tuple(_TYPES) == COLUMNS, "every column needs its PostgreSQL type here"
_OIDS = tuple(_TYPES.values())

_D, _Q, _I = struct.Struct("!d"), struct.Struct("!q"), struct.Struct("!i")
_NULL = _I.pack(-1)


def _text(value: str) -> bytes:
    # Binary text parameters carry their length: a NUL is refused by the server (invalid UTF-8 byte
    # sequence), never cut short as a C string would be.
    return value.encode()


def _numeric(value: Decimal) -> bytes:
    if not isinstance(value, Decimal):
        raise TypeError("cost must be a Decimal")
    return format(value, "f").encode()


def _bool(value: bool) -> bytes:
    return b"\x01" if value else b"\x00"


_ENCODERS: dict[int, Callable[[Any], bytes]] = {_TEXT: _text, _FLOAT8: _D.pack, _INT8: _Q.pack,
                                                _NUMERIC: _numeric, _BOOL: _bool}  # fmt: skip
_ENCODE = tuple(_ENCODERS[oid] for oid in _OIDS)
# NUMERIC travels as text (its binary form is base-10000 digit groups); everything else in binary.
_FORMATS = [0 if oid == _NUMERIC else 1 for oid in _OIDS]

_COLUMN_LIST = ", ".join('"user"' if c == "user" else c for c in COLUMNS)
ONE_SQL = (
    f"INSERT INTO usage_records ({_COLUMN_LIST}) VALUES ({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 1))}) "
    "ON CONFLICT (record_id) DO NOTHING"
)
MANY_SQL = (
    f"INSERT INTO usage_records ({_COLUMN_LIST}) SELECT * FROM unnest("
    + ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
    + ") ON CONFLICT (record_id) DO NOTHING"
)


def _array(oid: int, values: Sequence[Any]) -> bytes:
    """A one-dimensional array in PostgreSQL's binary array format (``array_recv``)."""
    encode = _ENCODERS[oid]
    parts = [struct.pack("!iiIii", 1, None in values, oid, len(values), 1)]
    for value in values:
        if value is None:
            parts.append(_NULL)
        else:
            data = encode(value)
            parts.append(_I.pack(len(data)) + data)
    return b"".join(parts)


def _numeric_array(values: Sequence[Any]) -> bytes:
    """NUMERIC[] as text: ``{0.0000054,NULL}`` (decimals need no quoting)."""
    return ("{" + ",".join("NULL" if v is None else _numeric(v).decode() for v in values) + "}").encode()


def encode(records: Sequence[UsageRecord]) -> tuple[bytes, list[bytes | None], list[int]] | None:
    """The statement name, parameters and parameter formats for ``records``; ``None`` when a value has a
    type the encoders do not take (the caller then uses ``Connection.execute``)."""
    try:
        if len(records) == 1:
            row = to_row(records[0], cost_as_text=False)
            return ONE, [None if v is None else enc(v) for enc, v in zip(_ENCODE, row, strict=True)], _FORMATS
        columns = list(zip(*(to_row(r, cost_as_text=False) for r in records), strict=True))
        params: list[bytes | None] = [_numeric_array(col) if oid == _NUMERIC else _array(oid, col)
                                      for oid, col in zip(_OIDS, columns, strict=True)]  # fmt: skip
    except (TypeError, ValueError, AttributeError, struct.error, OverflowError):
        return None
    return MANY, params, _FORMATS


def prepare(pgconn: Any) -> str | None:
    """Prepare both inserts on a new connection (blocking); returns the server's error message, if any."""
    for name, sql, types in ((ONE, ONE_SQL, list(_OIDS)), (MANY, MANY_SQL, [_ARRAY_OF[t] for t in _OIDS])):
        result = pgconn.prepare(name, sql.encode(), types)
        if result.status != 1:  # COMMAND_OK
            return (result.error_message or b"").decode(errors="replace").strip()
    return None


def _ready(fd: int, events: int, until: float | None) -> bool:
    """Block until the socket is ready for ``events``; False once ``until`` (``time.monotonic()``) passed."""
    if until is None:
        ms = -1
    else:
        ms = math.ceil((until - time.monotonic()) * 1000)
        if ms <= 0:
            return False
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(ms)) or until is None


def run(pgconn: Any, name: bytes, params: list[bytes | None], formats: list[int], until: float | None) -> Any:
    """Execute a prepared statement; its result, or ``None`` when ``until`` (``time.monotonic()``) passed
    first (the connection is then mid-statement and must be closed). Raises ``psycopg.OperationalError``
    when the connection breaks."""
    pgconn.send_query_prepared(name, params, formats)
    fd = pgconn.socket
    while pgconn.flush():  # a non-blocking connection: the message may not all be out yet
        if not _ready(fd, select.POLLOUT, until):
            return None
    result = None
    while True:
        if pgconn.is_busy():  # the answer is not complete in libpq's buffer: read more
            if not _ready(fd, select.POLLIN, until):
                return None
            pgconn.consume_input()
            continue
        got = pgconn.get_result()
        if got is None:
            return result
        if result is None or got.status != 1:  # COMMAND_OK
            result = got  # the first result, or an error that followed it
