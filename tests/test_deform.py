"""Deformations (numpy_mlp/data/deform.py): the bank's maps, the one gather, the run."""

import numpy as np
import pytest

from numpy_mlp.data.augment import mirror, shift
from numpy_mlp.data.dataset import Geometry
from numpy_mlp.data.deform import Deformer, elastic_fields
from numpy_mlp.errors import ConfigError

G = Geometry(3, 8, 8)


def _images(n, rng, g=G):
    return rng.integers(1, 256, size=(n, g.channels * g.height * g.width), dtype=np.uint8)


def _crop_flip_views(x, pad, g=G):
    """Every crop (shift within pad) of the one image x (D,), mirrored or not."""
    for dy in range(-pad, pad + 1):
        for dx in range(-pad, pad + 1):
            v = shift(x[None], dy, dx, g)[0]
            yield v
            yield mirror(v[None], g)[0]


def test_with_no_deformation_it_is_exactly_a_crop_and_a_mirror():
    rng = np.random.default_rng(0)
    X = _images(40, rng)
    out = Deformer(geometry=G, crop_pad=2)(X, rng, flip=True, crop_pad=2)
    assert out.dtype == np.uint8 and out.shape == X.shape
    for x, y in zip(X, out):
        assert any(np.array_equal(y, v) for v in _crop_flip_views(x, 2))
    # and the draws vary: not every image got the same view
    assert len({(y != x).sum() for x, y in zip(X, out)}) > 1


def test_without_crop_or_flip_and_no_deformation_the_images_are_unchanged():
    rng = np.random.default_rng(1)
    X = _images(10, rng)
    assert np.array_equal(Deformer(geometry=G)(X, rng), X)


def test_a_zoom_out_reads_zeros_at_the_border_and_only_the_image_s_pixels():
    rng = np.random.default_rng(2)
    g = Geometry(1, 16, 16)
    X = _images(64, rng, g)  # no zero pixel in any image
    out = Deformer(zoom=0.45, rotate=30, geometry=g, seed=3)(X, rng)
    for x, y in zip(X, out):
        assert set(np.unique(y)) <= set(np.unique(x)) | {0}
    # a rotation by up to 30 degrees or a zoom out leaves some corner outside for many maps
    corners = out.reshape(-1, 16, 16)[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 0).any(axis=1).mean() > 0.3


def test_a_rotation_keeps_the_centre_and_moves_the_rest():
    rng = np.random.default_rng(4)
    g = Geometry(1, 15, 15)  # an odd side: a centre pixel that every map keeps
    X = _images(32, rng, g)
    out = Deformer(rotate=20, geometry=g)(X, rng).reshape(-1, 15, 15)
    assert np.array_equal(out[:, 7, 7], X.reshape(-1, 15, 15)[:, 7, 7])
    assert (out != X.reshape(-1, 15, 15)).mean() > 0.3


def test_the_bank_comes_from_the_seed():
    rng = np.random.default_rng(5)
    X = _images(16, rng)
    a = Deformer(rotate=10, elastic=1, geometry=G, crop_pad=1, seed=7)
    b = Deformer(rotate=10, elastic=1, geometry=G, crop_pad=1, seed=7)
    c = Deformer(rotate=10, elastic=1, geometry=G, crop_pad=1, seed=8)
    draw = lambda d: d(X, np.random.default_rng(9), flip=True, crop_pad=1)  # noqa: E731
    assert np.array_equal(draw(a), draw(b))
    assert not np.array_equal(draw(a), draw(c))


def test_elastic_fields_are_smooth_with_unit_rms():
    f = elastic_fields(20, 32, 32, np.random.default_rng(0)).reshape(20, 2, 32, 32)
    assert f.dtype == np.float32
    np.testing.assert_allclose(np.sqrt((f ** 2).mean(axis=(1, 2, 3))), 1.0, rtol=1e-5)
    # neighbours move together (smooth), far pixels independently
    near = np.corrcoef(f[:, :, :, :-1].ravel(), f[:, :, :, 1:].ravel())[0, 1]
    far = np.corrcoef(f[:, :, :, :16].ravel(), f[:, :, :, 16:].ravel())[0, 1]
    assert near > 0.9 and abs(far) < 0.5


