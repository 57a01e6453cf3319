"""`openrouter-attribution dashboard`: the checks made before it serves anything (no socket opened)."""

from __future__ import annotations

import pytest

from openrouter_attribution import cli
from openrouter_attribution.cli_dashboard import is_loopback
from openrouter_attribution.environment import DASHBOARD_TOKEN_ENV

LOOPBACK = [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
            ("0.0.0.0", False), ("::", False), ("192.168.1.4", False), ("example.org", False)]  # fmt: skip


@pytest.mark.parametrize(("host", "loopback"), LOOPBACK)
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_a_public_host_needs_a_token(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv(DASHBOARD_TOKEN_ENV, raising=False)
    code = cli.main(["dashboard", "--db", str(tmp_path / "usage.db"), "--host", "0.0.0.0"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("error: --host 0.0.0.0 serves every user's usage")
    assert DASHBOARD_TOKEN_ENV in err


def test_a_missing_ledger_is_one_line_and_the_token_is_never_echoed(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv(DASHBOARD_TOKEN_ENV, "s3cret-token")
    code = cli.main(["dashboard", "--db", str(tmp_path / "missing.db"), "--host", "0.0.0.0"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "no ledger" in err
    assert "s3cret-token" not in out + err
