"""checkpoint.npz: everything needed to continue a training run bit for bit, written
atomically and read back field by field.

A checkpoint (``<run folder>/checkpoint.npz``) is one ``.npz`` file; it holds::

    param/W1, param/b1, ...   model.params
    m/W1, m/b1, ...           optimizer.m, the momentum
    buffer/running_mean1, ... model.buffers, batch norm's running statistics (if any)
    best/W1, ...              the best parameters (and buffers) so far (absent before the
                              first evaluation)
    ema/W1, ...               the EMA's averages (only with config.ema > 0)
    perm                      (N_train,) the current epoch's batch order
    eval_idx                  (n_eval,) the training images used for train accuracy
    whiten/center, whiten/proj  the whitening (Preprocessor.arrays; only for whiten)
    stats/mean, stats/std     (3,) each: the first layout's per_channel statistics (read only)
    state                     one JSON string: format version, the config, the
                              preprocessor (``Preprocessor.to_dict``; in the first layout
                              ``preprocessing_mode``), the step, position and loss sums, the
                              best step and accuracy, the history, every generator's
                              ``bit_generator.state``, a fingerprint of the data and the
                              data folder

Writing: :func:`save_checkpoint`, atomically with
:func:`~numpy_mlp.files.atomic.atomic_write` (a crash mid-write leaves the previous one
intact). Reading: :func:`read_checkpoint`, the one validation, through
:class:`~numpy_mlp.files.npzfile.NpzArchive` (every size bounded before anything is
allocated, no pickle, so loading one never runs code); it checks:

- ``state``: the format and its version; ``config`` (a valid TrainConfig); the
  preprocessing (``preprocessor``: mode and statistics; or, in the first layout,
  ``preprocessing_mode``), of the config's mode; each loop counter's type and range; the
  history (exactly the train loop's lists, the per-step lists one entry per step done,
  the per-evaluation lists all of one length); every generator state (one a PCG64
  accepts); the data fingerprint and the data folder;
- the arrays: exactly the members that config implies, of the shapes its architecture implies,
  finite floats for parameters, momentum and statistics, and ``perm`` and ``eval_idx``
  integer positions inside the training set.

Each failure is one :class:`~numpy_mlp.errors.CheckpointError` line naming the file and
the field; the checkpoint is then best deleted, which restarts the run from step 0.
Rebuilding a run from what is read is :func:`numpy_mlp.training.checkpointing.restore`.
"""

from __future__ import annotations

import json

import numpy as np

from ..data.preprocessing import PREPROCESSING_MODES
from ..data.registry import DATASETS
from ..errors import CheckpointError
from ..files.atomic import atomic_write
from ..files.jsonfile import Fields, parse_json
from ..files.npzfile import NpzArchive
from ..nn.architecture import Architecture
from .config import train_config
from .loop import EMA_HISTORY_KEYS, HISTORY_KEYS
from .model_file import (
    IMAGE_MODES,
    MAX_CLASS_NAME,
    array_shapes,
    check_preprocessing,
    check_size,
)

CHECKPOINT_NAME = "checkpoint.npz"  # the checkpoint file in a run folder
CHECKPOINT_FORMAT = "numpy-mlp-checkpoint"
CHECKPOINT_FORMAT_VERSION = 2  # 2: the preprocessor in the state; 1 (still read): stats/ arrays
CHECKPOINT_FIX = "delete it to start the run again from step 0"
MAX_STATE_CHARS = 64 << 20       # the history holds two numbers per step
MAX_TRAIN = 10_000_000           # training images a checkpoint may index
# the loop counters of the state, and whether each is a whole number (else any number)
LOOP_FIELDS = {"step": True, "pos": True, "loss_sum": False, "loss_count": True, "best_val": False,
               "best_step": True, "evals_since_best": True, "seconds": False}
STEP_LISTS = ("step", "loss")    # one entry per step; the other history lists one per evaluation
FINGERPRINT_FIELDS = ("n_train", "n_val", "train_labels_crc32", "val_labels_crc32")
# absent in checkpoints written before they were recorded: such a run is compared without them
OPTIONAL_FINGERPRINT_FIELDS = ("test_labels_crc32", "images_crc32")
GENERATORS = ("model", "order", "aug")
OPTIONAL_GENERATORS = ("mix",)   # absent in checkpoints written before mixing existed


