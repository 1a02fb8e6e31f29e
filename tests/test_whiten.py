"""``--preprocessing whiten``: PCA whitening of the per_channel images to K components.

Checked against the plain formulas in float64: the components are uncorrelated with the
variances the eigenvalue floor gives, the training path and the folded evaluation path
compute the same first layer, a model file holds the per_channel model it equals, and a
crashed whitened run resumes bit for bit.
"""

import json

import numpy as np
import pytest
from test_checkpoint import Crash, assert_same_run, crash_after

from numpy_mlp import TrainConfig
from numpy_mlp.data import preprocessing
from numpy_mlp.data.dataset import Dataset, Geometry
from numpy_mlp.data.preprocessing import Preprocessor, channel_stats, preprocess, whitening
from numpy_mlp.errors import CheckpointError, ConfigError, ModelFileError
from numpy_mlp.nn.rules import flag_spelling, spelled_as
from numpy_mlp.runs.train import train_with_checkpoints
from numpy_mlp.training.checkpoint_file import CHECKPOINT_NAME, read_checkpoint
from numpy_mlp.training.inference import probabilities
from numpy_mlp.training.loop import train
from numpy_mlp.training.model_file import load_model, write_model_file

GEOMETRY = Geometry(3, 8, 8)  # D = 192: an eigendecomposition in milliseconds
D = GEOMETRY.D


def images(n, seed=0, classes=4):
    """Correlated uint8 images (n, D): a smooth class pattern, a random low-rank part, noise;
    and their labels."""
    fixed = np.random.default_rng(99)  # the same classes in every split
    basis = fixed.normal(0, 1, (12, D)).cumsum(axis=1) / 4  # neighbouring values correlate
    centres = fixed.integers(60, 196, (classes, D))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    X = centres[y] + rng.normal(0, 20, (n, 12)) @ basis + rng.normal(0, 8, (n, D))
    return np.clip(X, 0, 255).astype(np.uint8), y


def small_data(n_train=400, n_val=100, seed=0):
    (Xtr, ytr), (Xva, yva), (Xte, yte) = (images(n, seed + i) for i, n in
                                          enumerate((n_train, n_val, n_val)))
    return Dataset(Xtr, ytr, Xva, yva, Xte, yte, ("a", "b", "c", "d"), "synthetic",
                   geometry=GEOMETRY, name="folder")


CONFIG = TrainConfig(dataset="folder", image_size=8, hidden_dim=(24,), batch_size=16,
                     num_iters=60, evals=6, flip=True, crop_pad=1, preprocessing="whiten",
                     whiten_dim=20, alpha=2e-2, eval_train_size=50, checkpoint_every=7,
                     threads=1)


def per_channel64(X, stats):
    return preprocess(X, "per_channel", stats, dtype=np.float64)


def test_the_components_are_uncorrelated_with_the_floored_variances():
    X, _ = images(3000)
    stats = channel_stats(X)
    center, proj = whitening(X, stats, 40, 3.0)
    x = per_channel64(X, stats)
    lam = np.linalg.eigvalsh(np.cov(x, rowvar=False, bias=True))[::-1]  # descending
    Z = (x - center) @ proj  # (N, 40)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-9)
    cov = Z.T @ Z / len(Z)
    expected = lam[:40] / (lam[:40] + 3.0 * lam.mean())
    np.testing.assert_allclose(np.diag(cov), expected, rtol=1e-8)
    np.testing.assert_allclose(cov - np.diag(np.diag(cov)), 0, atol=1e-8)
    assert 0.9 < expected[0] < 1 and expected[-1] < expected[0]  # the floor damps the small ones


def test_the_whitening_is_the_same_bits_however_the_images_are_chunked():
    X, _ = images(500)
    stats = channel_stats(X)
    a, b = whitening(X, stats, 16, 3.0, chunk=7), whitening(X, stats, 16, 3.0, chunk=2048)
    assert all(u.tobytes() == v.tobytes() for u, v in zip(a, b))


def test_more_components_than_values_is_one_line_naming_the_setting():
    X, _ = images(50)
    with pytest.raises(ConfigError, match=r"whiten_dim=193 is more than the 192 values.*"
                                          r"use whiten_dim=192 or fewer") as e:
        whitening(X, channel_stats(X), 193, 3.0)
    assert "\n" not in str(e.value)
    with spelled_as(flag_spelling), pytest.raises(ConfigError, match="--whiten-dim 192 or fewer"):
        whitening(X, channel_stats(X), 193, 3.0)  # as numpy-mlp train says it
    with pytest.raises(ConfigError, match="whiten_dim=500"):
        train(CONFIG.replace(whiten_dim=500), small_data())


