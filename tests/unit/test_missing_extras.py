"""Without an optional extra, the import that needs it fails with a message naming the extra to install.

Each case runs in a fresh interpreter where the extra's packages cannot be imported (see
tests/blocked_imports.py), so nothing is uninstalled.
"""

from __future__ import annotations

import pytest

from tests.blocked_imports import run_without


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("openrouter_attribution.langchain", {"langchain_core", "langchain"}, "openrouter-attribution[langchain]"),
        ("openrouter_attribution.llama_index", {"llama_index"}, "openrouter-attribution[llama-index]"),
    ],
)
def test_adapter_without_its_extra_names_the_extra(module, blocked, extra):
    result = run_without(
        blocked,
        f"""
        try:
            import {module}
        except ImportError as err:
            print(type(err).__name__, isinstance(err, ImportError), err.name)
            print(err)
        else:
            print("imported")
    """,
    )
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["ModuleNotFoundError", "True"], result.stdout + result.stderr
    assert f'pip install "{extra}"' in lines[1]


def test_the_core_imports_without_any_framework():
    result = run_without(
        {"langchain_core", "langchain", "llama_index", "openrouter"},
        """
        import openrouter_attribution
        from openrouter_attribution import UserIdPolicy, user_context
        print("ok", UserIdPolicy().apply("app_1"))
    """,
    )
    assert result.stdout.strip() == "ok app_1", result.stderr


def test_fake_server_refuses_to_start_without_the_sdk_schema():
    result = run_without(
        {"openrouter"},
        """
        import openrouter_attribution.testing as testing   # importable: the pytest plugin loads it
        from openrouter_attribution.testing.validation import validate_chat_request
        for attempt in (lambda: testing.FakeOpenRouter(),
                        lambda: validate_chat_request({"messages": [{"role": "user", "content": "hi"}]})):
            try:
                attempt()
            except ModuleNotFoundError as err:
                print("refused", err.name, "|", err)
            else:
                print("started without the schema")
    """,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout + result.stderr
    for line in lines:
        assert line.startswith("refused openrouter |"), line
        assert 'pip install "openrouter-attribution[testing]"' in line


def test_fake_server_command_without_the_sdk_is_one_line_and_exit_2():
    result = run_without(
        {"openrouter"},
        """
        import sys
        from openrouter_attribution.cli import main
        sys.exit(main(["fake-server"]))
    """,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert "openrouter-attribution[" in line