def save_checkpoint(path, config, run, *, fingerprint=None, data_dir=None):
    """Write the :class:`~numpy_mlp.training.loop.RunState` ``run`` to ``path``, atomically,
    or into ``path`` if it is a binary file object (a RunFolder's write).

    Args:
        config: the run's ``TrainConfig``.
        fingerprint: :func:`~numpy_mlp.training.checkpointing.data_fingerprint` of the data,
            checked by ``restore``.
        data_dir: the data folder the run read (absolute path or None for the default),
            so that ``--resume`` finds it again.
    """
    s = run.loop
    arrays = {f"param/{k}": v for k, v in run.model.params.items()}
    arrays.update({f"m/{k}": v for k, v in run.optimizer.m.items()})
    arrays.update({f"buffer/{k}": v for k, v in run.model.buffers.items()})
    if s.best_params is not None:
        arrays.update({f"best/{k}": v for k, v in s.best_params.items()})
    if run.ema is not None:
        arrays.update({f"ema/{k}": v for k, v in run.ema.averages.items()})
    arrays["perm"] = s.perm
    arrays["eval_idx"] = np.asarray(run.eval_idx)
    arrays.update({f"whiten/{k}": v for k, v in run.preprocessor.arrays().items()})
    meta = {
        "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_FORMAT_VERSION,
        "config": config.to_dict(),
        "preprocessor": run.preprocessor.to_dict(),
        "loop": {**{k: getattr(s, k) for k in LOOP_FIELDS}, "best_ema": s.best_ema,
                 "teacher_digest": s.teacher_digest},
        "history": s.history,
        "rng": {"model": run.model.rng.bit_generator.state,
                "order": s.order_rng.bit_generator.state, "aug": s.aug_rng.bit_generator.state,
                "mix": s.mix_rng.bit_generator.state},
        "data": fingerprint,
        "data_dir": None if data_dir is None else str(data_dir),
    }
    arrays["state"] = np.array(json.dumps(meta, default=_plain))
    if hasattr(path, "write"):
        np.savez(path, **arrays)
    else:
        atomic_write(path, lambda f: np.savez(f, **arrays))


def _plain(x):
    """JSON for the numpy scalars that may sit in a history."""
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


# ----------------------------------------------------------------------- reading, checked


