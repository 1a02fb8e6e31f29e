"""Every bad input, through the command line: one line ``numpy-mlp: error: ...`` naming the
problem (and what to do), exit status 2, no traceback; ``--debug`` shows the traceback.

The table BAD_INPUTS is what docs/reliability.md's bad-input table counts. Each case
builds its files in ``tmp_path`` and returns the command's arguments; ``words`` must appear
in the message. A flag's value is checked by its setting's rule like any other input (one
line naming the flag); errors of the command line's shape (an unknown flag or command, both
flags of an either-or pair, missing image files) are argparse's own: a usage line and one
``error:`` line, status 2 (BAD_FLAGS).
"""

import io
import json
import os
import pickle
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from fixtures_cifar import batch_dict, dumps, write_archive, write_cifar_dir

from numpy_mlp.cli.commands import main
from numpy_mlp.data import download
from numpy_mlp.data.cifar10 import ARCHIVE_NAME
from numpy_mlp.training.checkpoint_file import CHECKPOINT_NAME
from numpy_mlp.training.presets import PRESETS

TINY = ["--hidden-dim", "8", "--batch-size", "10", "--num-iters", "3", "--val-size", "10",
        "--threads", "1", "--quiet", "--offline"]


class Marker:
    """Unpickling this runs ``os.system('touch <path>')``: what a hostile batch file would do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch '{self.path}'",)


def cifar(tmp_path, name="data"):
    folder = tmp_path / name
    write_cifar_dir(folder, "py3")  # 5 x 20 training images
    return folder


def train(tmp_path, folder, *extra):
    return ["train", "--data-dir", str(folder), "--out", str(tmp_path / "run"), *TINY, *extra]


def hyper(tmp_path, flag, value):
    """The tiny training command with ``--flag value`` (--epochs replaces --num-iters)."""
    argv = train(tmp_path, cifar(tmp_path), f"--{flag}", value)
    if flag == "epochs":
        i = argv.index("--num-iters")
        del argv[i:i + 2]
    return argv


def with_batch(tmp_path, content):
    """The fixture folder with data_batch_2 replaced by ``content`` (bytes or a batch dict)."""
    folder = cifar(tmp_path)
    raw = content if isinstance(content, bytes) else dumps(content, "py3")
    (folder / "data_batch_2").write_bytes(raw)
    return train(tmp_path, folder)


def batch(X=None, y=None):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (20, 3072), dtype=np.uint8) if X is None else X
    y = np.arange(20) % 10 if y is None else y
    return batch_dict(X, y, "data_batch_2")


def archive(tmp_path, *extra, drop=None):
    """A folder holding only ``cifar-10-python.tar.gz``, with ``extra`` members appended."""
    src = cifar(tmp_path, "src")
    if drop:
        (src / drop).unlink()
    folder = tmp_path / "data"
    folder.mkdir()
    write_archive(folder / ARCHIVE_NAME, src, extra)
    return train(tmp_path, folder)


def member(name, kind=tarfile.REGTYPE, size=0, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    return info


def bad_download(tmp_path, monkeypatch):
    """The download of the archive delivers bytes whose md5 is not the official one."""
    body = b"not the CIFAR-10 archive" * 100

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(body))}

    monkeypatch.setattr(download.urllib.request, "urlopen", lambda url, timeout: Response(body))
    args = train(tmp_path, tmp_path / "fresh")
    args.remove("--offline")
    return args


def model_file(tmp_path, kind):
    """A model.npz that is missing, truncated, not a model, of another architecture or newer."""
    good = trained_model(tmp_path)
    path = tmp_path / "model.npz"
    if kind == "missing":
        return path.parent / "nope.npz"
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[:3000])
    elif kind == "text":
        path.write_text("hello")
    elif kind in ("architecture", "newer", "foreign", "meta nonsense"):
        with np.load(good) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays["meta"]))
        if kind == "architecture":  # says hidden_dim [8], holds the weights of a [16] net
            arrays["W1"], arrays["b1"], arrays["W2"] = (np.zeros((3072, 16), np.float32),
                                                         np.zeros(16, np.float32),
                                                         np.zeros((16, 10), np.float32))
        elif kind == "newer":
            meta["format_version"] = 99
        elif kind == "meta nonsense":
            meta["hidden_dim"] = ["wide"]
        else:  # another program's weights
            arrays = {"weight": arrays["W1"], "bias": arrays["b1"]}
        if "meta" in arrays:
            arrays["meta"] = np.array(json.dumps(meta))
        np.savez(path, **arrays)
    elif kind == "pickled":  # an object array: np.load would need allow_pickle=True and run code
        np.savez(path, meta=np.array([Marker(tmp_path / "pwned")], dtype=object))
    return path


_MODEL_CACHE = {}


def trained_model(tmp_path):
    """A real model.npz of a 3-step run (trained once per test session, then copied)."""
    if "path" not in _MODEL_CACHE:
        base = tmp_path.parent / "trained-once"
        if not (base / "run" / "model.npz").exists():
            base.mkdir(exist_ok=True)
            assert main(train(base, cifar(base))) == 0
        _MODEL_CACHE["path"] = base / "run" / "model.npz"
    copy = tmp_path / "good.npz"
    copy.write_bytes(_MODEL_CACHE["path"].read_bytes())
    return copy


def evaluate(tmp_path, kind):
    return ["evaluate", "--model", str(model_file(tmp_path, kind)),
            "--data-dir", str(cifar(tmp_path)), "--offline", "--quiet"]


def predict_image(tmp_path, content):
    image = tmp_path / "cat.png"
    if content is not None:
        image.write_bytes(content)
    return ["predict", "--model", str(trained_model(tmp_path)), str(image)]


def resume(tmp_path, case):
    run = tmp_path / "run"
    if case == "no folder":
        return ["train", "--resume", str(run)]
    folder = cifar(tmp_path)
    if case == "finished":
        assert main(train(tmp_path, folder)) == 0
        return ["train", "--resume", str(run)]
    killed_run(run, folder)
    if case == "with a flag":
        return ["train", "--resume", str(run), "--alpha", "0.1"]
    if case == "with --out":
        return ["train", "--resume", str(run), "--out", str(tmp_path / "x")]
    if case == "damaged checkpoint":
        (run / CHECKPOINT_NAME).write_bytes((run / CHECKPOINT_NAME).read_bytes()[:500])
    elif case == "damaged config":
        (run / "config.json").write_text("{ not json")
    elif case == "other data":
        other = tmp_path / "other"
        write_cifar_dir(other, "py3", seed=1)
        return ["train", "--resume", str(run), "--data-dir", str(other), "--offline"]
    return ["train", "--resume", str(run)]


def killed_run(run, folder):
    """A run folder as a run killed after its last checkpoint leaves it.

    That is: config.json, checkpoint.npz.
    """
    from numpy_mlp import TrainConfig
    from numpy_mlp.data.cifar10 import load_cifar10
    from numpy_mlp.runs.train import train_with_checkpoints
    from numpy_mlp.runs.writeup import write_json

    config = TrainConfig(hidden_dim=(8,), batch_size=10, num_iters=3, val_size=10, threads=1)
    run.mkdir()
    write_json(run / "config.json", config.to_dict())
    data = load_cifar10(folder, val_size=config.val_size, seed=config.seed, download=False)
    train_with_checkpoints(config, data, run, data_dir=folder)
    assert (run / CHECKPOINT_NAME).exists()


# (id, build(tmp_path, monkeypatch) -> argv, words expected in the message)
BAD_INPUTS = [
    # --- the data folder
    ("data folder missing", lambda t, m: train(t, t / "nowhere"), "not found in"),
    ("data folder empty", lambda t, m: train(t, (t / "empty").mkdir() or t / "empty"),
     "not found in"),
    ("one batch missing",
     lambda t, m: ((cifar(t) / "data_batch_3").unlink(), train(t, t / "data"))[1],
     "data_batch_3 is missing"),
    ("batch truncated", lambda t, m: with_batch(t, dumps(batch(), "py3")[:5000]), "truncated"),
    ("batch corrupted", lambda t, m: with_batch(t, np.random.default_rng(1).bytes(40000)),
     "corrupt"),
    ("batch of zero bytes", lambda t, m: with_batch(t, b""), "corrupt or truncated"),
    ("batch with wrong shape",
     lambda t, m: with_batch(t, batch(X=np.zeros((20, 3000), np.uint8))), "shape"),
    ("batch with wrong dtype",
     lambda t, m: with_batch(t, batch(X=np.zeros((20, 3072), np.float32))),
     "integers 0..255"),
    ("pixel values above 255",
     lambda t, m: with_batch(t, batch(X=np.full((20, 3072), 300, np.int16))),
     "integers 0..255"),
    ("label 10", lambda t, m: with_batch(t, batch(y=[10] * 20)), "labels must be in 0..9"),
    ("label -1", lambda t, m: with_batch(t, batch(y=[-1] * 20)), "labels must be in 0..9"),
    ("labels missing", lambda t, m: with_batch(t, {b"data": np.zeros((20, 3072), np.uint8)}),
     "'labels'"),
    ("hostile pickle (os.system)",
     lambda t, m: with_batch(t, pickle.dumps({b"data": Marker(t / "pwned")})),
     "refused to unpickle posix.system"),
    ("hostile pickle (builtins.eval)", lambda t, m: with_batch(t, b"cbuiltins\neval\n(S'1'\ntR."),
     "refused to unpickle builtins.eval"),
    # --- the archive
    ("download with a bad checksum", bad_download, "md5 checksum"),
    ("archive member outside the expected names",
     lambda t, m: archive(t, member("cifar-10-batches-py/run_me.sh", size=3)), "unexpected member"),
    ("archive member ../", lambda t, m: archive(t, member("../escape", size=3)), "unsafe member"),
    ("archive member with an absolute path",
     lambda t, m: archive(t, member("/tmp/numpy_mlp_abs", size=3)),
     "unsafe member"),
    ("archive member a symlink",
     lambda t, m: archive(t, member("cifar-10-batches-py/test_batch", tarfile.SYMTYPE,
                                    linkname="/etc/passwd")),
     "not a regular file"),
    ("archive member a hard link",
     lambda t, m: archive(t, member("cifar-10-batches-py/data_batch_1", tarfile.LNKTYPE,
                                    linkname="cifar-10-batches-py/test_batch")),
     "not a regular file"),
    ("archive missing a batch", lambda t, m: archive(t, drop="data_batch_5"), "data_batch_5"),
    ("archive not gzip",
     lambda t, m: ((t / "data").mkdir(), (t / "data" / ARCHIVE_NAME).write_bytes(b"x" * 999),
                   train(t, t / "data"))[2],
     "could not read"),
    # --- flag values: each refused by its rule's one message (rules.Rule), naming the flag
    *[(f"--{flag} {value}", lambda t, m, f=flag, v=value: hyper(t, f, v), words)
      for flag, value, words in [
          ("alpha", "-1", "--alpha -1 must be a finite number > 0"),
          ("alpha", "0", "--alpha 0 must be"), ("alpha", "inf", "--alpha inf must be"),
          ("alpha", "nan", "--alpha nan must be a finite number"),
          ("alpha", "fast", "--alpha 'fast' must be a finite number > 0"),
          ("beta", "1", "--beta 1 must be a finite number in [0, 1)"),
          ("beta", "-0.5", "--beta -0.5 must be a finite number in [0, 1); the momentum"),
          ("reg", "-1", "--reg -1 must be a finite number >= 0"),
          ("epochs", "0", "--epochs 0 must be a finite number in (0, 100000]"),
          ("epochs", "nan", "--epochs nan must be a finite number"),
          ("epochs", "1e300", "--epochs 1e+300 must be a finite number in (0, 100000]"),
          ("epochs", "1e308", "--epochs 1e+308 must be a finite number in (0, 100000]"),
          ("num-iters", "0", "--num-iters 0 must be a whole number in 1..1000000000"),
          ("num-iters", "1e29", "--num-iters 1e+29 must be a whole number in 1..1000000000"),
          ("batch-size", "0", "--batch-size 0 must be a whole number in 1..1000000"),
          ("batch-size", "-5", "--batch-size -5 must be a whole number"),
          ("batch-size", "2.5", "--batch-size 2.5 must be a whole number"),
          ("dropout", "1", "--dropout 1 must be a finite number in [0, 1)"),
          ("label-smoothing", "1.5", "--label-smoothing 1.5 must be"),
          ("weight-decay", "-0.1", "--weight-decay -0.1 must be"),
          ("crop-pad", "17", "--crop-pad 17 must be a whole number in 0..16"),
          ("seed", "-1", "--seed -1 must be a whole number in 0.."),
          ("hidden-dim", "0", "--hidden-dim 0 must be whole numbers >= 1"),
          ("warmup", "-1", "--warmup -1 must be a whole number in 0.."),
          ("evals", "0", "--evals 0 must be a whole number in 1.."),
          ("checkpoint-every", "-1", "--checkpoint-every -1 must be a whole number in 0.."),
          ("threads", "0", "--threads 0 must be 'auto' or a whole number in 1..1024"),
          ("threads", "99999999999999999999", "--threads 99999999999999999999 must be 'auto' or"),
          ("schedule", "exp", "--schedule 'exp' must be one of constant, cosine, step"),
          ("preset", "nope", f"--preset 'nope' must be one of {', '.join(PRESETS)}"),
          # refused by the trainer, against the data or the memory
          ("batch-size", "91", "larger than the training set"),
          ("val-size", "100", "val_size=100 must be between 0 and 99"),
          ("hidden-dim", "1000000000000", "of memory, and this machine has")]],
    ("--hidden-dim=-3,2", lambda t, m: train(t, cifar(t), "--hidden-dim=-3,2"),
     "--hidden-dim '-3,2' must be whole numbers >= 1"),
    ("evaluate without --model", lambda t, m: ["evaluate", "--offline"], "--model is required"),
    ("predict --top 0", lambda t, m: ["predict", "--model", "m.npz", "--top", "0", "cat.png"],
     "--top 0 must be a whole number >= 1"),
    # --- model files (evaluate; predict reads them the same way)
    *[(f"model file {kind}", lambda t, m, k=kind: evaluate(t, k), words) for kind, words in [
        ("missing", "does not exist"), ("truncated", "truncated"), ("text", "not an .npz archive"),
        ("architecture", "W1 has shape (3072, 16), expected (3072, 8)"),
        ("foreign", "not a numpy-mlp model"),
        ("newer", "newer than this numpy-mlp"), ("meta nonsense", "meta.hidden_dim[0] is 'wide'"),
        ("pickled", "never loads (they could run code)")]],
    # --- images
    ("image that is not an image", lambda t, m: predict_image(t, b"GIF89a but not really"),
     "not an image"),
    ("image that is empty", lambda t, m: predict_image(t, b""), "not an image"),
    ("image that does not exist", lambda t, m: predict_image(t, None), "does not exist"),
    # --- resuming
    *[(f"--resume: {case}", lambda t, m, c=case: resume(t, c), words) for case, words in [
        ("no folder", "no run there"), ("finished", "has finished"),
        ("with a flag", "leave out --alpha"), ("with --out", "leave out --out"),
        ("damaged checkpoint", "damaged"), ("damaged config", "damaged"),
        ("other data", "other data")]],
    # --- the search
    ("search with a bad fixed value",
     lambda t, m: ["search", "--set", "alpha=-1", "--out", str(t / "s")],
     "alpha=-1 must be"),
    ("search with a bad range",
     lambda t, m: ["search", "--space", "alpha=1:x", "--out", str(t / "s")],
     "--space alpha=1:x"),
    ("search --timeout -5", lambda t, m: ["search", "--timeout", "-5", "--out", str(t / "s")],
     "--timeout -5 must be a finite number > 0"),
    ("search --workers 100000",
     lambda t, m: ["search", "--workers", "100000", "--out", str(t / "s")],
     "--workers 100000 must be a whole number in 1..256"),
]

# argparse's own errors, of the command line's shape: (id, argv, words in the last line)
BAD_FLAGS = [
    ("unknown flag", ["train", "--alpah", "1e-3"],
     "unrecognized argument --alpah; did you mean --alpha?"),
    ("--epochs with --num-iters", ["train", "--epochs", "1", "--num-iters", "5"],
     "not allowed with"),
    ("unknown command", ["fit"], "invalid choice: 'fit'"),
    ("predict without images", ["predict", "--model", "m.npz"],
     "the following arguments are required"),
]


def one_line_error(argv, capsys):
    """The one line ``numpy-mlp ARGV`` prints on stderr; it must exit with status 2."""
    capsys.readouterr()
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("numpy-mlp: error: "), err
    return lines[0]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_naming_the_problem(case, tmp_path, monkeypatch, capsys):
    name, build, words = case
    monkeypatch.chdir(tmp_path)
    argv = build(tmp_path, monkeypatch)
    assert words in one_line_error(argv, capsys)
    assert not (tmp_path / "pwned").exists()  # no hostile code ran
    assert not os.path.exists("/tmp/numpy_mlp_abs")


@pytest.mark.parametrize("case", BAD_FLAGS, ids=[c[0] for c in BAD_FLAGS])
def test_bad_flag_is_refused_by_the_parser(case, capsys):
    name, argv, words = case
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and words in err.strip().splitlines()[-1]


def test_bad_download_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    argv = bad_download(tmp_path, monkeypatch)
    assert main(argv) == 2
    assert os.listdir(tmp_path / "fresh") == []


def test_debug_shows_the_traceback_and_without_it_there_is_none(tmp_path):
    argv = [sys.executable, "-m", "numpy_mlp", "train", "--data-dir", str(tmp_path / "nowhere"),
            "--offline", "--out", str(tmp_path / "run")]
    plain = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    debug = subprocess.run(argv + ["--out", str(tmp_path / "run2"), "--debug"], capture_output=True,
                           text=True, timeout=120)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines() == [plain.stderr.strip()]
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "DataError" in debug.stderr


def test_divergence_saves_the_best_parameters_so_far_and_names_the_step(tmp_path, capsys):
    folder = cifar(tmp_path)
    run = tmp_path / "run"
    argv = train(tmp_path, folder, "--alpha", "10", "--num-iters", "300", "--evals", "300",
                 "--schedule", "constant")
    assert main(argv) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line
    assert ("training diverged at step" in line and "smaller learning rate" in line
            and "--alpha 1" in line)
    step = int(line.split("diverged at step ")[1].split(":")[0])
    best = int(line.split("(step ")[1].split(",")[0])
    assert 1 <= best < step < 300
    # the best parameters so far are a working model file,
    # and the history up to the divergence is kept
    with np.load(run / "model.npz") as f:
        assert all(np.isfinite(f[k]).all() for k in f.files if k != "meta")
    assert len((run / "history.csv").read_text().splitlines()) == step  # header + steps 1..step-1
    assert not (run / CHECKPOINT_NAME).exists()
    assert main(["evaluate", "--model", str(run / "model.npz"), "--data-dir", str(folder),
                 "--offline", "-q"]) == 0


def test_divergence_before_any_evaluation_saves_the_initial_weights(tmp_path, capsys):
    argv = train(tmp_path, cifar(tmp_path), "--alpha", "1e4", "--num-iters", "300", "--evals", "1")
    assert main(argv) == 2
    line = capsys.readouterr().err.strip()
    assert "step 0, the initial weights" in line
    from numpy_mlp import TrainConfig
    from numpy_mlp.training.loop import initial_params
    from numpy_mlp.training.model_file import load_model
    saved = load_model(tmp_path / "run" / "model.npz")
    assert saved.config["alpha"] == 1e4 and TrainConfig.from_dict(saved.config).seed == 0
    init = initial_params(TrainConfig.from_dict(saved.config), 3072, 10)
    for k, v in saved.model.params.items():
        np.testing.assert_array_equal(v, init[k])


def test_table_size():
    """docs/reliability.md's bad-input table quotes these counts; keep them in step."""
    assert (len(BAD_INPUTS), len(BAD_FLAGS)) == (80, 4)


