"""Checkpoints: a run crashed at any step and resumed ends bit for bit where it would have.

In process, a "crash" is an exception raised right after some step (the checkpoint
callback has run, so the steps since the last checkpoint are lost and done again); the
resumed run rebuilds everything from the file on disk, sharing no object with the
crashed one. tests/test_interrupt.py does the same with real SIGKILL, SIGINT and SIGTERM.
"""

import itertools
import json
import os
import signal
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from synthetic_data import synthetic

from numpy_mlp import TrainConfig
from numpy_mlp.errors import Interrupted, ModelFileError
from numpy_mlp.runs.train import train_with_checkpoints
from numpy_mlp.training import checkpointing as ckpt
from numpy_mlp.training.checkpoint_file import (
    CHECKPOINT_FORMAT_VERSION,
    CHECKPOINT_NAME,
    read_checkpoint,
)
from numpy_mlp.training.checkpointing import restore

# every source of randomness and every piece of loop state is in use: dropout masks
# (model.rng), flips and crops (aug_rng), reshuffles (order_rng), per-channel statistics,
# Nesterov momentum, weight decay, a schedule with warm-up, the best-so-far parameters
CONFIG = TrainConfig(hidden_dim=(24, 16), batch_size=16, num_iters=90, evals=9, dropout=0.2,
                     flip=True, crop_pad=2, nesterov=True, weight_decay=1e-3, label_smoothing=0.1,
                     warmup=5, preprocessing="per_channel", alpha=2e-2, eval_train_size=50,
                     checkpoint_every=7, threads=1)


class Crash(Exception):
    """Stands in for a process dying right after a step."""


