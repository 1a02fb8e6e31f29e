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


def test_l2_in_the_update_by_hand_and_only_on_weights():
    # W = 2, g = 1, l2 = 0.5: the gradient with its L2 term is 1 + 0.5*2 = 2;
    # m = 0.9*0 + 2 = 2; W <- 2 - 0.1*2 = 1.8. The bias has no L2: b <- 2 - 0.1*1 = 1.9
    params = {"W1": np.array([[2.0]]), "b1": np.array([2.0])}
    grads = {"W1": np.array([[1.0]]), "b1": np.array([1.0])}
    SGD(params, alpha=0.1, beta=0.9, l2=0.5).step(grads)
    assert params["W1"][0, 0] == pytest.approx(1.8) and params["b1"][0] == pytest.approx(1.9)
    assert grads["W1"][0, 0] == pytest.approx(2.0)  # grads holds the full gradient afterwards


@pytest.mark.parametrize("options", [{}, {"nesterov": True}, {"weight_decay": 1e-2}])
def test_l2_in_the_update_equals_l2_in_backward_bit_for_bit(options):
    """The trainer's path (backward without L2, SGD adding it in its block loop) against
    the plain one (backward adds reg*W to dW, SGD without L2), over weights larger than one
    block, for 5 steps of a real model."""
    from numpy_mlp import FullyConnectedNet, cross_entropy_loss

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 300)).astype(np.float32), rng.integers(0, 10, 16)
    nets = [FullyConnectedNet(300, [400, 50], reg=3e-3, seed=1) for _ in range(2)]
    plain = SGD(nets[0].params, alpha=0.05, beta=0.9, **options)
    fused = SGD(nets[1].params, alpha=0.05, beta=0.9, l2=3e-3, **options)
    for _ in range(5):
        for net, opt, add_l2 in ((nets[0], plain, True), (nets[1], fused, False)):
            scores, cache = net.forward(X, train=False)
            _, dscores = cross_entropy_loss(scores, y)
            opt.step(net.backward(dscores, cache, add_l2=add_l2))
    for k in nets[0].params:
        np.testing.assert_array_equal(nets[0].params[k], nets[1].params[k], err_msg=k)


def test_backward_without_l2_leaves_it_out():
    from numpy_mlp import FullyConnectedNet, cross_entropy_loss

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 20)), rng.integers(0, 10, 8)
    net = FullyConnectedNet(20, 30, reg=0.1, dtype=np.float64, seed=0)
    scores, cache = net.forward(X, train=False)
    _, dscores = cross_entropy_loss(scores, y)
    with_l2 = {k: v.copy() for k, v in net.backward(dscores, cache).items()}
    without = net.backward(dscores, cache, add_l2=False)
    np.testing.assert_allclose(with_l2["W1"] - without["W1"], 0.1 * net.params["W1"], atol=1e-12)
    np.testing.assert_array_equal(with_l2["b1"], without["b1"])
