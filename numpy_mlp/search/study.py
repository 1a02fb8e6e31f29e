"""The study on its storage (storage.py): the data its trials share, its sampler and
pruner, and its trials counted by state.
"""

from __future__ import annotations

import json
import warnings
import zlib

import numpy as np
import optuna

from ..errors import UserError, printable
from .space import SPLIT_FIELDS, grid_of
from .storage import HOST, JOURNAL, open_storage, redact

SETUP = "numpy_mlp:setup"  # study user attr: what its trials share (check_setup)


def open_study(settings, storage=None, sampler=None, pruner=None, *, log=None):
    """Create the study, or load it if it exists (resuming, or another machine joining)."""
    return optuna.create_study(storage=storage or open_storage(settings, log),
                               study_name=settings.study_name, direction="maximize",
                               load_if_exists=True, sampler=sampler, pruner=pruner)


def where(settings):
    """The study's storage as messages show it: the journal's path, or the URL redacted."""
    return redact(settings.storage) if settings.storage else f"{settings.out}/{JOURNAL}"


def setup_of(settings, base, data=None):
    """The data every trial of a study is trained and selected on, as the study records it
    (JSON values): the fields that decide it (``SPLIT_FIELDS``: dataset, image size, the
    validation split), and with ``data`` loaded, the geometry of its images and its class
    names. Other fixed fields may change between the commands of one study (shorter runs
    to finish it, say): its trials stay comparable, its models fit the data."""
    values = base.to_dict()
    setup = {"fixed": {k: values[k] for k in SPLIT_FIELDS}}
    if data is not None:
        g = data.geometry
        setup.update(geometry=f"{g.height}x{g.width}x{g.channels}",
                     classes=[str(c) for c in data.class_names])
    return json.loads(json.dumps(setup))  # as the storage gives it back: tuples as lists


def check_setup(study, settings, base, data=None):
    """Refuse to join a study whose trials ran on other data (another dataset's study in
    the same folder, another validation split, images of another size or other classes):
    their accuracies would be compared with this run's, and the best model would not fit
    this data. With ``data`` given and the study agreeing, record the setup on a study that
    has none yet.

    A study written before setups were recorded is compared by its trials' configs."""
    mine = setup_of(settings, base, data)
    theirs = study.user_attrs.get(SETUP)
    if not isinstance(theirs, dict):
        configs = [t.user_attrs["config"] for t in study.get_trials(deepcopy=False)
                   if isinstance(t.user_attrs.get("config"), dict)]
        theirs = ({"fixed": {k: configs[0][k] for k in mine["fixed"] if k in configs[0]}}
                  if configs else {})
    diffs = [f"{k}={_short(theirs['fixed'][k])} there, {_short(v)} here"
             for k, v in mine["fixed"].items()
             if k in theirs.get("fixed", {}) and theirs["fixed"][k] != v]
    diffs += [f"{k} {_short(theirs.get(k))} there, {_short(mine.get(k))} here"
              for k in ("geometry", "classes") if k in theirs and k in mine
              and theirs[k] != mine[k]]
    if diffs:
        raise UserError(f"study {printable(settings.study_name)!r} in {where(settings)} holds "
                        f"trials on other data ({'; '.join(diffs)}); start a new study with "
                        f"another --study-name or --out, or continue this one on its own data "
                        f"(--data-dir, --set dataset/image_size/val_size/seed)")
    if data is not None and SETUP not in study.user_attrs:
        study.set_user_attr(SETUP, mine)


def _short(v):
    """A recorded value for a message: a list of class names by its length."""
    if isinstance(v, list) and len(v) > 4:
        return f"{len(v)} classes [{', '.join(map(str, v[:3]))}, ...]"
    return json.dumps(v) if isinstance(v, list) else str(v)


def quiet_optuna():
    """Optuna's own lines (a trial's start, its failure on Ctrl-C with a traceback) and
    experimental-feature warnings would drown ours; errors still propagate as exceptions."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def make_sampler(settings, worker, n_existing):
    """A sampler with its own seed for this worker, host and point of the study."""
    seed = int(np.random.SeedSequence([settings.seed, worker, n_existing,
                                       zlib.crc32(HOST.encode())]).generate_state(1)[0])
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":
        return optuna.samplers.GridSampler(grid_of(settings), seed=seed)
    # constant_liar: a running trial counts as a poor result, so parallel workers spread out
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(settings, base):
    if settings.pruner == "median":
        # compare at the same evaluation (fraction of the run); skip the first quarter
        return optuna.pruners.MedianPruner(n_startup_trials=4,
                                           n_warmup_steps=max(1, base.evals // 4))
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
    """Complete and pruned trials in the counts ``c``: what ``n_trials`` counts."""
    return c.get("COMPLETE", 0) + c.get("PRUNED", 0)
