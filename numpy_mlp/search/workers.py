"""Worker processes: each runs trials of the study with one BLAS thread.

A worker loads the data once, then for each trial samples a config, trains it with
``train(config, data, on_eval=...)``, reports the validation accuracy after every
evaluation so that the pruner can stop a poor trial, and returns the best validation
accuracy of the run. A diverging trial counts as pruned. There is no scheduler or queue
of our own: each worker asks the shared storage for its next trial. While a trial runs,
Optuna's heartbeat thread beats for it; before each trial Optuna marks FAIL (and queues
again) the trials of dead workers, and so does each worker after each trial
(study.fail_dead_trials).
"""

from __future__ import annotations

import multiprocessing

import optuna
from optuna.trial import TrialState
from threadpoolctl import threadpool_limits

from ..data.registry import load_dataset
from ..errors import DivergenceError, UserError
from ..nn.rules import spelled_as
from ..training.loop import train
from .outputs import fmt, save_trial_model, trial_model_path
from .settings import set_spelling
from .space import base_config, suggest_config
from .storage import fail_dead_trials, open_storage, worker_identity
from .study import counts, finished, make_pruner, make_sampler, open_study, quiet_optuna


def shares(total, k):
    """Split ``total`` trials over ``k`` workers as evenly as possible."""
    return [total // k + (i < total % k) for i in range(k)]


def load_data(settings, base=None):
    """The study's dataset (CIFAR-10 unless fixed otherwise) with its validation split (its
    fixed seed and val_size)."""
    base = base or base_config(settings)
    return load_dataset(base, settings.data_dir, download=settings.download, progress=False)


def objective(trial, data, settings):
    """One trial: sample a config, train it, return its best validation accuracy.

    The validation accuracy of every evaluation is reported to the trial (step = number
    of the evaluation, so runs of any length compare at the same fraction of their run);
    the pruner may stop the run there. A diverging run is pruned and tagged ``diverged``.
    """
    trial.set_user_attr("worker", worker_identity(trial.number))
    config = suggest_config(trial, settings)
    trial.set_user_attr("config", config.to_dict())

    def on_eval(step, history):
        n = len(history["val_acc"])
        trial.report(history["val_acc"][-1], n)
        if trial.should_prune():
            raise optuna.TrialPruned(f"val_acc {history['val_acc'][-1]:.4f} at evaluation {n}")

    try:
        result = train(config, data, on_eval=on_eval)
    except DivergenceError as e:
        trial.set_user_attr("diverged", True)
        raise optuna.TrialPruned(str(e)) from None
    trial.set_user_attr("train_seconds", round(result.seconds, 2))
    trial.set_user_attr("best_step", result.best_step)
    _keep_if_best(trial, result, data, settings)
    return result.best_val_acc


def _keep_if_best(trial, result, data, settings):
    """Save the model of this trial (trial-N.npz) if it beats every finished trial."""
    def rank(value, number):  # the order of outputs.finish: higher accuracy, then earlier
        return (value, -number)

    done = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if any(rank(t.value, t.number) > rank(result.best_val_acc, trial.number) for t in done):
        return
    save_trial_model(trial_model_path(settings, trial.number), result.model, result.preprocessor,
                     data.class_names, trial.user_attrs["config"],
                     data.geometry)
    for t in done:  # the models of worse trials are no longer needed
        trial_model_path(settings, t.number).unlink(missing_ok=True)


def run_worker(settings, worker, n_trials, *, data=None, log=print):
    """Run up to ``n_trials`` trials of the study in this process, with one BLAS thread.

    Stops early when the study holds ``settings.n_trials`` finished or running trials
    (other workers and machines count), or after ``settings.timeout`` seconds.
    """
    quiet_optuna()
    base = base_config(settings)
    storage = open_storage(settings, log)
    n_existing = len(open_study(settings, storage).get_trials(deepcopy=False))
    study = open_study(settings, storage, make_sampler(settings, worker, n_existing),
                       make_pruner(settings, base))
    data = data if data is not None else load_data(settings, base)

    def enough():
        c = counts(study)
        return finished(c) + c.get("RUNNING", 0) >= settings.n_trials

    def after_trial(study, trial):
        dead = fail_dead_trials(study)
        if log:
            log(_trial_line(worker, trial) + (f"  (marked FAIL, worker gone: {dead})" if dead
                                              else ""))
        if enough():
            study.stop()

    fail_dead_trials(study)
    if n_trials <= 0 or enough():
        return
    with threadpool_limits(1):
        study.optimize(lambda t: objective(t, data, settings), n_trials=n_trials,
                       timeout=settings.timeout, callbacks=[after_trial], gc_after_trial=True)


def run_workers(settings, todo, data, log):
    """Run ``todo`` trials with ``settings.workers`` workers: in this process for one
    worker (with the data already read), else in spawned processes; waits for all."""
    parts = shares(todo, settings.workers)
    if settings.workers == 1:
        run_worker(settings, 0, parts[0], data=data, log=log)
        return
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(settings, i, n),
                         name=f"numpy-mlp-worker-{i}") for i, n in enumerate(parts) if n > 0]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=10)  # they got the same Ctrl-C; give them time to mark their trials
            if p.is_alive():
                p.terminate()
        raise
    for p in procs:
        if p.exitcode and log:
            why = (f"killed by signal {-p.exitcode}" if p.exitcode < 0
                   else f"exit status {p.exitcode}")
            log(f"{p.name} (pid {p.pid}) stopped early: {why}; a trial it was running is "
                f"marked FAIL and runs once more")


def _worker_main(settings, worker, n_trials):
    """Entry point of a spawned worker process."""
    try:
        with spelled_as(set_spelling):  # a new process: the search's words again
            run_worker(settings, worker, n_trials)
    except UserError as e:
        print(f"numpy-mlp: worker {worker}: error: {e}", flush=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _trial_line(worker, t):
    params = "  ".join(f"{k}={fmt(v)}" for k, v in t.params.items())
    if t.user_attrs.get("diverged"):
        value = "diverged (counted as pruned)"
    elif t.value is not None:
        value = f"val_acc {t.value:.4f}"
    elif t.intermediate_values:
        value = f"pruned at evaluation {max(t.intermediate_values)}"
    else:
        value = t.state.name.lower()
    seconds = ((t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete
               else float("nan"))
    return (f"[worker {worker}] trial {t.number:>3} {t.state.name:<8} {value}  ({seconds:.0f}s)"
            f"  {params}")
