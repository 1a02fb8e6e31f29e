"""The weights' moving average: its update worked by hand, its evaluation beside the trained
weights, the better of the two kept, and everything that reads the history."""

import numpy as np
import pytest
from synthetic_data import synthetic

from numpy_mlp import TrainConfig
from numpy_mlp.errors import ConfigError
from numpy_mlp.nn.ema import EMA, decay_at
from numpy_mlp.nn.optim import BLOCK
from numpy_mlp.runs.display import eval_line
from numpy_mlp.runs.plots import plot_accuracy
from numpy_mlp.runs.writeup import HISTORY_COLUMNS, history_csv, read_history, run_metrics
from numpy_mlp.training.loop import HISTORY_KEYS, build, record_evaluation, result_of, train


def test_three_updates_worked_by_hand_with_the_warm_up():
    # decay 0.9: d_1 = min(0.9, 2/11) = 2/11, d_2 = 3/12 = 1/4, d_3 = 4/13
    # avg_0 = 0; theta_t = t
    # avg_1 = 2/11*0 + 9/11*1          = 9/11
    # avg_2 = 1/4*9/11 + 3/4*2         = 9/44 + 66/44 = 75/44
    # avg_3 = 4/13*75/44 + 9/13*3      = 75/143 + 297/143 = 372/143
    params = {"W1": np.zeros((2, 3)), "b1": np.zeros(3)}
    ema = EMA(params, 0.9)
    for t in (1, 2, 3):
        ema.update({k: np.full_like(v, t) for k, v in params.items()}, t)
        expected = {1: 9 / 11, 2: 75 / 44, 3: 372 / 143}[t]
        for v in ema.averages.values():
            np.testing.assert_allclose(v, expected, rtol=1e-14)
    assert not params["W1"].any()  # the parameters themselves are not touched


def test_the_warm_up_gives_way_to_the_decay():
    assert decay_at(0.25, 1) == 2 / 11 and decay_at(0.25, 2) == 0.25 and decay_at(0.25, 3) == 0.25
    assert decay_at(0.999, 10**6) == 0.999 and decay_at(0.0, 5) == 0.0
    # decay 0.25: avg_1 = 2/11*0 + 9/11*1 = 9/11, avg_2 = 0.25*9/11 + 0.75*2 = 75/44 (as above),
    # avg_3 = 0.25*75/44 + 0.75*3 = 75/176 + 396/176 = 471/176 (the cap, not 4/13)
    ema = EMA({"b": np.zeros(1)}, 0.25)
    for t in (1, 2, 3):
        ema.update({"b": np.full(1, float(t))}, t)
    assert np.isclose(ema.averages["b"][0], 471 / 176, rtol=1e-14)


def test_a_weight_larger_than_a_block_is_averaged_in_every_block():
    rng = np.random.default_rng(0)
    W0, W1 = rng.standard_normal((2, 300, 500)).astype(np.float32)  # 150_000 > BLOCK values
    assert W0.size > 2 * BLOCK
    ema = EMA({"W1": W0}, 0.99)
    ema.update({"W1": W1}, 50)
    d = min(0.99, 51 / 60)
    np.testing.assert_allclose(ema.averages["W1"], d * W0 + (1 - d) * W1, rtol=1e-5, atol=1e-6)
    assert ema.averages["W1"].dtype == np.float32


def test_swapped_into_lends_the_averages_and_gives_the_weights_back():
    data = synthetic(n_train=40, n_val=10)
    run = build(TrainConfig(hidden_dim=(6,), ema=0.5, threads=1), data)
    model, ema = run.model, run.ema
    own = dict(model.params)
    for v in ema.averages.values():
        v += 1.0
    with pytest.raises(RuntimeError):
        with ema.swapped_into(model):
            assert all(model.params[k] is ema.averages[k] for k in own)
            assert run.optimizer.params is model.params  # the optimizer's dict, the same one
            raise RuntimeError
    assert all(model.params[k] is own[k] for k in own)
    assert not np.array_equal(model.params["W1"], ema.averages["W1"])


def test_state_round_trip_repr_and_checks():
    ema = EMA({"W1": np.zeros((2, 2)), "b1": np.zeros(2)}, 0.99)
    other = EMA({"W1": np.ones((2, 2)), "b1": np.ones(2)}, 0.99)
    ema.load_state_dict(other.state_dict())
    assert all((v == 1).all() for v in ema.averages.values())
    with pytest.raises(ValueError, match="ema/W1: shape"):
        ema.load_state_dict({"W1": np.zeros(3), "b1": np.zeros(2)})
    assert repr(ema) == "EMA(decay=0.99, params=2, values=6)"
    with pytest.raises(ConfigError, match="ema=1.5 must be"):
        EMA({}, 1.5)


