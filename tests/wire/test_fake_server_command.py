"""`openrouter-attribution fake-server` serves until interrupted and logs one line per request."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request


def test_serves_and_logs_one_line_per_request():
    process = subprocess.Popen(
        [sys.executable, "-m", "openrouter_attribution.cli", "fake-server", "--api-key", "sk-or-cli-test"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        base_url = process.stdout.readline().split(": ", 1)[1].strip()
        assert process.stdout.readline().strip() == "api_key: sk-or-cli-test"
        assert process.stderr.readline().strip() == "serving; press Ctrl-C to stop"
        body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                "user": "app_cli", "session_id": "chat-9"}  # fmt: skip
        request = urllib.request.Request(base_url + "/chat/completions", data=json.dumps(body).encode(),
                                         headers={"Authorization": "Bearer sk-or-cli-test"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["choices"][0]["message"]["content"]
        line = process.stderr.readline().strip()
        _time, rest = line.split(" ", 1)
        assert rest == "POST /api/v1/chat/completions model=openai/gpt-4o-mini user=app_cli session=chat-9 status=200"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0
