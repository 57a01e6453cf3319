"""A throwaway PostgreSQL server for tests and benchmarks: a cluster in a temporary folder.

Uses the machine's PostgreSQL binaries (``pg_config --bindir``, or ``$PG_BINDIR``). ``initdb`` refuses
to run as root, so when this process is root the server runs as the ``postgres`` user (``runuser``).
The cluster listens on 127.0.0.1 on a free port, with password authentication (scram-sha-256), and is
deleted by :meth:`PostgresServer.stop`.

Example:
    >>> with PostgresServer() as server:  # doctest: +SKIP
    ...     dsn = server.dsn()  # postgresql://ledger:...@127.0.0.1:<port>/ledger
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PostgresServer", "PostgresUnavailable", "find_bindir"]


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries on this machine (or no user to run them as)."""


def find_bindir() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``.

    Raises:
        PostgresUnavailable: neither ``$PG_BINDIR`` nor ``pg_config --bindir`` gives one.
    """
    candidates = [os.environ.get("PG_BINDIR")]
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl): install Debian's postgresql package")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder, started and stopped by this object.

    Args:
        user: The superuser created, who owns the database ``database``.
        database: A database created at start.
        fsync: Whether the server fsyncs (off makes tests faster; benchmarks keep it on).
    """

    def __init__(self, *, user: str = "ledger", database: str = "ledger", fsync: bool = True) -> None:
        self.bindir = find_bindir()
        self.user = user
        """The superuser's name."""
        self.password = "pw-" + secrets.token_hex(12)
        """The superuser's password (used in :meth:`dsn`)."""
        self.database = database
        """The database created at start."""
        self.fsync = fsync
        self.port = _free_port()
        """The TCP port on 127.0.0.1."""
        self._as: list[str] = []
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and there is no `postgres` user to run the server") from None
            runuser = shutil.which("runuser")
            if runuser is None:
                raise PostgresUnavailable("running as root and `runuser` is missing")
            self._as = [runuser, "-u", "postgres", "--"]
            self._owner = (entry.pw_uid, entry.pw_gid)
        self.folder = Path(tempfile.mkdtemp(prefix="openrouter-attribution-pg-"))
        """The cluster's temporary folder."""
        self._running = False

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _run(self, *args: str) -> None:
        out = subprocess.run([*self._as, *args], capture_output=True, text=True, check=False, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {(out.stderr or out.stdout).strip()[-500:]}")

    def start(self) -> PostgresServer:
        """Create the cluster (first time), start the server and wait until it accepts connections."""
        fresh = not self.data.exists()
        if fresh:
            self._init()
        fsync = "on" if self.fsync else "off"
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync={fsync}"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip
        self._running = True
        if fresh:
            import psycopg

            with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.database}"')
        return self

    def _init(self) -> None:
        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self._owner is not None:
            os.chown(self.folder, *self._owner)
            os.chown(pwfile, *self._owner)
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--no-sync", "--locale=C")  # fmt: skip
        pwfile.unlink()

    def stop_server(self) -> None:
        """Stop the server (``pg_ctl stop -m fast``); :meth:`start` starts it again on the same port."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        self._running = False

    def stop(self) -> None:
        """Stop the server and delete the cluster; idempotent."""
        if self._running:
            try:
                self.stop_server()
            except RuntimeError:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def dsn(self, database: str | None = None) -> str:
        """``postgresql://user:password@127.0.0.1:port/database``."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database or self.database}"

    def create_database(self, name: str) -> str:
        """Create another database; returns its DSN."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"PostgresServer(port={self.port}, folder={str(self.folder)!r})"