def test_a_run_stopped_by_bad_input_can_be_rerun_into_the_same_folder(tmp_path, capsys):
    """A missing data folder leaves only config.json/train.log.

    The corrected command may reuse --out.
    """
    from fixtures_cifar import write_cifar_dir

    from numpy_mlp.cli.commands import main

    out = tmp_path / "run"
    assert main(["train", "--data-dir", str(tmp_path / "nowhere"), "--offline",
                 "--out", str(out)]) == 2
    data = tmp_path / "data"
    write_cifar_dir(data)
    assert main(["train", "--data-dir", str(data), "--val-size", "20", "--batch-size", "10",
                 "--num-iters", "3", "--hidden-dim", "8", "--threads", "1", "--out", str(out),
                 "-q"]) == 0
    assert (out / "model.npz").is_file()
    # ...but a finished run is never written over
    assert main(["train", "--data-dir", str(data), "--val-size", "20", "--batch-size", "10",
                 "--num-iters", "3", "--hidden-dim", "8", "--threads", "1", "--out", str(out),
                 "-q"]) == 2
    assert "already holds a run" in capsys.readouterr().err


# =====================================================================================
# Loader inputs: hostile data files, downloads and folders, through the CLI.
# A table of its own, so that BAD_INPUTS and its count above stay as they are.
# =====================================================================================


