"""The lecture notebook runs top to bottom against the installed linopt.

``notebooks/lecture.ipynb`` is stored with its outputs (digits, small) and
asserts its own numbers (the sanity losses, the
gradient-check verdicts, the step-size sweep's shape, mini-batch accuracy on
digits above 0.9), so executing it is a test of the library as a student meets
it: a broken loss, strategy or checker fails here, not in the classroom.
"""

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "lecture.ipynb"
KERNEL = "python3"  # the name stored in the notebook's metadata
CELL_TIMEOUT_S = 120


@pytest.fixture
def kernel_of_this_python(tmp_path, monkeypatch):
    """A ``python3`` kernelspec that runs ``sys.executable``, first on the path.

    Jupyter looks for kernelspecs in ``JUPYTER_PATH`` before the user's and the
    environment's folders, so the kernel imports the same linopt as this test
    even when another ``python3`` kernelspec is installed for the user.
    """
    spec = tmp_path / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    return KERNEL


def read_notebook():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    return nb


def test_notebook_is_stored_with_its_outputs():
    """Valid nbformat 4, kernel python3, stored executed (in order, no errors,
    its figures inline) so the repository's page shows the tour; no machine's
    paths in it."""
    nb = read_notebook()
    assert nb.nbformat == 4
    assert nb.metadata.kernelspec.name == KERNEL
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), "not run top to bottom once"
    outputs = [out for cell in code for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert sum("image/png" in out.get("data", {}) for out in outputs) >= 8
    text = NOTEBOOK.read_text()
    assert "/work/" not in text and "/home/" not in text and "/root/" not in text
    assert any("assert" in cell.source for cell in code), "no assertion cell"


@pytest.mark.slow
def test_notebook_runs(kernel_of_this_python, monkeypatch):
    # The kernel inherits the environment: the same (N,) vs (N, 1) guard as
    # conftest.py, for the notebook's own array code too.
    monkeypatch.setenv("JAX_NUMPY_RANK_PROMOTION", "raise")
    nb = read_notebook()
    # Appended to the in-memory copy only: proves which interpreter ran it.
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name=kernel_of_this_python,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},  # the cwd
    )
    client.execute()  # raises CellExecutionError, with the cell, on any error

    assert nb.cells[-1].outputs[0]["text"].strip() == sys.executable
    outputs = [
        out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    ]
    assert not [out for out in outputs if out.output_type == "error"]
    figures = [out for out in outputs if "image/png" in out.get("data", {})]
    # One per figure the tour draws: landscapes, searches, checks, sweeps, curves.
    assert len(figures) >= 8, f"only {len(figures)} inline figures"
