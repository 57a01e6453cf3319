"""The demo runs on its own local server unless --live is asked for, whatever the environment holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from openrouter_attribution.testing import FakeOpenRouter


def _demo(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openrouter_attribution.cli", "demo", "--ledger", str(tmp_path / "demo.db"), *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **env},
    )  # fmt: skip


def test_an_api_key_in_the_environment_does_not_make_the_demo_live(tmp_path):
    # Stands in for OpenRouter: were the demo to use the environment's key and base URL, its requests would
    # arrive here. Proxies point at a closed port, so a request to any other host would fail the run.
    with FakeOpenRouter(api_key="sk-or-v1-in-the-shell") as openrouter:
        demo = _demo(tmp_path, OPENROUTER_API_KEY="sk-or-v1-in-the-shell", OPENROUTER_BASE_URL=openrouter.base_url,
                     HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
                     NO_PROXY="127.0.0.1")  # fmt: skip
        assert openrouter.requests == []
    assert demo.returncode == 0, demo.stderr
    first = demo.stdout.splitlines()[0]
    assert "local OpenRouter-compatible server at http://127.0.0.1:" in first
    assert "nothing is spent" in first
    assert demo.stdout.count("user=app_alice") == demo.stdout.count("user=app_bob") == 3
    assert "  acme: 6 requests" in demo.stdout
    assert "  globex: 3 requests" in demo.stdout
    assert "dashboard --db" in demo.stdout


def test_live_says_it_spends_and_uses_the_key(tmp_path):
    with FakeOpenRouter(api_key="sk-or-v1-live") as openrouter:
        demo = _demo(tmp_path, "--live", OPENROUTER_API_KEY="sk-or-v1-live", OPENROUTER_BASE_URL=openrouter.base_url)
        sent, base_url = openrouter.chat_requests, openrouter.base_url
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.splitlines()[0].startswith(f"--live: calling OpenRouter at {base_url}")
    assert "spends credits" in demo.stdout.splitlines()[0]
    assert len(sent) == 9
    assert {request.headers["authorization"] for request in sent} == {"Bearer sk-or-v1-live"}
    assert "sk-or-v1-live" not in demo.stdout + demo.stderr


def test_live_without_a_key_stops_before_anything_is_sent(tmp_path):
    demo = _demo(tmp_path, "--live")
    assert demo.returncode == 2
    assert demo.stderr == "error: --live needs OPENROUTER_API_KEY (an OpenRouter API key) in the environment\n"


def test_costs_are_printed_the_same_way_per_request_and_in_totals(tmp_path):
    demo = _demo(tmp_path)
    assert demo.returncode == 0, demo.stderr
    lines = [line for line in demo.stdout.splitlines() if " cost=" in line or ", cost " in line]
    costs = [line.rsplit("cost", 1)[1].strip(" =") for line in lines]
    assert len(costs) == 14  # 9 requests, 3 users' totals, 2 tenants' totals
    for cost in costs:
        assert cost.startswith("$0."), cost
        assert len(cost.split(".")[1]) == 8, cost
        assert "e-" not in cost