def _no_network(monkeypatch):
    def urlopen(url, timeout):
        raise AssertionError("the network was used")

    monkeypatch.setattr(download.urllib.request, "urlopen", urlopen)


def _missing_parent(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    args = train(tmp_path, tmp_path / "gone" / "deeper" / "cifar")
    args.remove("--offline")
    return args


def _announces_a_terabyte(tmp_path, monkeypatch):
    class Response(io.BytesIO):
        headers = {"Content-Length": str(10**12)}

    monkeypatch.setattr(download.urllib.request, "urlopen", lambda url, timeout: Response(b"x"))
    args = train(tmp_path, tmp_path / "fresh")
    args.remove("--offline")
    return args


def _with_meta(tmp_path, names):
    folder = cifar(tmp_path)
    (folder / "batches.meta").write_bytes(dumps({b"label_names": names}, "py3"))
    return train(tmp_path, folder)


def _object_array():
    from numpy._core.multiarray import _reconstruct

    class Array:
        def __reduce__(self):
            return _reconstruct, (np.ndarray, (0,), b"b"), (1, (10**6,), np.dtype("O"), False, [1])

    return pickle.dumps({b"data": Array(), b"labels": [0]}, protocol=4)


def _labels_bomb():
    level = [0] * 10
    for _ in range(9):
        level = [level] * 10  # 10**10 labels in a few hundred bytes
    X = np.zeros((20, 3072), np.uint8)
    return dumps({b"data": X, b"labels": [level] * 20}, "py3")


LOADER_INPUTS = [
    ("data folder whose parent is missing", _missing_parent, "parent folder"),
    ("download announcing a terabyte", _announces_a_terabyte, "announces 1,000,000,000,000"),
    ("class names of a megabyte", lambda t, m: _with_meta(t, [b"x" * 10**6] * 10),
     "batches.meta is larger than"),
    ("eleven class names", lambda t, m: _with_meta(t, [b"cat"] * 11), "10 'label_names'"),
    ("a class name with a newline", lambda t, m: _with_meta(t, [b"cat"] * 9 + [b"a\nb"]),
     "control character"),
    ("labels: 10**10 in nested lists", lambda t, m: with_batch(t, _labels_bomb()),
     "'labels' must be 20 integers"),
    ("an object array (crashed NumPy)", lambda t, m: with_batch(t, _object_array()),
     "refused to unpickle an array of dtype '|O'"),
    ("a tuple-keyed dict",
     lambda t, m: with_batch(t, b"\x80\x04}" + b")" + b"\x85" * 50 + b"K\x01s."), "dict key"),
]


@pytest.mark.parametrize("case", LOADER_INPUTS, ids=[c[0] for c in LOADER_INPUTS])
def test_loader_input_is_one_line_and_creates_nothing(case, tmp_path, monkeypatch, capsys):
    name, build, words = case
    monkeypatch.chdir(tmp_path)
    argv = build(tmp_path, monkeypatch)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert words in one_line_error(argv, capsys)
    assert not (tmp_path / "gone").exists()  # no folder tree for a download
    assert not (tmp_path / "fresh").exists() or os.listdir(tmp_path / "fresh") == []
    assert set(before) <= {p.name for p in tmp_path.iterdir()}
