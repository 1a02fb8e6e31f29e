"""Distillation: the term worked by hand and checked against finite differences, the teacher
answering as its model file does (on the student's whitened batch when it can), a student
that learns from a teacher what its labels do not say, the refusals of a teacher that does
not fit, and a distilled run resumed bit for bit."""

import json

import numpy as np
import pytest
from fixtures_cifar import write_cifar_dir
from synthetic_data import synthetic
from test_bad_inputs import one_line_error

from numpy_mlp import TrainConfig, load_model, save_model
from numpy_mlp.cli.commands import main
from numpy_mlp.data.dataset import Dataset
from numpy_mlp.errors import ConfigError, ModelFileError
from numpy_mlp.nn.losses import distillation_loss, softmax
from numpy_mlp.training.loop import build, train
from numpy_mlp.training.teacher import Teacher, _in_whitened_space

WHITE = dict(preprocessing="whiten", whiten_dim=48, threads=1)


def test_the_term_worked_by_hand():
    # T = 2, scores [2, 0]: scores / T = [1, 0], p = [e, 1] / (e + 1); teacher q = [1/2, 1/2]
    # loss = T^2 * KL(q || p) = 4 * (1/2 log(1/2) * 2 - 1/2 log p0 - 1/2 log p1)
    #      = 4 * (-log 2 - 1/2 (1 - log(e + 1)) - 1/2 (0 - log(e + 1)))
    #      = 4 * (log(e + 1) - 1/2 - log 2)
    # d/dscores = T * (p - q) / N = 2 * (p - q)
    e = np.e
    loss, d = distillation_loss(np.array([[2.0, 0.0]]), np.array([[0.5, 0.5]]), 2.0)
    assert np.isclose(loss, 4 * (np.log(e + 1) - 0.5 - np.log(2)), rtol=1e-14)
    p = np.array([e, 1]) / (e + 1)
    np.testing.assert_allclose(d, [2 * (p - 0.5)], rtol=1e-14)


@pytest.mark.parametrize("T", [1.0, 3.5])
def test_the_gradient_is_the_loss_s_by_finite_differences(T):
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((4, 5)) * 3
    q = softmax(rng.standard_normal((4, 5)))
    q[0] = [1, 0, 0, 0, 0]  # a teacher certain of one class: 0 log 0 counts as 0
    w = np.array([1.0, 0.5, 2.0, 0.0])
    kept = scores.copy()
    _, d = distillation_loss(scores, q, T, weights=w)
    assert np.array_equal(scores, kept)  # never modified
    num = np.zeros_like(scores)
    h = 1e-6
    for i in np.ndindex(scores.shape):
        up, down = scores.copy(), scores.copy()
        up[i] += h
        down[i] -= h
        num[i] = (distillation_loss(up, q, T, weights=w)[0]
                  - distillation_loss(down, q, T, weights=w)[0]) / (2 * h)
    np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-9)


def test_the_term_is_zero_where_the_student_answers_as_the_teacher():
    scores = np.random.default_rng(1).standard_normal((3, 10)).astype(np.float32)
    loss, d = distillation_loss(scores, softmax(scores / 4.0), 4.0)
    assert abs(loss) < 1e-5 and np.abs(d).max() < 1e-6 and d.dtype == np.float32
    loss, _ = distillation_loss(scores, softmax(scores), 4.0)  # another temperature
    assert loss > 1e-3


@pytest.fixture(scope="module")
def data():
    return synthetic(n_train=300, n_val=100)


@pytest.fixture(scope="module")
def teacher_file(data, tmp_path_factory):
    """A whitened net trained on ``data`` (as a model file holds it: per_channel, the
    whitening folded into W1)."""
    result = train(TrainConfig(hidden_dim=(32,), alpha=0.05, epochs=30, **WHITE), data)
    return save_model(result, tmp_path_factory.mktemp("teacher") / "model.npz")


@pytest.mark.parametrize("student", [WHITE, dict(preprocessing="per_channel", threads=1),
                                     dict(WHITE, whiten_dim=40)],
                         ids=["same-whitening", "per_channel", "other-whitening"])
