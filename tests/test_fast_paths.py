"""The fast in-place forms of the hot path compute exactly what the plain formulas say."""

import numpy as np
import pytest

from numpy_mlp import SGD, FullyConnectedNet
from numpy_mlp.data.preprocessing import channel_stats, preprocess
from numpy_mlp.nn.layers import affine_backward, affine_forward, l2_backward, relu_backward
from numpy_mlp.nn.optim import BLOCK


@pytest.mark.parametrize("nesterov,weight_decay",
                         [(False, 0.0), (True, 0.0), (False, 1e-2), (True, 1e-2)])
def test_blocked_sgd_matches_the_whole_array_formula(nesterov, weight_decay):
    rng = np.random.default_rng(0)
    # several blocks of rows; one row wider than a block; a bias; a 0-d parameter
    shapes = {"W1": (3 * BLOCK // 100 + 7, 100), "W2": (2, BLOCK + 5), "b1": (100,), "s": ()}
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    ref = {k: v.copy() for k, v in params.items()}
    ref_m = {k: np.zeros_like(v) for k, v in params.items()}
    opt = SGD(params, alpha=0.05, beta=0.9, nesterov=nesterov, weight_decay=weight_decay)
    for step in range(3):
        grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
        lr = 0.05 / (step + 1)
        opt.step(grads, alpha=lr)
        for k in ref:  # the update rule, written out on whole arrays
            if weight_decay and k.startswith("W"):
                ref[k] *= 1.0 - lr * weight_decay
            ref_m[k] = 0.9 * ref_m[k] + grads[k]
            ref[k] -= lr * (grads[k] + 0.9 * ref_m[k]) if nesterov else lr * ref_m[k]
    for k in ref:
        np.testing.assert_allclose(opt.m[k], ref_m[k], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(params[k], ref[k], rtol=1e-6, atol=1e-7)
        assert params[k].dtype == np.float32


def test_relu_backward_zeroes_exactly_where_the_unit_was_off():
    rng = np.random.default_rng(1)
    out = np.maximum(rng.standard_normal((7, 9)), 0)
    out[0, :3] = 0.0  # exactly at the kink: no gradient
    dout = rng.standard_normal((7, 9))
    expected = np.where(out > 0, dout, 0.0)
    np.testing.assert_array_equal(relu_backward(dout.copy(), out), expected)


def test_first_layer_skips_the_input_gradient_and_keeps_the_weight_gradients():
    rng = np.random.default_rng(2)
    x, W, b = rng.standard_normal((5, 6)), rng.standard_normal((6, 3)), rng.standard_normal(3)
    out, cache = affine_forward(x, W, b)
    dout = rng.standard_normal(out.shape)
    dx, dW, db = affine_backward(dout, cache)
    none, dW2, db2 = affine_backward(dout, cache, need_dx=False)
    assert none is None
    np.testing.assert_array_equal(dW, dW2)
    np.testing.assert_array_equal(db, db2)
    np.testing.assert_allclose(dx, dout @ W.T)


def test_model_backward_gives_the_same_gradients_as_the_full_backward():
    rng = np.random.default_rng(3)
    model = FullyConnectedNet(12, [8, 6], 4, reg=0.1, dtype=np.float64, rng=rng)
    X, dscores = rng.standard_normal((5, 12)), rng.standard_normal((5, 4))
    scores, cache = model.forward(X)
    grads = {k: v.copy() for k, v in model.backward(dscores, cache).items()}
    # by hand: layer by layer, with the plain formulas
    p = model.params
    h1 = np.maximum(X @ p["W1"] + p["b1"], 0)
    h2 = np.maximum(h1 @ p["W2"] + p["b2"], 0)
    d2 = (dscores @ p["W3"].T) * (h2 > 0)
    d1 = (d2 @ p["W2"].T) * (h1 > 0)
    np.testing.assert_allclose(grads["W3"], h2.T @ dscores + 0.1 * p["W3"])
    np.testing.assert_allclose(grads["W2"], h1.T @ d2 + 0.1 * p["W2"])
    np.testing.assert_allclose(grads["W1"], X.T @ d1 + 0.1 * p["W1"])
    np.testing.assert_allclose(grads["b1"], d1.sum(axis=0))


@pytest.mark.parametrize("shape", [(3072, 1000), (5, 7), (70000,), (1, 200000)])
def test_blocked_l2_gradient_is_dW_plus_reg_times_W(shape):
    rng = np.random.default_rng(9)
    W = rng.standard_normal(shape).astype(np.float32)
    dW = rng.standard_normal(shape).astype(np.float32)
    expected = dW + np.float32(4e-3) * W
    out = l2_backward(dW, W, 4e-3)
    assert out is dW
    np.testing.assert_array_equal(dW, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_channel_preprocessing_matches_a_float64_reference(dtype):
    # 47: not a whole number of blocks
    X = np.random.default_rng(5).integers(0, 256, size=(47, 3072), dtype=np.uint8)
    stats = channel_stats(X)
    X64 = X.astype(np.float64).reshape(-1, 3, 1024)
    ref = ((X64 - stats["mean"][:, None]) / stats["std"][:, None]).reshape(len(X), -1)
    Z = preprocess(X, "per_channel", stats, dtype=dtype)
    np.testing.assert_allclose(Z, ref, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_image_preprocessing_matches_a_float64_reference(dtype):
    X = np.random.default_rng(4).integers(0, 256, size=(67, 3072), dtype=np.uint8)
    X[0] = 255  # the largest row sum, 255 * 3072, is still exact in float32
    X[1] = 7  # a constant image: std 0, guarded
    X64 = X.astype(np.float64)
    ref = (X64 - X64.mean(axis=1, keepdims=True)) / np.maximum(X64.std(axis=1, keepdims=True), 1e-8)
    Z = preprocess(X, dtype=dtype)
    np.testing.assert_allclose(Z, ref, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)


def _odd_images(rng, n):
    """uint8 (n, 3072) random images plus the awkward rows: constant, low contrast, all 255."""
    X = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    X[0] = 7  # constant: normalises to zeros
    X[1] = 200 + rng.integers(0, 3, 3072)  # std ~0.8 at mean 201: the plain path
    X[2] = 255
    X[3] = np.where(rng.random(3072) < 0.5, 0, 255)  # the largest std
    X[4] = rng.integers(100, 140, 3072)  # std ~11.5 at mean 120: the folded path, narrowly
    return X


@pytest.mark.parametrize("mode", ["per_image", "per_channel"])
def test_folded_first_layer_equals_normalising_then_the_product(mode):
    from numpy_mlp.data.preprocessing import Preprocessor

    rng = np.random.default_rng(11)
    X = _odd_images(rng, 300)
    X_train = rng.integers(0, 256, size=(500, 3072), dtype=np.uint8)
    prep = Preprocessor.fit(mode, X_train, np.float32)
    W = (rng.standard_normal((3072, 64)) / np.sqrt(1536)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    expected = prep(X).astype(np.float64) @ W.astype(np.float64) + b  # (300, 64)
    got = prep.folded(W, b)(X, np.empty((300, 3072), np.float32))
    assert got.dtype == np.float32 and got.shape == (300, 64)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * np.abs(expected).max())
    if mode == "per_image":
        np.testing.assert_allclose(got[0], b, atol=1e-6)  # a constant image normalises to zeros


def test_predictions_with_the_folded_layer_equal_the_plain_forward_pass():
    from numpy_mlp.data.preprocessing import Preprocessor
    from numpy_mlp.training.inference import predict_labels

    rng = np.random.default_rng(12)
    X = _odd_images(rng, 700)
    model = FullyConnectedNet(3072, [50, 30], 10, seed=3)
    for mode in ("per_image", "per_channel"):
        prep = Preprocessor.fit(mode, X, np.float32)
        plain = model.predict(prep(X))  # normalise all the images, then the whole network
        np.testing.assert_array_equal(predict_labels(model, prep, X, batch_size=256), plain)
        np.testing.assert_array_equal(predict_labels(model, prep, X), plain)