def test_a_crop_beyond_the_canvas_is_refused():
    with pytest.raises(ValueError, match="crop_pad=3"):
        Deformer(rotate=5, geometry=G, crop_pad=2)(_images(2, np.random.default_rng(0)),
                                                    np.random.default_rng(0), crop_pad=3)


@pytest.mark.parametrize("name,value", [("rotate", -1), ("zoom", 0.5), ("shear", 50),
                                        ("elastic", float("nan"))])
def test_strengths_out_of_range_are_one_line_errors(name, value):
    with pytest.raises(ConfigError, match=name):
        Deformer(geometry=G, **{name: value})


# ---------------------------------------------------------------- in a run

DEFORMED = dict(hidden_dim=(16,), batch_size=16, num_iters=40, evals=5, dropout=0.1, flip=True,
                crop_pad=2, rotate=10.0, zoom=0.1, shear=5.0, elastic=1.0,
                preprocessing="per_channel", eval_train_size=40, checkpoint_every=6, threads=1)


@pytest.fixture(scope="module")
def deformed_data():
    from synthetic_data import synthetic

    return synthetic(n_train=100, n_val=30)


def test_the_knobs_have_help_lines_and_travel_through_config_json():
    from numpy_mlp import TrainConfig
    from numpy_mlp.training.config import SETTINGS

    for name in ("rotate", "zoom", "shear", "elastic"):
        assert SETTINGS[name].help and not SETTINGS[name].resumable
        assert getattr(TrainConfig(), name) == 0  # off unless asked for
    config = TrainConfig(**DEFORMED)
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("flag, value, words", [
    ("rotate", "-5", "--rotate -5 must be a finite number in [0, 180]; try 10"),
    ("zoom", "0.5", "--zoom 0.5 must be a finite number in [0, 0.5); try 0.1"),
    ("elastic", "lots", "--elastic 'lots' must be a finite number in [0, 8]; try 1"),
])
def test_bad_flags_are_one_line_errors(flag, value, words, tmp_path, capsys):
    from test_bad_inputs import hyper, one_line_error

    assert words in one_line_error(hyper(tmp_path, flag, value), capsys)


def test_deformations_draw_only_from_the_augmentation_generator(deformed_data):
    from numpy_mlp import TrainConfig
    from numpy_mlp.training.loop import build, train

    runs = []
    for extra in ({"rotate": 0.0, "zoom": 0.0, "shear": 0.0, "elastic": 0.0}, {}):
        config = TrainConfig(**{**DEFORMED, **extra})
        run = build(config, deformed_data)
        train(config, deformed_data, state=run)
        runs.append(run)
    plain, deformed = runs
    for get in (lambda r: r.loop.order_rng, lambda r: r.model.rng):
        assert get(plain).bit_generator.state == get(deformed).bit_generator.state
    assert plain.loop.history["loss"] != deformed.loop.history["loss"]


@pytest.mark.parametrize("step", [13, 20])
def test_a_deformed_run_resumed_is_bit_for_bit(step, deformed_data, tmp_path, monkeypatch):
    from test_checkpoint import assert_same_run, crashed_and_resumed, finished_run

    from numpy_mlp import TrainConfig

    config = TrainConfig(**DEFORMED)
    assert_same_run(finished_run(config, deformed_data, tmp_path / "whole"),
                    crashed_and_resumed(config, deformed_data, tmp_path / "cut", monkeypatch,
                                        step))


def test_the_estimator_refuses_deformations_of_rows_that_are_not_images():
    from numpy_mlp.sklearn import FullyConnectedClassifier, ParameterError

    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((40, 6)), rng.integers(0, 2, 40)
    with pytest.raises(ParameterError, match=r"^rotate=10(\.0)?: only for rows of 3 x 32 x 32 "
                                             r".*turn it off \(rotate=0\)$"):
        FullyConnectedClassifier(rotate=10.0, num_iters=2).fit(X, y)
