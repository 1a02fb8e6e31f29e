"""Norms, GELU and residual blocks as model options (issue #16): gradients, batch norm's two
modes, the folded evaluation path, model files, checkpoints, ONNX, the CLI, bad settings."""

import numpy as np
import pytest
from synthetic_data import synthetic
from test_checkpoint import assert_same_run, crashed_and_resumed, finished_run

from numpy_mlp import FullyConnectedNet, TrainConfig
from numpy_mlp.data.preprocessing import Preprocessor
from numpy_mlp.errors import ConfigError
from numpy_mlp.nn.architecture import Architecture
from numpy_mlp.nn.gradient_check import numerical_gradient, rel_error
from numpy_mlp.nn.layers import layernorm_forward
from numpy_mlp.nn.losses import softmax
from numpy_mlp.nn.optim import SGD
from numpy_mlp.training.inference import predict_labels, probabilities
from numpy_mlp.training.model_file import load_model, write_model_file

# every architecture option, on the widths hidden (a plain stack) or one width (blocks)
ARCHS = {
    "plain+layer": dict(hidden_dim=(5, 4), norm="layer"),
    "plain+batch": dict(hidden_dim=(5, 4), norm="batch"),
    "gelu": dict(hidden_dim=(5, 4), activation="gelu"),
    "gelu+batch": dict(hidden_dim=(5, 4), activation="gelu", norm="batch"),
    "residual": dict(hidden_dim=5, blocks=2, expansion=2),
    "residual+layer": dict(hidden_dim=5, blocks=2, expansion=2, norm="layer"),
    "residual+batch": dict(hidden_dim=5, blocks=2, expansion=2, norm="batch"),
    "residual+batch+gelu": dict(hidden_dim=5, blocks=2, expansion=2, norm="batch",
                                activation="gelu"),
}


def tiny_batch(N=6, D=7, C=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, D)), rng.integers(0, C, N)


def jittered(model, seed=4):
    """The model with every parameter moved off its initial value (gammas off 1, biases and
    betas off 0), so that every gradient is exercised."""
    rng = np.random.default_rng(seed)
    for v in model.params.values():
        v += 0.3 * rng.standard_normal(v.shape)
    return model


# ------------------------------------------------------------------ gradients


def assert_gradient(name, analytic, numeric):
    """Relative error below 1e-6; or both zero (up to the differences' rounding), as for a
    bias whose every path goes into batch norm, which subtracts it again with the mean."""
    if np.abs(numeric).max() < 1e-8:
        assert np.abs(analytic).max() < 1e-12, name
    else:
        assert rel_error(analytic, numeric) < 1e-6, (name, rel_error(analytic, numeric))


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_whole_model_gradients_match_finite_differences(name):
    X, y = tiny_batch()
    model = jittered(FullyConnectedNet(7, num_classes=3, reg=0.3, dtype=np.float64, seed=3,
                                       **ARCHS[name]))
    _, grads = model.loss(X, y)
    grads = {k: g.copy() for k, g in grads.items()}
    assert set(grads) == set(model.params)
    if model.norm != "none":
        assert any(k.startswith("gamma") for k in grads) and any(k.startswith("beta")
                                                                 for k in grads)
    for k, p in model.params.items():
        assert_gradient(k, grads[k], numerical_gradient(lambda: model.loss(X, y)[0], p))


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_float32_stays_float32_through_every_layer(name):
    """A float64 scalar constant (NumPy 2 promotes by it) would double the cost silently."""
    X, y = tiny_batch()
    model = FullyConnectedNet(7, num_classes=3, dropout=0.2, seed=0, **ARCHS[name])
    scores, cache = model.forward(X.astype(np.float32))
    assert scores.dtype == np.float32
    model.backward(np.ones_like(scores), cache)
    assert all(g.dtype == np.float32 for g in model.grads.values())
    assert model.forward_after_first(X.astype(np.float32) @ model.params["W1"]).dtype == np.float32
    assert all(v.dtype == np.float32 for v in model.buffers.values())


