"""ONNX export: the exported graph, run in onnxruntime, gives our probabilities.

"Ours" is the package's own path, as ``numpy-mlp predict`` takes it: the saved model's
forward pass on its Preprocessor's output, then softmax. The exported file must agree to
1e-5 on 1,000 real CIFAR-10 test images for the two-layer net and a deeper one, in both
preprocessing modes, and pass onnx's checker. The onnxruntime example of docs/onnx.md, run
as it stands there on a real CIFAR-10 image, must give ``numpy-mlp predict``'s class.
"""

import contextlib
import functools
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fixtures_cifar import write_cifar_dir
from synthetic_data import synthetic
from test_bad_inputs import TINY  # a finished run in a few steps, quiet, offline

from numpy_mlp.cli.commands import main
from numpy_mlp.data.cifar10 import CLASS_NAMES, load_cifar10
from numpy_mlp.data.dataset import ROW_LAYOUT
from numpy_mlp.nn.losses import softmax
from numpy_mlp.onnx_export import (
    CLASS_NAMES_KEY,
    INPUT_NAME,
    LAYOUT,
    LAYOUT_KEY,
    OUTPUT_NAME,
    SHAPE_KEY,
    export_onnx,
)
from numpy_mlp.training.config import TrainConfig
from numpy_mlp.training.loop import train
from numpy_mlp.training.model_file import load_model, write_model_file

DOC = Path(__file__).resolve().parents[1] / "docs/onnx.md"


def save_run(folder, config, data):
    """Train ``config`` on ``data`` and save its model.npz in ``folder`` as a run does."""
    r = train(config, data)
    folder.mkdir(parents=True, exist_ok=True)
    write_model_file(folder / "model.npz", r.model, r.preprocessor,
                     class_names=data.class_names, config=config.to_dict(), geometry=data.geometry)


def ours(model_file, X):
    """Our probabilities (N, C) for uint8 images X (N, D), as ``numpy-mlp predict`` has them."""
    saved = load_model(model_file)
    return softmax(saved.model.scores(saved.preprocessor(X)))


def run_onnx(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: X})[0]


@functools.lru_cache(maxsize=1)
def real_cifar(folder):
    """CIFAR-10 read once for the four real-data cases (released after this module)."""
    return load_cifar10(folder, val_size=1000, download=False, progress=False)


@pytest.fixture(scope="module", autouse=True)
def _release_real_cifar():
    yield
    real_cifar.cache_clear()


@pytest.mark.slow
@pytest.mark.parametrize("hidden, dropout", [((100,), 0.0), ((64, 32), 0.1)],
                         ids=["2-layer", "64-32"])
@pytest.mark.parametrize("mode", ["per_image", "per_channel"])
def test_exported_probabilities_match_ours_on_1000_real_test_images(cifar_dir, tmp_path, hidden,
                                                                     dropout, mode):
    data = real_cifar(cifar_dir)
    config = TrainConfig(hidden_dim=hidden, dropout=dropout, preprocessing=mode, num_iters=60,
                         batch_size=64, alpha=5e-3, val_size=1000, eval_train_size=500, evals=1,
                         threads=1)
    save_run(tmp_path / "run", config, data)
    path = export_onnx(tmp_path / "run", tmp_path / "model.onnx")

    exported = onnx.load(path)
    onnx.checker.check_model(exported, full_check=True)
    ops = [n.op_type for n in exported.graph.node]
    assert ops[0] == "Cast" and ops[-1] == "Softmax"
    assert ops.count("Gemm") == len(hidden) + 1 and ops.count("Relu") == len(hidden)
    assert "Dropout" not in ops  # identity at inference

    X = data.X_test[:1000]  # (1000, 3072) uint8, as stored
    got, want = run_onnx(path, X), ours(tmp_path / "run/model.npz", X)
    assert got.dtype == np.float32 and got.shape == (1000, 10)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    print(f"largest difference {np.abs(got - want).max():.2g}")
    assert np.ptp(want.max(axis=1)) > 0.1  # the images get different answers: the check can fail
    assert (got.argmax(axis=1) == want.argmax(axis=1)).mean() > 0.99


