"""Training methods beyond the notebook: augmentation, early stopping, the new flags."""

import json

import numpy as np
import pytest
from fixtures_cifar import write_cifar_dir
from synthetic_data import synthetic

from numpy_mlp import FullyConnectedNet, TrainConfig, train
from numpy_mlp.cli.commands import build_parser, config_from_args, main
from numpy_mlp.data.augment import augment, mirror, random_crop, random_flip, shift, tta_views
from numpy_mlp.data.cifar10 import CIFAR10_GEOMETRY
from numpy_mlp.data.preprocessing import Preprocessor, channel_stats
from numpy_mlp.errors import ConfigError
from numpy_mlp.nn.losses import softmax
from numpy_mlp.runs.evaluate import evaluate_saved
from numpy_mlp.training.inference import predict_labels, probabilities

G = CIFAR10_GEOMETRY  # the images' geometry: their rows are CIFAR-10's


def images(n=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def test_flip_mirrors_about_half_of_the_images_and_leaves_the_input_alone():
    X = images(400)
    before = X.copy()
    out = random_flip(X, np.random.default_rng(0), G)
    np.testing.assert_array_equal(X, before)
    a, b = X.reshape(-1, 3, 32, 32), out.reshape(-1, 3, 32, 32)
    mirrored = np.all(b == a[..., ::-1], axis=(1, 2, 3))
    same = np.all(b == a, axis=(1, 2, 3))
    assert np.all(mirrored ^ same)  # each image is either mirrored or untouched
    assert 150 < mirrored.sum() < 250


def test_crop_takes_a_window_of_the_zero_padded_image():
    X = images(50)
    pad = 3
    out = random_crop(X, pad, np.random.default_rng(1), G).reshape(-1, 3, 32, 32)
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
    assert augment(X, np.random.default_rng(0), geometry=G) is X


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
    # stopped exactly `patience` evaluations after the best
    assert len(h["eval_step"]) - 1 - best == 3
    assert result.best_step == h["eval_step"][best]


def test_every_method_has_a_flag_that_maps_onto_the_config():
    args = build_parser().parse_args(
        ["train", "--dropout", "0.3", "--nesterov", "--weight-decay", "5e-4", "--flip",
         "--crop-pad", "4", "--label-smoothing", "0.1", "--patience", "5", "--schedule", "step",
         "--warmup", "100", "--hidden-dim", "512,256", "--tta-shift", "2"])
    cfg = config_from_args(args)
    assert (cfg.dropout, cfg.nesterov, cfg.weight_decay, cfg.flip, cfg.crop_pad,
            cfg.label_smoothing, cfg.patience, cfg.schedule, cfg.warmup, cfg.hidden_dim,
            cfg.tta_shift) == \
           (0.3, True, 5e-4, True, 4, 0.1, 5, "step", 100, (512, 256), 2)


@pytest.mark.parametrize("flag", ["--dropout", "--nesterov", "--weight-decay", "--flip",
                                  "--crop-pad", "--label-smoothing", "--patience", "--schedule",
                                  "--warmup", "--tta-shift"])
def test_each_method_is_described_in_help(flag, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    assert flag in capsys.readouterr().out


# --------------------------------------------------------------------------- test-time augmentation


@pytest.mark.parametrize("dy,dx", [(0, 0), (2, 2), (-3, 1), (4, -4), (0, -2)])
def test_shift_is_the_window_a_training_crop_at_that_offset_sees(dy, dx):
    X, pad = images(5), 4
    padded = np.pad(X.reshape(-1, 3, 32, 32), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    window = padded[:, :, pad + dy:pad + dy + 32, pad + dx:pad + dx + 32]
    np.testing.assert_array_equal(shift(X, dy, dx, G).reshape(-1, 3, 32, 32), window)


def test_the_ten_views_are_the_image_and_four_diagonal_shifts_each_also_mirrored():
    X = images(3)
    before = X.copy()
    views = list(tta_views(X, 2, G))
    np.testing.assert_array_equal(X, before)
    expected = [f(shift(X, dy, dx, G)) for dy, dx in ((0, 0), (2, 2), (2, -2), (-2, 2), (-2, -2))
                for f in (lambda v: v, lambda v: mirror(v, G))]
    assert len(views) == 10
    for got, want in zip(views, expected):
        np.testing.assert_array_equal(got, want)
    assert len({v.tobytes() for v in views}) == 10
    np.testing.assert_array_equal(mirror(X, G).reshape(-1, 3, 32, 32),
                                  X.reshape(-1, 3, 32, 32)[..., ::-1])


@pytest.mark.parametrize("mode", ["per_image", "per_channel"])
def test_tta_predicts_the_class_of_the_mean_probability_over_the_views(mode):
    X = images(300, seed=3)
    prep = Preprocessor(mode, channel_stats(X) if mode == "per_channel" else None)
    model = FullyConnectedNet(hidden_dim=[64, 32], seed=1)
    # by hand: normalise each view, the whole network, softmax, the mean over the ten views
    views = [shift(X, dy, dx, G) for dy, dx in ((0, 0), (3, 3), (3, -3), (-3, 3), (-3, -3))]
    views += [mirror(v, G) for v in views]
    mean_probs = sum(softmax(model.forward(prep(v), train=False)[0].astype(np.float64))
                     for v in views) / 10
    probs = probabilities(model, prep, X, batch_size=128, tta_shift=3, geometry=G)  # 3 batches
    assert probs.shape == (300, 10) and probs.dtype == np.float64
    np.testing.assert_allclose(probs, mean_probs, rtol=1e-4, atol=1e-7)
    pred = predict_labels(model, prep, X, batch_size=128, tta_shift=3, geometry=G)
    np.testing.assert_array_equal(pred, mean_probs.argmax(axis=1))
    # one view: the softmax of the scores, and the class of the highest score
    one = softmax(model.forward(prep(X), train=False)[0].astype(np.float64))
    np.testing.assert_allclose(probabilities(model, prep, X), one, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(predict_labels(model, prep, X), one.argmax(axis=1))
    # and it is not one view: on random images the votes change some answers
    assert np.any(pred != predict_labels(model, prep, X))


@pytest.mark.parametrize("bad", [-1, 17, True, 1.5])
def test_tta_shift_out_of_range_is_refused(bad):
    with pytest.raises(ConfigError, match="tta_shift"):
        TrainConfig(tta_shift=bad)


def test_a_run_with_tta_reports_both_accuracies_and_evaluate_repeats_them(tmp_path, capsys):
    write_cifar_dir(tmp_path / "cifar", n_per_batch=20, n_test=40)
    data = ["--data-dir", str(tmp_path / "cifar"), "--offline"]
    assert main(["train", *data, "--hidden-dim", "16", "--num-iters", "6", "--batch-size", "16",
                 "--val-size", "20", "--evals", "2", "--crop-pad", "2", "--tta-shift", "1",
                 "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "ten views (shift 1): val " in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["tta_shift"] == 1 and 0 <= metrics["test_accuracy_tta"] <= 1
            and 0 <= metrics["val_accuracy_tta"] <= 1)
    assert "test, ten views" in (tmp_path / "run" / "report.html").read_text()
    model = tmp_path / "run" / "model.npz"
    # evaluate uses the run's own shift unless told otherwise, and finds the same figures
    r = evaluate_saved(model, data_dir=tmp_path / "cifar", download=False, pictures=False)
    assert r["tta_shift"] == 1
    assert (r["accuracy"]["test_tta"], r["accuracy"]["val_tta"]) == (metrics["test_accuracy_tta"],
                                                                     metrics["val_accuracy_tta"])
    assert "test_tta" not in evaluate_saved(model, data_dir=tmp_path / "cifar", download=False,
                                            pictures=False, tta_shift=0)["accuracy"]
    assert main(["evaluate", "--model", str(model), *data, "--no-pictures",
                 "--tta-shift", "2"]) == 0
    assert "ten views, shift 2:" in capsys.readouterr().out
    assert main(["evaluate", "--model", str(model), *data, "--no-pictures",
                 "--tta-shift", "40"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--tta-shift 40" in err and "0..16" in err


def test_predict_averages_the_ten_views_and_a_bad_saved_shift_is_refused(tmp_path, capsys):
    from PIL import Image

    from numpy_mlp.runs.predict import image_to_row, predict_files
    from numpy_mlp.training.model_file import load_model, write_model_file

    write_cifar_dir(tmp_path / "cifar", n_per_batch=20, n_test=40)
    data = ["--data-dir", str(tmp_path / "cifar"), "--offline"]
    assert main(["train", *data, "--hidden-dim", "16", "--num-iters", "6", "--batch-size", "16",
                 "--val-size", "20", "--evals", "1", "--tta-shift", "3",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 0
    model_path = tmp_path / "run" / "model.npz"
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(images(1, seed=i).reshape(3, 32, 32).transpose(1, 2, 0)).save(paths[-1])
    saved = load_model(model_path)
    model, prep = saved.model, saved.preprocessor
    rows = np.stack([image_to_row(p, geometry=G) for p in paths])

    def probs(views):
        return sum(softmax(model.forward(prep(v), train=False)[0].astype(np.float64))
                   for v in views) / len(views)

    names = saved.class_names
    for shift_arg, expected in ((None, probs(list(tta_views(rows, 3, G)))), (0, probs([rows])),
                                (1, probs(list(tta_views(rows, 1, G))))):
        # default: the run's own shift, 3
        got = predict_files(model_path, paths, top=10, tta_shift=shift_arg)
        for (path, top), p in zip(got, expected):
            np.testing.assert_allclose([q for _, q in top], np.sort(p)[::-1], rtol=1e-5)
            assert top[0][0] == names[int(np.argmax(p))]
    # the views do change the answer
    assert not np.allclose(probs(list(tta_views(rows, 3, G))), probs([rows]))
    capsys.readouterr()
    assert main(["predict", "--model", str(model_path), "--tta-shift", "40", str(paths[0])]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--tta-shift 40" in err and "0..16" in err

    # a hand-edited model file whose saved shift is not one: refused by name,
    # unless a shift is given
    cfg = dict(saved.config, tta_shift=99)
    write_model_file(model_path, model, prep, class_names=names, config=cfg, geometry=G)
    for cmd in (["evaluate", "--model", str(model_path), *data, "--no-pictures"],
                ["predict", "--model", str(model_path), str(paths[0])]):
        assert main(cmd) == 2
        err = capsys.readouterr().err.strip()
        assert ("\n" not in err and str(model_path) in err and "tta_shift=99" in err
                and "--tta-shift" in err)
        assert main([*cmd, "--tta-shift", "0"]) == 0
