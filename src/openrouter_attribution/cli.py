"""The ``openrouter-attribution`` command line.

Subcommands:
    report       usage and cost per user, model, UTC day, session, provider, kind or metadata key
    export       every record of a ledger as CSV or JSON Lines
    prune        delete the records older than a date (``--dry-run`` only counts them)
    migrate      bring a ledger's schema up to date
    budget       one user's budget window: spend, reservations in flight, limit, reset time
    reconcile    fetch OpenRouter's billed cost of every unreconciled record (``GET /generation``)
    keys         the end-users' own OpenRouter keys: list, show, set-limit, disable (management API)
    dashboard    the read-only usage dashboard: pages, JSON and CSV (see :mod:`openrouter_attribution.cli_dashboard`)
    fake-server  a local OpenRouter-compatible server for development
    demo         the end-to-end demo (``--live`` talks to the real OpenRouter)

``--db`` takes an SQLite file or a PostgreSQL DSN (``postgresql://user:pw@host:5432/db``); a password
in a DSN never appears in output or errors.

``report --format json`` prints a list of objects whose first field is named
after ``--by`` (``"user"``, ``"model"``, ``"day"``, ``"session"``, ``"provider"``, ``"kind"``,
``"metadata.tenant"``)
followed by ``requests``, ``errors``, ``prompt_tokens``, ``completion_tokens``,
``cached_tokens``, ``reasoning_tokens``, ``cost``, ``unknown_cost_requests``,
``reported_cost``, ``reconciled`` and ``user_mismatches``. ``cost`` is the billed
cost where a record is reconciled (``reconcile``) and the reported one elsewhere;
``reported_cost`` is what the responses reported, ``reconciled`` how many records
carry a billed cost. Costs are JSON numbers written with the exact decimal digits
of the sum (``null`` when no cost of the group is known): plain ``json.loads``
yields a float to compare with OpenRouter's reported costs, ``parse_float=Decimal``
yields the exact value. See :mod:`openrouter_attribution.cli_billing` for ``budget``
and ``reconcile``.

Exports write ``time`` as ISO 8601 UTC and ``cost`` as exact decimal digits (a JSON number in
JSON Lines); see :mod:`openrouter_attribution.usage.export`. A group without a key (a call whose model
or user is unknown) is ``null`` in JSON, empty in CSV and ``(none)`` in tables.

``report``, ``export`` and ``budget`` first commit what processes that are gone left in the ledger's
spool folder (the journal of a process killed right after its calls returned, spool files of an
outage), as an application opening the ledger would, and say so in a ``note:`` line on stderr. Where
this user cannot write to that folder, or the store does not take the records, nothing is committed:
one ``warning:`` line on stderr gives how many records wait and the command to run where they can be
committed, and the output covers the committed records only. Standard output keeps its format (the
JSON of ``--format json`` included), so programs reading it need no change; the exit status is 0.

Errors (bad arguments included) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import IO, Any, NoReturn, cast

from openrouter_attribution import __version__, cli_billing, cli_dashboard, cli_keys, environment
from openrouter_attribution.errors import APIError, ConfigurationError
from openrouter_attribution.usage import export, queries
from openrouter_attribution.usage.commit.leftovers import commit_gone
from openrouter_attribution.usage.ledger import open_store
from openrouter_attribution.usage.records import (
    TOTALS_BY,
    UsageQueryError,
    UsageStoreError,
    UsageTotals,
    check_by,
    check_where,
    format_cost,
    format_time,
)
from openrouter_attribution.usage.stores.location import parse_location, redact
from openrouter_attribution.usage.stores.protocol import UsageStore

__all__ = ["main"]

EXIT_USAGE = 2
DEBUG_ENV = "OPENROUTER_ATTRIBUTION_DEBUG"


class CLIError(Exception):
    """An error reported as one ``error: ...`` line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage dump; --help shows the usage.
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="openrouter-attribution", description="Per-user usage of OpenRouter models.",
                     epilog="Each command's --help has a description and examples.")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    report = add_command(
        sub, "report", "usage and cost totals from a ledger",
        "Requests, tokens and cost of a ledger's records, grouped by user, model, UTC day, session, provider, "
        "kind or a metadata key.\nCost is the billed cost where a record is reconciled, the reported one elsewhere.",
        ["report --db usage.db", "report --db usage.db --by model --since 2026-12-01 --format csv",
         "report --db usage.db --by metadata.tenant", "report --db usage.db --where metadata.tenant=acme --by user",
         "report --db postgresql://app:pw@db:5432/usage --by user --top 20 --format json"],
    )  # fmt: skip
    _add_filters(report)
    report.add_argument("--by", type=_group, default="user", metavar="KEY",
                        help=f"group key: {', '.join(TOTALS_BY)} or metadata.<key> (default: user)")  # fmt: skip
    report.add_argument("--format", choices=("table", "csv", "json"), default="table",
                        help="table (default) for reading, csv for spreadsheets, json for programs")  # fmt: skip
    report.add_argument(
        "--top", type=cli_billing.positive_number, metavar="N", help="only the N groups with the highest cost"
    )

    exp = add_command(
        sub, "export", "every matching record as CSV or JSON Lines",
        "Every record of a ledger, one row or line each: time as ISO 8601 UTC, cost as exact decimal digits.",
        ["export --db usage.db -o usage.csv", "export --db usage.db --user app_42 --since 2026-12-01 --format jsonl"],
    )  # fmt: skip
    _add_filters(exp)
    exp.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="csv (default) or jsonl")
    exp.add_argument("--output", "-o", default="-", metavar="FILE", help="output file (default: stdout)")

    prune = add_command(
        sub, "prune", "delete the records older than a date",
        "Delete the records older than --before; --dry-run only counts them.",
        ["prune --db usage.db --before 2026-01-01 --dry-run", "prune --db usage.db --before 2026-01-01"],
    )  # fmt: skip
    _add_db(prune)
    prune.add_argument("--before", required=True, metavar="TIME",
                       help="records older than this go: ISO date/datetime (UTC) or epoch seconds")  # fmt: skip
    prune.add_argument("--dry-run", action="store_true", help="only count what would be removed")

    migrate = add_command(
        sub, "migrate", "bring a ledger's schema up to date",
        "Bring a ledger's schema up to this release's version (a ledger also migrates when an app opens it).",
        ["migrate --db usage.db", "migrate --db postgresql://app:pw@db:5432/usage"],
    )  # fmt: skip
    _add_db(migrate)

    cli_billing.add_parsers(sub, _add_db, add_command)
    cli_keys.add_parser(sub, add_command)
    cli_dashboard.add_parser(sub, _add_db, add_command)

    fake = add_command(
        sub, "fake-server", "run a local OpenRouter-compatible server until Ctrl-C; logs one line per request",
        "A local OpenRouter-compatible server for development and tests: chat completions, embeddings, "
        "generations\nand models, validated as strictly as OpenRouter. Prints its base_url and api_key.",
        ["fake-server", "fake-server --port 8080 --api-key sk-or-dev"],
    )  # fmt: skip
    fake.add_argument("--port", type=_port, default=0, help="port, 0-65535 (default 0: any free port)")
    fake.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    fake.add_argument("--api-key", help="the key clients must send (default: the server's own)")

    # The demo owns its options (--live, --help): main() passes every argument after "demo" through.
    sub.add_parser(
        "demo", help="run the demo on a local server (--live: on OpenRouter; see demo --help)", add_help=False
    )
    return parser


