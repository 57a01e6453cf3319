"""Execute every notebook in ``notebooks/`` top to bottom, offline, against the local server.

Each notebook runs in a fresh ``python3`` kernel that must be this interpreter (the
project's venv). ``OPENROUTER_API_KEY`` is removed from the kernel's environment, so
the notebooks always take their ``FakeOpenRouter`` branch and never spend credits.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel  # noqa: E402 - after the skips
from nbclient.exceptions import CellExecutionError  # noqa: E402

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "python3"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Variables that would switch a notebook to the real OpenRouter or change its ids.
_LIVE_ENV = ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "OPENROUTER_USER_HASH_KEY")

# Notebooks committed with their outputs, so they read as documentation where notebooks are rendered.
# Saved top to bottom in one run, and a fresh run must reproduce every output exactly.
SAVED_WITH_OUTPUTS = {"rag_attribution.ipynb"}


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


@pytest.fixture
def venv_kernel(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """The kernel name to use; installs a temporary ``python3`` kernelspec for this interpreter if needed."""
    argv0 = _kernel_argv0()
    if argv0 is not None and _runs_this_python(argv0):
        return KERNEL
    spec_root = tmp_path_factory.mktemp("jupyter")
    spec_dir = spec_root / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python {sys.version_info[0]} (test venv)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    # Directories in JUPYTER_PATH are searched before the user's and the system's.
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(spec_root), os.environ.get("JUPYTER_PATH")])))
    argv0 = _kernel_argv0()
    assert argv0 is not None, "the temporary kernelspec was not found"
    assert _runs_this_python(argv0), f"kernel {KERNEL!r} starts {argv0}, not {sys.executable}"
    return KERNEL


def _failure_report(nb: nbformat.NotebookNode, name: str, err: CellExecutionError) -> str:
    """The failing cell's number and source, then the error and its traceback."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", ()):
            if output.get("output_type") == "error":
                traceback = _ANSI.sub("", "\n".join(output.get("traceback", ())))
                return (
                    f"{name}: cell {index} raised {output.get('ename')}: {output.get('evalue')}\n"
                    f"--- cell source ---\n{cell.source}\n--- traceback ---\n{traceback}"
                )
    return f"{name}: {err}"  # the message itself holds the source and the traceback


def _execute(path: Path, workdir: Path, kernel_name: str) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    # An extra last cell (in memory only) reports which Python environment the kernel ran in.
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.prefix, end='')"))
    client = nbclient.NotebookClient(
        nb, timeout=180, kernel_name=kernel_name, resources={"metadata": {"path": str(workdir)}}
    )
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(_failure_report(nb, path.name, err), pytrace=False)
    kernel_prefix = "".join(out.get("text", "") for out in nb.cells[-1].outputs)
    assert kernel_prefix == sys.prefix, f"the kernel ran in {kernel_prefix!r}, not in this environment {sys.prefix!r}"
    return nb


def _check_png(png: Path) -> None:
    import numpy as np
    from matplotlib import image

    assert png.is_file(), f"usage_report.ipynb wrote no PNG at {png}"
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC, "not a PNG file"
    assert len(data) > 10_000, f"the PNG is suspiciously small ({len(data)} bytes)"
    pixels = image.imread(png)
    assert pixels.ndim == 3, f"unexpected image shape {pixels.shape}"
    height, width = pixels.shape[:2]
    assert height > 100, f"the image is tiny: {pixels.shape}"
    assert width > 100, f"the image is tiny: {pixels.shape}"
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
    assert len(colours) > 10, f"the chart has only {len(colours)} colour(s)"


def test_notebooks_found() -> None:
    names = {path.name for path in NOTEBOOKS}
    assert {"quickstart_langchain.ipynb", "agents_langgraph.ipynb", "usage_report.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_saved_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    if path.name in SAVED_WITH_OUTPUTS:
        counts = [cell.execution_count for _, cell in code]
        assert counts == list(range(1, len(code) + 1)), f"{path.name}: save it after one run, top to bottom"
        return
    dirty = [i for i, cell in code if cell.outputs or cell.execution_count is not None]
    assert not dirty, f"{path.name}: cells {dirty} have saved outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, venv_kernel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel inherits this process's environment when it starts.
    for name in _LIVE_ENV:
        monkeypatch.delenv(name, raising=False)
    png = tmp_path / "report" / "usage_report.png"
    monkeypatch.setenv("USAGE_REPORT_PNG", str(png))
    workdir = tmp_path / "cwd"
    workdir.mkdir()

    executed = _execute(path, workdir, venv_kernel)

    if path.name == "usage_report.ipynb":
        _check_png(png)
    if path.name in SAVED_WITH_OUTPUTS:
        saved = nbformat.read(path, as_version=4)
        assert _outputs(executed.cells[:-1]) == _outputs(saved.cells), (
            f"{path.name}: a fresh run does not reproduce the saved outputs; re-run and save it"
        )


def _outputs(cells: list[nbformat.NotebookNode]) -> list[list[tuple[str, str]]]:
    """Per code cell, each output's type and text (streams joined as they print)."""
    result = []
    for cell in cells:
        if cell.cell_type != "code":
            continue
        texts = []
        for output in cell.outputs:
            text = output.get("text") or output.get("data", {}).get("text/plain") or output.get("evalue", "")
            texts.append((output.get("name") or output["output_type"], "".join(text)))
        result.append(texts)
    return result