def test_residual_gradients_with_dropout_for_a_fixed_mask():
    """Dropout on the blocks' expanded hidden: the same mask each time (the generator reset)."""
    X, y = tiny_batch()
    model = jittered(FullyConnectedNet(7, 5, 3, blocks=2, expansion=2, norm="batch", dropout=0.4,
                                       dtype=np.float64, seed=3))

    def loss():
        model.rng = np.random.default_rng(9)
        return model.loss(X, y)[0]

    loss()
    grads = {k: g.copy() for k, g in model.grads.items()}
    for k, p in model.params.items():
        assert_gradient(k, grads[k], numerical_gradient(loss, p))
    model.rng = np.random.default_rng(9)
    with_drop, _ = model.forward(X, train=True)
    assert not np.allclose(with_drop, model.forward(X, train=False)[0])  # dropout is on


def test_l2_covers_the_weight_matrices_only():
    model = jittered(FullyConnectedNet(7, 5, 3, blocks=2, expansion=2, norm="layer", reg=0.5,
                                       dtype=np.float64, seed=0))
    want = 0.5 * 0.5 * sum(np.sum(model.params[f"W{i}"] ** 2) for i in range(1, 7))
    assert model.num_layers == 6 and model.reg_loss() == pytest.approx(want, rel=1e-12)


# ------------------------------------------------------------------ batch norm's modes


