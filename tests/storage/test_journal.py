"""Durable mode's journal, on every backend: written before record() returns, committed in the background,
replayed after a killed process, never replayed while its process lives."""

from __future__ import annotations

import asyncio
import glob
import multiprocessing
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from openrouter_attribution.errors import ConfigurationError
from openrouter_attribution.usage import UsageLedger, UsageRecord, open_store
from openrouter_attribution.usage.commit.journal import Journal, decode_entries, encode_entries, encode_entry

ROOT = Path(__file__).resolve().parents[2]
NEVER = 3600.0  # a commit_interval no test waits for: only flushes, reads and close commit


@pytest.fixture(autouse=True)
def schema(backend):
    store = open_store(backend.location)
    assert store.schema_version > 0  # type: ignore[attr-defined]  # the tables exist before a test looks
    store.close()


def journals(folder: Path) -> list[str]:
    return sorted(glob.glob(str(folder / "journal-*.rows")))


def rec(i: int, **fields) -> UsageRecord:
    return UsageRecord(user=f"app_{i % 3}", cost=Decimal("0.0000054"), prompt_tokens=i, latency_s=0.5,
                       model_used="openai/gpt-4o-mini", record_id=f"gen-{i:03d}", **fields)  # fmt: skip


def test_a_returned_record_is_in_the_journal_and_the_store_has_it_after_a_flush(backend, tmp_path):
    spool = tmp_path / "spool"
    with UsageLedger(backend.location, spool=spool, commit_interval=NEVER) as ledger:
        assert ledger.durability == "durable"
        written = rec(1, session_id="s-1")
        ledger.record(written)
        assert backend.record_ids() == []  # not in the store yet ...
        with open(ledger.journal_path, "rb") as fh:  # type: ignore[arg-type]
            assert list(decode_entries(fh.read())) == [written]  # ... but on disk, exactly
        ledger.flush()
        assert backend.record_ids() == ["gen-001"]
        with open(ledger.journal_path, "rb") as fh:  # type: ignore[arg-type]
            assert list(decode_entries(fh.read())) == []  # emptied once committed
    assert journals(spool) == []  # an empty journal is removed at close


