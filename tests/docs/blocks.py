"""Find the Python code blocks of the documentation pages and the README, and the ones marked not to run.

A block is a fenced block opened at the start of a line with ```` ```python ````. A block that cannot
run offline is marked by an HTML comment on the line before its fence (blank lines between are
allowed), which the rendered page does not show and which says why::

    <!-- no-run: needs a PostgreSQL server -->
    ```python
    ledger = UsageLedger("postgresql://app:pw@db:5432/usage")
    ```

Other languages (``bash``, ``text``, ...) are never run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_OPEN = re.compile(r"^```\s*(?:python|py)\b")
_NESTED_OPEN = re.compile(r"^\s+```\s*(?:python|py)\b")
_CLOSE = re.compile(r"^```\s*$")
_NO_RUN = re.compile(r"^<!--\s*no-run:\s*(?P<reason>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One ```` ```python ```` block of a page."""

    page: Path
    line: int
    """Line number of the first line of code (1-based), for tracebacks."""
    source: str
    skip_reason: str | None
    """Why the block is not run (from its ``no-run`` marker), or ``None``: it runs."""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """Every page of the site, sorted, then the README (whose tour holds code blocks too)."""
    return [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]


def blocks(page: Path) -> list[Block]:
    """The page's Python blocks, in order.

    Raises:
        ValueError: a block is not closed, a ``no-run`` marker gives no reason or precedes no Python
            block, or a Python block is indented (inside a list or an admonition), where this reader
            would not see it and so would not run it.
    """
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    marker: tuple[int, str] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if match := _NO_RUN.match(line):
            if not match["reason"]:
                raise ValueError(f"{page}:{index + 1}: a no-run marker must say why the block cannot run")
            marker = (index + 1, match["reason"])
        elif _NESTED_OPEN.match(line):
            raise ValueError(f"{page}:{index + 1}: an indented Python block would not be run; put it at the margin")
        elif _OPEN.match(line):
            end = next((i for i in range(index + 1, len(lines)) if _CLOSE.match(lines[i])), None)
            if end is None:
                raise ValueError(f"{page}:{index + 1}: the code block is not closed")
            source = "\n".join(lines[index + 1 : end]) + "\n"
            found.append(Block(page, index + 2, source, marker[1] if marker else None))
            marker = None
            index = end
        elif line.startswith("```"):  # a block in another language: skip it whole
            end = next((i for i in range(index + 1, len(lines)) if _CLOSE.match(lines[i])), len(lines))
            if marker is not None:
                raise ValueError(f"{page}:{marker[0]}: a no-run marker must come right before a Python block")
            index = end
        elif line.strip() and marker is not None:
            raise ValueError(f"{page}:{marker[0]}: a no-run marker must come right before a Python block")
        index += 1
    if marker is not None:
        raise ValueError(f"{page}:{marker[0]}: a no-run marker must come right before a Python block")
    return found
