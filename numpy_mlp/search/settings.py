"""The settings of one ``numpy-mlp search`` command, and their checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime

from ..errors import ConfigError, printable
from ..nn.rules import BOOL, TEXT, choice, real, text_value, whole
from ..training.config import SETTINGS, Setting
from .space import DEFAULT_SPACE, check_grid_fits, check_space
from .storage import check_storage, redact

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "halving", "none")

# The rule of each bounded setting, for the Python API (check_settings) and the flags
# (cli.commands.search_settings) alike.
RULES = {
    "n_trials": whole(1, 10**6),
    "workers": whole(1, 256),
    "grid_points": whole(2, 100),
    "timeout": real(0, open_low=True),
    "sampler": choice(*SAMPLERS),
    "pruner": choice(*PRUNERS),
}


@dataclass(frozen=True)
class SearchSettings:
    out: str                         # folder of the search: results, journal, trial models
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
    data_dir: str | None = None      # CIFAR-10 folder (None = the default, see data/dataset.py)
    download: bool = True            # False = --offline

    def __repr__(self):  # a traceback (--debug) shows the settings: the storage redacted
        shown = ", ".join(f"{f.name}={redact(v) if f.name == 'storage' and v else v!r}"
                          for f in fields(self) for v in [getattr(self, f.name)])
        return f"SearchSettings({shown})"


def check_settings(settings):
    """Raise a UserError naming the first problem with ``settings``; returns the base
    TrainConfig (the fixed fields) when all is well."""
    for name, rule in RULES.items():
        value = getattr(settings, name)
        if value is not None or name != "timeout":  # no timeout is the default
            rule.check(value, f"--{name.replace('_', '-')} {value}")
    if not (isinstance(settings.study_name, str) and settings.study_name.strip()):
        raise ConfigError(f"--study-name {settings.study_name!r}: give a name")
    for flag, text in (("--study-name", settings.study_name), ("--storage", settings.storage)):
        _check_utf8(flag, text)
    check_storage(settings)
    base = check_space(settings)
    if settings.sampler == "grid":
        check_grid_fits(settings)
    return base


def _check_utf8(flag, text):
    """A name a storage keeps (and search.json, the log) must be UTF-8 text: bytes that are
    not arrive from the command line as lone surrogates, which no storage can write."""
    if text is None:
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{flag} {printable(text)}: not UTF-8 text (the \\xNN bytes); "
                          f"give a name in UTF-8") from None


def set_spelling(name, value):
    """``--set alpha=0.001``: how a search fixes a field, the spelling of its advice
    (nn.rules.setting)."""
    return f"--set {name}={text_value(value)}"


def settings_dict(settings):
    """``settings`` as written to search.json: the storage without its password, a date."""
    d = asdict(settings)
    if d["storage"]:
        d["storage"] = redact(d["storage"])
    d["fixed"] = {k: list(v) if isinstance(v, tuple) else v for k, v in d["fixed"].items()}
    d["saved"] = datetime.now().isoformat(timespec="seconds")
    return d


DEFAULTS = {f.name: f.default for f in fields(SearchSettings)}


def flag_settings():
    """The flags of ``numpy-mlp search`` besides the data and --debug ones, one per setting
    (cli/flags.py turns them into argparse options and checks their values by these rules)."""
    return (
        Setting("n_trials", RULES["n_trials"], "finished trials the study should hold; a "
                "resumed or joined study continues to it", default=DEFAULTS["n_trials"]),
        Setting("workers", RULES["workers"], "worker processes on this machine, one BLAS "
                "thread each", default=DEFAULTS["workers"]),
        Setting("storage", TEXT, "Optuna storage shared by all workers: postgresql://..., "
                "redis://... or a journal file path", metavar="URL",
                none="DIR/study.journal"),
        Setting("study_name", TEXT, "name of the study in the storage",
                default=DEFAULTS["study_name"], metavar="S"),
        Setting("timeout", RULES["timeout"], "a worker starts no new trial after this "
                "many seconds (running trials finish)", metavar="SECONDS", none="no limit"),
        Setting("out", TEXT, "folder of the search: trials.csv, best.json, best_model.npz, "
                "plots, the journal", metavar="DIR", none="runs/search/<timestamp>"),
        Setting("sampler", RULES["sampler"], "how trials are sampled", default=DEFAULTS["sampler"]),
        Setting("pruner", RULES["pruner"], "stop poor trials from their validation "
                "accuracy (halving: successive halving)", default=DEFAULTS["pruner"]),
        Setting("grid_points", RULES["grid_points"], "grid sampler: values per range",
                default=DEFAULTS["grid_points"]),
        Setting("seed", SETTINGS["seed"].rule, "seed of the samplers; fix the split with "
                "--set seed=N", default=DEFAULTS["seed"]),
        Setting("config", TEXT, "a TOML file with [fixed] and [space] tables",
                metavar="FILE.toml"),
        Setting("quiet", BOOL, "print only the final summary", short="-q"),
    )