def _check_state(state, fields):
    """The checked state table of a checkpoint; returns ``(state, config)``."""
    fields.mapping(state, "state", keys=("format", "format_version", "config", "loop", "history",
                                         "rng"))
    fields.format_of(state, "state", expected=CHECKPOINT_FORMAT,
                     newest=CHECKPOINT_FORMAT_VERSION, kind="checkpoint", then="resume it")
    config = train_config(state["config"], fields, field="state.config")
    if "preprocessor" in state:  # the mode and statistics as Preprocessor.to_dict() saves them
        field = "state.preprocessor.mode"
        mode = check_preprocessing(state["preprocessor"], fields, "state.preprocessor")["mode"]
    else:  # the first layout: the mode here, the statistics as stats/* arrays
        field = "state.preprocessing_mode"
        mode = fields.choice(fields.get(state, "preprocessing_mode", field), field,
                             PREPROCESSING_MODES)
    if mode != config.preprocessing:
        fields.fail(field, mode, f"not the config's {config.preprocessing!r}")
    loop = fields.mapping(state["loop"], "state.loop", keys=tuple(LOOP_FIELDS))
    for k, whole in LOOP_FIELDS.items():
        if whole:
            fields.integer(loop[k], f"state.loop.{k}")
        else:
            fields.number(loop[k], f"state.loop.{k}", finite=k != "best_val")  # NaN: no val split
    if not isinstance(loop.get("best_ema", False), bool):
        fields.fail("state.loop.best_ema", loop["best_ema"], "not true or false")
    digest = loop.get("teacher_digest", "")  # absent before distillation: no teacher
    if not (isinstance(digest, str) and (digest == "" or len(digest) == 64
                                         and set(digest) <= set("0123456789abcdef"))):
        fields.fail("state.loop.teacher_digest", digest, "not a sha256 in hex, or empty")
    if loop["best_step"] > loop["step"]:
        fields.fail("state.loop.best_step", loop["best_step"], "after the step done "
                                                               f"({loop['step']})")
    _check_history(state["history"], fields, loop["step"],
                  keys=HISTORY_KEYS + (EMA_HISTORY_KEYS if config.ema else ()))
    rng = fields.mapping(state["rng"], "state.rng", keys=GENERATORS)
    for k in GENERATORS + tuple(k for k in OPTIONAL_GENERATORS if k in rng):
        try:
            np.random.default_rng().bit_generator.state = rng[k]
        except (TypeError, ValueError, KeyError, OverflowError):
            fields.fail(f"state.rng.{k}", rng[k], "not the state of a PCG64 generator")
    data = state.get("data")
    if data is not None:
        fields.mapping(data, "state.data", keys=FINGERPRINT_FIELDS)
        for k in FINGERPRINT_FIELDS + tuple(k for k in OPTIONAL_FINGERPRINT_FIELDS if k in data):
            fields.integer(data[k], f"state.data.{k}")
        if "class_names" in data:
            fields.list_of(data["class_names"], "state.data.class_names",
                           lambda v, f: fields.text(v, f, max_chars=MAX_CLASS_NAME),
                           max_length=MAX_TRAIN)
    if state.get("data_dir") is not None:
        fields.text(state["data_dir"], "state.data_dir", max_chars=4096)
    return state, config


def _check_history(history, fields, steps, keys=HISTORY_KEYS):
    """The loop's history lists ``keys``: the per-step ones ``steps`` long, the rest of one
    length."""
    fields.mapping(history, "state.history", keys=keys)
    extra = sorted(set(history) - set(keys))
    if extra:
        fields.fail("state.history", extra, "not lists the training loop keeps")
    evals = len(history["eval_step"]) if isinstance(history["eval_step"], list) else None
    for k in keys:
        length = steps if k in STEP_LISTS else evals
        whole = k in ("step", "eval_step")
        finite = k not in ("val_acc", "val_acc_ema")  # NaN: no validation split
        fields.list_of(history[k], f"state.history.{k}", length=length,
                       check=(lambda v, f: fields.integer(v, f, low=1)) if whole else
                       (lambda v, f, finite=finite: fields.number(v, f, finite=finite)))
    if evals > steps:
        fields.fail("state.history.eval_step", f"<{evals} items>", "more evaluations than steps "
                                                                   f"({steps})")


def _expected_members(archive, state, config, has_best, fields):
    """{member: shape} of the arrays a checkpoint of ``config`` with ``state`` holds (perm and
    eval_idx: None)."""
    # the head's width is C; any D and C give the number of affine maps
    last = f"param/W{Architecture.of(1, config.hidden_dim, 1, config.to_dict()).num_affine}"
    member = archive.members.get(last)
    if member is None or len(member.shape) != 2 or member.shape[1] < 1:
        archive.fail(f"it has no {last!r} array of (H, C >= 1) for "
                     f"hidden_dim={list(config.hidden_dim)}")
    first = archive.members.get("param/W1")
    if first is None or len(first.shape) != 2:
        archive.fail("it has no 2-D 'param/W1' array")
    geometry = DATASETS[config.dataset].geometry_for(config.image_size)
    input_dim = geometry.D if config.preprocessing in IMAGE_MODES else first.shape[0]
    if config.preprocessing == "whiten":  # the model sees K components of the D values
        input_dim = config.whiten_dim
    if config.preprocessing == "per_feature":  # one mean and one std per input feature
        width = len(state["preprocessor"]["stats"]["mean"]) if "preprocessor" in state else None
        if width != input_dim:
            fields.fail("state.preprocessor.stats.mean", f"<{width} numbers>",
                        f"not one per input feature of param/W1 ({input_dim})")
    arch = Architecture.of(input_dim, config.hidden_dim, member.shape[1], config.to_dict())
    params, buffers = arch.param_shapes(), arch.buffer_shapes()
    check_size(fields, array_shapes(arch), archive.require(last).dtype.itemsize, what="the model")
    out = {f"buffer/{k}": s for k, s in buffers.items()}
    prefixes = ("param", "m") + (("best",) if has_best else ()) + (("ema",) if config.ema else ())
    for prefix in prefixes:
        out.update({f"{prefix}/{k}": s for k, s in params.items()})
    if has_best:  # the best parameters' running statistics
        out.update({f"best/{k}": s for k, s in buffers.items()})
    out["perm"] = out["eval_idx"] = None
    if config.preprocessing == "per_channel" and "preprocessor" not in state:
        out["stats/mean"] = out["stats/std"] = (3,)
    if config.preprocessing == "whiten":
        out["whiten/center"], out["whiten/proj"] = (geometry.D,), (geometry.D, input_dim)
    return out


