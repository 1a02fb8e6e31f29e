"""What a search writes into its folder DIR, and the choice of the best trial.

- ``search.json``: the settings; ``trials.csv``: one row per trial;
- ``best.json``: the best trial by *validation* accuracy, evaluated once on the test set;
  ``best_model.npz``: its model (usable with ``numpy-mlp evaluate`` and ``predict``);
- ``history.png``, ``params.png``, ``importance.png`` (drawn by numpy_mlp/runs/plots.py);
- ``trial-models/<study>/trial-N.npz``: the best model each worker has seen, one folder per
  study, so that two studies in one DIR never take each other's models.

The best model is its trial's saved model when that was written here for the same config,
else it is trained again from the trial's config (the trial ran on another machine).
"""

from __future__ import annotations

import csv
import io
import re
import warnings
import zlib
from pathlib import Path

import optuna
from optuna.trial import TrialState
from threadpoolctl import threadpool_limits

from ..errors import UserError
from ..files.atomic import atomic_write
from ..runs.writeup import score_splits, write_json
from ..training.config import SEARCH_BEST_NAME, TrainConfig
from ..training.loop import train
from ..training.model_file import load_model, write_model_file
from .settings import settings_dict
from .space import DEFAULT_SPACE, as_config_values, base_config, effective_space
from .storage import fail_dead_trials
from .study import counts, finished

PICTURES = ("history.png", "params.png", "importance.png")


