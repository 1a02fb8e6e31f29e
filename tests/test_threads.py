"""The BLAS thread choice: fixed or from the load, restored afterwards, changing numbers only
in their last bits."""

import numpy as np
import pytest

import numpy_mlp.training.threads as threads_module
from numpy_mlp import TrainConfig, train
from numpy_mlp.errors import ConfigError
from numpy_mlp.training.threads import ThreadChooser, blas_threads, load_rule, set_blas_threads


class FakeClock:
    """Steps take ``cost[threads]`` seconds: the chooser reads this clock."""

    def __init__(self, cost):
        self.now, self.cost = 0.0, cost

    def __call__(self):
        return self.now

    def run(self, chooser, steps):
        counts = []
        for _ in range(steps):
            n = chooser.tick()
            counts.append(n)
            self.now += self.cost[n]
        return counts


def idle():
    """No other process keeps a core busy."""
    return 0.0


def unknown():
    """No load average: the chooser starts with one thread."""
    return None


@pytest.fixture(autouse=True)
def no_earlier_choice(monkeypatch):
    """Each test starts as a fresh process: no count settled on by an earlier chooser."""
    monkeypatch.setattr(threads_module, "_last_choice", None)


@pytest.fixture
def two_threads():
    """BLAS allowed 2 threads during the test, whatever the machine had before."""
    before = blas_threads()
    set_blas_threads(2)
    yield
    set_blas_threads(before)


def test_a_busy_machine_keeps_one_thread_until_the_other_job_ends(two_threads):
    clock = FakeClock({1: 1.0, 2: 10.0})
    busy = iter([1.0, 1.0, 0.2])  # another job holds a core for two checks, then ends
    chooser = ThreadChooser("auto", recheck=10.0, clock=clock,
                            other_load=lambda: next(busy), load_average=unknown)
    counts = clock.run(chooser, 22)
    # checks at step 2 (t = 1), 12 (t = 11) and 22 (t = 21): two threads only after the third
    assert counts == [1] * 21 + [2]
    assert chooser.chosen == [(2, 1), (12, 1), (22, 2)]


def test_an_unknown_load_keeps_the_count(two_threads):
    clock = FakeClock({1: 1.0, 2: 1.0})
    chooser = ThreadChooser("auto", recheck=2.0, clock=clock, other_load=unknown,
                            load_average=lambda: 0.0)
    assert clock.run(chooser, 6) == [2] * 6  # the load average's guess, never dropped
    assert [count for _, count in chooser.chosen] == [2, 2, 2]


def test_the_first_steps_follow_the_load_average(two_threads):
    import os

    clock = FakeClock({1: 1.0, 2: 1.0})
    quiet = ThreadChooser("auto", warmup=5.0, clock=clock, other_load=idle,
                          load_average=lambda: 0.2)
    assert clock.run(quiet, 3) == [2, 2, 2]  # an idle machine: both threads from the first step
    busy = ThreadChooser("auto", warmup=5.0, clock=clock, other_load=idle,
                         load_average=lambda: (os.cpu_count() or 1) - 1.0)
    assert clock.run(busy, 3) == [1, 1, 1]
    assert ThreadChooser(1, load_average=lambda: 0.0).tick() == 1  # a fixed count ignores it


def test_a_new_chooser_starts_from_the_count_the_last_one_settled_on(two_threads):
    clock = FakeClock({1: 4.0, 2: 1.0})
    first = ThreadChooser("auto", clock=clock, other_load=idle, load_average=unknown)
    clock.run(first, 6)
    assert first.current == 2
    second = ThreadChooser("auto", warmup=100.0, clock=clock, other_load=idle, load_average=unknown)
    assert clock.run(second, 3) == [2, 2, 2]  # without the memory: [1, 1, 1]


def test_the_load_of_other_processes_is_measured_on_linux():
    import os
    import time as _time

    from numpy_mlp.training.threads import OtherLoad

    load = OtherLoad()
    _time.sleep(0.3)
    busy = load()
    if os.path.exists("/proc/stat"):
        assert busy is not None and 0.0 <= busy <= (os.cpu_count() or 1)
    else:
        assert busy is None


def test_fixed_count_is_set_every_step_and_restored_at_close(two_threads):
    with ThreadChooser(1) as chooser:
        assert chooser.tick() == 1 and blas_threads() == 1
        assert chooser.candidates == (1,)
    assert blas_threads() == 2