def test_the_teacher_answers_as_its_model_file_on_the_student_s_batch(student, data,
                                                                       teacher_file):
    config = TrainConfig(hidden_dim=(8,), teacher=str(teacher_file), distill_temperature=1.0,
                         **student)
    run = build(config, data)
    teacher = Teacher.of(config, data).bind(run.preprocessor)
    X_uint8 = data.X_val[:60]
    expected = load_model(teacher_file).predict_proba(X_uint8)  # (N, C)
    np.testing.assert_allclose(teacher.targets(X_uint8, run.preprocessor(X_uint8)), expected,
                               rtol=0, atol=2e-5)
    saved = load_model(teacher_file)
    W1, b1 = saved.model.params["W1"], saved.model.params["b1"]
    inside = _in_whitened_space(W1, b1, saved.preprocessor, run.preprocessor)
    # only the student's own whitening takes the first layer back into its K inputs
    assert (inside is not None) == (student is WHITE)
    if inside is not None:
        assert inside[0].shape == (48, 32)


def test_a_teacher_s_temperature_softens_and_an_ensemble_averages(data, teacher_file):
    config = TrainConfig(hidden_dim=(8,), teacher=f"{teacher_file},{teacher_file}",
                         distill_temperature=3.0, **WHITE)
    run = build(config, data)
    X_uint8 = data.X_val[:30]
    q = Teacher.of(config, data).bind(run.preprocessor).targets(X_uint8, run.preprocessor(X_uint8))
    p = load_model(teacher_file).predict_proba(X_uint8)
    np.testing.assert_allclose(q.sum(axis=1), 1, rtol=1e-5)
    assert (q.max(axis=1) < p.max(axis=1) + 1e-6).all()  # softer than at T = 1
    scores = np.log(p)  # the teacher's scores up to a constant per row
    np.testing.assert_allclose(q, softmax(scores / 3.0), rtol=2e-4, atol=1e-6)
    assert Teacher.of(config.replace(distill=0.0), data) is None


def test_a_student_learns_from_the_teacher_what_its_labels_do_not_say(data, teacher_file):
    # the labels of the student's training images shuffled: alone it learns nothing that
    # holds on validation; taught by a teacher of the real labels, it answers as the teacher
    rng = np.random.default_rng(5)
    noise = Dataset(data.X_train, rng.permutation(data.y_train), data.X_val, data.y_val,
                    data.X_test, data.y_test, data.class_names, "shuffled",
                    geometry=data.geometry)
    teacher_acc = (load_model(teacher_file).predict(data.X_val) == data.y_val).mean()
    base = TrainConfig(hidden_dim=(32,), alpha=0.05, epochs=30, **WHITE)
    alone = train(base, noise)
    taught = train(base.replace(teacher=str(teacher_file), distill=1.0, distill_temperature=2.0),
                   noise)
    assert teacher_acc > 0.9
    assert alone.best_val_acc < 0.35
    assert taught.best_val_acc > 0.7
    assert taught.history["loss"][-1] < taught.history["loss"][0] / 3  # the teacher's term


def other_split_teacher(data, folder, **changes):
    result = train(TrainConfig(hidden_dim=(8,), num_iters=3, evals=1, **WHITE, **changes), data)
    return save_model(result, folder / "model.npz")


def test_a_teacher_that_saw_the_validation_images_is_refused(data, tmp_path):
    path = other_split_teacher(data, tmp_path, seed=1)
    config = TrainConfig(hidden_dim=(8,), num_iters=2, evals=1, teacher=str(path), **WHITE)
    with pytest.raises(ConfigError, match=r"^teacher='.*': it was trained on another split "
                                          r"\(seed 1\).*validation split.*: seed=1$"):
        train(config, data)
    # without a validation split there is nothing to leak into
    no_val = Dataset(data.X_train, data.y_train, data.X_val[:0], data.y_val[:0], data.X_test,
                     data.y_test, data.class_names, "no val", geometry=data.geometry)
    assert train(config.replace(val_size=0), no_val).steps == 2


