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


def test_the_request_log_is_detached_when_the_server_stops(monkeypatch, capsys):
    import logging
    import threading

    import openrouter_attribution.testing as testing

    class StubServer:
        base_url, api_key = "http://127.0.0.1:1/api/v1", "sk-stub"

        def __init__(self, **kwargs):
            logging.getLogger("openrouter_attribution.testing").info("GET /api/v1/models ... status=200")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    def interrupt(self, timeout=None):
        raise KeyboardInterrupt

    server_log = logging.getLogger("openrouter_attribution.testing")
    before = (list(server_log.handlers), server_log.level, server_log.propagate)
    monkeypatch.setattr(testing, "FakeOpenRouter", StubServer)
    monkeypatch.setattr(threading.Event, "wait", interrupt)
    assert main(["fake-server"]) == 0
    assert "GET /api/v1/models ... status=200" in capsys.readouterr().err
    assert (list(server_log.handlers), server_log.level, server_log.propagate) == before
