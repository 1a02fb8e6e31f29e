"""The search space: which TrainConfig fields are searched, over what, as Optuna samples them.

A space maps a field of :class:`~numpy_mlp.training.config.TrainConfig` to a range
``{"low", "high", "log"}`` or to a list of values ``{"choices": [...]}``.
:data:`DEFAULT_SPACE` is updated by a search file's ``[space]`` table and by ``--space``;
its ``[fixed]`` table and ``--set`` fix fields for every trial (a fixed field is not
searched). Whether a value suits its field is TrainConfig's to say: every listed value
and both ends of every range are checked by building a TrainConfig with them, so the
messages are the training command's own. This module adds only the rules of a space
(the shape of an entry, low < high, log ranges above 0, fields that split the data).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace
from numbers import Real
from pathlib import Path

import numpy as np
import optuna

from ..errors import ConfigError
from ..files.tomlfile import read_toml
from ..memory import available_bytes, check_fits
from ..nn.rules import parse_hidden_dims
from ..training.config import TrainConfig

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
WHOLE_NUMBERS = ("hidden_dim", "epochs")  # searched as whole numbers although not typed int
# decide the data and its validation split: fixed for the whole study
SPLIT_FIELDS = ("seed", "val_size", "dataset", "image_size")
FILE_TABLES = ("fixed", "space")  # the tables of a search file
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def load_search_file(path):
    """Read a TOML file with tables ``[fixed]`` (field = value) and ``[space]``.

    In ``[space]``, ``alpha = {low = 1e-3, high = 1e-1, log = true}`` is a range and
    ``batch_size = [64, 128, 256]`` a list of values. Returns ``(fixed, space)``; the
    values themselves are checked by :func:`check_space`.
    """
    path = Path(path)
    doc = read_toml(path, "search --config")
    unknown = sorted(set(doc) - set(FILE_TABLES))
    if unknown:
        raise ConfigError(f"search file {path}: unknown table(s) {', '.join(unknown)}; "
                          f"use {' and '.join(f'[{t}]' for t in FILE_TABLES)}")
    for table in FILE_TABLES:
        if not isinstance(doc.get(table, {}), dict):
            raise ConfigError(f"search file {path}: {table} must be a table ([{table}] with "
                              f"one field per line), not a single value")
    space = {}
    for name, spec in doc.get("space", {}).items():
        if not isinstance(spec, (dict, list)):
            raise ConfigError(f"search file {path}: [space] {name} = {spec!r}; give a range "
                              f"{{low = ..., high = ..., log = true}} or a list [a, b, c]")
        space[name] = {"choices": spec} if isinstance(spec, list) else spec
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
    """The searched fields: the space less the fixed fields (and epochs if num_iters is)."""
    drop = set(settings.fixed) | ({"epochs"} if settings.fixed.get("num_iters") else set())
    return {k: v for k, v in settings.space.items() if k not in drop}


def as_config_values(values):
    """Searched or fixed values in TrainConfig's types: widths '512,256' -> (512, 256)."""
    out = dict(values)
    if "hidden_dim" in out:
        out["hidden_dim"] = parse_hidden_dims(out["hidden_dim"])
    return out


def base_config(settings):
    """The TrainConfig of the fixed fields (defaults elsewhere); ConfigError if invalid."""
    return TrainConfig.from_dict(as_config_values(settings.fixed))


def check_space(settings):
    """Raise ConfigError naming the first bad entry of the space; returns the base config."""
    base = base_config(settings)
    space = effective_space(settings)
    if not space:
        raise ConfigError("nothing to search: every field of the space is fixed with --set")
    if base.val_size == 0:
        raise ConfigError("--set val_size=0 leaves no validation images, and a search picks "
                          "its best trial by validation accuracy; leave val_size out (its "
                          f"default is {_FIELDS['val_size'].default}) or give --set "
                          "val_size=N with N >= 1")
    for name, spec in space.items():
        where = f"--space {name}"
        if name in SPLIT_FIELDS:
            raise ConfigError(f"{where}: {name} decides the validation split; "
                              f"fix it with --set instead")
        is_list = isinstance(spec, dict) and set(spec) == {"choices"}
        if not (is_list or isinstance(spec, dict) and {"low", "high"} <= set(spec) <= {
                "low", "high", "log"}):
            raise ConfigError(f"{where}: give a range (low:high[:log]) or a list of values")
        values = spec["choices"] if is_list else [spec["low"], spec["high"]]
        if is_list and not (isinstance(values, list) and values):
            raise ConfigError(f"{where}: the list of values is empty")
        if not is_list:
            _check_range(where, name, spec)
        for v in values:  # TrainConfig says whether each value suits its field
            try:
                TrainConfig.from_dict({**base.to_dict(), **as_config_values({name: v})})
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from None
    return base


