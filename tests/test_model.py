"""Gradient checks, initialisation and the notebook's call shapes."""

import math

import numpy as np
import pytest

from numpy_mlp import FullyConnectedNet, cross_entropy_loss
from numpy_mlp.errors import ConfigError
from numpy_mlp.nn.gradient_check import numerical_gradient, rel_error


def tiny_batch(N=6, D=7, C=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, D)), rng.integers(0, C, N)


def test_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    scores, y = rng.standard_normal((5, 4)) * 3, rng.integers(0, 4, 5)
    _, dscores = cross_entropy_loss(scores, y)
    num = numerical_gradient(lambda: cross_entropy_loss(scores, y)[0], scores)
    assert rel_error(dscores, num) < 1e-6


def test_loss_gradient_with_label_smoothing():
    rng = np.random.default_rng(2)
    scores, y = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    _, dscores = cross_entropy_loss(scores, y, label_smoothing=0.1)
    num = numerical_gradient(lambda: cross_entropy_loss(scores, y, label_smoothing=0.1)[0], scores)
    assert rel_error(dscores, num) < 1e-6


def test_loss_is_stable_and_does_not_modify_input():
    scores = np.array([[1000.0, 0.0, -1000.0], [-1e4, 1e4, 0.0]])
    before = scores.copy()
    loss, dscores = cross_entropy_loss(scores, np.array([0, 0]))
    assert np.isfinite(loss) and np.all(np.isfinite(dscores))
    assert loss == pytest.approx((0.0 + 2e4) / 2)  # row 1: -log softmax = 1e4 - (-1e4)
    np.testing.assert_array_equal(scores, before)


def test_loss_matches_direct_formula():
    rng = np.random.default_rng(3)
    s, y = rng.standard_normal((8, 10)), rng.integers(0, 10, 8)
    p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    loss, d = cross_entropy_loss(s, y)
    assert loss == pytest.approx(-np.log(p[np.arange(8), y]).mean())
    onehot = np.eye(10)[y]
    np.testing.assert_allclose(d, (p - onehot) / 8, rtol=1e-10)


@pytest.mark.parametrize("hidden", [5, [5, 4], [6, 5, 4]])
@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_parameter_gradients_match_finite_differences(hidden, reg):
    X, y = tiny_batch()
    model = FullyConnectedNet(7, hidden, 4, reg=reg, dtype=np.float64, seed=3)
    rng = np.random.default_rng(4)
    for v in model.params.values():  # non-zero biases so their gradients are exercised
        v += 0.1 * rng.standard_normal(v.shape)
    _, grads = model.loss(X, y)
    grads = {k: g.copy() for k, g in grads.items()}
    for name, p in model.params.items():
        num = numerical_gradient(lambda: model.loss(X, y)[0], p)
        assert rel_error(grads[name], num) < 1e-6, name


def test_input_gradient_of_backward_pass_is_consistent_through_the_notebook_calls():
    X, y = tiny_batch()
    model = FullyConnectedNet(7, 5, 4, dtype=np.float64, seed=0)
    scores, cache = model.forward(X)
    assert scores.shape == (6, 4)
    loss, dscores = cross_entropy_loss(scores, y)
    grads = model.backward(dscores, cache)
    assert grads is model.grads and set(grads) == {"W1", "b1", "W2", "b2"}
    for k in grads:
        assert grads[k].shape == model.params[k].shape


def test_initial_loss_is_close_to_ln10():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 3072)).astype(np.float32)
    y = rng.integers(0, 10, 500)
    model = FullyConnectedNet(hidden_dim=200, seed=0)
    # He-initialised scores have variance ~ 2 per class, so the loss sits a bit above ln(10)
    loss, _ = cross_entropy_loss(model.forward(X)[0], y)
    assert abs(loss - math.log(10)) < 1.0
    small = FullyConnectedNet(hidden_dim=200, seed=0)
    small.params["W2"] *= 0.01  # near-zero scores: the loss is ln(10) exactly in the limit
    loss_small, _ = cross_entropy_loss(small.forward(X)[0], y)
    assert loss_small == pytest.approx(math.log(10), abs=0.02)


def test_he_initialisation_scale_and_defaults():
    model = FullyConnectedNet(hidden_dim=200, seed=0)
    assert model.params["W1"].shape == (3072, 200) and model.params["W2"].shape == (200, 10)
    assert model.params["W1"].dtype == np.float32
    assert model.params["W1"].std() == pytest.approx(math.sqrt(2 / 3072), rel=0.02)
    assert model.params["W2"].std() == pytest.approx(math.sqrt(2 / 200), rel=0.1)
    assert not model.params["b1"].any()


def test_same_seed_same_weights_and_rng_is_explicit():
    a = FullyConnectedNet(10, 5, 3, seed=42)
    b = FullyConnectedNet(10, 5, 3, rng=np.random.default_rng(42))
    c = FullyConnectedNet(10, 5, 3, seed=43)
    np.testing.assert_array_equal(a.params["W1"], b.params["W1"])
    assert not np.array_equal(a.params["W1"], c.params["W1"])


def test_deeper_net_has_params_for_every_layer():
    model = FullyConnectedNet(12, [8, 6, 4], 3, seed=0)
    assert list(model.params) == ["W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4"]
    assert model.params["W3"].shape == (6, 4)


def test_float64_on_request():
    model = FullyConnectedNet(10, 5, 3, dtype=np.float64, seed=0)
    scores, _ = model.forward(np.ones((2, 10), dtype=np.float32))
    assert scores.dtype == np.float64


def test_dropout_only_in_training_and_gradient_is_correct():
    X, y = tiny_batch(N=20)
    model = FullyConnectedNet(7, 30, 4, dropout=0.5, dtype=np.float64, seed=0)
    s1, _ = model.forward(X, train=False)
    s2, _ = model.forward(X, train=False)
    np.testing.assert_array_equal(s1, s2)
    t1, _ = model.forward(X, train=True)
    assert not np.allclose(t1, s1)
    # with a fixed mask the gradient is exact: replay the same generator state each call
    state = model.rng.bit_generator.state

    def loss_fixed_mask():
        model.rng.bit_generator.state = state
        return model.loss(X, y)[0]

    loss_fixed_mask()
    g = {k: v.copy() for k, v in model.grads.items()}
    num = numerical_gradient(loss_fixed_mask, model.params["W1"])
    assert rel_error(g["W1"], num) < 1e-6


@pytest.mark.parametrize("kw", [{"dropout": 1.0}, {"dropout": -0.1}, {"reg": -1.0},
                                {"hidden_dim": 0}, {"hidden_dim": []}])
def test_bad_model_arguments_are_refused(kw):
    with pytest.raises(ConfigError):
        FullyConnectedNet(**kw)
