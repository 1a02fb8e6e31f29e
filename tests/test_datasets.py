"""MNIST, Fashion-MNIST, CIFAR-100 (fine and coarse) and a folder of images, end to end.

Every file is written here in its dataset's official format (idx ``.gz``; the
``cifar-100-python.tar.gz`` of pickles; PNGs in one subfolder per class), downloaded from
a local HTTP server with its md5 checked, then trained on, evaluated, predicted, reported,
exported to ONNX and searched through the command line. Hostile files get one line.
"""

import dataclasses
import gzip
import hashlib
import io
import json
import tarfile

import numpy as np
import onnxruntime as ort
import pytest
from fixtures_cifar import py2_dumps
from PIL import Image
from test_download import server  # noqa: F401  (the fixture)

from numpy_mlp.cli.commands import main
from numpy_mlp.data.cifar100 import CIFAR100_DIR
from numpy_mlp.data.dataset import Geometry, Parts, to_images
from numpy_mlp.data.idx import MNIST_GEOMETRY
from numpy_mlp.data.registry import DATASETS, default_folder, load_dataset
from numpy_mlp.errors import DataError, ModelFileError
from numpy_mlp.training.config import TrainConfig, data_config
from numpy_mlp.training.inference import probabilities
from numpy_mlp.training.model_file import load_model

TINY = ["--hidden-dim", "8", "--batch-size", "10", "--num-iters", "3", "--val-size", "5",
        "--threads", "1", "--quiet", "--offline", "--evals", "2", "--eval-train-size", "10"]
N_TRAIN, N_TEST = 40, 20


def idx_bytes(a, magic=None, dims=None):
    """``a`` (uint8) as a gzipped idx file, its header's magic and dims as given if given."""
    dims = a.shape if dims is None else dims
    head = bytes([0, 0, 8, a.ndim]) if magic is None else magic
    raw = head + b"".join(int(d).to_bytes(4, "big") for d in dims) + a.tobytes()
    return gzip.compress(raw, mtime=0)


def idx_files(seed=0, labels_high=10):
    """The four MNIST files {name: bytes}: images whose brightness follows their label."""
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        y = rng.integers(0, labels_high, n).astype(np.uint8)
        X = (rng.integers(0, 40, (n, 28, 28)) + 20 * (y[:, None, None] % 10)).astype(np.uint8)
        out[f"{prefix}-images-idx3-ubyte.gz"] = idx_bytes(X)
        out[f"{prefix}-labels-idx1-ubyte.gz"] = idx_bytes(y)
    return out


