"""Hyperparameter search with Optuna: a loop over :func:`numpy_mlp.train.train`.

What ``numpy-mlp search`` does, in order:

1. **Space.** :data:`DEFAULT_SPACE` (hidden width H, learning rate, momentum, batch size,
   epochs, L2), narrowed or extended by a TOML file and ``--space``; ``--set`` fixes any
   ``TrainConfig`` field (a fixed field is not searched). A range is
   ``{"low", "high", "log"}``, a list of values is ``{"choices": [...]}``.
2. **Study.** One Optuna study in a shared storage coordinates every worker: a journal
   file ``DIR/study.journal`` by default (no server; safe for several processes), or any
   URL Optuna takes (``postgresql://...``, ``redis://...``) for many machines. There is no
   scheduler or queue of our own: each worker asks the storage for its next trial.
3. **Workers.** ``workers`` processes (spawned; one BLAS thread each) load the data once
   and run trials: sample a config, ``train(config, data, on_eval=...)``, report the
   validation accuracy after every evaluation so the pruner can stop poor trials, and
   return the best validation accuracy of the run. A diverging trial counts as pruned.
4. **Selection.** The trial with the best *validation* accuracy wins. Its model is reused
   (each worker keeps a checkpoint of the best trial it has seen) or, if the trial ran on
   another machine, retrained from its config; it is evaluated once on the test set.
5. **Files** in DIR: ``search.json`` (the settings), ``trials.csv``, ``best.json``,
   ``best_model.npz``, ``history.png``, ``params.png``, ``importance.png``.

Killed workers. A worker killed mid-trial (SIGKILL, power cut) leaves its trial RUNNING.
Every trial records its worker (host, pid, process start time) and, on journal storages,
a heartbeat every :data:`HEARTBEAT` seconds. Before it starts and after every trial a
worker marks FAIL each RUNNING trial whose process is gone (same host) or whose heartbeat
is older than :data:`STALE_AFTER` seconds (other hosts). On RDB storages (PostgreSQL)
Optuna's own heartbeat does the latter. A FAIL trial does not count towards
``n_trials``, so the study still reaches its target.

``n_trials`` is the study's target of finished (complete or pruned) trials: running the
same command again, or on another machine, continues until the study holds that many.
"""

from __future__ import annotations

import csv
import io
import math
import multiprocessing
import os
import socket
import threading
import time
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path

import numpy as np
import optuna
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend, JournalStorage
from optuna.trial import TrialState
from threadpoolctl import threadpool_limits

from .config import TrainConfig, parse_hidden_dims
from .data import load_cifar10
from .errors import ConfigError, DivergenceError, UserError
from .runs import evaluate_splits, write_json
from .saving import atomic_write, load_model, save_model
from .tomlfile import read_toml
from .train import make_preparer, train

# The default search space: hidden width H of the two-layer net, learning rate alpha,
# momentum beta, minibatch size, passes over the data, L2 strength.
DEFAULT_SPACE = {
    "hidden_dim": {"low": 256, "high": 4096, "log": True},
    "alpha": {"low": 1e-3, "high": 1e-1, "log": True},
    "beta": {"low": 0.0, "high": 0.99, "log": False},
    "batch_size": {"low": 32, "high": 512, "log": True},
    "epochs": {"low": 5, "high": 30, "log": False},
    "reg": {"low": 1e-6, "high": 1e-2, "log": True},
}
INT_FIELDS = {"hidden_dim", "epochs"}  # searched as whole numbers although not typed int
SPLIT_FIELDS = ("seed", "val_size")  # decide the validation split: fixed for the whole study
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "halving", "none")
HEARTBEAT = 20  # seconds between heartbeats of a running trial
STALE_AFTER = 120  # a RUNNING trial silent this long (on another host) is dead
HOST = socket.gethostname()