def read_checkpoint(path, *, arrays=True):
    """The checked contents of the checkpoint ``path``: ``(state, arrays)``.

    ``state`` is the JSON table (see :func:`_check_state`); ``arrays`` maps the member
    names (``param/W1``, ``m/W1``, ``best/W1``, ``perm``, ``eval_idx``, ``stats/mean``, ...)
    to arrays, or is None with ``arrays=False`` (only the state is read: to learn the data
    folder before the data is loaded).

    Raises:
        CheckpointError: naming the file and the field.
    """
    fields = Fields(path, CheckpointError, CHECKPOINT_FIX)
    with NpzArchive(path, error=CheckpointError, fix=CHECKPOINT_FIX,
                    what="numpy-mlp checkpoint") as archive:
        if "state" not in archive.members:
            archive.fail("it has no 'state' entry, so it is not a numpy-mlp checkpoint")
        text = archive.text("state", max_chars=MAX_STATE_CHARS)
        state = parse_json(text, where=f"{fields.where}: state", error=CheckpointError,
                           fix=CHECKPOINT_FIX)
        state, config = _check_state(state, fields)
        has_best = any(k.startswith("best/") for k in archive.members)
        shapes = _expected_members(archive, state, config, has_best, fields)
        names = sorted(set(archive.members) - {"state"})
        if names != sorted(shapes):
            missing, extra = sorted(set(shapes) - set(names)), sorted(set(names) - set(shapes))
            archive.fail(f"its arrays do not fit its config (missing {missing or 'none'}, "
                         f"unexpected {extra or 'none'})")
        for k in ("perm", "eval_idx"):
            member = archive.require(k, kinds="iu", ndim=1)
            if member.shape[0] > MAX_TRAIN:
                archive.fail(f"{k} indexes {member.shape[0]:,} images, more than {MAX_TRAIN:,}")
        if not arrays:
            return state, None
        out = {k: archive.read(k, kinds="f", shape=s) for k, s in shapes.items() if s is not None}
        n = archive.members["perm"].shape[0]
        for k in ("perm", "eval_idx"):
            out[k] = archive.read(k, kinds="iu", ndim=1)
            if out[k].size and (out[k].min() < 0 or out[k].max() >= n):
                archive.fail(f"{k} holds positions outside the {n:,} training images")
    _check_positions(state, out, fields)
    return state, out


def _check_positions(state, arrays, fields):
    """The loop's place in the epoch and the data fingerprint agree with ``perm``."""
    n = len(arrays["perm"])
    if not 0 <= state["loop"]["pos"] <= n:
        fields.fail("state.loop.pos", state["loop"]["pos"], f"outside the {n} positions of perm")
    data = state.get("data")
    if data is not None and data["n_train"] != n:
        fields.fail("state.data.n_train", data["n_train"], f"not the {n} images perm orders")
    for k in ("stats/mean", "stats/std"):
        if k in arrays and k.endswith("std") and not (arrays[k] >= 0).all():
            fields.fail(k, arrays[k].tolist(), "not standard deviations >= 0")
