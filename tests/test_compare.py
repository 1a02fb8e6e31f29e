"""Runs that can be compared: each run records its provenance in run.json, and
``numpy-mlp report RUN RUN ... --out DIR`` writes one page comparing them, opened here in
headless Chromium (as tests/test_report.py opens a run's report). The runs' folders are
only read."""

import json
import platform
import re
from datetime import datetime, timezone

import numpy as np
import pytest
from fixtures_cifar import write_cifar_dir
from test_report import CHECK_SCRIPT, chromium_dom

from numpy_mlp.cli.commands import main
from numpy_mlp.runs.compare import COMPARE_NAME, COMPARE_ROOT
from numpy_mlp.runs.report import PICTURES
from numpy_mlp.version import __version__

COMMON = ["--num-iters", "6", "--batch-size", "16", "--val-size", "20", "--evals", "3",
          "--quiet"]
# the two runs differ in these two settings only
RUNS = {"a": ["--hidden-dim", "16", "--alpha", "0.01"], "b": ["--hidden-dim", "24", "--alpha",
                                                              "0.03"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    write_cifar_dir(root / "cifar", n_per_batch=20, n_test=40)
    for name, flags in RUNS.items():
        assert main(["train", "--data-dir", str(root / "cifar"), "--offline", "--out",
                     str(root / name), *flags, *COMMON]) == 0
    return [root / name for name in RUNS]


def snapshot(folders):
    """Every file of the folders with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for f in folders for p in f.iterdir()}


def test_a_run_records_its_provenance(runs):
    before = datetime.now(timezone.utc)
    prov = json.loads((runs[0] / "run.json").read_text())["provenance"]
    assert prov["numpy_mlp"] == __version__
    assert prov["python"] == platform.python_version() and prov["numpy"] == np.__version__
    assert prov["command"].startswith("numpy-mlp train --data-dir ")
    assert f"--out {runs[0]} --hidden-dim 16 --alpha 0.01" in prov["command"]
    started = datetime.fromisoformat(prov["started_utc"])
    assert started.utcoffset().total_seconds() == 0 and started <= before
    assert prov["blas"] != "none found"  # NumPy's BLAS, named with its version


CURVE_SCRIPT = """<script>
window.addEventListener("load", () => {
  const found = [];
  for (const kind of ["loss", "val_acc"]) {
    for (let i = 0; i < RUNS; i++) {
      const line = document.querySelector("#curves-" + kind + " [id='" + kind + "-" + i + "']");
      const box = line ? line.getBBox() : null;
      found.push(kind + "-" + i + ":" + (box && box.width > 10 ? "drawn" : "missing"));
    }
  }
  const diff = Array.from(document.querySelectorAll("tr.diff td:first-child code"))
    .map(c => c.textContent);
  const out = document.createElement("pre");
  out.id = "curve-check";
  out.textContent = "CURVES " + found.join(" ") + " DIFF " + diff.join(" ") + " END";
  document.body.appendChild(out);
});
</script>"""


def test_report_of_several_runs_writes_one_page_comparing_them(runs, tmp_path, capsys):
    before = snapshot(runs)
    out = tmp_path / "cmp"
    assert main(["report", *map(str, runs), "--out", str(out)]) == 0
    page_path = out / COMPARE_NAME
    assert str(page_path) in capsys.readouterr().out
    assert snapshot(runs) == before  # the runs are only read
    page = page_path.read_text(encoding="utf-8")
    # nothing to fetch: pictures are data: URIs, the curves' markers refer within the page
    assert "<script" not in page and not re.search(r"(src|href)=\"(?!data:|#)", page)

    # in the browser: every picture of both runs decodes, each run's two curves are drawn,
    # and the config rows marked as different are exactly the settings the runs differ in
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", CURVE_SCRIPT.replace("RUNS", str(len(runs)))
                                    + CHECK_SCRIPT), encoding="utf-8")
    dom = chromium_dom(checked, tmp_path)
    sizes = re.search(r"<pre id=\"image-check\">IMAGES (.*?) END</pre>", dom).group(1).split()
    assert len(sizes) == len(PICTURES) * len(runs) and "broken" not in sizes
    curves, diff = re.search(r"<pre id=\"curve-check\">CURVES (.*?) DIFF (.*?) END</pre>",
                             dom).groups()
    assert curves.split() == [f"{k}-{i}:drawn" for k in ("loss", "val_acc")
                              for i in range(len(runs))]
    config_diff = [d for d in diff.split() if d in json.loads((runs[0] / "config.json")
                                                              .read_text())]
    assert sorted(config_diff) == ["alpha", "hidden_dim"]
    assert "command" in diff.split()  # the provenance rows differ too: the two commands


def test_the_comparison_never_goes_into_a_run_folder(runs, tmp_path, capsys):
    before = snapshot(runs)
    for out in (runs[0], runs[1] / "compare"):
        assert main(["report", *map(str, runs), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "inside the run folder" in err
    assert snapshot(runs) == before and not (runs[1] / "compare").exists()
    # one run: its own report, as before; --out is refused rather than ignored
    assert main(["report", str(runs[0]), "--out", str(tmp_path / "x")]) == 2
    assert "--out is for comparing several runs" in capsys.readouterr().err
    assert main(["report", str(runs[0])]) == 0
    assert (runs[0] / "report.html").is_file() and not (runs[0] / COMPARE_NAME).exists()


def test_the_default_folder_is_a_new_one_under_runs_compare(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", *map(str, runs), "-q"]) == 0
    (page,) = (tmp_path / COMPARE_ROOT).glob(f"*/{COMPARE_NAME}")
    assert page.stat().st_size > 10_000


GOOD_HISTORY = ("step,loss,epoch,train_loss,train_acc,val_acc,alpha,seconds\n"
                "1,2.3,,,,,,\n2,2.2,0.5,2.25,0.2,0.25,0.01,1.5\n")


@pytest.mark.parametrize("text, said", [
    ("step,loss\n1,2.3\n", "its first row is not step,loss,epoch"),
    (GOOD_HISTORY.replace("seconds", "seconds,val_acc_emma"), "its first row is not"),
    (GOOD_HISTORY + "3,2.1\n", "row 4 is not a step of a history (2 columns)"),
    (GOOD_HISTORY.replace("0.5,2.25,0.2,0.25", "0.5,2.25,0.2,high"), "row 3 is not a step"),
    ("", "its first row is not"),
])
def test_a_damaged_history_is_one_line_naming_the_file_and_row(text, said, tmp_path):
    from numpy_mlp.errors import RunFileError
    from numpy_mlp.runs.writeup import read_history

    path = tmp_path / "history.csv"
    path.write_text(text)
    with pytest.raises(RunFileError) as e:
        read_history(path)
    assert said in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)
    assert read_history(_written(tmp_path, GOOD_HISTORY)) == {
        "step": [1, 2], "loss": [2.3, 2.2], "eval_step": [2], "epoch": [0.5],
        "train_acc": [0.2], "val_acc": [0.25]}


def _written(tmp_path, text):
    path = tmp_path / "good.csv"
    path.write_text(text)
    return path
