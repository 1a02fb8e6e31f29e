"""The Python API's model files: ``numpy_mlp.save_model`` writes what ``train()`` returns as
the command line's model.npz, ``numpy_mlp.load_model`` reads either back and predicts, and
a model is described in the same words by its run's metrics.json and by ``evaluate``.

Real runs on fixture data (``tests/fixtures_cifar.py``) through the real command line.
"""

import html
import json

import numpy as np
import pytest
from fixtures_cifar import write_cifar_dir

import numpy_mlp
from numpy_mlp.cli.commands import main
from numpy_mlp.errors import UserError

TINY = ["--hidden-dim", "16", "--num-iters", "6", "--batch-size", "16", "--val-size", "20",
        "--evals", "2"]


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    folder = tmp_path_factory.mktemp("save_load") / "cifar"
    write_cifar_dir(folder, n_per_batch=20, n_test=40)
    return folder


def _evaluate(capsys, model, cifar):
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--data-dir", str(cifar), "--offline",
                 "--no-pictures"]) == 0
    return capsys.readouterr().out


def _test_accuracy(out):
    return float(next(line for line in out.splitlines() if "test accuracy:" in line).split()[-1])


def test_a_model_trained_in_python_is_saved_and_evaluated_by_the_cli(tmp_path, cifar, capsys):
    data = numpy_mlp.load_cifar10(cifar, val_size=20, download=False)
    config = numpy_mlp.TrainConfig(hidden_dim=(16,), num_iters=6, batch_size=16, val_size=20,
                                   evals=2)
    result = numpy_mlp.train(config, data)
    path = numpy_mlp.save_model(result, tmp_path / "model.npz")
    assert path == tmp_path / "model.npz" and path.is_file()

    out = _evaluate(capsys, path, cifar)
    pred = result.model.predict(result.preprocessor(data.X_test))
    assert _test_accuracy(out) == pytest.approx(np.mean(pred == data.y_test), abs=5e-5)
    # read back in Python: the same predictions, the same config
    saved = numpy_mlp.load_model(path)
    assert np.array_equal(saved.predict(data.X_test), pred)
    assert saved.config == config.to_dict() and saved.class_names == data.class_names


def test_a_cli_run_loads_in_python_and_predicts_as_evaluate_counts(tmp_path, cifar, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data-dir", str(cifar), "--offline", "--out", str(run), *TINY,
                 "--quiet"]) == 0
    out = _evaluate(capsys, run / "model.npz", cifar)
    data = numpy_mlp.load_cifar10(cifar, val_size=20, download=False)
    for where in (run, run / "model.npz"):  # a run folder or its file
        saved = numpy_mlp.load_model(where)
        pred = saved.predict(data.X_test)  # uint8 images (N, D), prepared as in training
        assert pred.shape == (len(data.X_test),)
        assert _test_accuracy(out) == pytest.approx(np.mean(pred == data.y_test), abs=5e-5)
        probs = saved.predict_proba(data.X_test)
        assert probs.shape == (len(data.X_test), 10)
        assert np.allclose(probs.sum(axis=1), 1) and np.array_equal(probs.argmax(axis=1), pred)
    # and saved again from Python, it is still the same model for the CLI
    again = numpy_mlp.save_model(saved, tmp_path / "again.npz")
    assert _test_accuracy(_evaluate(capsys, again, cifar)) == _test_accuracy(out)


