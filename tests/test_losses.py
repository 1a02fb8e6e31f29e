"""The loss comes back as a NumPy scalar, as the course notebook's ``loss.item()`` needs."""

import json

import numpy as np
import pytest

from numpy_mlp import cross_entropy_loss


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_loss_is_a_numpy_scalar_that_behaves_like_a_float(dtype, label_smoothing):
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((6, 10)).astype(dtype)  # (N, C)
    y = rng.integers(0, 10, 6)  # (N,)
    loss, dscores = cross_entropy_loss(scores, y, label_smoothing=label_smoothing)
    assert type(loss) is np.float64 and isinstance(loss, float)
    value = loss.item()  # the notebook's call
    assert type(value) is float and value == loss
    assert str(loss) == str(value) and f"{loss:f}" == f"{value:f}"  # prints like a float
    assert json.loads(json.dumps({"loss": loss})) == {"loss": value}  # histories are saved as JSON
    assert dscores.dtype == dtype


def test_loss_value_is_the_mean_computed_in_the_scores_dtype():
    """Widening to float64 happens after the mean: float32 runs keep their exact values."""
    scores = np.array([[1.0, 2.0, 0.5], [0.1, 0.2, 3.0]], dtype=np.float32)  # (N, C)
    y = np.array([1, 0])
    loss, _ = cross_entropy_loss(scores, y)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1))
    expected = -(shifted[[0, 1], y] - log_sum).mean()  # a float32 mean
    assert expected.dtype == np.float32 and loss == np.float64(expected)


def soft(rng, N, C):
    T = rng.random((N, C))
    return T / T.sum(axis=1, keepdims=True)  # (N, C) rows summing to 1


@pytest.mark.parametrize("targets", ["labels", "soft"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_weighted_loss_gradient_matches_finite_differences(targets, label_smoothing):
    from numpy_mlp.nn.gradient_check import numerical_gradient, rel_error
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((5, 4)) * 2  # (N, C) float64
    y = rng.integers(0, 4, 5) if targets == "labels" else soft(rng, 5, 4)
    w = np.array([0.0, 2.0, 0.5, 1.0, 3.0])  # a zero weight too

    def loss():
        return cross_entropy_loss(scores, y, label_smoothing, weights=w)[0]

    _, dscores = cross_entropy_loss(scores, y, label_smoothing, weights=w)
    assert rel_error(dscores, numerical_gradient(loss, scores)) < 1e-6
    assert np.abs(dscores[0]).max() == 0  # a row of weight 0 teaches nothing


@pytest.mark.parametrize("targets", ["labels", "soft"])
def test_a_row_of_weight_two_is_that_row_twice(targets):
    rng = np.random.default_rng(4)
    scores = rng.standard_normal((3, 4))  # (N, C): rows a, b, c
    y = rng.integers(0, 4, 3) if targets == "labels" else soft(rng, 3, 4)
    # weights (2, 1, 0) over 3 rows, mean 1, against a, a, b: the same 3 rows' worth
    loss_w, d_w = cross_entropy_loss(scores, y, weights=np.array([2.0, 1.0, 0.0]))
    twice = [0, 0, 1]
    loss_2, d_2 = cross_entropy_loss(scores[twice], y[twice])
    assert loss_w == pytest.approx(loss_2, rel=1e-12)
    np.testing.assert_allclose(d_w[0], d_2[0] + d_2[1], rtol=1e-12)  # a's two gradients
    np.testing.assert_allclose(d_w[1], d_2[2], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unit_weights_give_the_unweighted_loss(dtype):
    rng = np.random.default_rng(5)
    scores = rng.standard_normal((6, 10)).astype(dtype)
    y = rng.integers(0, 10, 6)
    loss, d = cross_entropy_loss(scores, y, weights=np.ones(6))
    loss0, d0 = cross_entropy_loss(scores, y)
    assert loss == loss0 and d.dtype == dtype and d.tobytes() == d0.tobytes()
    with pytest.raises(ValueError, match=r"weights of shape \(5,\) for 6 rows"):
        cross_entropy_loss(scores, y, weights=np.ones(5))