@dataclass(frozen=True)
class SearchSettings:
    out: str                         # folder of the search: results, journal, checkpoints
    n_trials: int = 20               # target number of finished (complete + pruned) trials
    workers: int = 1                 # processes on this machine, one BLAS thread each
    storage: str | None = None       # Optuna storage URL; None = journal file DIR/study.journal
    study_name: str = "numpy-mlp"    # several commands with the same storage + name share a study
    timeout: float | None = None     # seconds after which a worker starts no new trial
    sampler: str = "tpe"             # tpe, random or grid
    pruner: str = "median"           # median, halving (successive halving) or none
    grid_points: int = 3             # grid sampler: values per range (log- or evenly spaced)
    seed: int = 0                    # seeds the samplers (mixed with worker number and host)
    fixed: dict = field(default_factory=dict)  # TrainConfig fields fixed for every trial
    space: dict = field(default_factory=lambda: dict(DEFAULT_SPACE))  # searched fields
    data_dir: str | None = None      # CIFAR-10 folder (None = the default, see data.py)
    download: bool = True            # False = --offline


# --------------------------------------------------------------------------- the space

def load_search_file(path):
    """Read a TOML file with tables ``[fixed]`` (field = value) and ``[space]``.

    In ``[space]``, ``alpha = {low = 1e-3, high = 1e-1, log = true}`` is a range and
    ``batch_size = [64, 128, 256]`` a list of values. Returns ``(fixed, space)``.
    """
    path = Path(path)
    doc = read_toml(path, "search --config")
    unknown = sorted(set(doc) - {"fixed", "space"})
    if unknown:
        raise ConfigError(f"search file {path}: unknown table(s) {', '.join(unknown)}; use [fixed] and [space]")
    space = {name: {"choices": spec} if isinstance(spec, list) else spec
             for name, spec in doc.get("space", {}).items()}
    return dict(doc.get("fixed", {})), space


def merge_space(space_updates=(), fixed_updates=()):
    """The default space and no fixed fields, updated in order by each dict given."""
    space, fixed = dict(DEFAULT_SPACE), {}
    for s in space_updates:
        space.update(s)
    for f in fixed_updates:
        fixed.update(f)
    return fixed, space


def effective_space(settings):
    """The searched fields: the space minus fixed fields (and epochs when num_iters is fixed)."""
    drop = set(settings.fixed) | ({"epochs"} if settings.fixed.get("num_iters") else set())
    return {k: v for k, v in settings.space.items() if k not in drop}


def base_config(settings):
    """The TrainConfig of the fixed fields (defaults elsewhere); raises ConfigError if invalid."""
    return TrainConfig.from_dict(_normalise(settings.fixed))


def check_settings(settings):
    """Raise a UserError naming the first problem with ``settings``; quiet if all is well."""
    need = _need
    need(settings.n_trials >= 1, f"--n-trials {settings.n_trials}: must be at least 1")
    need(settings.workers >= 1, f"--workers {settings.workers}: must be at least 1")
    need(settings.sampler in SAMPLERS, f"sampler {settings.sampler!r}: choose one of {', '.join(SAMPLERS)}")
    need(settings.pruner in PRUNERS, f"pruner {settings.pruner!r}: choose one of {', '.join(PRUNERS)}")
    need(settings.grid_points >= 2, f"--grid-points {settings.grid_points}: must be at least 2")
    url = settings.storage or ""
    need(not (url.startswith("sqlite") and settings.workers > 1),
         "SQLite is not safe for several writers (Optuna's advice); leave out --storage to use a journal file")
    base = base_config(settings)
    names = {f.name for f in fields(TrainConfig)}
    space = effective_space(settings)
    need(space, "nothing to search: every field of the space is fixed with --set")
    for name, spec in space.items():
        need(name in names, f"--space {name}: not a TrainConfig field; known fields: {', '.join(sorted(names))}")
        need(name not in SPLIT_FIELDS, f"--space {name}: {name} decides the validation split; fix it with --set instead")
        need(isinstance(spec, dict) and (set(spec) == {"choices"} or {"low", "high"} <= set(spec) <= {"low", "high", "log"}),
             f"--space {name}: give a range (low:high[:log]) or a list of values")
        if "choices" in spec:
            need(isinstance(spec["choices"], list) and len(spec["choices"]) >= 1,
                 f"--space {name}: the list of values is empty")
            values = spec["choices"]
        else:
            low, high = spec["low"], spec["high"]
            need(_is_number(low) and _is_number(high) and low < high,
                 f"--space {name}={low}:{high}: need two numbers with low < high")
            need(not spec.get("log") or low > 0, f"--space {name}: a log range needs low > 0")
            if _is_int(name):
                need(float(low).is_integer() and float(high).is_integer(),
                     f"--space {name}={low}:{high}: {name} takes whole numbers")
            values = [low, high]
        for v in values:  # every end of every range must make a valid config
            base.replace(**_normalise({name: v}))
    return base


