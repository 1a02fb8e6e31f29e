"""Normalisation layers, GELU, MixUp and CutMix: gradients by finite differences in float64.

Each backward is checked against the centred difference of a random linear function of
the forward's output, ``sum(out * w)``, whose gradient w.r.t. ``out`` is ``w``.
"""

import numpy as np
import pytest

from numpy_mlp.data.augment import cutmix, mixup, one_hot
from numpy_mlp.data.cifar10 import CIFAR10_GEOMETRY
from numpy_mlp.nn.gradient_check import numerical_gradient, rel_error
from numpy_mlp.nn.layers import (
    batchnorm_backward,
    batchnorm_forward,
    fold_batchnorm,
    gelu_backward,
    gelu_forward,
    layernorm_backward,
    layernorm_forward,
)

N, H = 5, 7


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def check(forward, backward, arrays, rng, tol=1e-7):
    """Compare backward's gradients with finite differences for every array in ``arrays``."""
    out, cache = forward()
    w = rng.standard_normal(out.shape)
    grads = backward(w, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for array, grad in zip(arrays, grads):
        num = numerical_gradient(lambda: float(np.sum(forward()[0] * w)), array)
        assert rel_error(grad, num) < tol


def test_layernorm_gradients(rng):
    x, gamma, beta = rng.standard_normal((N, H)), rng.standard_normal(H), rng.standard_normal(H)
    check(lambda: layernorm_forward(x, gamma, beta), layernorm_backward, (x, gamma, beta), rng)


def test_layernorm_normalises_each_row(rng):
    x = rng.standard_normal((N, H)) * 5 + 3
    out, _ = layernorm_forward(x, np.ones(H), np.zeros(H), eps=0.0)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=1), 1, atol=1e-12)


def test_batchnorm_gradients_in_training(rng):
    x, gamma, beta = rng.standard_normal((N, H)), rng.standard_normal(H), rng.standard_normal(H)

    def forward():
        running = {"mean": np.zeros(H), "var": np.ones(H)}  # fresh: the forward must be pure
        return batchnorm_forward(x, gamma, beta, running, train=True)
    check(forward, batchnorm_backward, (x, gamma, beta), rng)


def test_batchnorm_running_statistics_and_evaluation(rng):
    x = rng.standard_normal((64, H)) * 2 + 1
    running = {"mean": np.zeros(H), "var": np.ones(H)}
    batchnorm_forward(x, np.ones(H), np.zeros(H), running, train=True, momentum=0.5)
    np.testing.assert_allclose(running["mean"], 0.5 * x.mean(axis=0))
    np.testing.assert_allclose(running["var"], 0.5 + 0.5 * x.var(axis=0))
    before = {k: v.copy() for k, v in running.items()}
    out, cache = batchnorm_forward(x, np.ones(H), np.zeros(H), running, train=False)
    assert cache is None and all(np.array_equal(before[k], running[k]) for k in running)
    np.testing.assert_allclose(out, (x - running["mean"]) / np.sqrt(running["var"] + 1e-5))


def test_batchnorm_folds_exactly_into_the_affine_map_before_it(rng):
    x, W, b = rng.standard_normal((N, 4)), rng.standard_normal((4, H)), rng.standard_normal(H)
    gamma, beta = rng.standard_normal(H), rng.standard_normal(H)
    running = {"mean": rng.standard_normal(H), "var": rng.random(H) + 0.1}
    plain, _ = batchnorm_forward(x @ W + b, gamma, beta, running, train=False)
    Wf, bf = fold_batchnorm(W, b, gamma, beta, running)
    np.testing.assert_allclose(x @ Wf + bf, plain, rtol=1e-12, atol=1e-12)


def test_gelu_gradient_and_shape(rng):
    x = rng.standard_normal((N, H))  # where GELU' is far from 0: relative errors stay meaningful
    check(lambda: gelu_forward(x), gelu_backward, (x,), rng)
    out, _ = gelu_forward(np.array([-10.0, 0.0, 10.0]))
    np.testing.assert_allclose(out, [0.0, 0.0, 10.0], atol=1e-12)  # ~ReLU far from 0


def test_mixup_blends_images_and_targets_with_one_lambda(rng):
    X = rng.standard_normal((8, 6)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    Xm, T = mixup(X, y, 0.4, np.random.default_rng(1), 3)
    check_rng = np.random.default_rng(1)
    lam, perm = check_rng.beta(0.4, 0.4), check_rng.permutation(8)
    np.testing.assert_allclose(Xm, lam * X + (1 - lam) * X[perm], rtol=1e-6)
    np.testing.assert_allclose(T, lam * one_hot(y, 3) + (1 - lam) * one_hot(y[perm], 3), rtol=1e-6)
    np.testing.assert_allclose(T.sum(axis=1), 1, rtol=1e-6)


def test_cutmix_pastes_one_box_and_weights_labels_by_its_area(rng):
    X = rng.integers(0, 256, (16, 3072), dtype=np.uint8)
    y = np.arange(16) % 10
    Xm, T = cutmix(X, y, 1.0, np.random.default_rng(3), 10, geometry=CIFAR10_GEOMETRY)
    assert Xm.dtype == np.uint8 and not np.shares_memory(Xm, X)
    changed = (Xm != X).reshape(16, 3, 32, 32).any(axis=(0, 1))  # (32, 32) pixels touched
    rows, cols = np.nonzero(changed)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert changed.sum() == box  # one rectangle
    own = T[np.arange(16), y]
    kept = 1 - box / 1024
    # an image paired with itself or with an image of its own class keeps all its weight
    np.testing.assert_allclose(own[own < 1 - 1e-6], kept, atol=1e-6)
    np.testing.assert_allclose(T.sum(axis=1), 1, rtol=1e-6)
