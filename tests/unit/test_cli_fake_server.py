"""`openrouter-attribution fake-server` argument errors: one line on stderr, exit status 2."""

from __future__ import annotations

import pytest

from openrouter_attribution.cli import main


@pytest.mark.parametrize(("port", "reason"), [("99999", "must be from 0 to 65535"), ("-1", "must be from 0 to 65535"),
                                              ("http", "expected a port number")])  # fmt: skip
def test_bad_port_is_one_line_and_exit_2(capsys, port, reason):
    with pytest.raises(SystemExit) as info:
        main(["fake-server", "--port", port])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: argument --port: ")
    assert reason in err
