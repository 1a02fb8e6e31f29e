"""The course notebook runs top to bottom on the real CIFAR-10 (fails, never skips).

``NUMPY_MLP_NOTEBOOK_FAST=1`` shortens its training runs (about a minute in all); any
cell that raises fails the test.
"""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK = NOTEBOOKS / "two_layer_net.ipynb"

pytestmark = pytest.mark.slow


def test_committed_notebook_is_what_the_generator_writes():
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        import make_notebook
    finally:
        sys.path.remove(str(NOTEBOOKS))
    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in make_notebook.build().cells], \
        "notebooks/two_layer_net.ipynb is stale: run notebooks/make_notebook.py"
    # committed clean
    assert all(not c.get("outputs") for c in committed.cells if c.cell_type == "code")


def test_notebook_runs_top_to_bottom_on_the_real_data(cifar_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("NUMPY_MLP_DATA", str(cifar_dir))
    monkeypatch.setenv("NUMPY_MLP_NOTEBOOK_FAST", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the cell if any cell fails

    def text(cell):
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")

    code = [c for c in nb.cells if c.cell_type == "code"]
    everything = "\n".join(text(c) for c in code)
    assert "fast mode" in everything and str(cifar_dir) in everything
    # the training cell printed its 20 progress lines plus the last one
    assert everything.count("iteration ") == 21
    # the final accuracy is printed and the network learned something (chance is 0.10)
    line = next(s for s in everything.splitlines() if s.startswith("final accuracy"))
    assert float(line.rsplit("test ", 1)[1]) > 0.25
    line = next(s for s in everything.splitlines() if s.startswith("best: "))
    assert float(line.rsplit("test accuracy ", 1)[1]) > 0.25
    line = next(s for s in everything.splitlines() if s.startswith("search: "))
    assert float(line.split("test ", 1)[1].split()[0]) > 0.25 and "alpha" in line
    # the plots came out as pictures: samples, loss/accuracy, weights, predictions, trainer curve
    pngs = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert pngs >= 5, json.dumps([o.output_type for c in code for o in c.outputs])
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    # and no warnings for the reader (e.g. tqdm's notebook bar asking for ipywidgets)
    stderr = "".join(o.get("text", "") for c in code for o in c.outputs
                     if o.get("name") == "stderr")
    assert "Warning" not in stderr, stderr
