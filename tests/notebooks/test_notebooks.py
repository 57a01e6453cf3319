"""Every notebook in ``notebooks/`` runs top to bottom, offline, and its committed outputs are current.

Notebooks are committed executed, so a reader sees results and charts without running them. Each
test executes one in a fresh kernel of this interpreter against the local server and compares its
outputs with the committed ones (text exactly, images by type): when a change to the library or to
the notebook changes what it prints, this fails until ``make notebooks`` saves the new outputs.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import ipykernel  # noqa: F401 - the kernel the notebooks run in: a dev dependency, never skipped
import nbclient  # noqa: F401
import nbformat
import pytest

from tests.notebooks import runner

NOTEBOOKS = runner.notebooks()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def kernel():
    with runner.offline_kernel_env() as name:
        yield name


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


def _as_lines(outputs: list) -> list[str]:
    return json.dumps(outputs, indent=1, ensure_ascii=False).splitlines()


def test_notebooks_found() -> None:
    names = {path.name for path in NOTEBOOKS}
    assert {"quickstart_langchain.ipynb", "agents_langgraph.ipynb", "usage_report.ipynb",
            "llamaindex_agents.ipynb", "budgets_and_reconciliation.ipynb"} <= names  # fmt: skip


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_committed_executed_with_deterministic_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name} is not saved executed top to bottom (execution counts {counts}); run `make notebooks`"
    )
    assert any(cell.outputs for cell in code), f"{path.name} has no outputs; run `make notebooks`"
    assert not any(output["output_type"] == "error" for cell in code for output in cell.outputs)
    assert runner.volatile_findings(nb) == [], f"{path.name} has outputs that change from run to run"
    assert all("execution" not in cell.metadata for cell in nb.cells), "timing metadata is not deterministic"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_and_its_committed_outputs_are_current(path, tmp_path, kernel, monkeypatch) -> None:
    png = tmp_path / "report" / "usage_report.png"
    monkeypatch.setenv("USAGE_REPORT_PNG", str(png))  # the kernel inherits this process's environment
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    try:
        fresh = runner.execute(path, workdir, kernel)
    except runner.NotebookFailed as err:
        pytest.fail(str(err), pytrace=False)
    if path.name == "usage_report.ipynb":
        _check_png(png)
    committed = runner.normalised_outputs(nbformat.read(path, as_version=4))
    now = runner.normalised_outputs(fresh)
    if committed != now:
        diff = "\n".join(difflib.unified_diff(_as_lines(committed), _as_lines(now), "committed", "now", lineterm=""))
        pytest.fail(f"{path.name}: the committed outputs are stale; run `make notebooks`.\n{diff}", pytrace=False)
