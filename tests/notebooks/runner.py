"""Execute the notebooks of ``notebooks/`` offline and compare or save their outputs.

Shared by the tests (``tests/notebooks/test_notebooks.py``: a committed notebook whose outputs are
not what it produces now fails) and ``make notebooks`` (``python -m tests.notebooks.refresh``:
re-executes and saves them). Notebooks run top to bottom in a fresh ``python3`` kernel of this
interpreter, with the variables that would switch them to the real OpenRouter removed, so they
always take their ``FakeOpenRouter`` branch.

Outputs must be deterministic: no timestamps, generated ids, ports or paths (see
:data:`VOLATILE`). Images are compared by type only (the pixels depend on the fonts installed).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbclient
import nbformat
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
KERNEL = "python3"
LIVE_ENV = ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "OPENROUTER_USER_HASH_KEY")
"""Variables that would switch a notebook to the real OpenRouter or change its ids."""
TIMEOUT_S = 180

VOLATILE = {
    "a local port": re.compile(r"(127\.0\.0\.1|localhost):\d{2,5}"),
    "a temporary path": re.compile(r"/tmp/|/var/folders/|\\Temp\\"),
    "a generation id": re.compile(r"gen-\d{6,}-[A-Za-z0-9]+"),
    "a timestamp": re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"),
    "a date": re.compile(r"\b20\d{2}-[01]\d-[0-3]\d\b"),
    "a memory address": re.compile(r"0x[0-9a-f]{6,}"),
}
"""What must never appear in a saved output: it would change from one run (or day) to the next."""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def notebooks() -> list[Path]:
    """Every notebook of ``notebooks/``, sorted."""
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _runs_this_python(argv0: str) -> bool:
    """Whether a kernelspec's ``argv[0]`` launches the running interpreter."""
    # jupyter_client replaces these bare names with sys.executable when it starts the kernel.
    if argv0 in {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}:
        return True
    found = shutil.which(argv0)
    # No realpath: a venv's python is a symlink to the base interpreter, which lacks the venv's packages.
    return found is not None and os.path.abspath(found) == os.path.abspath(sys.executable)


def _kernel_argv0() -> str | None:
    try:
        return KernelSpecManager().get_kernel_spec(KERNEL).argv[0]
    except NoSuchKernel:
        return None


@contextlib.contextmanager
def offline_kernel_env() -> Iterator[str]:
    """The kernel name to use, in an environment without the live variables.

    Installs a temporary ``python3`` kernelspec for this interpreter (through ``JUPYTER_PATH``)
    when the default one starts another Python.
    """
    saved = {name: os.environ.get(name) for name in (*LIVE_ENV, "JUPYTER_PATH")}
    for name in LIVE_ENV:
        os.environ.pop(name, None)
    spec_root = None
    try:
        argv0 = _kernel_argv0()
        if argv0 is None or not _runs_this_python(argv0):
            spec_root = Path(tempfile.mkdtemp(prefix="jupyter-"))
            spec_dir = spec_root / "kernels" / KERNEL
            spec_dir.mkdir(parents=True)
            spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": f"Python {sys.version_info[0]} (this venv)", "language": "python"}  # fmt: skip
            (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
            # Directories in JUPYTER_PATH are searched before the user's and the system's.
            os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(spec_root), saved["JUPYTER_PATH"]]))
            argv0 = _kernel_argv0()
            if argv0 is None or not _runs_this_python(argv0):
                raise RuntimeError(f"kernel {KERNEL!r} starts {argv0}, not {sys.executable}")
        yield KERNEL
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if spec_root is not None:
            shutil.rmtree(spec_root, ignore_errors=True)


class NotebookFailed(Exception):
    """A cell raised; the message holds its number, its source and the traceback."""


def execute(path: Path, workdir: Path, kernel_name: str) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` in ``workdir``; returns it with its new outputs (the file is untouched).

    Raises:
        NotebookFailed: a cell raised, or the kernel was not this interpreter.
    """
    nb = nbformat.read(path, as_version=4)
    # An extra last cell (in memory only) reports which Python environment the kernel ran in.
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.prefix, end='')"))
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT_S, kernel_name=kernel_name, record_timing=False,
                                     resources={"metadata": {"path": str(workdir)}})  # fmt: skip
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        raise NotebookFailed(_failure_report(nb, path.name, err)) from err
    probe = nb.cells.pop()
    kernel_prefix = "".join(out.get("text", "") for out in probe.outputs)
    if kernel_prefix != sys.prefix:
        raise NotebookFailed(f"the kernel ran in {kernel_prefix!r}, not in this environment {sys.prefix!r}")
    return nb


def _failure_report(nb: nbformat.NotebookNode, name: str, err: Exception) -> str:
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", ()):
            if output.get("output_type") == "error":
                traceback = _ANSI.sub("", "\n".join(output.get("traceback", ())))
                return (f"{name}: cell {index} raised {output.get('ename')}: {output.get('evalue')}\n"
                        f"--- cell source ---\n{cell.source}\n--- traceback ---\n{traceback}")  # fmt: skip
    return f"{name}: {err}"


def normalised_outputs(nb: nbformat.NotebookNode) -> list[list[dict[str, Any]]]:
    """Per code cell, its outputs reduced to what must stay the same: text exactly, images by type."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.get("outputs", ()):
            kind = output["output_type"]
            if kind == "stream":
                entry = {"stream": output["name"], "text": output["text"]}
                if outputs and outputs[-1].get("stream") == output["name"]:  # how writes split is not content
                    outputs[-1]["text"] += output["text"]
                    continue
            elif kind == "error":
                entry = {"error": output["ename"], "value": output["evalue"]}
            else:
                data = output.get("data", {})
                entry = {kind: {mime: ("<image>" if mime.startswith("image/") else value)
                                for mime, value in sorted(data.items())}}  # fmt: skip
            outputs.append(entry)
        cells.append(outputs)
    return cells


def volatile_findings(nb: nbformat.NotebookNode) -> list[str]:
    """``"cell N: <what>"`` for every output text that would change between runs."""
    found = []
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    for number, outputs in enumerate(normalised_outputs(nb)):
        text = json.dumps(outputs, ensure_ascii=False)
        for what, pattern in VOLATILE.items():
            match = pattern.search(text)
            if match:
                source = code_cells[number].source.splitlines()[0][:60] if code_cells[number].source else ""
                found.append(f"code cell {number} ({source!r}): {what}, {match.group()!r}")
    return found


def save(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write an executed notebook with its outputs and only stable metadata."""
    nb.metadata = {key: nb.metadata[key] for key in ("kernelspec",) if key in nb.metadata}
    nb.metadata["language_info"] = {"name": "python"}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.validate(nb)
    nbformat.write(nb, path)