def test_batch_norm_normalises_in_training_and_uses_running_statistics_in_evaluation():
    rng = np.random.default_rng(0)
    X = 3 + 2 * rng.standard_normal((64, 7))
    model = FullyConnectedNet(7, (5, 4), 3, norm="batch", dtype=np.float64, seed=1)
    assert sorted(model.buffers) == ["running_mean1", "running_mean2", "running_var1",
                                     "running_var2"]
    assert not set(model.buffers) & set(model.params)  # the optimizer never sees them
    model.forward(X, train=True)
    a1 = X @ model.params["W1"] + model.params["b1"]
    np.testing.assert_allclose(model.buffers["running_mean1"], 0.1 * a1.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.buffers["running_var1"], 0.9 + 0.1 * a1.var(axis=0),
                               rtol=1e-12)
    # evaluation: fixed statistics, nothing updated, and not the batch's own normalisation
    before = {k: v.copy() for k, v in model.buffers.items()}
    s1, _ = model.forward(X, train=False)
    s2, _ = model.forward(X[:3], train=False)
    np.testing.assert_allclose(s1[:3], s2, rtol=1e-12)  # per-row: batch-independent
    for k in before:
        np.testing.assert_array_equal(model.buffers[k], before[k])
    train_scores, _ = model.forward(X, train=True)
    assert not np.allclose(train_scores, s1)
    # many training passes on one batch: the running statistics reach its statistics, and
    # evaluation then gives what training does
    for _ in range(300):
        model.forward(X, train=True)
    np.testing.assert_allclose(model.buffers["running_mean1"], a1.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(model.forward(X, train=False)[0], model.forward(X)[0],
                               rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ the evaluation path


def trained_like(name, dtype=np.float64, D=3072, C=10):
    """A model of ``ARCHS[name]`` with moved parameters and running statistics."""
    kw = dict(ARCHS[name])
    model = jittered(FullyConnectedNet(D, num_classes=C, dtype=dtype, seed=2, **kw), seed=5)
    X = np.random.default_rng(7).standard_normal((40, D)) * 0.5
    for _ in range(5):  # running statistics away from (0, 1)
        model.forward(X, train=True)
    return model


@pytest.mark.parametrize("mode", ["per_image", "per_channel"])
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_folded_evaluation_path_equals_the_plain_forward(name, mode):
    data = synthetic(n_train=60, n_val=20)
    model = trained_like(name)
    prep = Preprocessor.fit(mode, data.X_train, model.dtype, channels=3)
    want = model.scores(prep(data.X_val))  # unfolded: batch norm with running statistics
    got = probabilities(model, prep, data.X_val)
    np.testing.assert_allclose(got, softmax(want), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(predict_labels(model, prep, data.X_val), want.argmax(axis=1))
    assert np.ptp(want) > 0.1  # the scores differ: the check can fail
    if model.norm == "batch":  # folded: no normalisation left, other weights
        params, norm = model.eval_params()
        assert norm == "none" and not any(k.startswith("gamma") for k in params)
        assert not np.array_equal(params["W2"], model.params["W2"])


# ------------------------------------------------------------------ model files


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_model_file_round_trip_keeps_params_buffers_and_predictions(name, tmp_path):
    data = synthetic(n_train=60, n_val=20)
    model = trained_like(name, dtype=np.float32)
    prep = Preprocessor.fit("per_channel", data.X_train, model.dtype, channels=3)
    write_model_file(tmp_path / "m.npz", model, prep, class_names=data.class_names,
                     geometry=data.geometry)
    back = load_model(tmp_path / "m.npz").model
    assert back.arch == model.arch
    assert sorted(back.params) == sorted(model.params)
    assert sorted(back.buffers) == sorted(model.buffers)
    for k in (*model.params, *model.buffers):
        a = model.params.get(k, model.buffers.get(k))
        b = back.params.get(k, back.buffers.get(k))
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), k
    np.testing.assert_array_equal(probabilities(back, prep, data.X_val),
                                  probabilities(model, prep, data.X_val))


def test_a_model_file_missing_its_buffers_is_refused(tmp_path):
    from numpy_mlp.errors import ModelFileError

    data = synthetic(n_train=60, n_val=20)
    model = trained_like("plain+batch", dtype=np.float32)
    prep = Preprocessor.fit("per_image", data.X_train, model.dtype, channels=3)
    model.buffers.clear()  # as if the saving forgot them
    write_model_file(tmp_path / "m.npz", model, prep, class_names=data.class_names,
                     geometry=data.geometry)
    with pytest.raises(ModelFileError, match="running_mean1") as e:
        load_model(tmp_path / "m.npz")
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------ checkpoints

RESUME = dict(batch_size=16, num_iters=30, evals=5, dropout=0.2, crop_pad=2, alpha=2e-2,
              eval_train_size=50, checkpoint_every=7, threads=1, preprocessing="per_channel")


@pytest.mark.parametrize("arch", [dict(hidden_dim=(12, 8), norm="batch"),
                                  dict(hidden_dim=(12,), blocks=2, expansion=2, norm="batch",
                                       activation="gelu"),
                                  dict(hidden_dim=(12,), blocks=1, norm="layer")],
                         ids=["plain+batch", "residual+batch+gelu", "residual+layer"])
def test_crash_and_resume_is_bit_for_bit_with_buffers(arch, tmp_path, monkeypatch):
    config = TrainConfig(**RESUME, **arch)
    data = synthetic(n_train=120, n_val=40)
    ref = finished_run(config, data, tmp_path / "ref")
    reference, arrays = ref[0], ref[1][1]
    if config.norm == "batch":  # the buffers are in it, the best ones too
        assert "buffer/running_mean1" in arrays and "best/running_var1" in arrays
        assert "m/running_mean1" not in arrays  # no momentum for them
        assert sorted(reference.model.buffers) == sorted(k[7:] for k in arrays
                                                         if k.startswith("buffer/"))
    result, checkpoint = crashed_and_resumed(config, data, tmp_path / "run", monkeypatch, 12)
    assert_same_run(ref, (result, checkpoint))
    for k, v in reference.model.buffers.items():  # the best step's running statistics
        assert v.tobytes() == result.model.buffers[k].tobytes(), k


# ------------------------------------------------------------------ defaults, bad settings


def test_defaults_are_the_plain_relu_stack_with_the_same_draws():
    model = FullyConnectedNet(11, (9, 6), 4, seed=5)
    rng = np.random.default_rng(5)
    for i, (fan_in, fan_out) in enumerate([(11, 9), (9, 6), (6, 4)], 1):
        W = (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in / 2.0)).astype(np.float32)
        assert model.params[f"W{i}"].tobytes() == W.tobytes()
    assert sorted(model.params) == ["W1", "W2", "W3", "b1", "b2", "b3"] and model.buffers == {}
    assert model.rng.bit_generator.state == rng.bit_generator.state  # no other draws
    c = TrainConfig()
    assert (c.norm, c.activation, c.blocks, c.expansion) == ("none", "relu", 0, 4)


def stream_std_ratio(model, X, scale_out=1.0):
    """std of the residual stream before the head over the stem's, at initialisation
    (W_out times ``scale_out``)."""
    p = model.params
    h = X @ p["W1"] + p["b1"]
    stem = h.std()
    for k in range(1, model.blocks + 1):
        u, _ = layernorm_forward(h, p[f"gamma{k}"], p[f"beta{k}"])
        a = np.maximum(u @ p[f"W{2 * k}"] + p[f"b{2 * k}"], 0)
        h = h + scale_out * (a @ p[f"W{2 * k + 1}"]) + p[f"b{2 * k + 1}"]
    return h.std() / stem


def test_residual_init_keeps_the_stream_bounded_as_blocks_grow():
    X = np.random.default_rng(0).standard_normal((500, 64))
    ratios = []
    for blocks in (1, 8, 32):
        model = FullyConnectedNet(64, 64, 10, blocks=blocks, norm="layer", seed=0,
                                  dtype=np.float64)
        ratios.append(stream_std_ratio(model, X))
        assert np.isfinite(model.forward(X, train=False)[0]).all()
    # each block adds about 1/B of variance to the stem's 2: sqrt(1.5) whatever B is
    assert all(1.1 < r < 1.4 for r in ratios), ratios
    # without the 1/sqrt(B) the stream of 32 blocks would grow about sqrt(1 + 32/2) times
    assert stream_std_ratio(model, X, scale_out=np.sqrt(32)) > 3


@pytest.mark.parametrize("kw, words", [
    (dict(hidden_dim=(8, 4), blocks=2), ["blocks=2", "hidden_dim=8,4"]),
    (dict(norm="group"), ["norm='group'", "none, layer, batch"]),
    (dict(activation="tanh"), ["activation='tanh'", "relu, gelu"]),
    (dict(blocks=65), ["blocks=65", "0..64"]),
    (dict(expansion=0), ["expansion=0", "1..16"]),
])
def test_bad_architecture_settings_are_one_line(kw, words):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kw)
    assert "\n" not in str(e.value) and all(w in str(e.value) for w in words), e.value
    hidden = kw.pop("hidden_dim", 5)
    with pytest.raises(ConfigError) as e:
        FullyConnectedNet(7, hidden, 3, **kw)
    assert "\n" not in str(e.value) and words[0] in str(e.value), e.value