def test_save_and_load_refuse_what_they_cannot_use_in_one_line(tmp_path, cifar):
    with pytest.raises(UserError, match="save_model takes what train"):
        numpy_mlp.save_model(numpy_mlp.FullyConnectedNet(hidden_dim=4), tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()
    run = tmp_path / "run"
    assert main(["train", "--data-dir", str(cifar), "--offline", "--out", str(run), *TINY,
                 "--quiet"]) == 0
    saved = numpy_mlp.load_model(run)
    for shape in [(2, 32, 3, 32), (32, 32, 3), (2, 3071), (2, 3, 1024)]:  # no layout of 3x32x32
        with pytest.raises(UserError, match=r"rows \(N, 3072\).*channel-first, or images "
                                            r"\(N, 32, 32, 3\) or \(N, 3, 32, 32\)"):
            saved.predict(np.zeros(shape, np.uint8))
    with pytest.raises(UserError, match=r"shape \(32, 32, 3\); for one image pass X\[None\]"):
        saved.predict(np.zeros((32, 32, 3), np.uint8))
    assert saved.predict(np.zeros((32, 32, 3), np.uint8)[None]).shape == (1,)


def test_predict_takes_images_pixels_last_or_channel_first_as_the_same_rows(tmp_path, cifar):
    run = tmp_path / "run"
    assert main(["train", "--data-dir", str(cifar), "--offline", "--out", str(run), *TINY,
                 "--quiet"]) == 0
    saved = numpy_mlp.load_model(run)
    rows = numpy_mlp.load_cifar10(cifar, val_size=20, download=False).X_test  # (N, 3072)
    chw = rows.reshape(-1, 3, 32, 32)
    hwc = chw.transpose(0, 2, 3, 1).copy()  # as numpy.asarray(PIL image) stacked
    want = saved.predict_proba(rows)
    np.testing.assert_array_equal(saved.predict_proba(hwc), want)
    np.testing.assert_array_equal(saved.predict_proba(chw), want)
    np.testing.assert_array_equal(saved.predict(hwc), saved.predict(rows))
    # the same pixels flattened height x width x channel are rows too: 2-D cannot show its
    # layout, and they get other answers (why the docs and the ONNX model state the layout)
    assert not np.allclose(saved.predict_proba(hwc.reshape(len(hwc), -1)), want)


def test_geometry_as_rows_converts_only_what_its_shape_tells():
    from numpy_mlp.data.dataset import Geometry

    rgb, grey = Geometry(3, 2, 4), Geometry(1, 2, 4)
    chw = np.arange(2 * 24).reshape(2, 3, 2, 4)
    rows = chw.reshape(2, 24)
    np.testing.assert_array_equal(rgb.as_rows(chw.transpose(0, 2, 3, 1)), rows)
    np.testing.assert_array_equal(rgb.as_rows(chw), rows)
    assert rgb.as_rows(rows) is rows
    assert rgb.as_rows(chw[:, 0]) is None  # (N, H, W) only for one channel
    np.testing.assert_array_equal(grey.as_rows(chw[:, 0]), chw[:, 0].reshape(2, 8))
    np.testing.assert_array_equal(grey.as_rows(chw[:, :1].transpose(0, 2, 3, 1)),
                                  chw[:, 0].reshape(2, 8))
    assert Geometry(3, 3, 3).as_rows(np.zeros((2, 3, 3, 3))) is None  # either layout: refused
    assert Geometry(3, 3, 3).as_rows(np.zeros((2, 27))) is not None
    assert Geometry.features(24).as_rows(chw) is None  # features are rows only


def test_a_whitened_model_has_one_description_in_metrics_and_evaluate(tmp_path, cifar, capsys):
    run = tmp_path / "white"
    assert main(["train", "--data-dir", str(cifar), "--offline", "--out", str(run), *TINY,
                 "--preprocessing", "whiten", "--whiten-dim", "12", "--quiet"]) == 0
    described = json.loads((run / "metrics.json").read_text())["model"]
    # the images' 3072 values, whitened to 12 components, then the trained net's own
    # parameters: W1 12 x 16, b1 16, W2 16 x 10, b2 10
    assert "3072 -> whiten 12 -> 16 -> 10" in described
    assert f"params={12 * 16 + 16 + 16 * 10 + 10:,}" in described
    line = next(x for x in _evaluate(capsys, run, cifar).splitlines() if x.startswith("model:"))
    assert line == f"model: {described}"
    assert html.escape(described) in (run / "report.html").read_text()
    # the file holds the whitening folded into a 3072-wide W1; its description is the same
    assert numpy_mlp.load_model(run).model.input_dim == 3072
    assert numpy_mlp.load_model(run).description == described