# ---------------------------------------------------------------- in training


@pytest.fixture(scope="module")
def data():
    return synthetic(n_train=120, n_val=40)


@pytest.fixture(scope="module")
def good_params(data):
    """Parameters that classify the synthetic validation set well."""
    result = train(TrainConfig(hidden_dim=(12,), batch_size=20, num_iters=60, evals=2, threads=1),
                   data)
    assert result.best_val_acc > 0.9
    return result.model.copy_params()


CRAFTED = TrainConfig(hidden_dim=(12,), batch_size=20, num_iters=60, ema=0.9, threads=1)


def crafted_run(data, good, *, ema_is_good):
    """A run whose trained weights or EMA averages are ``good`` and the other useless."""
    run = build(CRAFTED, data)
    run.loop.loss_sum, run.loop.loss_count, run.loop.step = 1.0, 1, 10
    bad = {k: np.zeros_like(v) for k, v in good.items()}  # every score 0: all class 0
    run.model.load_params(bad if ema_is_good else good)
    run.ema.load_state_dict(good if ema_is_good else bad)
    return run


def test_the_ema_is_kept_as_the_best_when_it_is_better_on_val(data, good_params):
    run = crafted_run(data, good_params, ema_is_good=True)
    record_evaluation(run, data, epoch=1.0, alpha=0.1, seconds=0.0)
    h, s = run.loop.history, run.loop
    assert h["val_acc_ema"][-1] > 0.9 > h["val_acc"][-1]
    assert s.best_ema and s.best_val == h["val_acc_ema"][-1] and s.best_step == 10
    assert h["train_acc"][-1] < 0.5  # the train accuracy is the trained weights'
    result = result_of(run, CRAFTED, data, seconds=0.0, stopped_early=False)
    assert result.best_source == "ema" and result.best_val_acc == h["val_acc_ema"][-1]
    for k, v in good_params.items():  # the final model is the better one: the averages
        np.testing.assert_array_equal(result.model.params[k], v)


def test_the_trained_weights_are_kept_when_better_and_on_a_tie(data, good_params):
    run = crafted_run(data, good_params, ema_is_good=False)
    record_evaluation(run, data, epoch=1.0, alpha=0.1, seconds=0.0)
    assert not run.loop.best_ema and run.loop.best_val == run.loop.history["val_acc"][-1]
    run.ema.load_state_dict(run.model.params)  # the same weights: a tie
    run.loop.loss_count, run.loop.step = 1, 11
    record_evaluation(run, data, epoch=1.1, alpha=0.1, seconds=0.0)
    assert not run.loop.best_ema and run.loop.best_step == 10  # not better than the best
    assert run.loop.history["val_acc_ema"] == [pytest.approx(0.1, abs=0.15),
                                               run.loop.history["val_acc"][-1]]
    assert result_of(run, CRAFTED, data, seconds=0.0, stopped_early=False).best_source == "raw"


def test_an_ema_leaves_the_training_itself_unchanged(data):
    base = dict(hidden_dim=(12,), batch_size=20, num_iters=30, evals=3, dropout=0.1, threads=1)
    plain, averaged = (train(TrainConfig(**base, **extra), data) for extra in ({}, {"ema": 0.9}))
    for k in HISTORY_KEYS:
        if k != "seconds":
            assert plain.history[k] == averaged.history[k], k
    assert set(averaged.history) == {*HISTORY_KEYS, "val_acc_ema"}
    assert set(plain.history) == set(HISTORY_KEYS) and plain.best_source == "raw"