def test_architecture_shapes_of_a_residual_net():
    arch = Architecture(3072, (256,), 10, norm="batch", blocks=3, expansion=4)
    shapes = arch.param_shapes()
    assert shapes["W1"] == (3072, 256) and shapes["W2"] == (256, 1024)
    assert shapes["W3"] == (1024, 256) and shapes["W8"] == (256, 10)
    assert sorted(k for k in shapes if k.startswith("gamma")) == ["gamma1", "gamma2", "gamma3",
                                                                  "gamma4"]
    assert len(arch.buffer_shapes()) == 8 and arch.num_affine == 8


# ------------------------------------------------------------------ a real-ish sanity


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_each_architecture_overfits_50_random_samples(name):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((50, 20)), rng.integers(0, 10, 50)
    kw = dict(ARCHS[name])
    kw["hidden_dim"] = 64 if "blocks" in kw else (64, 64)
    model = FullyConnectedNet(20, num_classes=10, seed=1, **kw)
    opt = SGD(model.params, alpha=0.05, beta=0.9)
    for _ in range(300):
        model.loss(X.astype(np.float32), y)
        opt.step(model.grads, alpha=0.05)
    assert (model.predict(X.astype(np.float32)) == y).mean() == 1.0


# ------------------------------------------------------------------ ONNX, the CLI