def study_folder(name):
    """A folder name for the study ``name``: the name itself when it is a plain file name,
    else a plain version of it with a checksum, so that distinct names stay distinct."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:64].strip(".") or "study"
    return plain if plain == name else f"{plain}-{zlib.crc32(name.encode()):08x}"


def trial_model_path(settings, number):
    """Where a worker keeps the model of trial ``number`` of the study of ``settings``."""
    return Path(settings.out) / "trial-models" / study_folder(settings.study_name) / (
        f"trial-{number}.npz")


def save_trial_model(path, model, preprocessor, class_names, config, geometry):
    """Write a trial's model (trial-N.npz or best_model.npz) with its config and the
    geometry of its images."""
    write_model_file(path, model, preprocessor, class_names=class_names, config=config,
                     geometry=geometry)


def make_folder(settings):
    """Create DIR if needed (the journal goes there)."""
    out = Path(settings.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose a folder name")
    out.mkdir(parents=True, exist_ok=True)


def write_settings(settings):
    """Create DIR if needed and write ``search.json``."""
    make_folder(settings)
    write_json(Path(settings.out) / "search.json", settings_dict(settings))


def finish(settings, study, data, *, search_seconds=None, log=print):
    """Pick the best trial by validation accuracy, test it once, write DIR's files.

    Returns:
        the dict written to ``best.json``.
    """
    out = Path(settings.out)
    fail_dead_trials(study)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    write_trials_csv(out / "trials.csv", trials)
    c = counts(study)
    if not complete:
        raise UserError(f"no trial of study {settings.study_name!r} completed ({_count_text(c)}); "
                        f"{_why_none_completed(settings, trials, c)}")
    best = max(complete, key=lambda t: (t.value, -t.number))
    config = TrainConfig.from_dict(as_config_values(best.user_attrs["config"]))
    trial_model = trial_model_path(settings, best.number)
    model, preprocessor, source = _best_model(trial_model, config, data, log)
    acc, _ = score_splits(model, preprocessor, data)  # the test set's one use
    save_trial_model(out / "best_model.npz", model, preprocessor, data.class_names,
                     config.to_dict(), data.geometry)
    for f in trial_model.parent.glob("trial-*.npz"):  # keep the best's, for a resumed search
        if f != trial_model:
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
                   "failed": c.get("FAIL", 0), "running": c.get("RUNNING", 0),
                   "waiting": c.get("WAITING", 0), "total": len(trials)},
        "search_seconds": None if search_seconds is None else round(search_seconds, 1),
    }
    write_json(out / SEARCH_BEST_NAME, summary)
    _plot_search(trials, effective_space(settings), study, out)
    if log:
        params = ", ".join(f"{k}={fmt(v)}" for k, v in best.params.items())
        log(f"{_count_text(c)}; best trial {best.number}: val {acc['val']:.4f}  "
            f"test {acc['test']:.4f}  ({source}); params {params}")
        log(f"saved to {out}/")
    return summary


def _best_model(trial_model, config, data, log):
    """``(model, preprocessor, how)`` of the best trial: its saved model when that holds a
    model of the same config, else the config trained again."""
    why = "its saved model is not in this folder"
    if trial_model.is_file():
        try:
            saved_model = load_model(trial_model)
            saved = TrainConfig.from_dict(as_config_values(saved_model.config))
        except (UserError, KeyError, TypeError) as e:
            why = f"its saved model cannot be used ({e})"
        else:
            if saved == config:
                return (saved_model.model, saved_model.preprocessor,
                        "reused the saved model of the trial")
            why = "its saved model holds another config"
    if log:
        log(f"training the best trial again from its config: {why}")
    with threadpool_limits(1):  # as in the workers, so the run repeats theirs
        result = train(config, data)
    return result.model, result.preprocessor, "trained again from its config"


def _why_none_completed(settings, trials, c):
    """What made every trial end without a result, and the command that goes on."""
    diverged = [t for t in trials if t.user_attrs.get("diverged")]
    if diverged and len(diverged) >= finished(c):
        alphas = [t.params["alpha"] for t in diverged if "alpha" in t.params]
        if alphas:  # a tenth of the smallest that diverged, at most the default range
            high = min(min(alphas) / 10, DEFAULT_SPACE["alpha"]["high"])
            low = min(high / 100, DEFAULT_SPACE["alpha"]["low"])
            advice = f"--space alpha={low:.2g}:{high:.2g}:log"
        else:
            advice = f"--set alpha={base_config(settings).alpha / 10:.2g}"
        return (f"every trial diverged (its loss became NaN or infinite): search smaller "
                f"learning rates, e.g. {advice}")
    if c.get("FAIL") and not finished(c):
        return ("every trial failed (the lines above say why, or their workers were killed); "
                "run the same command again to retry them")
    return (f"every finished trial was pruned: run more trials (--n-trials "
            f"{settings.n_trials + 10}) or stop pruning (--pruner none)")


def _count_text(c):
    """'3 complete, 1 pruned, 0 failed' from the counts of study.counts."""
    return (f"{c.get('COMPLETE', 0)} complete, {c.get('PRUNED', 0)} pruned, "
            f"{c.get('FAIL', 0)} failed"
            + (f", {c['RUNNING']} still running" if c.get("RUNNING") else "")
            + (f", {c['WAITING']} queued to run again" if c.get("WAITING") else ""))


def fmt(v):
    """A parameter value for a log line: floats to three figures."""
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def write_trials_csv(path, trials):
    """One row per trial: number, state, value, last reported val_acc, params, times, worker."""
    names = sorted({k for t in trials for k in t.params})
    cols = ["number", "state", "val_accuracy", "_last_reported", "evaluations", *names,
            "seconds", "diverged", "worker"]
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(cols)
    for t in trials:
        last = _last_reported(t) if t.intermediate_values else None
        seconds = ((t.datetime_complete - t.datetime_start).total_seconds()
                   if t.datetime_complete and t.datetime_start else None)
        worker = t.user_attrs.get("worker") or {}
        w.writerow([t.number, t.state.name, _cell(t.value), _cell(last),
                    len(t.intermediate_values), *[_cell(t.params.get(k)) for k in names],
                    _cell(seconds), int(bool(t.user_attrs.get("diverged"))),
                    f"{worker.get('host', '')}:{worker.get('pid', '')}" if worker else ""])
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))


def _cell(v):
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else v


def _last_reported(t):
    """The validation accuracy a trial reported last (it must have reported one)."""
    return t.intermediate_values[max(t.intermediate_values)]


def _plot_search(trials, space, study, out):
    """history.png, params.png and importance.png in ``out``, from the study's trials."""
    from ..runs import plots

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    values, pruned_values = [t.value for t in complete], [_last_reported(t) for t in pruned]
    plots.plot_search_history([t.number for t in complete], values, [t.number for t in pruned],
                              pruned_values, out / PICTURES[0])
    params = {name: ([t.params.get(name) for t in complete], [t.params.get(name) for t in pruned],
                     bool(space[name].get("log"))) for name in space}
    plots.plot_search_params(params, values, pruned_values, out / PICTURES[1])
    importances = {}
    if len(complete) >= 2:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "importances will be equal" with few trials
                importances = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            importances = {}  # too few distinct trials to say
    plots.plot_importances(importances, out / PICTURES[2])
