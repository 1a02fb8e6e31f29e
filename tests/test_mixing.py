"""MixUp and CutMix: the soft-target loss, the mixed batches and their targets, the mixing
policy, its own generator, the knobs' checks, and a mixed run resumed bit for bit."""

import math

import numpy as np
import pytest
from synthetic_data import synthetic
from test_bad_inputs import hyper, one_line_error
from test_checkpoint import assert_same_run, crashed_and_resumed, finished_run

from numpy_mlp import TrainConfig
from numpy_mlp.data.augment import cutmix, mixup, one_hot
from numpy_mlp.data.dataset import Geometry
from numpy_mlp.data.mixing import Mixer
from numpy_mlp.errors import ConfigError
from numpy_mlp.nn.gradient_check import numerical_gradient, rel_error
from numpy_mlp.nn.losses import cross_entropy_loss
from numpy_mlp.training.loop import _generators, build, train


def soft_targets(rng, N, C):
    T = rng.random((N, C))
    return T / T.sum(axis=1, keepdims=True)  # (N, C), rows sum to 1


# ---------------------------------------------------------------- the soft-target loss


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_soft_target_loss_is_the_hand_formula_and_its_gradient_the_finite_difference(eps):
    rng = np.random.default_rng(1)
    scores, T = rng.standard_normal((5, 4)), soft_targets(rng, 5, 4)  # float64
    loss, dscores = cross_entropy_loss(scores, T, label_smoothing=eps)
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    target = (1 - eps) * T + eps / 4
    assert type(loss) is np.float64
    assert math.isclose(loss, -np.mean(np.sum(target * np.log(p), axis=1)), rel_tol=1e-12)
    num = numerical_gradient(lambda: cross_entropy_loss(scores, T, label_smoothing=eps)[0],
                             scores)
    assert rel_error(dscores, num) < 1e-7
    assert dscores.shape == scores.shape and np.allclose(dscores.sum(axis=1), 0)