def test_the_history_readers_show_the_ema_and_work_without_it(data, tmp_path):
    result = train(TrainConfig(hidden_dim=(12,), batch_size=20, num_iters=30, evals=3, ema=0.9,
                               threads=1), data)
    h = result.history
    line = eval_line(h, 30)
    assert f"val_acc {h['val_acc'][-1]:.3f}  val_acc_ema {h['val_acc_ema'][-1]:.3f}  " in line
    plain = {k: v for k, v in h.items() if k != "val_acc_ema"}
    assert "ema" not in eval_line(plain, 30)
    # the csv keeps the average's curve in a last column, only in an EMA run's history
    ema_csv, plain_csv = history_csv(h), history_csv(plain)
    assert plain_csv.splitlines()[0] == ",".join(HISTORY_COLUMNS)
    assert ema_csv.splitlines()[0] == ",".join(HISTORY_COLUMNS) + ",val_acc_ema"
    for text, name in ((ema_csv, "ema.csv"), (plain_csv, "plain.csv")):
        (tmp_path / name).write_text(text)
    back, back_plain = read_history(tmp_path / "ema.csv"), read_history(tmp_path / "plain.csv")
    assert back["val_acc_ema"] == pytest.approx(h["val_acc_ema"], abs=1e-6)
    assert back["val_acc"] == back_plain["val_acc"] == pytest.approx(h["val_acc"], abs=1e-6)
    assert "val_acc_ema" not in back_plain
    for history, name in ((h, "ema.png"), (plain, "plain.png")):
        plot_accuracy(history, tmp_path / name)
        assert (tmp_path / name).stat().st_size > 1000
    acc = {"train": 1.0, "val": 1.0, "test": 1.0}
    cm = np.eye(10)
    cfg = TrainConfig(ema=0.9)
    assert run_metrics(acc, cm, result, data, cfg, 0.0)["best_source"] == result.best_source
    assert "best_source" not in run_metrics(acc, cm, result, data, TrainConfig(), 0.0)


def test_a_warm_start_fit_continues_from_the_fitted_average(monkeypatch):
    from numpy_mlp.nn import ema as ema_module
    from numpy_mlp.sklearn import FullyConnectedClassifier

    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((60, 5)), rng.integers(0, 3, 60)
    clf = FullyConnectedClassifier(hidden_dim=(8,), num_iters=6, evals=2, ema=0.9,
                                   warm_start=True, threads=1).fit(X, y)
    fitted = {k: v.copy() for k, v in clf.run_.ema.averages.items()}
    starts = []
    original = ema_module.EMA.update

    def update(self, params, step):
        if step == 1:
            starts.append({k: v.copy() for k, v in self.averages.items()})
        original(self, params, step)

    monkeypatch.setattr(ema_module.EMA, "update", update)
    clf.fit(X, y)
    assert len(starts) == 1 and all(np.array_equal(starts[0][k], v) for k, v in fitted.items())


def test_checkpoints_of_an_ema_run_are_checked_and_older_ones_still_read(data, tmp_path):
    import json

    from numpy_mlp.errors import CheckpointError
    from numpy_mlp.training.checkpoint_file import read_checkpoint, save_checkpoint
    from numpy_mlp.training.checkpointing import restore

    config = TrainConfig(hidden_dim=(6,), batch_size=20, num_iters=4, evals=2, ema=0.9, threads=1)
    run = build(config, data)
    train(config, data, state=run)
    save_checkpoint(tmp_path / "c.npz", config, run)
    meta, arrays = read_checkpoint(tmp_path / "c.npz")
    assert sorted(k for k in arrays if k.startswith("ema/")) == ["ema/W1", "ema/W2", "ema/b1",
                                                                 "ema/b2"]

    def rewrite(name, meta, arrays):
        np.savez(tmp_path / name, **arrays, state=np.array(json.dumps(meta)))
        return tmp_path / name

    without = {k: v for k, v in arrays.items() if k != "ema/W1"}
    with pytest.raises(CheckpointError, match=r"missing \['ema/W1'\]") as e:
        read_checkpoint(rewrite("a.npz", meta, without))
    assert "\n" not in str(e.value)
    lost = {**meta, "history": {k: v for k, v in meta["history"].items() if k != "val_acc_ema"}}
    with pytest.raises(CheckpointError, match="val_acc_ema"):
        read_checkpoint(rewrite("b.npz", lost, arrays))
    # written before mixing and the EMA existed: no mix generator, no best_ema; a plain config
    plain = TrainConfig(hidden_dim=(6,), batch_size=20, num_iters=4, evals=2, threads=1)
    old = {**lost, "config": plain.to_dict(), "rng": {k: v for k, v in meta["rng"].items()
                                                       if k != "mix"},
           "loop": {k: v for k, v in meta["loop"].items() if k != "best_ema"}}
    old_arrays = {k: v for k, v in arrays.items() if not k.startswith("ema/")}
    restored = restore(rewrite("old.npz", old, old_arrays), plain, data)
    assert restored.ema is None and not restored.loop.best_ema
    assert restored.loop.mix_rng.bit_generator.state == build(plain, data).loop.mix_rng \
        .bit_generator.state
