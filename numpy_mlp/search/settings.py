"""The settings of one ``numpy-mlp search`` command, and their checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from ..errors import ConfigError
from .space import DEFAULT_SPACE, check_space
from .study import check_storage, redact

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "halving", "none")


@dataclass(frozen=True)
class SearchSettings:
    out: str                         # folder of the search: results, journal, checkpoints
    n_trials: int = 20               # target number of finished (complete + pruned) trials
    workers: int = 1                 # processes on this machine, one BLAS thread each
    storage: str | None = None       # Optuna storage URL or journal path; None = DIR/study.journal
    study_name: str = "numpy-mlp"    # commands with the same storage and name share a study
    timeout: float | None = None     # seconds after which a worker starts no new trial
    sampler: str = "tpe"             # one of SAMPLERS
    pruner: str = "median"           # one of PRUNERS: median, halving (successive halving), none
    grid_points: int = 3             # grid sampler: values per range (log- or evenly spaced)
    seed: int = 0                    # seeds the samplers (mixed with worker number and host)
    fixed: dict = field(default_factory=dict)  # TrainConfig fields fixed for every trial
    space: dict = field(default_factory=lambda: dict(DEFAULT_SPACE))  # searched fields
    data_dir: str | None = None      # CIFAR-10 folder (None = the default, see data.py)
    download: bool = True            # False = --offline


def check_settings(settings):
    """Raise a UserError naming the first problem with ``settings``; returns the base
    TrainConfig (the fixed fields) when all is well."""
    for flag, value, least in (("--n-trials", settings.n_trials, 1),
                               ("--workers", settings.workers, 1),
                               ("--grid-points", settings.grid_points, 2)):
        if not (isinstance(value, int) and value >= least):
            raise ConfigError(f"{flag} {value}: must be a whole number, at least {least}")
    for flag, value, choices in (("--sampler", settings.sampler, SAMPLERS),
                                 ("--pruner", settings.pruner, PRUNERS)):
        if value not in choices:
            raise ConfigError(f"{flag} {value!r}: choose one of {', '.join(choices)}")
    if not (isinstance(settings.study_name, str) and settings.study_name.strip()):
        raise ConfigError(f"--study-name {settings.study_name!r}: give a name")
    check_storage(settings)
    return check_space(settings)


def settings_dict(settings):
    """``settings`` as written to search.json: the storage without its password, a date."""
    d = asdict(settings)
    if d["storage"]:
        d["storage"] = redact(d["storage"])
    d["fixed"] = {k: list(v) if isinstance(v, tuple) else v for k, v in d["fixed"].items()}
    d["saved"] = datetime.now().isoformat(timespec="seconds")
    return d
