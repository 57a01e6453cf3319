"""Every Python block of the documentation site and the README runs, offline, against the local server.

Each page's blocks run in order in one module namespace (a later block uses what an earlier one
defined), in a temporary working folder, with the environment a deployment would have, pointed at the
local server: ``OPENROUTER_API_KEY`` and ``OPENROUTER_BASE_URL``, and ``OPENROUTER_USER_HASH_KEY`` for
the examples that pseudonymise ids. A block may use top-level ``await`` (it runs in an event loop of its
own). A block that defines ``test_*`` functions has them called, as pytest would, with the fixtures they
name (``fake_openrouter``, ``tmp_path``). A block marked ``<!-- no-run: reason -->`` is compiled but not
run (see :mod:`tests.docs.blocks`). A warning fails the block that raised it: an example must not make an
unattributed call, nor warn at all
(only the third-party deprecation notices the whole suite ignores are let through).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.docs.blocks import ROOT, Block, blocks, pages

PAGES = [page for page in pages() if blocks(page)]
HASH_KEY = "docs-example-hash-key-0123456789"

# Third-party noise the suite ignores too (pyproject.toml): llama-index workflows enumerate agent members
# with inspect.getmembers, touching pydantic's deprecated attributes on every agent built.
# On Python 3.12+ llama-index's own asyncio_run (token counting in a query engine) asks asyncio for
# the current event loop outside one, which asyncio deprecates.
THIRD_PARTY_NOISE = [
    "The `__fields(_set)?__` attribute is deprecated",
    "Accessing the 'model_(computed_)?fields' attribute on the instance",
    "There is no current event loop",
]

# Blocks that cannot run offline are the exception; a page that needs many of them needs a better example.
MAX_SKIPPED = 6


def _compile(block: Block) -> types.CodeType:
    tree = ast.parse(block.source, filename=block.where)
    ast.increment_lineno(tree, block.line - 1)  # tracebacks point at the line of the page
    return compile(
        tree, str(block.page.relative_to(ROOT)), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )


@pytest.fixture
def page_module(request: pytest.FixtureRequest) -> Iterator[types.ModuleType]:
    """A fresh module for one page's blocks (a real module: dataclasses, pickle and LangChain's tool
    decorator look their definitions up in ``sys.modules``); closed and forgotten afterwards."""
    page: Path = request.node.callspec.params["page"]
    module = types.ModuleType("docs_" + page.stem.replace("-", "_").lower())
    module.__file__ = str(page)  # where a framework that locates its app by module (Flask) looks
    sys.modules[module.__name__] = module
    handlers = _llama_index_handlers()
    saved = list(handlers) if handlers is not None else None
    try:
        yield module
    finally:
        from openrouter_attribution import UsageLedger

        for value in list(vars(module).values()):
            if isinstance(value, UsageLedger):
                value.close()
        if handlers is not None and saved is not None:
            handlers[:] = saved  # handlers a page attached to LlamaIndex's root dispatcher
        sys.modules.pop(module.__name__, None)


def _llama_index_handlers() -> list[Any] | None:
    if "llama_index.core" not in sys.modules:
        import llama_index.core  # noqa: F401 - the handlers list exists once it is imported
    from llama_index.core.instrumentation import get_dispatcher

    return get_dispatcher().event_handlers


def _run_tests(module: types.ModuleType, names: set[str], fixtures: dict[str, Any]) -> None:
    for name in sorted(names):
        function = vars(module)[name]
        if name.startswith("test_") and inspect.isfunction(function):
            wanted = inspect.signature(function).parameters
            function(**{param: fixtures[param] for param in wanted})


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_page_blocks_run(
    page: Path, page_module: types.ModuleType, fake_openrouter: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_openrouter.api_key)
    monkeypatch.setenv("OPENROUTER_BASE_URL", fake_openrouter.base_url)
    monkeypatch.setenv("OPENROUTER_USER_HASH_KEY", HASH_KEY)
    monkeypatch.setenv("OPENROUTER_MANAGEMENT_KEY", fake_openrouter.management_key)
    monkeypatch.setenv("OPENROUTER_USER_KEY_SECRET", "a-deployment-secret-of-at-least-32-characters")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    fixtures = {"fake_openrouter": fake_openrouter, "tmp_path": tmp_path}
    namespace = vars(page_module)
    for block in blocks(page):
        code = _compile(block)  # a skipped block still has to be valid Python
        if block.skip_reason is not None:
            continue
        before = set(namespace)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for message in THIRD_PARTY_NOISE:
                warnings.filterwarnings("ignore", message=message)
            result = eval(code, namespace)  # the documentation's own examples
            if inspect.iscoroutine(result):
                asyncio.run(result)
        _run_tests(page_module, set(namespace) - before, fixtures)


def test_blocks_are_found_and_few_are_skipped() -> None:
    found = [block for page in pages() for block in blocks(page)]
    skipped = [block for block in found if block.skip_reason is not None]
    assert len(found) >= 30, "the reader of docs/*.md found fewer blocks than the pages hold"
    assert len(skipped) <= MAX_SKIPPED, "\n".join(f"{b.where}: {b.skip_reason}" for b in skipped)


def test_a_marker_says_why_and_sits_before_a_python_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- no-run: needs a PostgreSQL server -->\n\n```python\nx = 1\n```\n```bash\nls\n```\n")
    [block] = blocks(page)
    assert (block.line, block.source, block.skip_reason) == (4, "x = 1\n", "needs a PostgreSQL server")
    wrong = [
        "<!-- no-run: -->\n```python\nx\n```\n",  # no reason
        "<!-- no-run: why -->\ntext\n```python\nx\n```\n",  # not right before the block
        "<!-- no-run: why -->\n```bash\nls\n```\n",  # before a block that never runs
        "- item\n\n    ```python\n    x\n    ```\n",  # indented: would be missed
    ]
    for text in wrong:
        page.write_text(text)
        with pytest.raises(ValueError, match="no-run|indented"):
            blocks(page)