def add_command(sub: Any, name: str, summary: str, description: str, examples: list[str]) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` shows ``description`` and ``examples`` (without the program name)."""
    lines = "\n".join(f"  openrouter-attribution {example}" for example in examples)
    return cast(argparse.ArgumentParser, sub.add_parser(
        name, help=summary, description=description, epilog=f"examples:\n{lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ))  # fmt: skip


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, metavar="LOC", help="the ledger: an SQLite file or a PostgreSQL DSN")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    _add_db(parser)
    parser.add_argument("--since", metavar="TIME", help="inclusive: ISO date/datetime (UTC) or epoch seconds")
    parser.add_argument("--until", metavar="TIME", help="exclusive: ISO date/datetime (UTC) or epoch seconds")
    parser.add_argument("--user", help="only this end-user id")
    parser.add_argument("--where", type=_filter, action="append", metavar="NAME=VALUE",
                        help="only records where NAME (user, model, kind, session, provider or metadata.<key>) "
                        "equals VALUE; repeat to combine")  # fmt: skip


def _group(text: str) -> str:
    try:
        check_by(text)
    except UsageQueryError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _filter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE such as metadata.tenant=acme, got {text!r}")
    try:
        check_where({name: value})
    except UsageQueryError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return name, value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535 (0: any free port), got {value}")
    return value


def _open_store(location: str) -> UsageStore:
    """An existing ledger (a missing SQLite file is an error, not a new ledger)."""
    where = parse_location(location)
    if where.backend == "sqlite" and not where.memory and not os.path.isfile(where.target):
        raise CLIError(f"no ledger at {where.display}")
    store = open_store(location, create=False)
    opener = getattr(store, "open", None)
    if opener is not None:
        opener()  # connect now: an unreachable server is one clear error line
    return store


def _open_for_reading(location: str) -> UsageStore:
    """An existing ledger, once what processes that are gone left for it (journals, spools) is committed;
    when that cannot be done here, one line on stderr says how many records wait and how to commit them."""
    store = _open_store(location)
    try:
        with _quiet_usage_log():  # a failed replay is said below, in one line
            gone = commit_gone(location, store)
    except BaseException:
        store.close()
        raise
    if gone.committed:
        print(f"note: committed {gone.committed:,} record(s) that processes that are gone left in {gone.folder}",
              file=sys.stderr)  # fmt: skip
    if gone.waiting:
        why = ("this user cannot write to that folder" if not gone.writable
               else "the ledger did not take them (can this user write to it?)")  # fmt: skip
        print(f"warning: {gone.waiting:,} record(s) that processes that are gone left in {gone.folder} are not in "
              f"the ledger yet, so this output leaves them out: {why}. Commit them by running "
              f"`openrouter-attribution report --db {redact(location)}` as a user that can write to that folder "
              "and to the ledger (any application opening the ledger also commits them).", file=sys.stderr)  # fmt: skip
    return store


@contextlib.contextmanager
def _quiet_usage_log() -> Iterator[None]:
    import logging

    usage_log = logging.getLogger("openrouter_attribution.usage")
    saved = usage_log.level
    usage_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        usage_log.setLevel(saved)


def _format_table(rows: list[UsageTotals], overall: UsageTotals, key_name: str) -> str:
    headers = (
        key_name,
        "requests",
        "errors",
        "prompt",
        "completion",
        "cached",
        "reasoning",
        "cost (USD)",
        "unknown cost",
        "reported (USD)",
        "reconciled",
    )

    def cells(row: UsageTotals, label: str) -> list[str]:
        cost = "-" if row.cost is None else format_cost(row.cost)
        numbers = (
            row.requests,
            row.errors,
            row.prompt_tokens,
            row.completion_tokens,
            row.cached_tokens,
            row.reasoning_tokens,
        )
        reported = "-" if row.reported_cost is None else format_cost(row.reported_cost)
        return [
            label,
            *(f"{n:,}" for n in numbers),
            cost,
            f"{row.unknown_cost_requests:,}",
            reported,
            f"{row.reconciled:,}",
        ]

    body = [cells(r, "(none)" if r.key is None else r.key) for r in rows]
    total = cells(overall, "TOTAL")
    widths = [max(len(line[i]) for line in (headers, *body, total)) for i in range(len(headers))]

    def fmt(line: Sequence[str]) -> str:
        first = line[0].ljust(widths[0])
        return "  ".join([first, *(cell.rjust(w) for cell, w in zip(line[1:], widths[1:], strict=True))])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(headers), rule, *(fmt(line) for line in body), rule, fmt(total)]) + "\n"


def _report(args: argparse.Namespace, out: IO[str]) -> int:
    store = _open_for_reading(args.db)
    try:
        filters = {"since": args.since, "until": args.until, "user": args.user, "where": dict(args.where or ())}
        rows = queries.totals(store, args.by, **filters)
        if args.top is not None:
            rows = rows[: args.top]
        if args.format == "json":
            out.write(export.totals_to_json(rows, args.by) + "\n")
        elif args.format == "csv":
            export.write_totals_csv(rows, out, args.by)
        else:
            overall = queries.totals(store, None, **filters)[0]
            out.write(_format_table(rows, overall, args.by))
    finally:
        store.close()
    return 0


def _export(args: argparse.Namespace, out: IO[str]) -> int:
    store = _open_for_reading(args.db)
    progress = _progress_printer() if sys.stderr.isatty() else None
    write = export.export_csv if args.format == "csv" else export.export_jsonl
    try:
        where = dict(args.where or ())
        records = queries.iter_records(store, since=args.since, until=args.until, user=args.user, where=where)
        if args.output == "-":
            count = write(records, out, progress=progress)
        else:
            newline = "" if args.format == "csv" else None
            with open(args.output, "w", encoding="utf-8", newline=newline) as fh:
                count = write(records, fh, progress=progress)
    finally:
        store.close()
    if progress is not None:
        sys.stderr.write(f"\rexported {count:,} records\n")
    return 0


def _prune(args: argparse.Namespace, out: IO[str]) -> int:
    before = queries.parse_time(args.before)
    assert before is not None
    store = _open_store(args.db)
    try:
        count = store.prune(before, dry_run=args.dry_run)  # type: ignore[attr-defined]
    finally:
        store.close()
    verb = "would remove" if args.dry_run else "removed"
    out.write(f"{verb} {count:,} record{'s' if count != 1 else ''} older than {format_time(before)}\n")
    return 0


def _migrate(args: argparse.Namespace, out: IO[str]) -> int:
    store = _open_store(args.db)
    try:
        old, new = store.migrated_from, store.schema_version  # type: ignore[attr-defined]
    finally:
        store.close()
    if old is None:
        out.write(f"schema {new}: up to date\n")
    else:
        out.write(f"schema {old} -> {new}: migrated\n")
    return 0


def _progress_printer() -> export.ProgressCallback:
    def show(count: int) -> None:
        sys.stderr.write(f"\rexporting... {count:,} records")
        sys.stderr.flush()

    return show


def _fake_server(args: argparse.Namespace, out: IO[str]) -> int:
    # Imported lazily: the server needs the optional testing dependencies.
    testing = importlib.import_module("openrouter_attribution.testing")
    fake_openrouter = getattr(testing, "FakeOpenRouter", None)
    if fake_openrouter is None:
        raise CLIError("this installation has no openrouter_attribution.testing.FakeOpenRouter")
    kwargs: dict[str, object] = {"host": args.host, "port": args.port}
    if args.api_key is not None:
        kwargs["api_key"] = args.api_key
    with _requests_logged_to_stderr(), fake_openrouter(**kwargs) as server:
        out.write(f"base_url: {server.base_url}\napi_key: {server.api_key}\n")
        out.flush()
        print("serving; press Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _requests_logged_to_stderr() -> Iterator[None]:
    """While serving, one line per request on stderr: time, method, path, model, user, session, status."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    server_log = logging.getLogger("openrouter_attribution.testing")
    saved = server_log.level, server_log.propagate
    server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)
    server_log.propagate = False
    try:
        yield
    finally:
        server_log.removeHandler(handler)
        server_log.setLevel(saved[0])
        server_log.propagate = saved[1]


def _demo(args: argparse.Namespace, out: IO[str]) -> int:
    # Imported lazily: the demo loads LangChain and LlamaIndex.
    demo = importlib.import_module("openrouter_attribution.demo")
    result = demo.main(list(args.demo_args))
    return int(result or 0)


def _budget(args: argparse.Namespace, out: IO[str]) -> int:
    return cli_billing.budget_command(args, out, _open_for_reading)


def _dashboard(args: argparse.Namespace, out: IO[str]) -> int:
    return cli_dashboard.dashboard_command(args, out, CLIError)


def _reconcile(args: argparse.Namespace, out: IO[str]) -> int:
    return cli_billing.reconcile_command(args, out, _open_store)


_COMMANDS = {"report": _report, "export": _export, "prune": _prune, "migrate": _migrate, "budget": _budget,
             "reconcile": _reconcile, "keys": cli_keys.keys_command, "dashboard": _dashboard,
             "fake-server": _fake_server, "demo": _demo}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 2 error, 130 interrupted)."""
    parser = _build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "demo":
        args.demo_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    secrets = _passwords(getattr(args, "db", None))
    for key in (
        environment.api_key(),
        environment.management_key(),
        environment.dashboard_token(),
        getattr(args, "token", None),
    ):
        if key:
            secrets.append(key)  # never echoed, whatever a message holds
    return _run(args, secrets)


def _passwords(location: str | None) -> list[str]:
    """Passwords in a DSN given on the command line: scrubbed from every message."""
    if not location:
        return []
    try:
        from psycopg.conninfo import conninfo_to_dict

        password = conninfo_to_dict(location).get("password")
    except Exception:
        return []
    return [str(password)] if password else []


def _run(args: argparse.Namespace, secrets: list[str]) -> int:
    try:
        return _COMMANDS[args.command](args, sys.stdout)
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as the Python docs recommend for pipes.
        _silence_stdout()
        return 1
    except (CLIError, UsageStoreError, UsageQueryError, ConfigurationError, APIError) as err:
        return _fail(str(err), secrets)
    except ModuleNotFoundError as err:
        return _fail(f"missing module {err.name!r}; install openrouter-attribution[all,testing]", secrets)
    except (OSError, sqlite3.Error) as err:
        return _fail(f"{type(err).__name__}: {err}", secrets)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # the CLI promises one line, never a traceback, unless debugging
        if os.environ.get(DEBUG_ENV):
            raise
        return _fail(f"unexpected {type(err).__name__}: {err} (set {DEBUG_ENV}=1 for a traceback)", secrets)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        return  # stdout is not a real file (tests capturing output): nothing will flush into a pipe


def _fail(message: str, secrets: Sequence[str] = ()) -> int:
    text = redact(message) if "://" not in message else " ".join(redact(word) for word in message.split(" "))
    for secret in secrets:
        text = text.replace(secret, "***")
    print(f"error: {' '.join(text.splitlines())}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
