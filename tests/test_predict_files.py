"""``numpy-mlp predict`` with good and bad files together, in a real process: every file it
can read is classified, every one it cannot is named on stderr in one line, the exit status
says that some failed, and ``--format json`` / ``csv`` give scripts the same answers."""

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from fixtures_cifar import write_cifar_dir
from PIL import Image

from numpy_mlp.cli.commands import main
from numpy_mlp.runs.predict import CSV_COLUMNS, predict_files


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    write_cifar_dir(root / "cifar", n_per_batch=20, n_test=20)
    assert main(["train", "--data-dir", str(root / "cifar"), "--offline", "--out",
                 str(root / "run"), "--hidden-dim", "16", "--num-iters", "4", "--batch-size",
                 "16", "--val-size", "20", "--evals", "2", "--quiet"]) == 0
    return root / "run"


@pytest.fixture
def files(tmp_path):
    """Two good PNGs around a damaged one and a missing one, in the order given."""
    rng = np.random.default_rng(7)
    good = [tmp_path / "a.png", tmp_path / "d.png"]
    for path in good:
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(path)
    broken = tmp_path / "b.png"
    broken.write_bytes(good[0].read_bytes()[:60])  # a PNG cut short
    missing = tmp_path / "c.png"
    return [good[0], broken, missing, good[1]], good, [broken, missing]


def predict(run, paths, *extra):
    return subprocess.run([sys.executable, "-m", "numpy_mlp", "predict", "--model", str(run),
                           *extra, *map(str, paths)], capture_output=True, text=True)


def _one_error_line_each(stderr, bad):
    lines = stderr.splitlines()
    assert len(lines) == len(bad)
    for line, path in zip(lines, bad):
        assert line.startswith("numpy-mlp: error: ") and str(path) in line


def test_every_good_file_is_classified_and_each_bad_one_named(run, files):
    paths, good, bad = files
    done = predict(run, paths)
    assert done.returncode == 2
    _one_error_line_each(done.stderr, bad)
    expected = predict_files(run, good)  # the good ones alone, as before
    assert done.stdout.splitlines() == [
        f"{p}: " + ", ".join(f"{c} {q:.1%}" for c, q in top) for p, top in expected]
    alone = predict(run, good)
    assert alone.returncode == 0 and alone.stderr == "" and alone.stdout == done.stdout


def test_json_lists_every_file_in_order_with_its_classes_or_its_error(run, files):
    paths, good, bad = files
    done = predict(run, paths, "--format", "json", "--top", "2")
    assert done.returncode == 2
    _one_error_line_each(done.stderr, bad)
    entries = json.loads(done.stdout)
    assert [e["file"] for e in entries] == list(map(str, paths))
    expected = dict(predict_files(run, good, top=2))
    for entry in entries:
        if entry["file"] in expected:
            assert "error" not in entry
            # JSON keeps every digit of a float
            assert [(t["class"], t["probability"]) for t in entry["top"]] == list(
                expected[entry["file"]])
        else:
            assert "top" not in entry and entry["file"] in entry["error"]


def test_csv_has_a_row_per_class_shown_and_one_per_bad_file(run, files):
    paths, good, bad = files
    done = predict(run, paths, "--format", "csv", "--top", "3")
    assert done.returncode == 2
    _one_error_line_each(done.stderr, bad)
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    expected = dict(predict_files(run, good, top=3))
    for path in good:
        mine = [r for r in rows if r["file"] == str(path)]
        assert [r["rank"] for r in mine] == ["1", "2", "3"] and not any(r["error"] for r in mine)
        assert [r["class"] for r in mine] == [c for c, _ in expected[str(path)]]
        assert [float(r["probability"]) for r in mine] == pytest.approx(
            [q for _, q in expected[str(path)]], rel=1e-5)
    for path in bad:
        (row,) = [r for r in rows if r["file"] == str(path)]
        assert row["rank"] == row["class"] == "" and str(path) in row["error"]
    assert len(rows) == 3 * len(good) + len(bad)


def test_a_bad_model_is_still_one_line_and_nothing_is_classified(tmp_path, files):
    paths, good, _ = files
    done = predict(tmp_path / "nope.npz", good, "--format", "json")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "nope.npz" in done.stderr
