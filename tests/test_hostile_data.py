"""A dataset's own words and numbers, hostile or odd: class names that look like markup or
lie outside the font, class lists that differ between a model and the data it meets, data
swapped under a run, datasets with no images or duplicate names, folders too large to hold.

Through the command line, in process or (where the case is a process's output) in a child.
"""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

TINY = ["--hidden-dim", "8", "--batch-size", "10", "--num-iters", "4", "--val-size", "3",
        "--threads", "1", "--offline", "--evals", "2", "--eval-train-size", "10",
        "--image-size", "8"]


def image_folder(root, names, per_class=6, seed=0):
    """``root/<name>/<i>.png`` for each class name, each class its own colour; returns root."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            a = rng.integers(0, 60, (10, 12, 3)).astype(np.uint8)
            a[..., k % 3] += 150
            Image.fromarray(a).save(root / name / f"{i}.png")
    return root


def child(*argv):
    """``numpy-mlp ARGV`` in a child process: (status, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "numpy_mlp", *map(str, argv)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "default"})
    return proc.returncode, proc.stdout, proc.stderr


# ------------------------------------------------------------------ names are text

def test_class_names_with_markup_or_outside_the_font_are_drawn_as_text(tmp_path):
    """``cat$\\foo$`` is not mathtext (it stopped every write-up, and every --resume, with
    ParseFatalException); 猫 and 🐶 are not in the font (a warning per glyph and drawing,
    even with -q). The quiet run prints its one result line and nothing on stderr."""
    names = ["cat$\\foo$", "猫", "🐶"]
    data = image_folder(tmp_path / "pictures", names)
    run = tmp_path / "run"
    status, out, err = child("train", "--dataset", "folder", "--data-dir", data, "--out", run,
                             "--quiet", *TINY)
    assert status == 0 and err == "", err
    assert len(out.splitlines()) == 1
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert sorted(metrics["per_class_test_accuracy"]) == sorted(names)
    for png in ("predictions.png", "confusion.png"):
        assert (run / png).stat().st_size > 1000
    status, out, err = child("evaluate", "--model", run, "--data-dir", data, "--out",
                             tmp_path / "ev", "--quiet", "--offline")
    assert status == 0 and err == "", err
    assert (tmp_path / "ev" / "confusion.png").stat().st_size > 1000