def test_smoothing_composes_with_soft_targets_worked_by_hand():
    # p = softmax([ln 3, 0]) = [3/4, 1/4]; T = [0.7, 0.3], eps = 0.2 -> T' = 0.8 T + 0.1
    # = [0.66, 0.34]; loss = -(0.66 ln 3/4 + 0.34 ln 1/4); dscores = p - T' = [0.09, -0.09]
    scores = np.array([[math.log(3.0), 0.0]])
    loss, dscores = cross_entropy_loss(scores, np.array([[0.7, 0.3]]), label_smoothing=0.2)
    assert math.isclose(loss, -(0.66 * math.log(0.75) + 0.34 * math.log(0.25)), rel_tol=1e-12)
    np.testing.assert_allclose(dscores, [[0.09, -0.09]], atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_integer_labels_and_their_one_hot_targets_give_the_same_loss_and_gradient(dtype, eps):
    rng = np.random.default_rng(2)
    scores = (3 * rng.standard_normal((7, 10))).astype(dtype)
    y = rng.integers(0, 10, 7)
    loss_int, d_int = cross_entropy_loss(scores, y, label_smoothing=eps)
    loss_soft, d_soft = cross_entropy_loss(scores, one_hot(y, 10, dtype), label_smoothing=eps)
    assert d_soft.dtype == dtype and type(loss_soft) is np.float64
    if eps == 0:  # the same sums in the same order: equal to the last bit
        assert loss_int == loss_soft and d_int.tobytes() == d_soft.tobytes()
    else:
        tol = 1e-6 if dtype == np.float32 else 1e-13
        assert math.isclose(loss_int, loss_soft, rel_tol=tol)
        np.testing.assert_allclose(d_int, d_soft, rtol=tol, atol=tol)


def test_soft_targets_of_another_shape_are_refused():
    with pytest.raises(ValueError, match="soft targets of shape"):
        cross_entropy_loss(np.zeros((3, 4)), np.full((3, 5), 0.2))


def test_the_loss_does_not_modify_its_soft_targets():
    rng = np.random.default_rng(3)
    scores, T = rng.standard_normal((4, 3)), soft_targets(rng, 4, 3)
    before = T.copy()
    cross_entropy_loss(scores, T, label_smoothing=0.3)
    assert np.array_equal(T, before)


# ---------------------------------------------------------------- mixup and cutmix


def test_mixup_is_the_stated_convex_combination():
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((6, 12)).astype(np.float32), rng.integers(0, 5, 6)
    Xm, T = mixup(X, y, 0.4, np.random.default_rng(9), 5)
    replay = np.random.default_rng(9)
    lam, perm = replay.beta(0.4, 0.4), replay.permutation(6)
    assert 0 < lam < 1 and not np.array_equal(perm, np.arange(6))
    np.testing.assert_allclose(Xm, lam * X + (1 - lam) * X[perm], rtol=1e-6)
    E = np.eye(5)
    np.testing.assert_allclose(T, lam * E[y] + (1 - lam) * E[y[perm]], rtol=1e-6)
    assert T.dtype == Xm.dtype == np.float32 and np.allclose(T.sum(axis=1), 1)


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_label_weight_is_the_pasted_area_share(seed):
    g = Geometry(3, 8, 10)  # not square: the box's height and width follow the image's
    N = 6
    X = np.repeat(np.arange(1, N + 1, dtype=np.uint8)[:, None], g.D, axis=1)  # image i is i+1
    y = np.arange(N)  # one class per image, so the target's column i is image i's share
    Xm, T = cutmix(X, y, 1.0, np.random.default_rng(seed), N, dtype=np.float64, geometry=g)
    own = (Xm == X).reshape(N, g.channels, -1)
    assert (own == own[:, :1]).all()  # the box is the same on every channel
    share = own[:, 0].mean(axis=1)  # (N,) the pixels each image kept
    np.testing.assert_allclose(T[np.arange(N), y], share, atol=1e-12)
    np.testing.assert_allclose(T.sum(axis=1), 1)
    assert np.array_equal(X[:, 0], np.arange(1, N + 1))  # the input is not modified


# ---------------------------------------------------------------- the policy


def test_mixer_is_off_unless_a_method_is_on_and_some_batches_are_mixed():
    g = Geometry(3, 32, 32)
    for kw in ({}, {"mixup": 0.2, "mix_prob": 0.0}, {"cutmix": 1.0, "mix_prob": 0.0}):
        assert Mixer.of(TrainConfig(**kw), 10, g) is None
    assert repr(Mixer.of(TrainConfig(mixup=0.2, cutmix=1.0, mix_prob=0.5), 10, g)) == \
        "Mixer(mixup=0.2, cutmix=1, prob=0.5)"


def test_mixer_mixes_a_share_of_batches_and_alternates_the_two_methods():
    g = Geometry(3, 4, 4)
    rng = np.random.default_rng(5)
    U = rng.integers(0, 256, (8, g.D), dtype=np.uint8)
    y = rng.integers(0, 10, 8)
    prepared = lambda V: V.astype(np.float32) / 255  # noqa: E731
    X = prepared(U)
    mixer = Mixer(mixup=0.5, cutmix=1.0, prob=0.6, num_classes=10, geometry=g)
    kinds = []
    draw = np.random.default_rng(6)
    for _ in range(600):
        Xm, t = mixer(U, X, y, draw, prepared)
        if t is y:  # left as it was
            assert Xm is X
            kinds.append("none")
        else:  # a CutMix batch is of pixels in 0..255 / 255: whole multiples of 1/255
            assert t.shape == (8, 10) and t.dtype == np.float32
            kinds.append("cut" if np.allclose(Xm * 255, np.round(Xm * 255), atol=1e-4)
                         else "mix")
    share = {k: kinds.count(k) / len(kinds) for k in ("none", "cut", "mix")}
    assert abs(share["none"] - 0.4) < 0.06
    assert abs(share["cut"] - 0.3) < 0.06 and abs(share["mix"] - 0.3) < 0.06


def test_cutmix_batches_are_prepared_from_the_cut_images():
    g = Geometry(3, 4, 4)
    rng = np.random.default_rng(7)
    U, y = rng.integers(0, 256, (5, g.D), dtype=np.uint8), rng.integers(0, 3, 5)
    prepared = lambda V: V.astype(np.float64) - 100  # noqa: E731
    mixer = Mixer(cutmix=1.0, num_classes=3, geometry=g)
    Xm, T = mixer(U, prepared(U), y, np.random.default_rng(8), prepared)
    Um, T2 = cutmix(U, y, 1.0, np.random.default_rng(8), 3, dtype=np.float64, geometry=g)
    assert np.array_equal(Xm, prepared(Um)) and np.array_equal(T, T2)


# ---------------------------------------------------------------- the generators


def test_the_mixing_generator_leaves_the_four_older_streams_as_they_were():
    old = [np.random.default_rng(s) for s in np.random.SeedSequence(11).spawn(4)]
    new = _generators(11)
    assert len(new) == 5
    for a, b in zip(old, new):
        assert a.bit_generator.state == b.bit_generator.state
        assert np.array_equal(a.random(4), b.random(4))
    assert new[4].random() != old[0].random()  # a stream of its own


def test_mixing_draws_nothing_from_the_other_generators():
    data = synthetic(n_train=80, n_val=20)
    base = dict(hidden_dim=(8,), batch_size=16, num_iters=12, evals=2, crop_pad=2, dropout=0.2,
                threads=1)
    runs = []
    for extra in ({}, {"mixup": 0.4, "cutmix": 1.0, "mix_prob": 0.7}):
        config = TrainConfig(**base, **extra)
        run = build(config, data)
        train(config, data, state=run)
        runs.append(run)
    plain, mixed = runs
    for get in (lambda r: r.loop.order_rng, lambda r: r.loop.aug_rng, lambda r: r.model.rng):
        assert get(plain).bit_generator.state == get(mixed).bit_generator.state
    assert plain.loop.mix_rng.bit_generator.state != mixed.loop.mix_rng.bit_generator.state
    assert plain.loop.history["loss"] != mixed.loop.history["loss"]  # mixing did change training


# ---------------------------------------------------------------- the knobs


@pytest.mark.parametrize("kw, words", [
    ({"mixup": -0.1}, "mixup=-0.1 must be a finite number >= 0; try 0.2"),
    ({"cutmix": float("inf")}, "cutmix=inf must be a finite number >= 0; try 1.0"),
    ({"mix_prob": 1.5}, "mix_prob=1.5 must be a finite number in [0, 1]"),
    ({"ema": 1.0}, "ema=1.0 must be a finite number in [0, 1); try 0.999"),
    ({"ema": True}, "ema=True must be a finite number"),
])
def test_bad_mixing_and_ema_values_are_one_line_errors(kw, words):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kw)
    assert str(e.value) == words or str(e.value).startswith(words)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("flag, value, words", [
    ("mixup", "-1", "--mixup -1 must be a finite number >= 0"),
    ("cutmix", "lots", "--cutmix 'lots' must be a finite number >= 0"),
    ("mix-prob", "2", "--mix-prob 2 must be a finite number in [0, 1]"),
    ("ema", "1", "--ema 1 must be a finite number in [0, 1)"),
])
def test_bad_flags_are_one_line_errors(flag, value, words, tmp_path, capsys):
    assert words in one_line_error(hyper(tmp_path, flag, value), capsys)


