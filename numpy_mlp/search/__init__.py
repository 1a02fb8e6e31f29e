"""Hyperparameter search with Optuna: a loop over :func:`numpy_mlp.training.loop.train`.

What ``numpy-mlp search`` does, in order, and the module that does it:

1. **Settings** (settings.py): :class:`SearchSettings`, checked by :func:`check_settings`.
2. **Space** (space.py): :data:`DEFAULT_SPACE` (hidden width H, learning rate, momentum,
   batch size, epochs, L2), updated by a TOML file and ``--space``; ``--set`` fixes any
   ``TrainConfig`` field. A range is ``{"low", "high", "log"}``, a list of values is
   ``{"choices": [...]}``; TrainConfig checks every value.
3. **Study** (study.py; its storage in storage.py, journal.py): one Optuna study in a
   shared storage coordinates every worker: a journal file ``DIR/study.journal`` by
   default, or any URL Optuna takes (``postgresql://...``, ``redis://...``) for many
   machines. Optuna's heartbeat finds the trials of dead workers, marks them FAIL and
   runs each once more.
4. **Workers** (workers.py): ``workers`` processes (spawned; one BLAS thread each) load
   the data once and run trials; the pruner stops poor ones early.
5. **Outputs** (outputs.py; pictures in numpy_mlp/runs/plots.py): the trial with the best
   *validation* accuracy wins, its model is evaluated once on the test set, and DIR gets
   ``search.json``, ``trials.csv``, ``best.json``, ``best_model.npz`` and three pictures.

``n_trials`` is the study's target of finished (complete or pruned) trials: running the
same command again, or on another machine, continues until the study holds that many.
"""

from __future__ import annotations

import time

from ..nn.rules import spelled_as
from ..runs.folder import RunFolder, check_owner
from .outputs import finish, study_folder, write_settings, write_trials_csv
from .settings import PRUNERS, SAMPLERS, SearchSettings, check_settings, set_spelling
from .space import (
    DEFAULT_SPACE,
    SPLIT_FIELDS,
    WHOLE_NUMBERS,
    check_compatible,
    check_fits_data,
    distributions,
    effective_space,
    grid_of,
    load_search_file,
    merge_space,
    suggest_config,
)
from .storage import HEARTBEAT, JOURNAL, STALE_AFTER, fail_dead_trials, open_storage, redact
from .study import check_setup, counts, finished, open_study, quiet_optuna, where
from .workers import load_data, objective, run_worker, run_workers, shares

__all__ = [
    "DEFAULT_SPACE", "HEARTBEAT", "JOURNAL", "PRUNERS", "SAMPLERS", "SPLIT_FIELDS",
    "STALE_AFTER", "WHOLE_NUMBERS", "SearchSettings", "check_compatible", "check_settings",
    "counts", "distributions", "effective_space", "fail_dead_trials", "finish", "finished",
    "grid_of", "load_data", "load_search_file", "merge_space", "objective", "open_storage",
    "open_study", "redact", "run_search", "run_worker", "shares", "study_folder", "suggest_config",
    "write_trials_csv",
]


def run_search(settings, *, log=print):
    """Run (or resume, or join) the search and write its result folder; advice in its
    messages names fields as ``--set FIELD=VALUE``.

    Returns:
        the dict written to ``best.json``.
    """
    with spelled_as(set_spelling):
        return _run_search(settings, log)


def _run_search(settings, log):
    base = check_settings(settings)
    check_owner(settings.out, "--out", owner="a search")  # a training run's folder is the run's
    # the searches of one folder share it (they may join one study); a run may not enter
    with RunFolder(settings.out, flag="--out", then="run the same search again").open(
            shared=True):
        return _search(settings, base, log)


def _search(settings, base, log):
    """The search itself, in the folder _run_search holds."""
    quiet_optuna()
    study = open_study(settings, log=log)  # fails early on a bad storage, before reading data
    check_compatible(study, settings)
    check_setup(study, settings, base)  # another study's folder: refused before reading data
    data = load_data(settings, base)  # fails early, before any worker starts, without data
    check_setup(study, settings, base, data)
    check_fits_data(settings, base, len(data.X_train))
    write_settings(settings)  # only once the study is known to be this search's
    dead = fail_dead_trials(study)
    c = counts(study)
    todo = max(0, settings.n_trials - finished(c) - c.get("RUNNING", 0))
    if log:
        log(f"study {settings.study_name!r} in {where(settings)}: {finished(c)} finished, "
            f"{c.get('RUNNING', 0)} running, {c.get('FAIL', 0)} failed"
            + (f" (marked FAIL now, workers gone: {dead})" if dead else "")
            + f"; running {todo} more trial(s) with {settings.workers} worker(s)")
    t0 = time.perf_counter()
    run_workers(settings, todo, data, log)
    return finish(settings, study, data, search_seconds=time.perf_counter() - t0, log=log)