def test_a_teacher_of_other_classes_or_images_is_refused(data, tmp_path):
    path = other_split_teacher(data, tmp_path)
    renamed = Dataset(data.X_train, data.y_train, data.X_val, data.y_val, data.X_test,
                      data.y_test, tuple(f"c{i}" for i in range(10)), "renamed",
                      geometry=data.geometry)
    config = TrainConfig(hidden_dim=(8,), num_iters=2, evals=1, teacher=str(path), **WHITE)
    with pytest.raises(ConfigError, match="its 10 classes are not this run's 10 "
                                          r"\(c0, c1, c2, \.\.\.\)"):
        train(config, renamed)
    with pytest.raises(ConfigError, match="a teacher does not combine with MixUp"):
        train(config.replace(mixup=0.2), data)
    with pytest.raises(ConfigError, match=r"^teacher='.*,': an empty path"):
        train(config.replace(teacher=f"{path},"), data)
    with pytest.raises(ModelFileError):
        train(config.replace(teacher=str(tmp_path / "missing.npz")), data)


def test_a_distilled_run_resumes_bit_for_bit_and_only_with_its_teacher(data, teacher_file,
                                                                       tmp_path, monkeypatch):
    from test_checkpoint import assert_same_run, crashed_and_resumed, finished_run

    from numpy_mlp.runs.train import train_with_checkpoints

    copy = tmp_path / "teacher.npz"
    copy.write_bytes(teacher_file.read_bytes())
    config = TrainConfig(hidden_dim=(16,), batch_size=32, num_iters=40, evals=4, crop_pad=2,
                         teacher=str(copy), distill=0.7, checkpoint_every=6, **WHITE)
    whole = finished_run(config, data, tmp_path / "whole")
    assert_same_run(whole, crashed_and_resumed(config, data, tmp_path / "cut", monkeypatch, 15))
    meta, _ = whole[1]
    assert len(meta["loop"]["teacher_digest"]) == 64
    assert meta["config"]["teacher"] == str(copy)  # the checkpoint's config names it

    # another teacher in the same file: the run cannot go on as it would have
    from test_checkpoint import crash_after

    crash_after(monkeypatch, 10)
    with pytest.raises(Exception, match="10"):
        train_with_checkpoints(config, data, tmp_path / "changed")
    other = train(TrainConfig(hidden_dim=(32,), num_iters=5, evals=1, **WHITE), data)
    save_model(other, copy)
    with pytest.raises(ConfigError, match="teacher's model files .* changed since this run "
                                          "began"):
        train_with_checkpoints(config, data, tmp_path / "changed", resume=True)


def test_the_command_line_trains_a_student_of_a_run_folder(tmp_path, capsys):
    write_cifar_dir(tmp_path / "data", n_per_batch=40, n_test=20)
    common = ["train", "--data-dir", str(tmp_path / "data"), "--offline", "--val-size", "50",
              "--num-iters", "12", "--evals", "2", "--eval-train-size", "50",
              "--preprocessing", "whiten", "--whiten-dim", "32", "--hidden-dim", "16", "-q"]
    assert main([*common, "--out", str(tmp_path / "teacher")]) == 0
    assert main([*common, "--teacher", str(tmp_path / "teacher"), "--distill", "0.5",
                 "--out", str(tmp_path / "student")]) == 0
    saved = json.loads((tmp_path / "student" / "config.json").read_text())
    assert (saved["teacher"], saved["distill"]) == (str(tmp_path / "teacher"), 0.5)
    line = one_line_error([*common, "--seed", "3", "--teacher", str(tmp_path / "teacher"),
                           "--out", str(tmp_path / "other")], capsys)
    assert "another split (seed 0)" in line and line.endswith("--seed 0")
    assert "--teacher MODEL[,MODEL...]" in _help(capsys)
    # a wrong path is said before the run fits its whitening, not after
    argv = [a for a in common if a != "-q"]
    assert main([*argv, "--teacher", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    out, err = capsys.readouterr()
    assert "nope does not exist" in err and "whitening" not in out + err


def _help(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    return capsys.readouterr().out