@pytest.fixture(scope="module")
def data():
    return synthetic(n_train=120, n_val=40)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The uninterrupted run: its result and its final checkpoint (written at the last step)."""
    return finished_run(CONFIG, data, tmp_path_factory.mktemp("reference"))


def crash_after(monkeypatch, step):
    """Make the checkpoint callback raise Crash right after ``step`` (once)."""
    original = ckpt.Checkpointer.__call__

    def call(self, run):
        original(self, run)
        if run.loop.step == step:
            monkeypatch.setattr(ckpt.Checkpointer, "__call__", original)
            raise Crash(step)

    monkeypatch.setattr(ckpt.Checkpointer, "__call__", call)


def finished_run(config, data, folder):
    """Train ``config`` on ``data`` in ``folder`` uninterrupted: (result, final checkpoint)."""
    return train_with_checkpoints(config, data, folder), read_checkpoint(folder / CHECKPOINT_NAME)


def crashed_and_resumed(config, data, folder, monkeypatch, step):
    """Train ``config`` in ``folder``, crash right after ``step``, then resume it to the
    end: (the resumed run's result, its final checkpoint), for :func:`assert_same_run`."""
    crash_after(monkeypatch, step)
    with pytest.raises(Crash):
        train_with_checkpoints(config, data, folder)
    result = train_with_checkpoints(config, data, folder, resume=True)
    return result, read_checkpoint(folder / CHECKPOINT_NAME)


def assert_same_run(a, b):
    """Two (result, final checkpoint) pairs are bit for bit the same run."""
    (ra, (meta_a, arr_a)), (rb, (meta_b, arr_b)) = a, b
    timeless = lambda h: {k: v for k, v in h.items() if k != "seconds"}  # noqa: E731
    assert timeless(ra.history) == timeless(rb.history)
    assert ra.best_step == rb.best_step and ra.steps == rb.steps
    for k in ra.model.params:  # the best parameters, which model.npz would hold
        assert ra.model.params[k].tobytes() == rb.model.params[k].tobytes(), k
    assert sorted(arr_a) == sorted(arr_b)
    for k in arr_a:  # final parameters, momentum, best parameters, batch order, ...
        assert arr_a[k].dtype == arr_b[k].dtype and arr_a[k].tobytes() == arr_b[k].tobytes(), k
    assert meta_a["rng"] == meta_b["rng"]
    loop = lambda m: {k: v for k, v in m["loop"].items() if k != "seconds"}  # noqa: E731
    assert loop(meta_a) == loop(meta_b)


# 12 crash points: the first and last steps, steps on and just after a checkpoint or an
# evaluation, and random ones (seeded)
CRASH_STEPS = sorted({1, 7, 8, 10, 11, 89, 90,
                      *np.random.default_rng(6).choice(np.arange(2, 90), 5, replace=False)})


@pytest.mark.parametrize("step", CRASH_STEPS)
def test_crash_at_any_step_then_resume_is_bit_for_bit(step, data, reference, tmp_path, monkeypatch):
    assert_same_run(reference, crashed_and_resumed(CONFIG, data, tmp_path, monkeypatch, step))


def test_three_crashes_in_one_run_then_resume_is_bit_for_bit(data, reference, tmp_path,
                                                              monkeypatch):
    for step in (5, 33, 61):
        crash_after(monkeypatch, step)
        with pytest.raises(Crash):
            train_with_checkpoints(CONFIG, data, tmp_path, resume=True)
    result = train_with_checkpoints(CONFIG, data, tmp_path, resume=True)
    assert_same_run(reference, (result, read_checkpoint(tmp_path / CHECKPOINT_NAME)))


def test_another_checkpoint_interval_on_resume_changes_nothing(data, reference, tmp_path,
                                                               monkeypatch):
    crash_after(monkeypatch, 40)
    with pytest.raises(Crash):
        train_with_checkpoints(CONFIG, data, tmp_path)
    result = train_with_checkpoints(CONFIG.replace(checkpoint_every=3), data, tmp_path, resume=True)
    assert_same_run(reference, (result, read_checkpoint(tmp_path / CHECKPOINT_NAME)))


def test_checkpoints_are_written_at_the_interval_and_the_last_step(data, tmp_path, monkeypatch):
    steps = []
    original = ckpt.Checkpointer.save
    monkeypatch.setattr(ckpt.Checkpointer, "save",
                        lambda self, run: (steps.append(run.loop.step), original(self, run)))
    train_with_checkpoints(CONFIG, data, tmp_path)
    assert steps == [*range(7, 90, 7), 90]


@pytest.mark.parametrize("minutes", [5, 0])
def test_checkpoints_also_come_every_few_minutes(minutes, data, reference, tmp_path,
                                                 monkeypatch):
    """With an injected clock that reads a minute later each time it is read, and no
    checkpoints by steps, a checkpoint still comes every few steps (never more than 5
    apart); a crash loses only those, and the resumed run is bit for bit the reference.
    ``checkpoint_minutes=0`` turns them off: the crashed run leaves nothing to resume."""
    ticks = itertools.count(0, 60)
    monkeypatch.setattr(ckpt, "time", SimpleNamespace(monotonic=lambda: next(ticks)))
    steps = []
    original = ckpt.Checkpointer.save
    monkeypatch.setattr(ckpt.Checkpointer, "save",
                        lambda self, run: (steps.append(run.loop.step), original(self, run)))
    config = CONFIG.replace(checkpoint_every=0, checkpoint_minutes=minutes)
    crash_after(monkeypatch, 50)
    with pytest.raises(Crash):
        train_with_checkpoints(config, data, tmp_path)
    if minutes == 0:
        assert steps == [] and not (tmp_path / CHECKPOINT_NAME).exists()
        return
    assert steps and steps[0] <= 5 and steps[-1] >= 45
    assert all(0 < b - a <= 5 for a, b in zip(steps, steps[1:])), steps
    result = train_with_checkpoints(config, data, tmp_path, resume=True)
    assert_same_run(reference, (result, read_checkpoint(tmp_path / CHECKPOINT_NAME)))


def test_default_interval_is_twenty_per_run():
    assert ckpt.checkpoint_interval(TrainConfig(num_iters=1000), 45000) == 50
    assert ckpt.checkpoint_interval(TrainConfig(num_iters=1000, checkpoint_every=0), 45000) == 0
    # ceil(450 / 20)
    assert ckpt.checkpoint_interval(TrainConfig(epochs=1, batch_size=100), 45000) == 23


def test_a_crash_in_the_middle_of_a_write_leaves_the_previous_checkpoint(data, tmp_path,
                                                                         monkeypatch):
    crash_after(monkeypatch, 20)
    with pytest.raises(Crash):
        train_with_checkpoints(CONFIG, data, tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    before = path.read_bytes()
    assert read_checkpoint(path)[0]["loop"]["step"] == 14

    real_savez = np.savez

    def savez_then_die(f, **arrays):  # half a file written, then the disk fills up
        import io
        buf = io.BytesIO()
        real_savez(buf, **arrays)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", savez_then_die)
    with pytest.raises(OSError, match="No space"):
        train_with_checkpoints(CONFIG, data, tmp_path, resume=True)
    assert path.read_bytes() == before  # the previous checkpoint, intact
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]  # no half-written file left


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "newer", "foreign npz",
                                    "pickle inside"])