@pytest.mark.parametrize("dtype, atol", [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("mode", ["per_image", "per_channel"])
def test_constant_and_extreme_images_and_float64_models(tmp_path, mode, dtype, atol):
    data = synthetic()
    config = TrainConfig(hidden_dim=(16, 8), preprocessing=mode, dtype=dtype, num_iters=20,
                         batch_size=20, val_size=100, evals=1, threads=1)
    save_run(tmp_path, config, data)
    path = export_onnx(tmp_path / "model.npz", tmp_path / "model.onnx")
    # constant rows: per_image divides by eps, not by their zero std, as preprocess does
    extremes = np.stack([np.full(3072, v, np.uint8) for v in (0, 7, 255)] +
                        [np.tile(np.array([0, 255], np.uint8), 1536)])
    X = np.concatenate([data.X_test, extremes])
    got, want = run_onnx(path, X), ours(tmp_path / "model.npz", X)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny finished run folder, trained through the CLI on CIFAR-10 look-alike files."""
    tmp = tmp_path_factory.mktemp("onnx")
    write_cifar_dir(tmp / "data", "py3")
    assert main(["train", "--data-dir", str(tmp / "data"), "--out", str(tmp / "run"), *TINY]) == 0
    return tmp / "run"


def test_export_command_end_to_end(run_dir, tmp_path, capsys):
    path = tmp_path / "model.onnx"
    assert main(["export", str(run_dir), "--onnx", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {path}" in out and ROW_LAYOUT in out

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, inp.shape) == (INPUT_NAME, "tensor(uint8)", ["N", 3072])
    assert (out.name, out.type, out.shape) == (OUTPUT_NAME, "tensor(float)", ["N", 10])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta[CLASS_NAMES_KEY]) == list(CLASS_NAMES)
    assert meta["preprocessing"] == TrainConfig().preprocessing
    # the layout, which the graph cannot check, is stated in the model itself
    assert meta[LAYOUT_KEY] == LAYOUT and json.loads(meta[SHAPE_KEY]) == [3, 32, 32]
    (doc,) = [i.doc_string for i in onnx.load(path).graph.input]
    assert doc.startswith("uint8 (N, 3072) = (N, C*H*W), C, H, W = 3, 32, 32") and ROW_LAYOUT in doc
    X = np.random.default_rng(0).integers(0, 256, (7, 3072), dtype=np.uint8)
    for n in (1, 7):  # the batch dimension is dynamic
        p = session.run(None, {INPUT_NAME: X[:n]})[0]
        assert p.shape == (n, 10)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)

    # the run folder and its model.npz name the same model; an existing .onnx is replaced
    again = tmp_path / "again.onnx"
    again.write_bytes(b"old")
    assert main(["export", str(run_dir / "model.npz"), "--onnx", str(again)]) == 0
    assert again.read_bytes() == path.read_bytes()


def bad_export(tmp_path, run_dir, case):
    """The arguments of ``numpy-mlp export`` for one bad input, and the words of its message."""
    onnx_file = str(tmp_path / "m.onnx")
    if case == "missing run":
        return ["export", str(tmp_path / "nope"), "--onnx", onnx_file], "does not exist"
    if case == "folder without a model":
        (tmp_path / "empty").mkdir()
        return ["export", str(tmp_path / "empty"), "--onnx", onnx_file], "has no model.npz"
    if case == "not a model file":
        (tmp_path / "notes.txt").write_text("hello")
        return ["export", str(tmp_path / "notes.txt"), "--onnx", onnx_file], "not a numpy-mlp model"
    if case == "FILE in a folder that is a file":
        (tmp_path / "plain").write_text("x")
        return ["export", str(run_dir), "--onnx", str(tmp_path / "plain/m.onnx")], "cannot write"
    if case == "FILE is a folder":
        return ["export", str(run_dir), "--onnx", str(tmp_path)], "is a folder"
    assert case == "FILE is the model itself"
    return ["export", str(run_dir), "--onnx", str(run_dir / "model.npz")], "not an .onnx file"


@pytest.mark.parametrize("case", ["missing run", "folder without a model", "not a model file",
                                  "FILE in a folder that is a file", "FILE is a folder",
                                  "FILE is the model itself"])
def test_bad_exports_are_one_line_and_lose_nothing(run_dir, tmp_path, capsys, case):
    model_bytes = (run_dir / "model.npz").read_bytes()
    argv, words = bad_export(tmp_path, run_dir, case)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("numpy-mlp: error: ") and err.count("\n") == 1, err
    assert words in err
    assert (run_dir / "model.npz").read_bytes() == model_bytes
    assert not (tmp_path / "m.onnx").exists()


def test_without_onnx_the_message_says_what_to_install(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    assert main(["export", str(run_dir), "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'numpy-mlp[onnx]'" in err, err
    assert not (tmp_path / "m.onnx").exists()


def test_the_package_imports_onnx_only_to_export():
    code = ("import sys, numpy_mlp, numpy_mlp.cli.commands, numpy_mlp.runs.train, "
            "numpy_mlp.runs.evaluate, numpy_mlp.onnx_export; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def doc_snippet():
    """The Python block of docs/onnx.md that runs an exported model in onnxruntime."""
    blocks = [b for b in re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.S | re.M)
              if "InferenceSession" in b]
    assert len(blocks) == 1, f"{DOC.name} should hold one onnxruntime example, not {len(blocks)}"
    return blocks[0]


@pytest.mark.slow
def test_the_docs_onnxruntime_example_gives_predicts_class_for_a_real_image(
        cifar_dir, tmp_path, monkeypatch, capsys):
    from PIL import Image

    data = real_cifar(cifar_dir)
    config = TrainConfig(hidden_dim=(64,), num_iters=150, batch_size=64, alpha=5e-3,
                         val_size=1000, eval_train_size=500, evals=1, threads=1)
    save_run(tmp_path / "run", config, data)
    frog = data.X_test[data.y_test == CLASS_NAMES.index("frog")][0]  # (3072,) as stored
    monkeypatch.chdir(tmp_path)  # the names the docs use: first.onnx, frog.png
    Image.fromarray(frog.reshape(3, 32, 32).transpose(1, 2, 0)).save("frog.png")
    assert main(["export", "run", "--onnx", "first.onnx"]) == 0
    capsys.readouterr()  # (export's line)
    assert main(["predict", "--model", "run", "frog.png", "--format", "json"]) == 0
    ((want_class, want_p),) = [(t["class"], t["probability"])
                               for t in json.loads(capsys.readouterr().out)[0]["top"][:1]]

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(doc_snippet(), str(DOC), "exec"), {})
    got_class, got_p = printed.getvalue().split()
    assert got_class == want_class and float(got_p) == pytest.approx(want_p, abs=6e-4)

    # the check can fail: the pixels-last row the docs warn about gets other probabilities
    session = ort.InferenceSession("first.onnx", providers=["CPUExecutionProvider"])
    wrong = session.run([OUTPUT_NAME], {INPUT_NAME: frog.reshape(3, 32, 32).transpose(1, 2, 0)
                                        .reshape(1, -1)})[0][0]
    assert abs(wrong[CLASS_NAMES.index(want_class)] - want_p) > 0.01, wrong
