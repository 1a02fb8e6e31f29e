"""Training methods beyond the notebook: augmentation, early stopping, the new flags."""

import numpy as np
import pytest

from numpy_mlp import TrainConfig, train
from numpy_mlp.augment import augment, random_crop, random_flip
from numpy_mlp.cli import build_parser, config_from_args
from synthetic_data import synthetic


def images(n=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def test_flip_mirrors_about_half_of_the_images_and_leaves_the_input_alone():
    X = images(400)
    before = X.copy()
    out = random_flip(X, np.random.default_rng(0))
    np.testing.assert_array_equal(X, before)
    a, b = X.reshape(-1, 3, 32, 32), out.reshape(-1, 3, 32, 32)
    mirrored = np.all(b == a[..., ::-1], axis=(1, 2, 3))
    same = np.all(b == a, axis=(1, 2, 3))
    assert np.all(mirrored ^ same)  # each image is either mirrored or untouched
    assert 150 < mirrored.sum() < 250


def test_crop_takes_a_window_of_the_zero_padded_image():
    X = images(50)
    pad = 3
    out = random_crop(X, pad, np.random.default_rng(1)).reshape(-1, 3, 32, 32)
    padded = np.pad(X.reshape(-1, 3, 32, 32), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    shifts = set()
    for i in range(50):
        found = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                 if np.array_equal(out[i], padded[i, :, dy:dy + 32, dx:dx + 32])]
        assert found, f"image {i} is not a window of its padded copy"
        shifts.add(found[0])
    assert len(shifts) > 10  # the offsets vary


def test_no_augmentation_returns_the_batch_itself():
    X = images()
    assert augment(X, np.random.default_rng(0)) is X


def test_trainer_with_every_method_on_still_learns():
    cfg = TrainConfig(hidden_dim=(40, 30), batch_size=32, num_iters=80, evals=4, dropout=0.2,
                      nesterov=True, weight_decay=1e-3, flip=True, crop_pad=2, label_smoothing=0.1,
                      schedule="cosine", warmup=10)
    result = train(cfg, synthetic())
    # the synthetic classes are per-pixel patterns that flips and crops blur: well above
    # chance (0.1) is what "still learns" means here
    assert result.best_val_acc > 0.5
    assert result.history["alpha"][0] < cfg.alpha  # warm-up then cosine


def test_early_stopping_stops_and_restores_the_best_parameters():
    # a learning rate large enough that validation accuracy stops improving quickly
    cfg = TrainConfig(hidden_dim=(30,), batch_size=32, num_iters=400, evals=40, patience=3,
                      alpha=0.05, schedule="constant")
    result = train(cfg, synthetic())
    assert result.stopped_early
    assert result.steps < 400
    h = result.history
    best = int(np.argmax(h["val_acc"]))
    assert len(h["eval_step"]) - 1 - best == 3  # stopped exactly `patience` evaluations after the best
    assert result.best_step == h["eval_step"][best]


def test_every_method_has_a_flag_that_maps_onto_the_config():
    args = build_parser().parse_args(
        ["train", "--dropout", "0.3", "--nesterov", "--weight-decay", "5e-4", "--flip", "--crop-pad", "4",
         "--label-smoothing", "0.1", "--patience", "5", "--schedule", "step", "--warmup", "100",
         "--hidden-dim", "512,256"])
    cfg = config_from_args(args)
    assert (cfg.dropout, cfg.nesterov, cfg.weight_decay, cfg.flip, cfg.crop_pad, cfg.label_smoothing,
            cfg.patience, cfg.schedule, cfg.warmup, cfg.hidden_dim) == \
           (0.3, True, 5e-4, True, 4, 0.1, 5, "step", 100, (512, 256))


@pytest.mark.parametrize("flag", ["--dropout", "--nesterov", "--weight-decay", "--flip", "--crop-pad",
                                  "--label-smoothing", "--patience", "--schedule", "--warmup"])
def test_each_method_is_described_in_help(flag, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    assert flag in capsys.readouterr().out
