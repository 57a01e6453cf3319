"""The command line on every backend: `--db` takes a path or a DSN; a DSN password never shows."""

from __future__ import annotations

import json

import pytest

from openrouter_attribution import cli
from openrouter_attribution.usage import UsageLedger, UsageRecord
from openrouter_attribution.usage.stores.postgres.store import SCHEMA_VERSION as POSTGRES_SCHEMA
from openrouter_attribution.usage.stores.sqlite.schema import SCHEMA_VERSION as SQLITE_SCHEMA

RECORDS = [("app_1", 1735689600.0, 0.000123), ("app_1", 1735689660.0, 1.953e-05), ("app_2", 1735776000.0, 0.0042),
           ("app_2", 1735776060.0, None)]  # fmt: skip


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_report_export_prune_migrate(backend, capsys, caplog):
    with UsageLedger(backend.location) as ledger:
        ledger.record_many(UsageRecord(time=t, user=u, cost=c) for u, t, c in RECORDS)
    code, out, err = run(capsys, "report", "--db", backend.location, "--format", "json")
    assert (code, err) == (0, "")
    assert {r["user"]: r["requests"] for r in json.loads(out)} == {"app_1": 2, "app_2": 2}
    assert json.loads(out)[0]["cost"] == 0.0042
    code, out, err = run(capsys, "export", "--db", backend.location, "--format", "jsonl")
    assert [json.loads(line)["time"] for line in out.splitlines()][0] == "2025-01-01T00:00:00.000000Z"
    code, out, err = run(capsys, "prune", "--db", backend.location, "--before", "2025-01-02", "--dry-run")
    assert out == "would remove 2 records older than 2025-01-02T00:00:00.000000Z\n"
    code, out, err = run(capsys, "migrate", "--db", backend.location)
    version = SQLITE_SCHEMA if backend.name == "sqlite" else POSTGRES_SCHEMA
    assert (code, out) == (0, f"schema {version}: up to date\n")
    if backend.server is not None:
        assert backend.server.password not in out + err + caplog.text


def test_a_wrong_password_is_one_line_without_it(backend, capsys, caplog):
    if backend.server is None:
        pytest.skip("an SQLite location has no password")
    location = backend.location.replace(backend.server.password, "wrong-s3cret-pw")
    code, out, err = run(capsys, "report", "--db", location)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "wrong-s3cret-pw" not in out + err + caplog.text
    assert ":***@" in err