def test_the_knobs_have_help_lines_and_travel_through_config_json():
    from numpy_mlp.training.config import SETTINGS

    for name in ("mixup", "cutmix", "mix_prob", "ema"):
        assert SETTINGS[name].help and not SETTINGS[name].resumable
    config = TrainConfig(mixup=0.2, cutmix=1.0, mix_prob=0.5, ema=0.99)
    assert TrainConfig.from_dict(config.to_dict()) == config
    defaults = TrainConfig()
    assert (defaults.mixup, defaults.cutmix, defaults.mix_prob, defaults.ema) == (0, 0, 1, 0)


# ---------------------------------------------------------------- resumed bit for bit

MIXED = TrainConfig(hidden_dim=(16,), batch_size=16, num_iters=40, evals=5, dropout=0.1, flip=True,
                    crop_pad=2, mixup=0.4, cutmix=1.0, mix_prob=0.8, ema=0.9,
                    label_smoothing=0.1, preprocessing="per_channel", eval_train_size=40,
                    checkpoint_every=6, threads=1)


@pytest.fixture(scope="module")
def mixed_data():
    return synthetic(n_train=100, n_val=30)


@pytest.fixture(scope="module")
def mixed_reference(mixed_data, tmp_path_factory):
    return finished_run(MIXED, mixed_data, tmp_path_factory.mktemp("mixed"))


@pytest.mark.parametrize("step", [13, 20])
def test_a_mixed_run_with_an_ema_resumed_is_bit_for_bit(step, mixed_data, mixed_reference,
                                                        tmp_path, monkeypatch):
    meta, arrays = mixed_reference[1]
    assert "mix" in meta["rng"] and any(k.startswith("ema/") for k in arrays)
    assert len(meta["history"]["val_acc_ema"]) == 5
    resumed = crashed_and_resumed(MIXED, mixed_data, tmp_path, monkeypatch, step)
    assert_same_run(mixed_reference, resumed)
    assert resumed[0].best_source == mixed_reference[0].best_source


def test_the_estimator_mixes_features_but_refuses_cutmix_on_them():
    from numpy_mlp.sklearn import FullyConnectedClassifier, ParameterError

    rng = np.random.default_rng(12)
    X, y = rng.standard_normal((50, 6)), rng.integers(0, 3, 50)
    clf = FullyConnectedClassifier(hidden_dim=(8,), num_iters=8, evals=2, mixup=0.4, threads=1)
    assert clf.fit(X, y).predict(X).shape == (50,)
    with pytest.raises(ParameterError, match=r"cutmix=1\.0.*only for rows of 3 x 32 x 32"):
        FullyConnectedClassifier(cutmix=1.0, num_iters=2).fit(X, y)
