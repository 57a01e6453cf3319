"""The command line right after a crash: the records a killed process left in its journal are in `report`,
`export` and `budget` at once; where they cannot be committed, the command says how many wait and how."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openrouter_attribution import cli
from openrouter_attribution.usage import default_spool_folder

ROOT = Path(__file__).resolve().parents[2]
CALLS = 200


@pytest.fixture(autouse=True)
def _state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PostgreSQL ledger's spool folder is under ``$XDG_STATE_HOME``: the test's own, for the child too."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def killed_after_200_calls(location: str, server: Any) -> None:
    """A child process makes 200 calls through a durable ledger and is SIGKILLed right after the last
    returned; its commit interval is an hour, so every record is still in its journal."""
    command = [sys.executable, "-m", "tests.storage.workers", "calls", location, "SIGKILL", server.base_url,
               server.api_key, str(CALLS), "3600"]  # fmt: skip
    child = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert child.stdout.strip() == f"returned {CALLS}", child.stderr[-2000:]
    assert child.returncode == -signal.SIGKILL


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def requests_reported(out: str) -> int:
    return sum(row["requests"] for row in json.loads(out))


@contextlib.contextmanager
def read_only(folder: str) -> Iterator[None]:
    """Make ``folder`` read-only for this process. The tests may run as root, whom permission bits do not
    stop: then the folder is made immutable (``chattr +i``), which stops root too."""
    if os.geteuid() != 0:
        os.chmod(folder, 0o500)
        undo = ["chmod", "700", folder]
    else:
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", folder], capture_output=True).returncode != 0:
            pytest.skip("running as root on a file system without chattr +i: no folder is read-only for root")
        undo = [chattr, "-i", folder]
    try:
        assert not os.access(folder, os.W_OK)
        yield
    finally:
        subprocess.run(undo, check=True)


@pytest.mark.parametrize("command", ["report", "export", "budget"])
def test_right_after_a_sigkill_every_returned_call_is_in_the_output(backend, fake_openrouter, capsys, command):
    killed_after_200_calls(backend.location, fake_openrouter)
    assert backend.record_ids() == []  # every record waits in the dead process's journal
    if command == "report":
        code, out, err = run(capsys, "report", "--db", backend.location, "--format", "json")
        assert requests_reported(out) == CALLS
    elif command == "export":
        code, out, err = run(capsys, "export", "--db", backend.location, "--format", "jsonl")
        assert {json.loads(line)["generation_id"] for line in out.splitlines()} == set(fake_openrouter.generations)
    else:
        code, out, err = run(capsys, "budget", "--db", backend.location, "--user", "app_0", "--format", "json")
        assert json.loads(out)["requests"] == CALLS // 5  # the worker's calls go to app_0 ... app_4 in turn
    assert code == 0
    assert err == f"note: committed {CALLS} record(s) that processes that are gone left in " \
                  f"{default_spool_folder(backend.location)}\n"  # fmt: skip
    assert len(backend.record_ids()) == CALLS  # committed for good: the next reader finds them in the store
    code, out, err = run(capsys, "report", "--db", backend.location, "--format", "json")
    assert (code, err, requests_reported(out)) == (0, "", CALLS)


def test_a_read_only_spool_folder_gives_the_count_and_the_command_instead(backend, fake_openrouter, capsys):
    killed_after_200_calls(backend.location, fake_openrouter)
    folder = default_spool_folder(backend.location)
    assert folder is not None
    with read_only(folder):
        code, out, err = run(capsys, "report", "--db", backend.location, "--format", "json")
        assert (code, json.loads(out)) == (0, [])  # stdout stays what JSON consumers read: the committed rows
        assert err.startswith(
            f"warning: {CALLS} record(s) that processes that are gone left in {folder} are not in the ledger yet"
        )
        assert "this user cannot write to that folder" in err
        assert "`openrouter-attribution report --db " in err
        assert len(err.splitlines()) == 1
        if backend.server is not None:
            assert backend.server.password not in err
            assert ":***@" in err
    code, out, err = run(capsys, "report", "--db", backend.location, "--format", "json")  # writable again
    assert requests_reported(out) == CALLS
    assert err.startswith(f"note: committed {CALLS} record(s)")


def test_a_store_that_refuses_writes_gives_the_count(postgres_server, fake_openrouter, capsys):
    """The spool folder is writable but the store is not (a read-only database): the replay fails, and the
    command counts what waits instead."""
    import psycopg

    dsn = postgres_server.create_database(f"readonly{os.getpid()}")
    killed_after_200_calls(dsn, fake_openrouter)
    with psycopg.connect(dsn, autocommit=True) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    code, out, err = run(capsys, "report", "--db", dsn, "--format", "json")
    assert (code, json.loads(out)) == (0, [])
    assert err.startswith(f"warning: {CALLS} record(s)")
    assert "the ledger did not take them" in err
    assert postgres_server.password not in err
    assert len(err.splitlines()) == 1