def test_auto_respects_an_outer_limit_of_one_thread(two_threads):
    set_blas_threads(1)  # as a search worker does
    chooser = ThreadChooser("auto")
    assert chooser.candidates == (1,)
    assert all(chooser.tick() == 1 for _ in range(8))
    chooser.close()
    assert blas_threads() == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", True])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ConfigError, match="threads"):
        ThreadChooser(bad)
    with pytest.raises(ConfigError, match="threads"):
        TrainConfig(threads=bad)


def test_thread_count_changes_training_only_by_rounding(two_threads):
    """1, 2 and auto threads: the same training up to float32 rounding.

    Bitwise equality does not hold in general: for some shapes ((128, 1000) @ (1000, 10),
    the last layer at H = 1000) OpenBLAS splits the inner sum between threads.
    """
    from synthetic_data import synthetic

    data = synthetic()
    histories, params = [], []
    for threads in (1, 2, "auto"):
        cfg = TrainConfig(hidden_dim=(1000,), alpha=1e-2, batch_size=128, num_iters=12, evals=3,
                          val_size=100, eval_train_size=100, threads=threads)
        result = train(cfg, data)
        histories.append(result.history["loss"])
        params.append(result.model.params)
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    np.testing.assert_allclose(histories[0], histories[2], rtol=1e-5)
    for k in params[0]:
        np.testing.assert_allclose(params[0][k], params[1][k], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(params[0][k], params[2][k], rtol=1e-4, atol=1e-6)


def test_a_fixed_thread_count_repeats_bit_for_bit():
    from synthetic_data import synthetic

    data = synthetic()
    cfg = TrainConfig(hidden_dim=(1000,), alpha=1e-2, batch_size=128, num_iters=12, evals=3,
                      val_size=100, eval_train_size=100, threads=1)
    a, b = train(cfg, data), train(cfg, data)
    assert a.history["loss"] == b.history["loss"]
    for k in a.model.params:
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])


def test_evaluation_gives_back_the_thread_count_it_found(two_threads):
    from numpy_mlp import FullyConnectedNet
    from numpy_mlp.data.preprocessing import Preprocessor
    from numpy_mlp.training.inference import predict_labels

    model = FullyConnectedNet(3072, 16, 10, seed=0)
    X = np.random.default_rng(0).integers(0, 256, size=(50, 3072), dtype=np.uint8)
    prepare = Preprocessor("per_image")
    pred = predict_labels(model, prepare, X, batch_size=7)
    assert blas_threads() == 2
    np.testing.assert_array_equal(pred, model.predict(prepare(X)))


def test_the_simple_rule_leaves_one_thread_unless_one_and_a_half_cores_are_free():
    assert load_rule(2, 0.0, cores=2) == 2
    assert load_rule(2, 0.5, cores=2) == 2  # exactly FREE = 1.5 cores left
    assert load_rule(2, 0.6, cores=2) == 1
    assert load_rule(4, 2.4, cores=4) == 4 and load_rule(4, 2.6, cores=4) == 1
    assert load_rule(2, None, cores=2) == 1  # unknown load: never two threads on busy cores


def test_auto_follows_the_load_at_each_check(two_threads):
    clock = FakeClock({1: 1.0, 2: 3.0})  # the rule never looks at step times
    busy = iter([0.2, 1.0, 1.0, 0.1])  # idle, then another job holds a core, then ends
    chooser = ThreadChooser("auto", recheck=10.0, clock=clock,
                            other_load=lambda: next(busy), load_average=unknown)
    counts = clock.run(chooser, 13)
    # step 1 (t = 0): the guess (no load average: 1); step 2 (t = 1): the first check, idle,
    # gives 2 threads, 3 s a step, until the next check at t >= 11: step 6, busy: 1 thread
    assert counts == [1] + [2] * 4 + [1] * 8
    assert chooser.chosen == [(2, 2), (6, 1)]
    counts = clock.run(chooser, 13)  # checks at step 16 (t = 23, busy) and 26 (t = 33, idle)
    assert counts == [1] * 12 + [2]
    assert chooser.chosen == [(2, 2), (6, 1), (16, 1), (26, 2)]
