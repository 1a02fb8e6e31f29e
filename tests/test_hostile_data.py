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
import pytest
from PIL import Image

from numpy_mlp.cli.commands import main

TINY = ["--hidden-dim", "8", "--batch-size", "4", "--num-iters", "4", "--val-size", "3",
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


# ------------------------------------------------------------------ a model meets data

def one_line_error(argv, capsys, *words):
    """``main(argv)`` refuses with one ``numpy-mlp: error:`` line holding ``words``."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("numpy-mlp: error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, (w, err)
    return err


def trained(tmp_path, names, run="run"):
    """A finished run on a folder with ``names``: (its folder, its data folder)."""
    data = image_folder(tmp_path / f"data-{run}", names)
    assert main(["train", "--dataset", "folder", "--data-dir", str(data), "--out",
                 str(tmp_path / run), "--quiet", *TINY]) == 0
    return tmp_path / run, data


@pytest.mark.parametrize("model_names, data_names", [
    (["cats", "dogs", "owls"], ["cats", "dogs"]),         # an IndexError before
    (["cats", "dogs"], ["cats", "dogs", "owls"]),         # accuracies without a word before
    (["cats", "dogs"], ["cats", "wolves"]),               # its own images, a class renamed
], ids=["fewer", "more", "renamed"])
def test_evaluate_refuses_data_with_other_classes(model_names, data_names, tmp_path, capsys):
    run, _ = trained(tmp_path, model_names)
    other = image_folder(tmp_path / "other", data_names)
    one_line_error(["evaluate", "--model", str(run), "--data-dir", str(other), "--quiet"],
                   capsys, f"the model {run / 'model.npz'} was trained on "
                   f"{len(model_names)} classes {model_names}".replace('"', "'"),
                   f"but the data in {other} has {len(data_names)} classes {data_names}"
                   .replace('"', "'"),
                   "pass --data-dir with the folder it was trained on")
    assert not (tmp_path / "other" / "confusion.png").exists()


def test_a_long_class_list_is_shortened_in_the_message(tmp_path):
    from numpy_mlp.data.dataset import shown_classes
    names = [f"class{i}" for i in range(100)]
    assert shown_classes(names) == ("100 classes ['class0', 'class1', 'class2', 'class3', "
                                    "'class4', ...]")


def crashed_run(tmp_path, monkeypatch, names):
    """A folder run killed after its checkpoint at step 2: (its folder, its data folder)."""
    from test_checkpoint import Crash, crash_after

    from numpy_mlp.runs.train import run_training
    from numpy_mlp.training.config import TrainConfig

    data = image_folder(tmp_path / "data", names)
    config = TrainConfig(dataset="folder", image_size=8, hidden_dim=(8,), batch_size=4,
                         num_iters=6, val_size=3, evals=2, eval_train_size=10,
                         checkpoint_every=2, threads=1)
    crash_after(monkeypatch, 3)
    with pytest.raises(Crash):
        run_training(config, data_dir=data, out=tmp_path / "run", log=None)
    return tmp_path / "run", data


def test_resume_refuses_data_whose_classes_were_renamed(tmp_path, monkeypatch, capsys):
    run, data = crashed_run(tmp_path, monkeypatch, ["cats", "dogs"])
    (data / "dogs").rename(data / "wolves")
    one_line_error(["train", "--resume", str(run), "--quiet"], capsys,
                   "was trained on 2 classes ['cats', 'dogs'], but the data in",
                   "has 2 classes ['cats', 'wolves']; resume with the --data-dir the run was "
                   "trained on, or start a new run")
    (data / "wolves").rename(data / "dogs")  # as it was: the run goes on
    assert main(["train", "--resume", str(run), "--quiet"]) == 0


def test_resume_refuses_images_replaced_under_the_same_labels(tmp_path, monkeypatch, capsys):
    """Every image replaced, each class keeping its count and its label: only the images'
    CRC in the checkpoint's fingerprint tells."""
    run, data = crashed_run(tmp_path, monkeypatch, ["cats", "dogs"])
    image_folder(tmp_path / "again", ["cats", "dogs"], seed=7)
    for f in sorted(data.glob("*/*.png")):
        f.write_bytes((tmp_path / "again" / f.parent.name / f.name).read_bytes())
    one_line_error(["train", "--resume", str(run), "--quiet"], capsys,
                   "checkpoint.npz was written on other data (other images, with the same "
                   "labels) than the data in", "resume with the --data-dir the run was trained on")


def test_an_old_fingerprint_is_compared_on_what_it_records(tmp_path):
    """Checkpoints from before images and class names were recorded still resume: their
    fingerprint (sizes, training and validation labels) is compared as it was."""
    from synthetic_data import synthetic

    from numpy_mlp.training.checkpointing import _check_same_data, data_fingerprint

    data = synthetic(n_train=30, n_val=10)
    now = data_fingerprint(data)
    old = {k: now[k] for k in ("n_train", "n_val", "train_labels_crc32", "val_labels_crc32")}
    _check_same_data("c.npz", old, data)
    _check_same_data("c.npz", now, data)
    other = synthetic(n_train=30, n_val=10, seed=1)
    with pytest.raises(Exception, match="other data"):
        _check_same_data("c.npz", now, other)


# ------------------------------------------------------------------ datasets at their edges

def test_a_cifar100_meta_naming_one_class_100_times_is_refused(tmp_path, capsys):
    from test_datasets import cifar100_bytes

    archive = cifar100_bytes(fine_names=["apple"] * 100)
    (tmp_path / "cifar-100-python.tar.gz").write_bytes(archive)
    one_line_error(["train", "--dataset", "cifar100", "--data-dir", str(tmp_path), "--out",
                    str(tmp_path / "run"), *TINY[:-2]], capsys,
                   "CIFAR-100 (100 fine classes) in", "names the class 'apple' twice, and "
                   "classes need distinct names")


@pytest.mark.parametrize("empty", ["train", "t10k"])
def test_mnist_without_training_or_test_images_says_so(empty, tmp_path, capsys):
    from test_datasets import idx_bytes, idx_files

    for f, body in idx_files().items():
        (tmp_path / f).write_bytes(body)
    (tmp_path / f"{empty}-images-idx3-ubyte.gz").write_bytes(
        idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    (tmp_path / f"{empty}-labels-idx1-ubyte.gz").write_bytes(idx_bytes(np.zeros(0, np.uint8)))
    split = "training" if empty == "train" else "test"
    err = one_line_error(["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--out",
                          str(tmp_path / "run"), *TINY[:-2]], capsys,
                         f"MNIST in {tmp_path} has no {split} images; check {tmp_path}")
    assert "val_size" not in err and "nan" not in err


SLOW_FOLDER = """
    import sys, time
    from numpy_mlp.cli.commands import main
    from numpy_mlp.data import folder

    read = folder.image_to_row
    def slow(*args, **kwargs):
        print("loading", flush=True)
        time.sleep(0.2)
        return read(*args, **kwargs)
    folder.image_to_row = slow
    sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("signum, status", [(2, 130), (15, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_a_folder_loads_ends_with_one_line(signum, status, tmp_path):
    import signal
    import textwrap

    data = image_folder(tmp_path / "pictures", ["cats", "dogs"], per_class=20)
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SLOW_FOLDER), "train",
                             "--dataset", "folder", "--data-dir", str(data), "--out",
                             str(tmp_path / "run"), *TINY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "loading"
    proc.send_signal(signal.Signals(signum))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status and err == "numpy-mlp: interrupted\n", (proc.returncode, err)


# ------------------------------------------------------------------ a folder bounded by bytes

def test_a_folder_too_large_to_hold_is_refused_before_decoding(tmp_path, monkeypatch, capsys):
    """12 images at 8 px take 12 x 192 = 2,304 bytes; with a made-up bound of 2,000 the
    folder is refused before any image is decoded, naming a size that fits; at 7 px (12 x
    147 = 1,764 bytes) it loads."""
    from numpy_mlp.data import folder

    data = image_folder(tmp_path / "pictures", ["cats", "dogs"])
    decoded = []
    read = folder.image_to_row
    monkeypatch.setattr(folder, "image_to_row", lambda *a, **k: decoded.append(a) or read(*a, **k))
    monkeypatch.setattr(folder, "MAX_FOLDER_BYTES", 2000)
    one_line_error(["train", "--dataset", "folder", "--data-dir", str(data), "--out",
                    str(tmp_path / "run"), *TINY], capsys,
                   f"{data}: its 12 images at 8x8 px would take 2,304 bytes (0.0 GiB) of "
                   "memory, more than the 2,000 a folder dataset may hold; use --image-size 7 "
                   "or smaller, or a folder with fewer images")
    assert decoded == []
    from numpy_mlp.data.dataset import Geometry
    parts = folder.read_image_folder(None, data, Geometry(3, 7, 7))
    assert parts.train[0].shape == (10, 147) and parts.test[0].shape == (2, 147)
    assert len(decoded) == 12


TRICKLE = """
    import io, sys, time
    from numpy_mlp.cli.commands import main
    from numpy_mlp.data import download

    class Trickle(io.RawIOBase):
        headers = {"Content-Length": str(10**6)}
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return False
        def read1(self, n=-1):
            print("receiving", flush=True)
            time.sleep(0.2)
            return b"x"

    download.urllib.request.urlopen = lambda url, timeout: Trickle()
    sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_during_a_download_is_one_line_and_leaves_no_part_file(tmp_path):
    import signal
    import textwrap

    data = tmp_path / "cifar"
    data.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(TRICKLE), "train",
                             "--data-dir", str(data), "--out", str(tmp_path / "run"), "--quiet",
                             "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "receiving"
    proc.stdout.readline()  # a second byte: the .part file is open
    assert [p.name for p in data.iterdir()] == ["cifar-10-python.tar.gz.part"]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err == "numpy-mlp: interrupted\n", (proc.returncode, err)
    assert list(data.iterdir()) == []
