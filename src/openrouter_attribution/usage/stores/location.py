"""Where a ledger lives: an SQLite file, ``":memory:"`` or a PostgreSQL DSN; and DSNs without passwords.

A location string is read once, at construction, so a typo fails there and not at the first call:

- ``postgresql://user:pw@host:5432/db`` or ``postgres://...`` is a PostgreSQL server (the ``[postgres]``
  extra provides psycopg 3);
- ``":memory:"`` is a private in-memory SQLite database (tests, short scripts);
- any other string with a ``scheme://`` prefix (``mysql://...``) is refused;
- everything else is an SQLite file whose folder must already exist.

Every message that names a location goes through :func:`redact` first: a password in a DSN (in the
user-info part or as a ``password=`` parameter) becomes ``***``.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Literal

from openrouter_attribution.errors import ConfigurationError

__all__ = ["Location", "parse_location", "redact"]

POSTGRES_SCHEMES = ("postgresql", "postgres")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class Location:
    """A parsed ledger location."""

    backend: Literal["sqlite", "postgres"]
    """Which store serves it."""
    target: str
    """The SQLite path (``~`` expanded) or the DSN exactly as given (with its password)."""
    display: str
    """What messages, logs and ``repr`` show: the path, or the DSN with its password redacted."""

    @property
    def memory(self) -> bool:
        """True for SQLite's ``":memory:"``."""
        return self.backend == "sqlite" and self.target == ":memory:"


def redact(location: str) -> str:
    """``location`` with any DSN password replaced by ``***``.

    Example:
        >>> redact("postgresql://app:s3cret@db:5432/usage?sslmode=require")
        'postgresql://app:***@db:5432/usage?sslmode=require'
        >>> redact("host=db password='s3 cret' dbname=usage")
        'host=db password=*** dbname=usage'
    """
    if not _SCHEME.match(location):
        return _KV_PASSWORD.sub(r"\1***", location) if "password" in location.lower() else location
    try:
        parts = urllib.parse.urlsplit(location)
    except ValueError:
        return _SCHEME.match(location).group(0) + "***"  # type: ignore[union-attr]
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hostinfo}"
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(key.lower() == "password" for key, _ in pairs):
            query = "&".join(
                f"{key}=***" if key.lower() == "password" else f"{key}={urllib.parse.quote(value, safe='')}"
                for key, value in pairs
            )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_location(location: str | os.PathLike[str]) -> Location:
    """Read a ledger location (see the module docstring).

    Raises:
        ConfigurationError: an unsupported ``scheme://`` or an SQLite path whose folder does not
            exist; the message names the location, its password redacted.
    """
    text = os.fspath(location)
    if not isinstance(text, str):
        raise ConfigurationError("a ledger location must be a path or a DSN string, not bytes")
    match = _SCHEME.match(text)
    if match:
        scheme = match.group(1).lower()
        if scheme in POSTGRES_SCHEMES:
            return Location("postgres", text, redact(text))
        raise ConfigurationError(
            f"Unsupported ledger location {redact(text)!r}: use an SQLite file path, ':memory:', or a "
            "PostgreSQL DSN (postgresql://user@host:5432/db)."
        )
    if text == ":memory:":
        return Location("sqlite", text, text)
    if text.split(":", 1)[0].lower() in POSTGRES_SCHEMES and ":" in text:
        raise ConfigurationError(
            f"Ledger location {redact(text)!r} looks like a PostgreSQL DSN without '//': "
            "write postgresql://user@host:5432/db."
        )
    if not text.strip():
        raise ConfigurationError("The ledger location is empty: pass an SQLite file path or a PostgreSQL DSN.")
    path = os.path.expanduser(text)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigurationError(
            f"The folder of the ledger file {text!r} does not exist ({parent}); create it first, or pass another path."
        )
    return Location("sqlite", path, text)