def _need(ok, msg):
    if not ok:
        raise ConfigError(msg)


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(name):
    default = {f.name: f.default for f in fields(TrainConfig)}.get(name)
    return name in INT_FIELDS or (isinstance(default, int) and not isinstance(default, bool))


def _normalise(values):
    """Turn searched or fixed values into TrainConfig types: hidden_dim 1024 or '512,256' -> tuple."""
    out = dict(values)
    if "hidden_dim" in out:
        out["hidden_dim"] = parse_hidden_dims(out["hidden_dim"])
    return out


def _categorical(v):
    """Optuna's categorical values are scalars: a list of widths becomes '512,256'."""
    return ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else v


def suggest_config(trial, settings):
    """Sample one TrainConfig for ``trial`` from the space, on top of the fixed fields."""
    sampled = {}
    for name, d in distributions(settings).items():
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            sampled[name] = trial.suggest_categorical(name, d.choices)
        elif isinstance(d, optuna.distributions.IntDistribution):
            sampled[name] = trial.suggest_int(name, d.low, d.high, log=d.log)
        else:
            sampled[name] = trial.suggest_float(name, d.low, d.high, log=d.log)
    return TrainConfig.from_dict(_normalise({**settings.fixed, **sampled}))


def distributions(settings):
    """The Optuna distribution of each searched field, as :func:`suggest_config` samples it."""
    D = optuna.distributions
    out = {}
    for name, spec in effective_space(settings).items():
        if "choices" in spec:
            out[name] = D.CategoricalDistribution([_categorical(v) for v in spec["choices"]])
        elif _is_int(name):
            out[name] = D.IntDistribution(int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            out[name] = D.FloatDistribution(float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return out


def check_compatible(study, settings):
    """Refuse a space whose kinds (int/float/list, log or not) differ from the study's trials."""
    mine = distributions(settings)
    for t in study.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            if name in mine:
                try:
                    optuna.distributions.check_distribution_compatibility(dist, mine[name])
                except ValueError as e:
                    raise ConfigError(f"study {settings.study_name!r} already searched {name} as {dist}: {e} "
                                      f"Keep that space, or start a new study with --study-name") from None


def grid_of(settings):
    """The grid sampler's values: lists stay, ranges become ``grid_points`` spaced values."""
    grid = {}
    for name, spec in effective_space(settings).items():
        if "choices" in spec:
            grid[name] = [_categorical(v) for v in spec["choices"]]
            continue
        space = np.geomspace if spec.get("log") else np.linspace
        values = space(spec["low"], spec["high"], settings.grid_points)
        grid[name] = (sorted({int(round(v)) for v in values}) if _is_int(name)
                      else [float(f"{v:.4g}") for v in values])
    return grid


# --------------------------------------------------------------------------- the study

def open_storage(settings):
    """The Optuna storage: journal file by default, journal on Redis, or an RDB URL."""
    url = settings.storage
    if url is None:
        return JournalStorage(JournalFileBackend(str(Path(settings.out) / "study.journal")))
    if url.startswith(("redis://", "rediss://")):
        try:
            return JournalStorage(JournalRedisBackend(url))
        except ImportError:
            raise UserError(f"--storage {_redact(url)}: the redis package is missing; pip install redis") from None
    if "://" not in url:  # a path: a journal file of the user's choosing
        return JournalStorage(JournalFileBackend(url))
    if url.startswith(("postgresql://", "postgres://")) and not _has_module("psycopg"):
        # SQLAlchemy 2.1 reads postgresql:// as psycopg 3; our [postgres] extra installs psycopg2
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    shown = _redact(settings.storage)
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT, grace_period=STALE_AFTER)
    except ImportError as e:
        raise UserError(f"--storage {shown}: a database driver is missing ({e}); "
                        f"install it, e.g. pip install 'numpy-mlp[postgres]'") from None
    except Exception as e:  # sqlalchemy's errors: bad URL, server down, wrong password
        raise UserError(f"--storage {shown}: cannot open the study storage ({type(e).__name__}: "
                        f"{str(e).splitlines()[0]})") from None


def _redact(url):
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url


def _is_journal(storage):
    return isinstance(storage, JournalStorage)


def open_study(settings, storage=None, sampler=None, pruner=None):
    """Create the study, or load it if it exists (resuming, or another machine joining)."""
    return optuna.create_study(storage=storage or open_storage(settings), study_name=settings.study_name,
                               direction="maximize", load_if_exists=True, sampler=sampler, pruner=pruner)


def make_sampler(settings, worker, n_existing):
    """A sampler with its own seed for this worker, host and point of the study."""
    seed = int(np.random.SeedSequence([settings.seed, worker, n_existing, zlib.crc32(HOST.encode())])
               .generate_state(1)[0])
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":
        return optuna.samplers.GridSampler(grid_of(settings), seed=seed)
    # constant_liar: a running trial counts as a poor result, so parallel workers spread out
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(settings, base):
    if settings.pruner == "median":
        # compare at the same evaluation (fraction of the run); skip the first quarter
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=max(1, base.evals // 4))
    if settings.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def counts(study):
    """Trials by state name: {"COMPLETE": n, "PRUNED": n, "FAIL": n, "RUNNING": n, ...}."""
    out = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def finished(c):
    return c.get("COMPLETE", 0) + c.get("PRUNED", 0)


# --------------------------------------------------------------------------- killed workers

def _process_start(pid):
    """Start time of process ``pid`` in clock ticks (Linux), 0 elsewhere; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except FileNotFoundError:
        return None
    except OSError:
        try:
            os.kill(pid, 0)
            return 0
        except ProcessLookupError:
            return None
        except PermissionError:
            return 0


def this_worker():
    """Identity of this process, recorded on every trial it runs."""
    return {"host": HOST, "pid": os.getpid(), "start": _process_start(os.getpid())}


def is_dead(trial, now=None):
    """Whether the process of a RUNNING trial is gone (same host) or silent too long (elsewhere)."""
    w = trial.user_attrs.get("worker")
    if not w:
        return False  # not started by numpy-mlp, or not yet tagged
    if w["host"] == HOST:
        start = _process_start(w["pid"])
        if start is None:
            return True
        return bool(start and w["start"] and start != w["start"])  # the pid now belongs to another process
    beat = trial.user_attrs.get("heartbeat")
    if beat is None:
        return False  # storages with their own heartbeat (RDB), or no beat written yet
    return (now or time.time()) - beat > STALE_AFTER


def fail_dead_trials(study):
    """Mark FAIL every RUNNING trial whose worker is dead; returns their numbers."""
    dead = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if is_dead(t)]
    for n in dead:
        study.tell(n, state=TrialState.FAIL, skip_if_finished=True)
    return dead


@contextmanager
def heartbeat(trial, every=HEARTBEAT):
    """Write ``heartbeat`` (unix time) on ``trial`` every ``every`` seconds while the block runs."""
    stop = threading.Event()

    def beat():
        while True:
            try:
                trial.set_user_attr("heartbeat", time.time())
            except Exception:  # the trial was ended elsewhere: the worker finds out at its next report
                return
            if stop.wait(every):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# --------------------------------------------------------------------------- a worker

def objective(trial, data, settings, *, journal=True):
    """One trial: sample a config, train it, return its best validation accuracy.

    The validation accuracy of every evaluation is reported to the trial (step = number
    of the evaluation, so runs of any length compare at the same fraction of their run);
    the pruner may stop the run there. A diverging run is pruned and tagged ``diverged``.
    """
    trial.set_user_attr("worker", this_worker())
    config = suggest_config(trial, settings)
    trial.set_user_attr("config", config.to_dict())

    def on_eval(step, history):
        n = len(history["val_acc"])
        trial.report(history["val_acc"][-1], n)
        if trial.should_prune():
            raise optuna.TrialPruned(f"val_acc {history['val_acc'][-1]:.4f} at evaluation {n}")

    with heartbeat(trial) if journal else _nothing():
        try:
            result = train(config, data, on_eval=on_eval)
        except DivergenceError as e:
            trial.set_user_attr("diverged", True)
            raise optuna.TrialPruned(str(e)) from None
    trial.set_user_attr("train_seconds", round(result.seconds, 2))
    trial.set_user_attr("best_step", result.best_step)
    _keep_if_best(trial, result, data, settings)
    return result.best_val_acc


@contextmanager
def _nothing():
    yield


def _keep_if_best(trial, result, data, settings):
    """Save the model of this trial to DIR/checkpoints if it beats every finished trial."""
    def rank(value, number):  # the order of finish(): higher accuracy, then the earlier trial
        return (value, -number)

    done = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    mine = rank(result.best_val_acc, trial.number)
    if any(rank(t.value, t.number) > mine for t in done):
        return
    folder = Path(settings.out) / "checkpoints"
    save_model(folder / f"trial-{trial.number}.npz", result.model, preprocessing=result.preprocessing,
               class_names=data.class_names, config=trial.user_attrs["config"])
    for t in done:  # checkpoints of worse trials are no longer needed
        (folder / f"trial-{t.number}.npz").unlink(missing_ok=True)


def load_data(settings, base=None):
    base = base or base_config(settings)
    return load_cifar10(settings.data_dir, val_size=base.val_size, seed=base.seed,
                        download=settings.download, progress=False)


def run_worker(settings, worker, n_trials, *, data=None, log=print):
    """Run up to ``n_trials`` trials of the study in this process, with one BLAS thread.

    Stops early when the study holds ``settings.n_trials`` finished or running trials (other
    workers and machines count), or after ``settings.timeout`` seconds.
    """
    _quiet_optuna()
    base = base_config(settings)
    storage = open_storage(settings)
    journal = _is_journal(storage)
    n_existing = len(open_study(settings, storage).get_trials(deepcopy=False))
    study = open_study(settings, storage, make_sampler(settings, worker, n_existing), make_pruner(settings, base))
    data = data if data is not None else load_data(settings, base)

    def after_trial(study, trial):
        dead = fail_dead_trials(study)
        c = counts(study)
        if log:
            log(_trial_line(worker, trial) + (f"  (marked FAIL, worker gone: {dead})" if dead else ""))
        if finished(c) + c.get("RUNNING", 0) >= settings.n_trials:
            study.stop()

    fail_dead_trials(study)
    c = counts(study)
    if n_trials <= 0 or finished(c) + c.get("RUNNING", 0) >= settings.n_trials:
        return
    with threadpool_limits(1):
        study.optimize(lambda t: objective(t, data, settings, journal=journal), n_trials=n_trials,
                       timeout=settings.timeout, callbacks=[after_trial], gc_after_trial=True)


def _quiet_optuna():
    """Optuna's own lines (a trial's start, its failure on Ctrl-C with a traceback) and
    experimental-feature warnings would drown ours; errors still propagate as exceptions."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _worker_main(settings, worker, n_trials):
    """Entry point of a spawned worker process."""
    try:
        run_worker(settings, worker, n_trials)
    except UserError as e:
        print(f"numpy-mlp: worker {worker}: error: {e}", flush=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _trial_line(worker, t):
    params = "  ".join(f"{k}={_fmt(v)}" for k, v in t.params.items())
    value = f"val_acc {t.value:.4f}" if t.value is not None else (
        f"pruned at evaluation {max(t.intermediate_values)}" if t.intermediate_values else t.state.name.lower())
    if t.user_attrs.get("diverged"):
        value = "diverged (counted as pruned)"
    seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else float("nan")
    return f"[worker {worker}] trial {t.number:>3} {t.state.name:<8} {value}  ({seconds:.0f}s)  {params}"


def _fmt(v):
    return f"{v:.3g}" if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------- the search

def shares(total, k):
    """Split ``total`` trials over ``k`` workers as evenly as possible."""
    return [total // k + (i < total % k) for i in range(k)]


def run_search(settings, *, log=print):
    """Run (or resume, or join) the search and write its result folder.

    Returns:
        the dict written to ``best.json``.
    """
    base = check_settings(settings)
    out = Path(settings.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose a folder name")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "search.json", _settings_dict(settings))
    _quiet_optuna()
    study = open_study(settings)  # fails early on a bad storage, before the data is read
    check_compatible(study, settings)
    data = load_data(settings, base)  # fails early, before any worker starts, if the data is missing
    dead = fail_dead_trials(study)
    c = counts(study)
    todo = max(0, settings.n_trials - finished(c) - c.get("RUNNING", 0))
    if log:
        log(f"study {settings.study_name!r} in {_redact(settings.storage or str(out / 'study.journal'))}: "
            f"{finished(c)} finished, {c.get('RUNNING', 0)} running, {c.get('FAIL', 0)} failed"
            + (f" (marked FAIL now, workers gone: {dead})" if dead else "")
            + f"; running {todo} more trial(s) with {settings.workers} worker(s)")
    t0 = time.perf_counter()
    parts = shares(todo, settings.workers)
    if settings.workers == 1:
        run_worker(settings, 0, parts[0], data=data, log=log)
    else:
        _run_processes(settings, parts, log)
    seconds = time.perf_counter() - t0
    return finish(settings, data, search_seconds=seconds, log=log)


def _run_processes(settings, parts, log):
    """Spawn one process per worker on the same study; wait for all of them."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(settings, i, n), name=f"numpy-mlp-worker-{i}")
             for i, n in enumerate(parts) if n > 0]
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
            why = f"killed by signal {-p.exitcode}" if p.exitcode < 0 else f"exit status {p.exitcode}"
            log(f"{p.name} (pid {p.pid}) stopped early: {why}; a trial it was running is marked FAIL")


def finish(settings, data=None, *, search_seconds=None, log=print):
    """Pick the best trial by validation accuracy, test it once, write DIR's files."""
    out = Path(settings.out)
    study = open_study(settings)
    fail_dead_trials(study)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    write_trials_csv(out / "trials.csv", trials)
    c = counts(study)
    if not complete:
        raise UserError(f"no trial of study {settings.study_name!r} completed ({_count_text(c)}); "
                        f"widen the space, use --pruner none or run more trials")
    best = max(complete, key=lambda t: (t.value, -t.number))
    config = TrainConfig.from_dict(_normalise(best.user_attrs["config"]))
    if data is None:
        data = load_data(settings)

    # the best trial's model: its checkpoint if it ran here, else trained again from its config
    checkpoint = out / "checkpoints" / f"trial-{best.number}.npz"
    if checkpoint.is_file():
        model, meta = load_model(checkpoint)
        preprocessing, source = meta["preprocessing"], "reused the checkpoint of the trial"
    else:
        if log:
            log(f"training the best trial ({best.number}) again: its checkpoint is not in {out}/checkpoints")
        with threadpool_limits(1):  # as in the workers, so the run repeats theirs
            result = train(config, data)
        model, preprocessing, source = result.model, result.preprocessing, "trained again from its config"
    prepare = make_preparer(preprocessing["mode"], preprocessing["stats"], model.dtype)
    acc, _ = evaluate_splits(model, data, prepare)  # the test set's one use
    save_model(out / "best_model.npz", model, preprocessing=preprocessing, class_names=data.class_names,
               config=config.to_dict())
    for f in (out / "checkpoints").glob("trial-*.npz"):  # keep the best's, for a resumed search
        if f != checkpoint:
            f.unlink()

    summary = {
        "study_name": settings.study_name,
        "best_trial": best.number,
        "config": config.to_dict(),
        "params": best.params,
        "val_accuracy": acc["val"],
        "trial_val_accuracy": best.value,
        "test_accuracy": acc["test"],
        "train_accuracy": acc["train"],
        "model": source,
        "trials": {"complete": c.get("COMPLETE", 0), "pruned": c.get("PRUNED", 0),
                   "diverged": sum(1 for t in trials if t.user_attrs.get("diverged")),
                   "failed": c.get("FAIL", 0), "running": c.get("RUNNING", 0), "total": len(trials)},
        "search_seconds": None if search_seconds is None else round(search_seconds, 1),
    }
    write_json(out / "best.json", summary)
    plot_search(trials, effective_space(settings), study, out)
    if log:
        log(f"{_count_text(c)}; best trial {best.number}: val {acc['val']:.4f}  test {acc['test']:.4f}  "
            f"({source}); params {', '.join(f'{k}={_fmt(v)}' for k, v in best.params.items())}")
        log(f"saved to {out}/")
    return summary


def _count_text(c):
    return (f"{c.get('COMPLETE', 0)} complete, {c.get('PRUNED', 0)} pruned, {c.get('FAIL', 0)} failed"
            + (f", {c['RUNNING']} still running" if c.get("RUNNING") else ""))


def _settings_dict(settings):
    d = asdict(settings)
    if d["storage"]:
        d["storage"] = _redact(d["storage"])
    d["fixed"] = {k: list(v) if isinstance(v, tuple) else v for k, v in d["fixed"].items()}
    d["saved"] = datetime.now().isoformat(timespec="seconds")
    return d


# --------------------------------------------------------------------------- outputs

def write_trials_csv(path, trials):
    """One row per trial: number, state, value, last reported val_acc, params, times, worker."""
    names = sorted({k for t in trials for k in t.params})
    cols = ["number", "state", "val_accuracy", "last_reported", "evaluations", *names,
            "seconds", "diverged", "worker"]
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(cols)
    for t in trials:
        last = _last(t) if t.intermediate_values else None
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        worker = t.user_attrs.get("worker") or {}
        w.writerow([t.number, t.state.name, _cell(t.value), _cell(last), len(t.intermediate_values),
                    *[_cell(t.params.get(k)) for k in names], _cell(seconds),
                    int(bool(t.user_attrs.get("diverged"))),
                    f"{worker.get('host', '')}:{worker.get('pid', '')}" if worker else ""])
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))


def _cell(v):
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else v


def plot_search(trials, space, study, out):
    """history.png, params.png and importance.png in ``out``."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    _plot_history([t.number for t in complete], [t.value for t in complete],
                              [t.number for t in pruned], [_last(t) for t in pruned], out / "history.png")
    params = {name: ([t.params.get(name) for t in complete], [t.params.get(name) for t in pruned],
                     bool(space.get(name, {}).get("log"))) for name in space}
    _plot_params(params, [t.value for t in complete], [_last(t) for t in pruned], out / "params.png")
    importances = {}
    if len(complete) >= 2:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "importances will be equal" with few trials
                importances = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            importances = {}  # too few distinct trials to say
    _plot_importances(importances, out / "importance.png")


def _last(t):
    """The validation accuracy a trial reported last (it must have reported one)."""
    return t.intermediate_values[max(t.intermediate_values)]


def _plot_history(numbers, values, pruned_numbers, pruned_values, path):
    """Validation accuracy of each trial and the best so far, against the trial number."""
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(7, 4))
    if pruned_numbers:
        ax.scatter(pruned_numbers, pruned_values, s=14, color="0.6", label="pruned (last reported)")
    ax.scatter(numbers, values, s=22, color="tab:blue", label="complete")
    order = np.argsort(numbers)
    best = np.maximum.accumulate(np.asarray(values, dtype=float)[order]) if values else []
    ax.step(np.asarray(numbers)[order], best, where="post", color="tab:red", lw=2, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Optimisation history")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _plot_params(params, values, pruned_values, path):
    """One panel per searched field: validation accuracy against the field's value."""
    plt = _pyplot()

    n = max(1, len(params))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, (name, (xs, pruned_xs, log)) in zip(axes.flat, params.items()):
        if pruned_xs:
            ax.scatter(pruned_xs, pruned_values, s=12, color="0.6", label="pruned")
        ax.scatter(xs, values, s=18, color="tab:blue", label="complete")
        numeric = all(isinstance(x, (int, float)) for x in xs + pruned_xs)
        if log and numeric:
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("val accuracy")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(params):]:
        ax.axis("off")
    fig.suptitle("Validation accuracy against each hyperparameter")
    return _save(fig, path)


def _plot_importances(importances, path):
    """Horizontal bars of Optuna's parameter importances (PED-ANOVA), largest on top."""
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * max(1, len(importances))))
    if importances:
        names = list(importances)[::-1]
        ax.barh(names, [importances[k] for k in names], color="tab:blue")
        ax.set_xlabel("importance (share of the variation in val accuracy)")
    else:
        ax.text(0.5, 0.5, "too few complete trials to estimate importances", ha="center", va="center")
        ax.axis("off")
    ax.set_title("Hyperparameter importances")
    return _save(fig, path)


def _save(fig, path):
    from .plots import save_figure  # the run pictures' own layout, resolution and close

    return save_figure(fig, path)


def _pyplot():
    from . import plots  # noqa: F401  (selects the file-only Agg backend)
    import matplotlib.pyplot as plt

    return plt


def _has_module(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None
