"""A PostgreSQL ledger that cannot be reached is said once, when the ledger is created; calls go on."""

from __future__ import annotations

import warnings

import pytest

from openrouter_attribution import UsageLedger, UsageRecord, UsageStoreWarning


@pytest.fixture
def postgres(backend):
    if backend.server is None:
        pytest.skip("only a PostgreSQL ledger connects to a server (an SQLite one opens a file at once)")
    return backend


def test_a_reachable_server_gives_no_warning(postgres):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UsageStoreWarning)
        ledger = UsageLedger(postgres.location, spool=postgres.tmp_path / "spool")
    with ledger:
        ledger.record(UsageRecord(user="app_1"))
    assert postgres.record_ids()  # committed


def test_a_wrong_password_warns_once_without_it_and_calls_go_on(postgres, caplog):
    location = postgres.location.replace(postgres.server.password, "wrong-s3cret-pw")
    with pytest.warns(UsageStoreWarning) as warned:
        ledger = UsageLedger(location, spool=postgres.tmp_path / "spool", retry_interval=60)
    with ledger:
        for _ in range(3):
            ledger.record(UsageRecord(user="app_1"))  # never raises
    assert len(warned) == 1
    message = str(warned[0].message)
    assert message.startswith("cannot connect to the ledger postgresql://")
    assert ":***@" in message
    assert "wrong-s3cret-pw" not in message + caplog.text
    assert warned[0].filename == __file__
    assert ledger.spooled == 3
    with UsageLedger(postgres.location, spool=postgres.tmp_path / "spool"):  # the right password: nothing lost
        pass
    assert len(postgres.record_ids()) == 3