def test_damaged_checkpoint_is_refused_with_a_clear_message(damage, data, tmp_path, monkeypatch):
    crash_after(monkeypatch, 14)
    with pytest.raises(Crash):
        train_with_checkpoints(CONFIG, data, tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) * 2 // 3])
    elif damage == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "newer":
        meta, arrays = read_checkpoint(path)
        meta["format_version"] = CHECKPOINT_FORMAT_VERSION + 1
        np.savez(path, state=np.array(json.dumps(meta)), **arrays)
    elif damage == "foreign npz":
        np.savez(path, W1=np.zeros(3))
    elif damage == "pickle inside":  # an object array needs pickle: must not be loaded
        with open(path, "wb") as f:
            np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        path.write_bytes(_zip_with("state.npy", path.read_bytes()))
    with pytest.raises(ModelFileError) as e:
        restore(path, CONFIG, data)
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    expected = {"newer": "newer than this numpy-mlp",
                "foreign npz": "not a numpy-mlp checkpoint"}.get(damage, "damaged")
    assert expected in message


def _zip_with(name, payload):
    import io
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, payload)
    return buf.getvalue()


def test_checkpoint_of_another_config_or_other_data_is_refused(data, tmp_path, monkeypatch):
    crash_after(monkeypatch, 14)
    with pytest.raises(Crash):
        train_with_checkpoints(CONFIG, data, tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    with pytest.raises(ModelFileError, match=r"other settings \(alpha\)"):
        restore(path, CONFIG.replace(alpha=0.5), data)
    with pytest.raises(ModelFileError, match="other data"):
        restore(path, CONFIG, synthetic(n_train=120, n_val=40, seed=1))
    # settings that do not change the results may differ
    restore(path, CONFIG.replace(checkpoint_every=1, threads=2, tta_shift=2), data)


def signal_at(monkeypatch, step, times):
    """Send this process SIGTERM ``times`` times right after ``step``.

    That is before its checkpoint call.
    """
    original = ckpt.Checkpointer.__call__

    def call(self, run):
        if run.loop.step == step:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGTERM)
        original(self, run)

    monkeypatch.setattr(ckpt.Checkpointer, "__call__", call)


def test_sigterm_finishes_the_step_saves_a_checkpoint_and_resuming_is_bit_for_bit(data, reference,
                                                                                 tmp_path,
                                                                                 monkeypatch):
    signal_at(monkeypatch, 30, times=1)
    with pytest.raises(Interrupted, match="stopped at step 30 of 90; checkpoint saved") as e:
        train_with_checkpoints(CONFIG, data, tmp_path)
    assert e.value.signum == signal.SIGTERM
    assert read_checkpoint(tmp_path / CHECKPOINT_NAME)[0]["loop"]["step"] == 30
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is put back
    monkeypatch.undo()
    result = train_with_checkpoints(CONFIG, data, tmp_path, resume=True)
    assert_same_run(reference, (result, read_checkpoint(tmp_path / CHECKPOINT_NAME)))


def test_a_second_sigterm_stops_at_once_and_keeps_the_last_checkpoint(data, tmp_path, monkeypatch):
    signal_at(monkeypatch, 30, times=2)
    with pytest.raises(Interrupted, match=r"stopped at once; the last checkpoint .* stays") as e:
        train_with_checkpoints(CONFIG, data, tmp_path)
    assert e.value.signum == signal.SIGTERM
    assert read_checkpoint(tmp_path / CHECKPOINT_NAME)[0]["loop"]["step"] == 28  # every 7 steps


def test_a_run_on_float_features_resumes_bit_for_bit(tmp_path, monkeypatch):
    # per_feature: any numeric (N, D), here float64 with D = 7; its statistics travel with
    # the checkpoint as they do for per_channel
    from numpy_mlp.data.dataset import Dataset, Geometry

    rng = np.random.default_rng(1)
    X, y = rng.normal(5, [1, 10, 100, 1, 1, 3, 0.1], size=(160, 7)), rng.integers(0, 3, 160)
    X[:, 0] += 3 * y
    data = Dataset(X[:120], y[:120], X[120:], y[120:], X[:0], y[:0], ("a", "b", "c"), "floats",
                   geometry=Geometry.features(7))
    config = TrainConfig(hidden_dim=(16,), batch_size=16, num_iters=40, evals=4, flip=False,
                         preprocessing="per_feature", checkpoint_every=7, threads=1)
    reference = train_with_checkpoints(config, data, tmp_path / "ref")
    assert reference.preprocessor.stats["mean"].shape == (7,)
    crash_after(monkeypatch, 20)
    with pytest.raises(Crash):
        train_with_checkpoints(config, data, tmp_path / "run")
    result = train_with_checkpoints(config, data, tmp_path / "run", resume=True)
    assert_same_run((reference, read_checkpoint(tmp_path / "ref" / CHECKPOINT_NAME)),
                    (result, read_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)))
