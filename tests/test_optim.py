"""SGD with momentum, checked against hand-worked arithmetic."""

import numpy as np
import pytest

from numpy_mlp import SGD
from numpy_mlp.errors import ConfigError


def test_plain_sgd_step_by_hand():
    # beta = 0: theta <- theta - alpha * g
    theta = np.array([1.0, -2.0, 0.5])
    g = np.array([0.5, -1.0, 2.0])
    opt = SGD({"w": theta}, alpha=0.1, beta=0.0)
    opt.step({"w": g})
    # 1.0 - 0.1*0.5 = 0.95 ; -2.0 - 0.1*(-1.0) = -1.9 ; 0.5 - 0.1*2.0 = 0.3
    np.testing.assert_allclose(theta, [0.95, -1.9, 0.3])
    opt.step({"w": g})
    np.testing.assert_allclose(theta, [0.90, -1.8, 0.1])


def test_momentum_two_steps_by_hand():
    theta = np.array([1.0, 2.0])
    opt = SGD({"w": theta}, alpha=0.1, beta=0.9)
    # step 1: m = 0.9*0 + [1, -2] = [1, -2]; theta = [1, 2] - 0.1*[1, -2] = [0.9, 2.2]
    opt.step({"w": np.array([1.0, -2.0])})
    np.testing.assert_allclose(opt.m["w"], [1.0, -2.0])
    np.testing.assert_allclose(theta, [0.9, 2.2])
    # step 2: m = 0.9*[1, -2] + [3, 1] = [3.9, -0.8];
    # theta = [0.9, 2.2] - 0.1*[3.9, -0.8] = [0.51, 2.28]
    opt.step({"w": np.array([3.0, 1.0])})
    np.testing.assert_allclose(opt.m["w"], [3.9, -0.8])
    np.testing.assert_allclose(theta, [0.51, 2.28])


def test_updates_the_models_arrays_in_place():
    params = {"W1": np.ones((2, 2), dtype=np.float32), "b1": np.zeros(2, dtype=np.float32)}
    ids = {k: id(v) for k, v in params.items()}
    opt = SGD(params, alpha=0.5, beta=0.9)
    opt.step({"W1": np.ones((2, 2), dtype=np.float32), "b1": np.ones(2, dtype=np.float32)})
    assert {k: id(v) for k, v in params.items()} == ids
    assert params["W1"].dtype == np.float32
    np.testing.assert_allclose(params["W1"], 0.5)
    np.testing.assert_allclose(params["b1"], -0.5)


def test_matches_formula_over_many_random_steps():
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(5)
    ref_theta, ref_m = theta.copy(), np.zeros(5)
    opt = SGD({"w": theta}, alpha=0.03, beta=0.8)
    for _ in range(20):
        g = rng.standard_normal(5)
        opt.step({"w": g})
        ref_m = 0.8 * ref_m + g
        ref_theta = ref_theta - 0.03 * ref_m
    np.testing.assert_allclose(theta, ref_theta, rtol=1e-12)


def test_step_takes_a_scheduled_learning_rate():
    theta = np.array([1.0])
    opt = SGD({"w": theta}, alpha=0.1, beta=0.0)
    opt.step({"w": np.array([1.0])}, alpha=0.5)
    np.testing.assert_allclose(theta, [0.5])


@pytest.mark.parametrize("beta", [1, 10, 1.0, -0.1, float("nan")])
def test_momentum_outside_unit_interval_is_refused_with_a_reason(beta):
    with pytest.raises(ConfigError, match=r"beta=.* must be a finite number in \[0, 1\); the mom"):
        SGD({"w": np.zeros(1)}, alpha=0.1, beta=beta)


@pytest.mark.parametrize("alpha", [0, -1e-3, float("inf"), float("nan")])
def test_bad_learning_rate_is_refused(alpha):
    with pytest.raises(ConfigError, match="alpha"):
        SGD({"w": np.zeros(1)}, alpha=alpha)


def test_missing_gradient_names_the_parameter():
    opt = SGD({"W1": np.zeros(1), "b1": np.zeros(1)})
    with pytest.raises(KeyError, match="b1"):
        opt.step({"W1": np.zeros(1)})


def test_nesterov_two_steps_by_hand():
    theta = np.array([1.0])
    opt = SGD({"w": theta}, alpha=0.1, beta=0.9, nesterov=True)
    # step 1: m = 2; theta = 1 - 0.1*(2 + 0.9*2) = 1 - 0.38 = 0.62
    opt.step({"w": np.array([2.0])})
    np.testing.assert_allclose(theta, [0.62])
    # step 2: m = 0.9*2 + 1 = 2.8; theta = 0.62 - 0.1*(1 + 0.9*2.8) = 0.62 - 0.352 = 0.268
    opt.step({"w": np.array([1.0])})
    np.testing.assert_allclose(theta, [0.268])


def test_decoupled_weight_decay_by_hand_and_only_on_weights():
    W, b = np.array([2.0]), np.array([2.0])
    opt = SGD({"W1": W, "b1": b}, alpha=0.1, beta=0.9, weight_decay=0.5)
    zero = {"W1": np.array([0.0]), "b1": np.array([0.0])}
    # W: 2 * (1 - 0.1*0.5) = 1.9; b untouched; momentum untouched by the decay
    opt.step(zero)
    np.testing.assert_allclose(W, [1.9])
    np.testing.assert_allclose(b, [2.0])
    np.testing.assert_allclose(opt.m["W1"], [0.0])
    # with a gradient: W = 1.9*0.95 - 0.1*(0.9*0 + 1) = 1.805 - 0.1 = 1.705
    opt.step({"W1": np.array([1.0]), "b1": np.array([0.0])})
    np.testing.assert_allclose(W, [1.705])


def test_negative_weight_decay_is_refused():
    with pytest.raises(ConfigError, match="weight_decay"):
        SGD({"w": np.zeros(1)}, weight_decay=-1)