# float64: 1e-10, onnxruntime's LayerNormalization rounds otherwise than ours
@pytest.mark.parametrize("dtype, atol", [("float32", 1e-5), ("float64", 1e-10)])
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_every_architecture_exports_to_onnx_and_matches_ours(name, dtype, atol, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from numpy_mlp.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx

    data = synthetic(n_train=60, n_val=20)
    model = trained_like(name, dtype=np.dtype(dtype))
    prep = Preprocessor.fit("per_channel", data.X_train, model.dtype, channels=3)
    write_model_file(tmp_path / "m.npz", model, prep, class_names=data.class_names,
                     geometry=data.geometry)
    path = export_onnx(tmp_path / "m.npz", tmp_path / "m.onnx")
    exported = onnx.load(path)
    onnx.checker.check_model(exported, full_check=True)
    ops = [n.op_type for n in exported.graph.node]
    assert ops.count("Gemm") == model.num_layers
    assert ops.count("LayerNormalization") == (model.arch.num_norms if model.norm == "layer"
                                               else 0)  # batch norm: folded into the Gemms
    activations = model.blocks if model.arch.residual else model.num_layers - 1
    assert ops.count("Add") >= model.blocks
    assert ops.count("Tanh") == (0 if model.activation == "relu" else activations)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: data.X_val})[0]
    want = softmax(load_model(tmp_path / "m.npz").model.scores(prep(data.X_val)))
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)
    assert np.ptp(want.max(axis=1)) > 0.01  # the images get different answers


@pytest.mark.parametrize("flags", [["--norm", "batch", "--activation", "gelu",
                                    "--hidden-dim", "8,6"],
                                   ["--blocks", "2", "--expansion", "2", "--norm", "batch",
                                    "--hidden-dim", "8", "--dropout", "0.1"]],
                         ids=["plain", "residual"])
def test_train_evaluate_predict_export_through_the_cli(flags, tmp_path, capsys):
    pytest.importorskip("onnx")
    import json

    from fixtures_cifar import write_cifar_dir
    from PIL import Image

    from numpy_mlp.cli.commands import main

    write_cifar_dir(tmp_path / "data", "py3")
    run = tmp_path / "run"
    assert main(["train", "--data-dir", str(tmp_path / "data"), "--out", str(run),
                 "--batch-size", "10", "--num-iters", "12", "--val-size", "10",
                 "--checkpoint-every", "5", "--threads", "1", "--quiet", "--offline",
                 *flags]) == 0
    saved = load_model(run)
    config = json.loads((run / "config.json").read_text())
    for k in ("norm", "blocks", "expansion", "activation"):
        assert saved.config[k] == config[k] == getattr(saved.model, k)
    assert sorted(saved.model.buffers) == sorted(
        k for k in saved.model.arch.buffer_shapes()) and saved.model.buffers
    metrics = json.loads((run / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run), "--no-pictures", "--quiet"]) == 0
    assert f"{metrics['test_accuracy']:.4f}" in capsys.readouterr().out
    picture = tmp_path / "one.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(picture)
    assert main(["predict", "--model", str(run), str(picture)]) == 0
    shown = capsys.readouterr()
    assert any(c in shown.out for c in saved.class_names), shown
    assert main(["export", str(run), "--onnx", str(tmp_path / "m.onnx")]) == 0