def check_fits_data(settings, base, n_train):
    """Refuse batch sizes (searched or fixed) larger than the ``n_train`` training images,
    before any trial: each such trial would fail alike."""
    spec = effective_space(settings).get("batch_size")
    if spec is None:
        largest, given = base.batch_size, f"batch_size={base.batch_size}"
    else:
        values = spec["choices"] if "choices" in spec else [spec["low"], spec["high"]]
        largest, given = max(values), "batch sizes up to " + str(max(values))
    if largest <= n_train:
        return
    fit = 1 << (max(1, n_train).bit_length() - 1)  # the largest power of two that fits
    advice = (f"--space batch_size={max(1, fit // 8)}:{fit}:log" if spec is not None and fit > 1
              else f"--set batch_size={fit}")
    raise ConfigError(f"{given} but the training set has {n_train} images (a batch is at most "
                      f"that many); search {advice}")


def _check_range(where, name, spec):
    low, high = spec["low"], spec["high"]
    numbers = all(isinstance(v, Real) and not isinstance(v, bool) for v in (low, high))
    if not numbers:
        raise ConfigError(f"{where}={low}:{high}: a range needs two numbers; "
                          f"list the values instead (A,B,C)")
    if not low < high:
        raise ConfigError(f"{where}={low}:{high}: a range needs low < high")
    if spec.get("log") and low <= 0:
        raise ConfigError(f"{where}={low}:{high}: a log range needs low > 0")
    if _is_whole(name) and not (float(low).is_integer() and float(high).is_integer()):
        raise ConfigError(f"{where}={low}:{high}: {name} is searched over whole numbers")


def _is_whole(name):
    """Whether ``name`` is searched over integers: widths, epochs and the int fields."""
    if name in WHOLE_NUMBERS:
        return True
    if name not in _FIELDS:
        return False  # not a field: TrainConfig names it
    kind = _FIELDS[name].type  # "int | None" (a string under postponed annotations) or a type
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    return kind.split("|")[0].strip() == "int"


def _categorical(v):
    """Optuna's categorical values are scalars: a list of widths becomes '512,256'."""
    return ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else v


def distributions(settings):
    """The Optuna distribution of each searched field, as :func:`suggest_config` samples it."""
    D = optuna.distributions
    out = {}
    for name, spec in effective_space(settings).items():
        if "choices" in spec:
            out[name] = D.CategoricalDistribution([_categorical(v) for v in spec["choices"]])
        elif _is_whole(name):
            out[name] = D.IntDistribution(int(spec["low"]), int(spec["high"]),
                                          log=bool(spec.get("log")))
        else:
            out[name] = D.FloatDistribution(float(spec["low"]), float(spec["high"]),
                                            log=bool(spec.get("log")))
    return out


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
    return TrainConfig.from_dict(as_config_values({**settings.fixed, **sampled}))


def check_compatible(study, settings):
    """Refuse a space whose kinds (int/float/list, log or not) differ from the study's."""
    mine = distributions(settings)
    for t in study.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            if name in mine:
                try:
                    optuna.distributions.check_distribution_compatibility(dist, mine[name])
                except ValueError as e:
                    raise ConfigError(f"study {settings.study_name!r} already searched {name} as "
                                      f"{dist}: {e} Keep that space, or start a new study with "
                                      f"--study-name") from None


def grid_bytes(settings, grid_points=None):
    """Memory of the grid sampler's list of every point: a tuple of k values per point."""
    grid = grid_of(replace(settings, grid_points=grid_points or settings.grid_points))
    return math.prod(len(v) for v in grid.values()) * (64 + 8 * len(grid))


def check_grid_fits(settings):
    """ConfigError naming the grid's size and a --grid-points that fits, when Optuna's list of
    its points would not fit in memory (memory.check_fits)."""
    have = available_bytes()
    if have is None or grid_bytes(settings) <= have:
        return
    fits = next((g for g in range(settings.grid_points - 1, 1, -1)
                 if grid_bytes(settings, g) <= have), None)
    fix = (f"use --grid-points {fits}" if fits else "search fewer fields") + (
        ", or give short lists of values (--space FIELD=A,B,C)")
    points = grid_bytes(settings) // (64 + 8 * len(effective_space(settings)))
    check_fits(f"the grid of {points:,} points ({settings.grid_points} per range)",
               grid_bytes(settings), fix)


def grid_of(settings):
    """The grid sampler's values: lists stay, ranges become ``grid_points`` spaced values."""
    grid = {}
    for name, spec in effective_space(settings).items():
        if "choices" in spec:
            grid[name] = [_categorical(v) for v in spec["choices"]]
            continue
        spaced = np.geomspace if spec.get("log") else np.linspace
        values = spaced(spec["low"], spec["high"], settings.grid_points)
        grid[name] = (sorted({int(round(v)) for v in values}) if _is_whole(name)
                      else [float(f"{v:.4g}") for v in values])
    return grid
