"""The openrouter-attribution command line: report, export, errors, and the delegating subcommands."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import types
from decimal import Decimal
from pathlib import Path

import pytest

from openrouter_attribution import cli
from openrouter_attribution.usage import UsageLedger, UsageRecord
from openrouter_attribution.usage.stores.sqlite.schema import SCHEMA_VERSION as SQLITE_SCHEMA

# Costs as OpenRouter reports them on the wire: JSON floats.
WIRE = [
    ("app_1", "openai/gpt-4o-mini", 1735689600.0, 0.000123),
    ("app_1", "anthropic/claude-3.5-haiku", 1735689660.0, 1.953e-05),
    ("app_2", "openai/gpt-4o-mini", 1735776000.0, 0.0042),
    ("app_2", "openai/gpt-4o-mini", 1735776060.0, None),
]


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "usage.db"
    with UsageLedger(path) as ledger:
        for user, model, t, cost in WIRE:
            ledger.record(
                UsageRecord(
                    time=t,
                    user=user,
                    model_used=model,
                    prompt_tokens=10,
                    completion_tokens=2,
                    cost=cost,
                    outcome="ok" if cost is not None else "APIConnectionError",
                )
            )
    return str(path)


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_report_json_by_user_compares_with_wire_floats(capsys, db):
    code, out, err = run(capsys, "report", "--db", db, "--format", "json")
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert [r["user"] for r in rows] == ["app_2", "app_1"]
    app_1 = rows[1]
    assert app_1 == {
        "user": "app_1",
        "requests": 2,
        "errors": 0,
        "prompt_tokens": 20,
        "completion_tokens": 4,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "cost": pytest.approx(0.000123 + 1.953e-05),
        "unknown_cost_requests": 0,
        "reported_cost": pytest.approx(0.000123 + 1.953e-05),
        "reconciled": 0,
        "user_mismatches": 0,
    }
    assert rows[0]["errors"] == 1
    assert rows[0]["unknown_cost_requests"] == 1
    exact = json.loads(out, parse_float=Decimal)
    assert exact[1]["cost"] == Decimal("0.00014253")


@pytest.mark.parametrize(
    ("by", "keys"),
    [
        ("user", ["app_2", "app_1"]),
        ("model", ["openai/gpt-4o-mini", "anthropic/claude-3.5-haiku"]),
        ("day", ["2025-01-02", "2025-01-01"]),
        ("session", [None]),
        ("provider", [None]),
    ],
)
def test_report_json_names_the_key_after_by(capsys, db, by, keys):
    code, out, _ = run(capsys, "report", "--db", db, "--by", by, "--format", "json")
    assert code == 0
    assert [r[by] for r in json.loads(out)] == keys


def test_report_filters_and_top(capsys, db):
    _, out, _ = run(capsys, "report", "--db", db, "--format", "json", "--since", "2025-01-02")
    assert [r["user"] for r in json.loads(out)] == ["app_2"]
    _, out, _ = run(capsys, "report", "--db", db, "--format", "json", "--until", "1735689660")
    assert [(r["user"], r["requests"]) for r in json.loads(out)] == [("app_1", 1)]
    _, out, _ = run(capsys, "report", "--db", db, "--format", "json", "--top", "1", "--by", "model")
    assert [r["model"] for r in json.loads(out)] == ["openai/gpt-4o-mini"]
    _, out, _ = run(capsys, "report", "--db", db, "--format", "json", "--user", "app_1")
    assert [r["user"] for r in json.loads(out)] == ["app_1"]


def test_report_table_is_aligned_with_a_totals_row(capsys, db):
    code, out, _ = run(capsys, "report", "--db", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["user", "requests", "errors"]
    assert lines[-1].split()[:3] == ["TOTAL", "4", "1"]
    assert "0.00434253" in lines[-1]
    assert len({len(line) for line in lines}) == 1  # every row padded to the same columns


def test_report_table_totals_cover_everything_even_with_top(capsys, db):
    _, out, _ = run(capsys, "report", "--db", db, "--top", "1")
    lines = out.splitlines()
    assert len(lines) == 5  # header, rule, one row, rule, total
    assert lines[-1].split()[1] == "4"


def test_report_csv(capsys, db):
    _, out, _ = run(capsys, "report", "--db", db, "--format", "csv", "--by", "day")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["day"], r["requests"], r["cost"]) for r in rows] == [
        ("2025-01-02", "2", "0.0042"),
        ("2025-01-01", "2", "0.00014253"),
    ]


def test_export_csv_and_jsonl(capsys, db, tmp_path):
    code, out, _ = run(capsys, "export", "--db", db)
    assert code == 0
    assert [r["user"] for r in csv.DictReader(io.StringIO(out))] == ["app_1", "app_1", "app_2", "app_2"]
    target = tmp_path / "out.jsonl"
    code, out, err = run(capsys, "export", "--db", db, "--format", "jsonl", "-o", str(target), "--user", "app_2")
    assert (code, out, err) == (0, "", "")
    lines = target.read_text().splitlines()
    assert [UsageRecord.from_dict(json.loads(line)).cost for line in lines] == [Decimal("0.0042"), None]


def test_export_shows_progress_on_a_tty(capsys, db, monkeypatch):
    class TTY(io.StringIO):
        def isatty(self):
            return True

    tty = TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    assert cli.main(["export", "--db", db, "--format", "jsonl"]) == 0
    assert "exported 4 records" in tty.getvalue()
    assert capsys.readouterr().out.count("\n") == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--db", "{missing}"], "error: no ledger at {missing}\n"),
        (["export", "--db", "{missing}"], "error: no ledger at {missing}\n"),
        (
            ["report", "--db", "{not_a_db}"],
            "error: {not_a_db} is not a usage ledger: file is not a database\n",
        ),
        (["report", "--db", "{db}", "--since", "soon"], None),
    ],
)
def test_errors_are_one_line_with_status_2(capsys, db, tmp_path, argv, message):
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello, this is not SQLite " * 10)
    names = {"missing": str(tmp_path / "nope.db"), "not_a_db": str(not_a_db), "db": db}
    code, out, err = run(capsys, *(a.format(**names) for a in argv))
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    if message is not None:
        assert err == message.format(**names)


@pytest.mark.parametrize(
    "argv", [["report"], ["report", "--db", "x", "--by", "colour"], [], ["report", "--db", "x", "--nope"]]
)
def test_usage_errors_are_one_line_with_status_2(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert err.count("\n") == 1


def test_demo_delegates_every_argument(capsys, monkeypatch):
    seen = []
    fake = types.ModuleType("openrouter_attribution.demo")
    fake.main = lambda argv: seen.append(argv) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "openrouter_attribution.demo", fake)
    assert cli.main(["demo", "--live", "--help"]) == 0
    assert cli.main(["demo"]) == 0
    assert seen == [["--live", "--help"], []]


def test_fake_server_prints_url_and_key_until_interrupted(capsys, monkeypatch):
    created = {}

    class FakeOpenRouter:
        def __init__(self, **kwargs):
            created.update(kwargs)
            self.base_url, self.api_key = "http://127.0.0.1:5555/api/v1", kwargs.get("api_key", "sk-default")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            created["stopped"] = True

    class InterruptedEvent:
        def wait(self):
            raise KeyboardInterrupt

    fake = types.ModuleType("openrouter_attribution.testing")
    fake.FakeOpenRouter = FakeOpenRouter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "openrouter_attribution.testing", fake)
    monkeypatch.setattr(cli.threading, "Event", InterruptedEvent)
    code, out, _ = run(capsys, "fake-server", "--port", "5555", "--api-key", "sk-test")
    assert code == 0
    assert out == "base_url: http://127.0.0.1:5555/api/v1\napi_key: sk-test\n"
    assert created == {"host": "127.0.0.1", "port": 5555, "api_key": "sk-test", "stopped": True}


def _command() -> list[str]:
    script = Path(sys.executable).with_name("openrouter-attribution")
    return [str(script)] if script.exists() else [sys.executable, "-m", "openrouter_attribution.cli"]


def test_console_script_in_a_subprocess(db, tmp_path):
    ok = subprocess.run(
        [*_command(), "report", "--db", db, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (ok.returncode, ok.stderr) == (0, "")
    assert sum(r["requests"] for r in json.loads(ok.stdout)) == 4
    missing = str(tmp_path / "missing.db")
    bad = subprocess.run(
        [*_command(), "report", "--db", missing], capture_output=True, text=True, timeout=60, check=False
    )
    assert (bad.returncode, bad.stdout, bad.stderr) == (2, "", f"error: no ledger at {missing}\n")


# -- version, upkeep, argument errors, DSNs -------------------------------------------------------


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    out, _ = capsys.readouterr()
    assert info.value.code == 0
    assert out.startswith("openrouter-attribution ")
    assert out.split()[1][0].isdigit()


def test_prune_dry_run_then_prune(capsys, db):
    code, out, _ = run(capsys, "prune", "--db", db, "--before", "2025-01-02", "--dry-run")
    assert (code, out) == (0, "would remove 2 records older than 2025-01-02T00:00:00.000000Z\n")
    code, out, _ = run(capsys, "report", "--db", db, "--format", "json")
    assert sum(r["requests"] for r in json.loads(out)) == 4  # a dry run removes nothing
    code, out, _ = run(capsys, "prune", "--db", db, "--before", "2025-01-02")
    assert (code, out) == (0, "removed 2 records older than 2025-01-02T00:00:00.000000Z\n")
    code, out, _ = run(capsys, "report", "--db", db, "--format", "json")
    assert [r["user"] for r in json.loads(out)] == ["app_2"]


def test_migrate_a_v1_file(capsys, tmp_path):
    import sqlite3

    from tests.storage.test_store_contract import V1_SQLITE

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SQLITE)
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    assert run(capsys, "migrate", "--db", str(path))[:2] == (0, f"schema 1 -> {SQLITE_SCHEMA}: migrated\n")
    assert run(capsys, "migrate", "--db", str(path))[:2] == (0, f"schema {SQLITE_SCHEMA}: up to date\n")


ARGUMENT_ERRORS = [
    [],
    ["nope"],
    ["report"],
    ["report", "--db", "x.db", "--by", "colour"],
    ["report", "--db", "x.db", "--top", "0"],
    ["export", "--db", "x.db", "--format", "xml"],
    ["prune", "--db", "x.db"],
    ["prune", "--before", "2025-01-01"],
    ["migrate"],
    ["migrate", "--db", "x.db", "--extra"],
    ["fake-server", "--port", "99999"],
    ["fake-server", "--port", "eighty"],
]


@pytest.mark.parametrize("argv", ARGUMENT_ERRORS, ids=lambda a: " ".join(a) or "(none)")
def test_argument_errors_are_one_line_and_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert info.value.code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ")


@pytest.mark.parametrize("command", [["report"], ["export"], ["migrate"], ["prune", "--before", "2025-01-01"]])
def test_a_dsn_password_never_appears_in_output(capsys, caplog, command):
    dsn = "postgresql://app:hunter2-s3cret@127.0.0.1:1/usage"
    code, out, err = run(capsys, command[0], "--db", dsn, *command[1:])
    assert code == 2
    assert "postgresql://app:***@127.0.0.1:1/usage" in err
    assert "hunter2" not in out + err + caplog.text
    code, out, err = run(capsys, command[0], "--db", "mysql://app:hunter2-s3cret@db/usage", *command[1:])
    assert (code, "hunter2" in out + err) == (2, False)
    assert "Unsupported ledger location" in err


SUBCOMMANDS = ["report", "export", "prune", "migrate", "budget", "reconcile", "keys", "fake-server"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_subcommand_help_has_a_description_and_examples(capsys, command):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    usage, description = out.split("\n\n")[:2]
    assert usage.startswith(f"usage: openrouter-attribution {command}")
    assert len(description) > 40
    assert not description.startswith("options:")
    examples = out.split("examples:\n", 1)[1].splitlines()
    assert examples
    assert all(line.startswith(f"  openrouter-attribution {command}") for line in examples)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_option_is_documented(command):
    (commands,) = [action for action in cli._build_parser()._actions if action.dest == "command"]
    undocumented = [action.dest for action in commands.choices[command]._actions if not action.help]
    assert undocumented == []


def test_demo_help_is_plain_text_with_examples():
    demo = subprocess.run(
        [sys.executable, "-m", "openrouter_attribution.cli", "demo", "--help"], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert demo.returncode == 0
    assert "``" not in demo.stdout
    assert ":class:" not in demo.stdout
    assert "nothing is spent, even with OPENROUTER_API_KEY set" in demo.stdout
    assert "examples:\n  openrouter-attribution demo" in demo.stdout


def test_version_is_the_package_version(capsys):
    from openrouter_attribution import __version__

    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out == f"openrouter-attribution {__version__}\n"