def cifar100_bytes(fine_high=100, fine_names=None):
    """A tiny cifar-100-python.tar.gz: train (40), test (20), meta, as Python 2 pickled them;
    ``fine_names``: the 100 fine class names (default fine0 ... fine99)."""
    rng = np.random.default_rng(1)

    def batch(n):
        fine = rng.integers(0, fine_high, n).tolist()
        return {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine],
                b"filenames": [b"x.png"] * n, b"batch_label": b"tiny"}

    members = {"train": batch(N_TRAIN), "test": batch(N_TEST),
               "meta": {b"fine_label_names": [n.encode() for n in fine_names
                                              or [f"fine{i}" for i in range(100)]],
                        b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        d = tarfile.TarInfo(CIFAR100_DIR)
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        for name, obj in members.items():
            body = py2_dumps(obj)
            info = tarfile.TarInfo(f"{CIFAR100_DIR}/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def md5(data):
    return hashlib.md5(data).hexdigest()


def serve_all(server, files):  # noqa: F811
    return {name: (server(f"/{name}", body), md5(body)) for name, body in files.items()}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """{dataset: its folder}, each written as a user (or the publisher) would have it."""
    root = tmp_path_factory.mktemp("datasets")
    out = {}
    for name in ("mnist", "fashion-mnist"):
        out[name] = root / name
        out[name].mkdir()
        for f, body in idx_files().items():
            (out[name] / f).write_bytes(body)
    out["cifar100"] = out["cifar100-coarse"] = root / "cifar100"
    out["cifar100"].mkdir()
    (out["cifar100"] / "cifar-100-python.tar.gz").write_bytes(cifar100_bytes())
    out["folder"] = root / "pictures"
    rng = np.random.default_rng(2)
    for c, colour in (("cats", 0), ("dogs", 1), ("owls", 2)):
        (out["folder"] / c).mkdir(parents=True)
        for i in range(6):
            a = rng.integers(0, 60, (30, 40, 3)).astype(np.uint8)
            a[..., colour] += 150
            Image.fromarray(a).save(out["folder"] / c / f"{i}.png")
    return out


EXPECTED = {"mnist": (MNIST_GEOMETRY, 10), "fashion-mnist": (MNIST_GEOMETRY, 10),
            "cifar100": (Geometry(3, 32, 32), 100), "cifar100-coarse": (Geometry(3, 32, 32), 20),
            "folder": (Geometry(3, 16, 16), 3)}


# ------------------------------------------------------------------ download and md5

@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar100"])
def test_download_checks_every_file_then_reads_it(name, tmp_path, server):  # noqa: F811
    files = idx_files() if name != "cifar100" else {"cifar-100-python.tar.gz": cifar100_bytes()}
    assert set(files) == {f.name for f in DATASETS[name].files}  # the official names
    sources = serve_all(server, files)
    data = load_dataset(TrainConfig(dataset=name, val_size=5), tmp_path / "d", sources=sources,
                        progress=False)
    geometry, classes = EXPECTED[name]
    assert data.geometry == geometry and len(data.class_names) == classes
    assert data.X_train.shape == (N_TRAIN - 5, geometry.D) and data.X_test.shape[0] == N_TEST
    assert all((tmp_path / "d" / f).read_bytes() == body for f, body in files.items())
    again = load_dataset(TrainConfig(dataset=name, val_size=5), tmp_path / "d", download=False)
    np.testing.assert_array_equal(again.X_train, data.X_train)


def test_a_wrong_md5_is_refused_and_nothing_is_left(tmp_path, server):  # noqa: F811
    sources = serve_all(server, idx_files())
    first = "train-images-idx3-ubyte.gz"
    sources[first] = (sources[first][0], "0" * 32)
    with pytest.raises(DataError, match="md5 checksum") as e:
        load_dataset(TrainConfig(dataset="mnist"), tmp_path / "d", sources=sources,
                     progress=False)
    assert "\n" not in str(e.value) and "MNIST" in str(e.value)
    assert not any((tmp_path / "d").iterdir())


def test_offline_without_the_files_names_the_official_url(tmp_path):
    with pytest.raises(DataError, match="ossci-datasets.s3.amazonaws.com/mnist") as e:
        load_dataset(TrainConfig(dataset="mnist"), tmp_path, download=False)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------ every command on each

# each dataset, and whitened images (whose model file holds the per_channel model they equal)
WHITEN = ["--preprocessing", "whiten", "--whiten-dim", "8"]


@pytest.mark.parametrize("name, flags", [(n, []) for n in sorted(EXPECTED)] + [("folder", WHITEN)])
def test_train_evaluate_predict_report_export_on(name, flags, folders, tmp_path, capsys):
    run = tmp_path / "run"
    geometry, classes = EXPECTED[name]
    extra = (["--image-size", str(geometry.height)] if name == "folder" else []) + flags
    # crops, flips and test-time views all reshape rows: they must follow the geometry
    assert main(["train", "--dataset", name, "--data-dir", str(folders[name]), "--out",
                 str(run), "--crop-pad", "2", "--tta-shift", "1", *TINY, *extra]) == 0
    saved = load_model(run)
    assert saved.geometry == geometry and len(saved.class_names) == classes
    assert saved.model.input_dim == geometry.D and saved.config["dataset"] == name
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["per_class_test_accuracy"]) <= classes
    for png in ("predictions.png", "weights.png", "confusion.png", "loss.png"):
        assert (run / png).stat().st_size > 1000
    with Image.open(run / "predictions.png") as im:
        assert im.width > 100

    capsys.readouterr()
    assert main(["evaluate", "--model", str(run), "--out", str(tmp_path / "ev"),
                 "--quiet"]) == 0  # the data folder and dataset come from the model
    out = capsys.readouterr().out
    assert f"{metrics['test_accuracy']:.4f}" in out

    data = load_dataset(data_config(saved.config), folders[name], download=False)
    picture = tmp_path / "one.png"
    Image.fromarray(to_images(data.X_test[:1], geometry)[0]).save(picture)
    assert main(["predict", "--model", str(run), str(picture), "--top", "2"]) == 0
    shown = capsys.readouterr().out
    assert any(c in shown for c in saved.class_names)

    assert main(["report", str(run), "--quiet"]) == 0
    html = (run / "report.html").read_text()
    assert "data:image/png;base64" in html

    onnx_file = tmp_path / "m.onnx"
    assert main(["export", str(run), "--onnx", str(onnx_file)]) == 0
    session = ort.InferenceSession(str(onnx_file))
    X = data.X_test
    got = session.run(None, {session.get_inputs()[0].name: X})[0]
    ours = probabilities(saved.model, saved.preprocessor, X)
    np.testing.assert_allclose(got, ours, atol=1e-5)


def test_per_channel_statistics_follow_the_channels(folders, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(folders["mnist"]), "--out",
                 str(run), "--preprocessing", "per_channel", *TINY]) == 0
    saved = load_model(run)
    assert len(saved.preprocessor.stats["mean"]) == 1  # one grey channel


def test_a_one_trial_search_on_mnist(folders, tmp_path, capsys):
    out = tmp_path / "search"
    fixed = {"dataset": "mnist", "val_size": 5, "num_iters": 3, "evals": 2,
             "eval_train_size": 10, "batch_size": 10}
    rc = main(["search", "--data-dir", str(folders["mnist"]), "--offline", "--out", str(out),
               "--n-trials", "1", "--quiet", *[a for k, v in fixed.items()
                                               for a in ("--set", f"{k}={v}")],
               "--space", "hidden_dim=8:16"])
    assert rc == 0, capsys.readouterr().err
    best = load_model(out / "best_model.npz")
    assert best.geometry == MNIST_GEOMETRY and best.model.input_dim == 784


def test_folder_test_split_is_fixed_whatever_the_seed(folders):
    a, b = (load_dataset(TrainConfig(dataset="folder", image_size=8, val_size=2, seed=s),
                         folders["folder"]) for s in (0, 1))
    np.testing.assert_array_equal(a.X_test, b.X_test)
    assert a.class_names == ("cats", "dogs", "owls") and a.X_test.shape[1] == 3 * 8 * 8
    assert len(a.y_test) == 3 * round(0.2 * 6)  # a fifth of each class's six images


# ------------------------------------------------------------------ hostile files

def _one_line_error(folder, dataset, capsys, match):
    rc = main(["train", "--dataset", dataset, "--data-dir", str(folder), "--out",
               str(folder.with_name(folder.name + "-run")), *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and match in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("change, match", [
    (lambda f: idx_bytes(np.zeros((N_TRAIN, 28, 28), np.uint8), magic=b"\0\0\x0d\x03"),
     "wrong magic number"),
    (lambda f: idx_bytes(np.zeros((N_TRAIN, 28, 28), np.uint8), dims=(10**9, 28, 28)),
     "expected N x 28 x 28"),
    (lambda f: idx_bytes(np.zeros((N_TRAIN, 28, 28), np.uint8), dims=(N_TRAIN + 5, 28, 28)),
     "declares 35,280 bytes of data but holds 31,360"),
    (lambda f: idx_bytes(np.zeros((N_TRAIN, 28, 28), np.uint8), dims=(N_TRAIN, 27, 28)),
     "expected N x 28 x 28"),
    (lambda f: b"not gzip at all", "could not read"),
])
def test_a_hostile_idx_file_is_one_line(change, match, tmp_path, capsys):
    for f, body in idx_files().items():
        (tmp_path / f).write_bytes(body)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(change(None))
    _one_line_error(tmp_path, "mnist", capsys, match)


def test_idx_labels_out_of_range_or_too_few_are_one_line(tmp_path, capsys):
    for f, body in idx_files(labels_high=12).items():
        (tmp_path / f).write_bytes(body)
    _one_line_error(tmp_path, "mnist", capsys, "labels must be in 0..9")
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    _one_line_error(tmp_path, "mnist", capsys, "must be 40 integers")


def test_hostile_cifar100_archives_are_one_line(tmp_path, capsys):
    (tmp_path / "cifar-100-python.tar.gz").write_bytes(cifar100_bytes(fine_high=130))
    _one_line_error(tmp_path, "cifar100", capsys, "labels must be in 0..99")
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tar:
        body = b"cos\nsystem\n(S'echo owned'\ntR."
        info = tarfile.TarInfo(f"{CIFAR100_DIR}/train")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    (tmp_path / "cifar-100-python.tar.gz").write_bytes(evil.getvalue())
    _one_line_error(tmp_path, "cifar100", capsys, "cifar-100-python/train")
    other = io.BytesIO()
    with tarfile.open(fileobj=other, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))
    (tmp_path / "cifar-100-python.tar.gz").write_bytes(other.getvalue())
    _one_line_error(tmp_path, "cifar100", capsys, "unsafe member")


def test_a_bad_image_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "only").mkdir()
    _one_line_error(tmp_path, "folder", capsys, "at least 2")
    (tmp_path / "second").mkdir()
    for c in ("only", "second"):
        for i in range(2):
            Image.new("RGB", (9, 9)).save(tmp_path / c / f"{i}.png")
    (tmp_path / "second" / "2.png").write_bytes(b"%!PS-Adobe-3.0 not a png")
    _one_line_error(tmp_path, "folder", capsys, "2.png is not an image this tool can read")


def test_every_kind_in_the_registry_has_its_reader_and_its_files():
    for name, kind in DATASETS.items():
        assert kind.name == name and callable(kind.read), name
        assert kind.files or kind.geometry is None, name  # only a folder of images has none
        assert all(f.name and f.url.startswith("http") and len(f.md5) == 32 for f in kind.files)


def test_load_dataset_dispatches_through_the_kind(monkeypatch, tmp_path):
    """No dataset is special-cased by name: each is read by the reader its kind declares."""
    seen = []

    def read(kind, data_dir, geometry, fetch):
        seen.append((kind.name, data_dir, geometry, fetch.download))
        X = np.zeros((6, geometry.D), np.uint8)
        return Parts((X, np.arange(6) % 2), (X[:2], np.arange(2)), ("a", "b"), "here")

    for name, kind in DATASETS.items():
        monkeypatch.setitem(DATASETS, name, dataclasses.replace(kind, read=read))
        data = load_dataset(TrainConfig(dataset=name, val_size=2, image_size=8), tmp_path,
                            download=False)
        geometry = kind.geometry or Geometry(3, 8, 8)  # a folder: --image-size
        assert seen[-1] == (name, tmp_path, geometry, False)
        assert data.name == name and data.geometry == geometry and data.source == "here"
        assert data.X_train.shape == (4, geometry.D) and data.class_names == ("a", "b")
    assert len(seen) == len(DATASETS)


def test_each_dataset_has_its_default_folder_and_cifar100_one_for_both_labels(monkeypatch,
                                                                              tmp_path):
    monkeypatch.setenv("NUMPY_MLP_DATA", str(tmp_path))
    assert default_folder("cifar10") == tmp_path  # where CIFAR-10 always was
    assert default_folder("mnist") == tmp_path / "mnist"
    assert default_folder("cifar100-coarse") == default_folder("cifar100") == tmp_path / "cifar100"


def test_the_geometry_is_recorded_and_a_contradicting_one_refused(folders, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "fashion-mnist", "--data-dir",
                 str(folders["fashion-mnist"]), "--out", str(run), *TINY]) == 0
    with np.load(run / "model.npz") as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["meta"]))
    assert meta["geometry"] == {"channels": 1, "height": 28, "width": 28}
    meta["geometry"] = {"channels": 3, "height": 32, "width": 32}  # D would be 3072, not 784
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelFileError,
                       match="meta.input_dim is 784, not 3072: "
                             "per_image prepares 3x32x32 images") as e:
        load_model(tmp_path / "bad.npz")
    assert "\n" not in str(e.value)


def test_a_crashed_mnist_run_resumes_to_the_same_model(folders, tmp_path, monkeypatch):
    from test_checkpoint import Crash, crash_after

    from numpy_mlp.runs.train import run_training

    config = TrainConfig(dataset="mnist", hidden_dim=(8,), batch_size=10, num_iters=6,
                         val_size=5, evals=2, eval_train_size=10, checkpoint_every=2, threads=1,
                         crop_pad=2)
    run_training(config, data_dir=folders["mnist"], out=tmp_path / "whole", log=None)
    crash_after(monkeypatch, 3)
    with pytest.raises(Crash):
        run_training(config, data_dir=folders["mnist"], out=tmp_path / "cut", log=None)
    assert main(["train", "--resume", str(tmp_path / "cut"), "--quiet"]) == 0
    a, b = load_model(tmp_path / "whole"), load_model(tmp_path / "cut")
    assert b.geometry == MNIST_GEOMETRY
    for k in a.model.params:
        assert a.model.params[k].tobytes() == b.model.params[k].tobytes(), k