def test_other_processes_see_a_record_within_the_commit_interval(backend, tmp_path):
    with UsageLedger(backend.location, spool=tmp_path / "spool", commit_interval=0.05) as ledger:
        ledger.record(rec(2))
        deadline = time.monotonic() + 10  # a bound for a loaded machine, not a timing assertion
        while backend.record_ids() != ["gen-002"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert backend.record_ids() == ["gen-002"]
        assert ledger.pending == 0


def test_reads_of_the_same_ledger_see_what_the_journal_holds(backend, tmp_path):
    with UsageLedger(backend.location, spool=tmp_path / "spool", commit_interval=NEVER) as ledger:
        ledger.record_many([rec(i) for i in range(3)])
        assert ledger.totals(None)[0].requests == 3
        assert [r.record_id for r in ledger.records()] == ["gen-000", "gen-001", "gen-002"]


def record_then_sigkill(location: str, spool: Path, steps: str) -> None:
    """Run ``steps`` in another process with a durable ``ledger`` (its writer thread never commits by
    itself), then SIGKILL that process."""
    script = (
        "import os, sys\n"
        "from decimal import Decimal\n"
        "from openrouter_attribution.usage import UsageLedger, UsageRecord\n"
        "ledger = UsageLedger(sys.argv[1], spool=sys.argv[2], commit_interval=3600)\n"
        f"{steps}"
        "os.kill(os.getpid(), 9)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, location, str(spool)], cwd=ROOT, capture_output=True, timeout=120
    )
    assert done.returncode == -9, done.stderr.decode()[-2000:]


def test_a_killed_process_journal_is_committed_by_the_next_ledger_once(backend, tmp_path):
    spool = tmp_path / "spool"
    record_then_sigkill(backend.location, spool, (
        "for i in range(50):\n"
        "    ledger.record(UsageRecord(user='app_1', cost=Decimal('0.001'), record_id=f'gen-{i}'))\n"
        "ledger.flush()\n"  # the first 50 are committed, their journal emptied
        "for i in range(50, 120):\n"
        "    ledger.record(UsageRecord(user='app_1', cost=Decimal('0.001'), record_id=f'gen-{i}'))\n"
    ))  # fmt: skip
    assert len(backend.record_ids()) == 50  # the last 70 were only in the journal ...
    assert len(journals(spool)) == 1
    with UsageLedger(backend.location, spool=spool) as ledger:  # ... which the next ledger commits
        ledger.flush()
        assert ledger.totals(None)[0].cost == Decimal("0.120")
    ids = backend.record_ids()
    assert len(ids) == len(set(ids)) == 120
    assert journals(spool) == []


def test_a_live_process_journal_is_left_alone(backend, tmp_path):
    spool = tmp_path / "spool"
    first = UsageLedger(backend.location, spool=spool, commit_interval=NEVER)
    try:
        first.record(rec(7))
        with UsageLedger(backend.location, spool=spool) as second:  # opens, looks for journals of dead processes
            second.flush()
            assert backend.record_ids() == []  # first's journal is locked: its process lives
            assert len(journals(spool)) == 1
    finally:
        first.close()
    assert backend.record_ids() == ["gen-007"]


def test_a_live_ledger_commits_a_dead_process_journal_within_its_scan(backend, tmp_path):
    spool = tmp_path / "spool"
    with UsageLedger(backend.location, spool=spool) as ledger:
        record_then_sigkill(
            backend.location, spool, "ledger.record(UsageRecord(user='app_1', record_id='gen-orphan'))\n"
        )
        deadline = time.monotonic() + 30  # the scan runs every 5 s; a bound for a loaded machine
        while backend.record_ids() != ["gen-orphan"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert backend.record_ids() == ["gen-orphan"]
        assert ledger.errors == 0


def test_arecord_writes_the_journal_without_waiting_for_the_store(backend, tmp_path):
    async def main(ledger: UsageLedger) -> None:
        await ledger.arecord(rec(4))
        assert backend.record_ids() == []

    with UsageLedger(backend.location, spool=tmp_path / "spool", commit_interval=NEVER) as ledger:
        asyncio.run(main(ledger))
        with open(ledger.journal_path, "rb") as fh:  # type: ignore[arg-type]
            assert [r.record_id for r in decode_entries(fh.read())] == ["gen-004"]
    assert backend.record_ids() == ["gen-004"]  # committed at close


_PARENT: list[UsageLedger | None] = [None]


def _record_in_forked_child() -> None:
    ledger = _PARENT[0]
    assert ledger is not None
    ledger.record(UsageRecord(record_id="from-child"))
    if ledger.spooled != 1:
        raise SystemExit(f"the child did not journal its record: spooled={ledger.spooled}")


def test_a_forked_child_journals_to_its_own_file_replayed_once_it_has_exited(backend, tmp_path):
    spool = tmp_path / "spool"
    ledger = UsageLedger(backend.location, spool=spool, commit_interval=NEVER)
    _PARENT[0] = ledger
    try:
        ledger.record(UsageRecord(record_id="parent"))
        child = multiprocessing.get_context("fork").Process(target=_record_in_forked_child)
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert len(journals(spool)) == 2  # the parent's and the child's own
        ledger.flush()
        assert backend.record_ids() == ["parent"]
    finally:
        _PARENT[0] = None
        ledger.close()
    with UsageLedger(backend.location, spool=spool) as reopened:
        reopened.flush()
    assert sorted(backend.record_ids()) == ["from-child", "parent"]


def test_without_a_spool_folder_durable_commits_instead(tmp_path):
    with UsageLedger(":memory:") as ledger:
        assert (ledger.durability, ledger.journal_path) == ("committed", None)
    with UsageLedger(tmp_path / "usage.db", spool=False) as ledger:
        ledger.record(rec(1))
        assert ledger.durability == "committed"
        assert [r.record_id for r in ledger.store.iter_records()] == ["gen-001"]  # committed on return


@pytest.mark.parametrize("value", [0, -1, float("nan"), "fast"])
def test_a_bad_commit_interval_is_refused(tmp_path, value):
    with pytest.raises(ConfigurationError, match="commit_interval must be > 0 seconds"):
        UsageLedger(tmp_path / "usage.db", commit_interval=value)


def test_a_full_journal_file_moves_on_and_is_removed_once_committed(tmp_path):
    journal = Journal(tmp_path, segment=1000)
    try:
        entry = encode_entry(rec(0))
        per_file = 1000 // len(entry)
        for i in range(1, per_file + 2):
            journal.write(entry, i)
        files = sorted(glob.glob(str(tmp_path / "journal-*.rows")))
        assert len(files) == 2  # the first is full; the last entry started a new file
        journal.release(per_file - 1)
        assert len(sorted(glob.glob(str(tmp_path / "journal-*.rows")))) == 2  # not all of the first is in
        journal.release(per_file)
        assert sorted(glob.glob(str(tmp_path / "journal-*.rows"))) == [journal.path]
        with open(journal.path, "rb") as fh:  # type: ignore[arg-type]
            assert [r.record_id for r in decode_entries(fh.read())] == ["gen-000"]
        journal.release(per_file + 1)
        with open(journal.path, "rb") as fh:  # type: ignore[arg-type]
            assert list(decode_entries(fh.read())) == []  # emptied: reads as no entries at all
    finally:
        journal.close()
    assert glob.glob(str(tmp_path / "journal-*")) == []


def test_a_journal_that_cannot_allocate_its_file_makes_calls_commit(tmp_path):
    with UsageLedger(tmp_path / "usage.db", spool=tmp_path / "spool", commit_interval=NEVER) as ledger:
        ledger._journal._segment = 1 << 62  # type: ignore[union-attr]  # no file system allocates this much
        ledger.record(rec(5))
        assert [r.record_id for r in ledger.store.iter_records()] == ["gen-005"]  # committed on return
        assert ledger.errors == 1
        assert glob.glob(str(tmp_path / "spool" / "journal-*")) == []


def test_an_entry_cut_short_ends_the_replay_and_a_garbled_one_is_skipped(caplog, backend):
    good = [rec(1), rec(2, generation_id="gen-x", ttft_s=0.1, streamed=True, outcome="RateLimitError",
                        kind="embeddings")]  # fmt: skip
    data = encode_entries(good)
    garbled = b"\x05\x00\x00\x00" + b"\xff" * 5
    assert list(decode_entries(data)) == good
    assert list(decode_entries(encode_entries(good[:1]) + garbled + encode_entries(good[1:]))) == good
    assert list(decode_entries(data + data[:7])) == good  # a power loss mid-append: the tail is dropped
    assert "cut short" in caplog.text
    assert "unreadable entry" in caplog.text
