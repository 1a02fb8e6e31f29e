"""The trainer: learning, determinism, best-by-validation, schedules, errors."""

import math

import numpy as np
import pytest
from synthetic_data import synthetic

from numpy_mlp import SGD, FullyConnectedNet, TrainConfig, cross_entropy_loss, train
from numpy_mlp.errors import ConfigError, DivergenceError
from numpy_mlp.nn.schedules import lr_at


def test_overfits_a_tiny_set_to_100_percent():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3072)).astype(np.float32)
    y = rng.integers(0, 10, 50)
    model = FullyConnectedNet(hidden_dim=100, seed=0)
    opt = SGD(model.params, alpha=1e-2, beta=0.9)
    for _ in range(200):
        scores, cache = model.forward(X)
        loss, dscores = cross_entropy_loss(scores, y)
        model.backward(dscores, cache)
        opt.step(model.grads)
    assert (model.predict(X) == y).mean() == 1.0
    assert loss < 0.05


def test_trainer_learns_and_keeps_the_best_params():
    data = synthetic()
    cfg = TrainConfig(hidden_dim=(50,), alpha=1e-2, batch_size=32, num_iters=60, evals=6,
                      val_size=100, eval_train_size=300)
    result = train(cfg, data)
    h = result.history
    assert len(h["loss"]) == 60 and len(h["eval_step"]) == 6
    assert h["loss"][0] > 1.5 and np.mean(h["loss"][-10:]) < h["loss"][0] / 3
    assert max(h["val_acc"]) > 0.9
    i = int(np.argmax(h["val_acc"]))
    assert result.best_step == h["eval_step"][i] and result.best_val_acc == h["val_acc"][i]
    # the model holds the best parameters: its val accuracy is the best one recorded
    from numpy_mlp.training.inference import predict_labels
    from numpy_mlp.training.metrics import accuracy
    assert result.preprocessor.mode == "per_image"
    pred = predict_labels(result.model, result.preprocessor, data.X_val)
    assert accuracy(data.y_val, pred) == pytest.approx(result.best_val_acc)


def test_same_seed_same_history_other_seed_other_history():
    data = synthetic()
    cfg = TrainConfig(hidden_dim=(20,), batch_size=16, num_iters=30, evals=3)
    a, b = train(cfg, data), train(cfg, data)
    c = train(cfg.replace(seed=1), data)
    timeless = lambda h: {k: v for k, v in h.items() if k != "seconds"}  # noqa: E731
    assert timeless(a.history) == timeless(b.history)
    np.testing.assert_array_equal(a.model.params["W1"], b.model.params["W1"])
    assert a.history["loss"] != c.history["loss"]


def test_epochs_run_without_replacement():
    data = synthetic(n_train=64)
    cfg = TrainConfig(hidden_dim=(8,), batch_size=16, epochs=1, evals=1, eval_train_size=64)
    assert train(cfg, data).steps == 4  # 64 images / 16 per batch


def test_log_gets_one_line_per_evaluation():
    from numpy_mlp.runs.display import TrainingDisplay

    lines, steps = [], []
    cfg = TrainConfig(hidden_dim=(8,), batch_size=16, num_iters=40, evals=20)
    display = TrainingDisplay(40, say=lines.append)
    train(cfg, synthetic(), on_eval=display.on_eval,
          on_step=lambda run: steps.append(run.loop.step))
    assert len(lines) == 20 and lines[0].startswith("step  2/40") and "val_acc" in lines[0]
    assert steps == list(range(1, 41))


def test_divergence_stops_with_the_step_named():
    cfg = TrainConfig(hidden_dim=(50,), alpha=1e4, beta=0.9, batch_size=32, num_iters=50,
                      schedule="constant")
    with pytest.raises(DivergenceError, match=r"step \d+.*smaller learning rate"):
        train(cfg, synthetic())


def test_batch_larger_than_training_set_is_refused():
    with pytest.raises(ConfigError, match="batch_size"):
        train(TrainConfig(batch_size=1000, num_iters=1), synthetic())


@pytest.mark.parametrize("kw", [{"beta": 1.0}, {"beta": 10}, {"alpha": 0}, {"alpha": float("nan")},
                                {"batch_size": 0}, {"epochs": -1}, {"num_iters": 0}, {"reg": -1},
                                {"preprocessing": "zca"}, {"schedule": "exp"},
                                {"hidden_dim": (0,)}])
def test_config_refuses_out_of_range_values(kw):
    with pytest.raises(ConfigError):
        TrainConfig(**kw)


def test_config_round_trips_through_a_dict():
    cfg = TrainConfig(hidden_dim=(30, 20), alpha=0.1, num_iters=7)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown config key"):
        TrainConfig.from_dict({"hidden": 3})


def test_schedules_are_pure_functions_of_the_step():
    assert lr_at(1, alpha=0.1, total=100) == 0.1
    assert lr_at(100, alpha=0.1, total=100) == 0.1
    assert lr_at(1, alpha=0.1, total=100, schedule="cosine") == pytest.approx(
        0.1 * 0.5 * (1 + math.cos(math.pi / 100)))
    assert lr_at(100, alpha=0.1, total=100, schedule="cosine") == pytest.approx(0.0)
    assert lr_at(50, alpha=0.1, total=100, schedule="cosine") == pytest.approx(0.05)
    assert lr_at(5, alpha=0.1, total=100, warmup=10) == pytest.approx(0.05)
    assert lr_at(10, alpha=0.1, total=100, warmup=10) == pytest.approx(0.1)
    assert lr_at(34, alpha=0.1, total=100, schedule="step", gamma=0.5) == pytest.approx(0.05)
    assert lr_at(33, alpha=0.1, total=100, schedule="step", gamma=0.5) == pytest.approx(0.1)