# H = 5: one (D, H) product is less work than the projection and then W (K*(D + H) >= D*H);
# H = 200: the projection and then W is (Preprocessor.folded)
@pytest.mark.parametrize("H", [5, 200])
def test_the_training_path_and_the_folded_evaluation_path_agree(H):
    X, _ = images(300)
    prep = Preprocessor.fit("whiten", X, np.float32, whiten_dim=24, whiten_eps=0.5)
    stats = channel_stats(X)
    center, proj = whitening(X, stats, 24, 0.5)
    out = prep(X)
    assert out.shape == (300, 24) and out.dtype == np.float32 and prep.output_dim(D) == 24
    np.testing.assert_allclose(out, (per_channel64(X, stats) - center) @ proj, atol=2e-4)
    W = np.random.default_rng(1).normal(0, 0.2, (24, H)).astype(np.float32)
    b = np.arange(H, dtype=np.float32)
    buf = np.empty((300, D), np.float32)
    got = prep.folded(W, b)(X, buf)
    assert got.shape == (300, H) and got.dtype == np.float32
    np.testing.assert_allclose(got, out @ W + b, rtol=1e-4, atol=1e-4)
    again = Preprocessor.from_dict(json.loads(json.dumps(prep.to_dict())), np.float32,
                                   prep.arrays())
    assert again(X).tobytes() == out.tobytes()


def test_a_whitened_model_file_holds_the_per_channel_model_it_equals(tmp_path):
    data = small_data()
    # without flips and crops, which these class patterns do not survive
    result = train(CONFIG.replace(checkpoint_every=None, flip=False, crop_pad=0), data)
    assert result.model.input_dim == 20 and result.best_val_acc > 0.8  # chance is 0.25
    write_model_file(tmp_path / "m.npz", result.model, result.preprocessor, class_names="abcd",
                     geometry=GEOMETRY)
    saved = load_model(tmp_path / "m.npz")
    assert saved.model.input_dim == D and saved.preprocessor.mode == "per_channel"
    np.testing.assert_allclose(
        probabilities(saved.model, saved.preprocessor, data.X_test, geometry=GEOMETRY),
        probabilities(result.model, result.preprocessor, data.X_test, geometry=GEOMETRY),
        atol=1e-5)


def test_a_whitened_model_computed_in_float64_gives_its_float32_answers():
    # inference in another dtype (the scikit-learn estimator's float64) folds the whitening
    # into the first layer anew, from the preprocessor's own arrays
    data = small_data()
    result = train(CONFIG.replace(checkpoint_every=None, num_iters=20), data)
    as_trained = probabilities(result.model, result.preprocessor, data.X_test)
    in64 = probabilities(result.model, result.preprocessor, data.X_test, dtype=np.float64)
    np.testing.assert_allclose(in64, as_trained, atol=1e-5)
    assert np.abs(in64 - as_trained).max() > 0  # computed in float64, not float32


def test_a_model_file_that_claims_whitening_is_refused(tmp_path):
    data = small_data()
    result = train(CONFIG.replace(checkpoint_every=None, num_iters=5), data)
    path = tmp_path / "m.npz"
    write_model_file(path, result.model, result.preprocessor, class_names="abcd", geometry=GEOMETRY)
    arrays = dict(np.load(path))
    meta = json.loads(str(arrays["meta"]))
    meta["preprocessing"]["mode"] = "whiten"
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="meta.preprocessing.mode") as e:
        load_model(path)
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    result = train_with_checkpoints(CONFIG, small_data(), out)
    return result, read_checkpoint(out / CHECKPOINT_NAME)


@pytest.mark.parametrize("step", [1, 7, 30, 59])
def test_a_crashed_whitened_run_resumes_bit_for_bit(step, reference, tmp_path, monkeypatch):
    crash_after(monkeypatch, step)
    with pytest.raises(Crash):
        train_with_checkpoints(CONFIG, small_data(), tmp_path)
    result = train_with_checkpoints(CONFIG, small_data(), tmp_path, resume=True)
    assert_same_run(reference, (result, read_checkpoint(tmp_path / CHECKPOINT_NAME)))
    _, arrays = reference[1]
    assert arrays["whiten/proj"].shape == (D, 20) and arrays["param/W1"].shape == (20, 24)


def test_a_resumed_run_takes_its_whitening_from_the_checkpoint(reference, tmp_path,
                                                               monkeypatch):
    crash_after(monkeypatch, 30)
    with pytest.raises(Crash):
        train_with_checkpoints(CONFIG, small_data(), tmp_path)

    def refit(*args, **kwargs):
        raise AssertionError("the whitening was fitted again")

    monkeypatch.setattr(preprocessing, "whitening", refit)
    result = train_with_checkpoints(CONFIG, small_data(), tmp_path, resume=True)
    assert_same_run(reference, (result, read_checkpoint(tmp_path / CHECKPOINT_NAME)))


def test_a_checkpoint_without_its_whitening_is_refused(tmp_path, monkeypatch):
    crash_after(monkeypatch, 7)
    with pytest.raises(Crash):
        train_with_checkpoints(CONFIG, small_data(), tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    arrays = dict(np.load(path))
    del arrays["whiten/proj"]
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=r"missing \['whiten/proj'\]") as e:
        read_checkpoint(path)
    assert "\n" not in str(e.value)
