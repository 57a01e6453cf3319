"""`openrouter-attribution keys`: the users' own keys through the management API, the key never printed."""

from __future__ import annotations

import json

import pytest

from openrouter_attribution import OpenRouterUserKeys, cli
from openrouter_attribution.langchain import ChatOpenRouter

SECRET = "a-test-secret-of-at-least-32-characters!"


@pytest.fixture
def two_users(fake_openrouter, monkeypatch):
    monkeypatch.setenv("OPENROUTER_MANAGEMENT_KEY", fake_openrouter.management_key)
    keys = OpenRouterUserKeys(secret=SECRET, base_url=fake_openrouter.base_url, limit=5, limit_reset="monthly")
    llm = ChatOpenRouter(
        model="openai/gpt-4o-mini", base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key, user_keys=keys
    )
    for user in ("app_1", "app_2", "app_2"):
        llm.invoke("hi", user=user)
    return fake_openrouter


def run(capsys, server, *argv):
    code = cli.main(["keys", *argv, "--base-url", server.base_url])
    out, err = capsys.readouterr()
    assert server.management_key not in out + err
    return code, out, err


def test_list_and_show(two_users, capsys):
    code, out, err = run(capsys, two_users, "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["user", "usage", "today", "limit", "remaining", "reset", "disabled"]
    assert [line.split()[0] for line in lines[1:]] == ["app_1", "app_2"]
    code, out, _ = run(capsys, two_users, "show", "app_2", "--format", "json")
    (row,) = json.loads(out)
    assert (row["user"], row["limit"], row["limit_reset"], row["disabled"]) == ("app_2", "5.0", "monthly", False)
    assert float(row["usage"]) > 0


def test_set_limit_and_disable(two_users, capsys):
    code, out, _ = run(capsys, two_users, "set-limit", "app_1", "0.25", "--reset", "daily", "--format", "json")
    assert code == 0
    assert json.loads(out)[0]["limit"] == "0.25"
    assert json.loads(out)[0]["limit_reset"] == "daily"
    code, out, _ = run(capsys, two_users, "set-limit", "app_1", "none", "--format", "json")
    assert json.loads(out)[0]["limit"] is None
    code, out, _ = run(capsys, two_users, "disable", "app_1", "--format", "json")
    assert json.loads(out)[0]["disabled"] is True


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [(["show"], "needs USER"), (["set-limit", "app_1"], "needs AMOUNT"), (["show", "app_9"], "no OpenRouter key")],
)
def test_mistakes_are_one_line(two_users, capsys, argv, fragment):
    code, out, err = run(capsys, two_users, *argv)
    assert code == 2
    assert out == ""
    assert fragment in err
    assert err.count("\n") == 1


def test_a_wrong_management_key_is_named_not_shown(fake_openrouter, capsys, monkeypatch):
    monkeypatch.setenv("OPENROUTER_MANAGEMENT_KEY", "sk-or-wrong-management-value")
    code, out, err = run(capsys, fake_openrouter, "list")
    assert code == 2
    assert "management key" in err
    assert "sk-or-wrong-management-value" not in err


def test_no_management_key(fake_openrouter, capsys, monkeypatch):
    monkeypatch.delenv("OPENROUTER_MANAGEMENT_KEY", raising=False)
    code, _, err = run(capsys, fake_openrouter, "list")
    assert code == 2
    assert "OPENROUTER_MANAGEMENT_KEY" in err
