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
