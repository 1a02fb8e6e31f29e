"""Alternating flips (--flip-mode alternate): each training image mirrored in every other
epoch, from a random first choice drawn from the seed."""

import numpy as np
import pytest

from numpy_mlp import TrainConfig
from numpy_mlp.data.augment import augment, first_flips, mirror
from numpy_mlp.data.dataset import Geometry
from numpy_mlp.data.deform import Deformer

G = Geometry(3, 8, 8)


def _images(n, rng):
    return rng.integers(0, 256, size=(n, G.D), dtype=np.uint8)


def test_the_first_flips_are_a_random_half_made_from_the_seed():
    a, b, c = first_flips(10_000, 3), first_flips(10_000, 3), first_flips(10_000, 4)
    assert a.dtype == bool and a.shape == (10_000,)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0.47 < a.mean() < 0.53
    # a stream of its own: not the Deformer's bank (child 5) nor the loop's five
    assert not np.array_equal(a, np.random.default_rng(
        np.random.SeedSequence(3).spawn(6)[5]).random(10_000) < 0.5)


@pytest.mark.parametrize("deformer", [None, Deformer(geometry=G)], ids=["plain", "deformer"])
def test_a_mask_mirrors_exactly_the_images_it_names_and_draws_nothing(deformer):
    rng = np.random.default_rng(0)
    X = _images(20, rng)
    which = np.arange(20) % 3 == 0
    aug_rng = np.random.default_rng(1)
    out = augment(X, aug_rng, flip=which, geometry=G, deformer=deformer)
    assert np.array_equal(out[which], mirror(X[which], G))
    assert np.array_equal(out[~which], X[~which])
    if deformer is None:  # the plain path draws no flips; the deformer still picks its maps
        assert aug_rng.bit_generator.state == np.random.default_rng(1).bit_generator.state


def _flips_seen(config, data, monkeypatch):
    """Train ``config`` on ``data`` and return, step by step, the training images' indices
    and whether each was mirrored: a list of ((N,) int, (N,) bool)."""
    import numpy_mlp.training.loop as loop

    where = {row.tobytes(): i for i, row in enumerate(data.X_train)}
    assert len(where) == len(data.X_train)  # every image tells itself apart
    seen = []

    def recording(X, rng, flip=False, crop_pad=0, *, geometry, deformer=None):
        out = augment(X, rng, flip=flip, crop_pad=crop_pad, geometry=geometry, deformer=deformer)
        idx = np.array([where[row.tobytes()] for row in X])
        mirrors = mirror(X, geometry)
        mirrored = np.array([not np.array_equal(a, b) and np.array_equal(m, b)
                             for a, m, b in zip(X, mirrors, out)])
        seen.append((idx, mirrored))
        return out

    monkeypatch.setattr(loop, "augment", recording)
    loop.train(config, data)
    return seen


ALTERNATE = dict(hidden_dim=(8,), batch_size=10, num_iters=30, evals=3, flip=True,
                 flip_mode="alternate", preprocessing="per_channel", eval_train_size=20,
                 threads=1, seed=5)


@pytest.fixture(scope="module")
def data():
    from synthetic_data import synthetic

    return synthetic(n_train=100, n_val=20)


def test_every_two_epochs_show_each_image_both_ways(data, monkeypatch):
    seen = _flips_seen(TrainConfig(**ALTERNATE), data, monkeypatch)  # 3 epochs of 10 steps
    by_epoch = []
    for e in range(3):
        idx = np.concatenate([i for i, _ in seen[10 * e:10 * e + 10]])
        mirrored = np.concatenate([m for _, m in seen[10 * e:10 * e + 10]])
        assert sorted(idx) == list(range(100))  # each image once an epoch
        flips = np.empty(100, bool)
        flips[idx] = mirrored
        by_epoch.append(flips)
    first = first_flips(100, ALTERNATE["seed"])
    assert np.array_equal(by_epoch[0], first)
    assert np.array_equal(by_epoch[1], ~first)
    assert np.array_equal(by_epoch[2], first)


def test_random_flips_do_not_alternate(data, monkeypatch):
    seen = _flips_seen(TrainConfig(**{**ALTERNATE, "flip_mode": "random"}), data, monkeypatch)
    flips = np.empty((2, 100), bool)
    for e in range(2):
        for idx, mirrored in seen[10 * e:10 * e + 10]:
            flips[e, idx] = mirrored
    assert (flips[0] == flips[1]).any()  # some image mirrored (or not) in both epochs


def test_the_mode_does_nothing_without_flips(data, monkeypatch):
    seen = _flips_seen(TrainConfig(**{**ALTERNATE, "flip": False}), data, monkeypatch)
    assert not any(m.any() for _, m in seen)


def test_the_mode_has_a_help_line_and_travels_through_config_json():
    from numpy_mlp.training.config import SETTINGS

    assert SETTINGS["flip_mode"].help and not SETTINGS["flip_mode"].resumable
    assert TrainConfig().flip_mode == "random"  # the documented runs' flips, unchanged
    config = TrainConfig(**ALTERNATE)
    assert TrainConfig.from_dict(config.to_dict()) == config
    # a config.json written before the mode existed reads as random flips
    old = {k: v for k, v in config.to_dict().items() if k != "flip_mode"}
    assert TrainConfig.from_dict(old).flip_mode == "random"


def test_a_bad_mode_is_a_one_line_error(tmp_path, capsys):
    from test_bad_inputs import hyper, one_line_error

    assert ("--flip-mode 'sometimes' must be one of random, alternate"
            in one_line_error(hyper(tmp_path, "flip-mode", "sometimes"), capsys))


@pytest.mark.parametrize("deformed", [False, True], ids=["plain", "deformed"])
@pytest.mark.parametrize("step", [13, 24])  # in an even epoch and in an odd one
def test_a_run_with_alternating_flips_resumed_is_bit_for_bit(step, deformed, data, tmp_path,
                                                              monkeypatch):
    from test_checkpoint import assert_same_run, crashed_and_resumed, finished_run

    config = TrainConfig(**{**ALTERNATE, "crop_pad": 1, "checkpoint_every": 7,
                            "rotate": 10.0 if deformed else 0.0})
    assert_same_run(finished_run(config, data, tmp_path / "whole"),
                    crashed_and_resumed(config, data, tmp_path / "cut", monkeypatch, step))
