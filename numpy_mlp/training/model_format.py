"""The one validation of ``model.npz``: every field checked before the model is built.

A model file holds the parameters ``W1, b1, ..., WL, bL`` (and ``gamma{k}, beta{k}``), batch
norm's buffers ``running_mean{k}, running_var{k}`` and one JSON string ``meta`` (see saving.py).
:func:`read_model_file` reads it through :class:`~numpy_mlp.npzfile.NpzArchive` (sizes
bounded before anything is allocated) and checks, in order:

1. ``meta``: a JSON table of at most ``MAX_META_CHARS`` with the format and its version,
   ``input_dim`` D (3072 for the image modes), ``hidden_dim`` [H1, ...], ``num_classes``
   C >= 1, the architecture's ``norm``, ``activation``, ``blocks`` and ``expansion`` (absent in
   files from before them: the plain ReLU stack), ``dtype``, ``preprocessing`` (the mode, and its
   statistics: three finite
   numbers each per channel, or one per feature),
   ``class_names`` (C texts), ``config`` (a table or null) and ``data_dir`` (a text or null);
2. the arrays: exactly those that architecture has (architecture.py), each of the shape it
   implies, of floats, the whole model at most ``MAX_MODEL_BYTES``, and only then read,
   every value finite.

Each failure is one :class:`~numpy_mlp.errors.ModelFileError` line naming the file, the
field and what to do.
"""

from __future__ import annotations

import math

from ..data.cifar10 import CIFAR10_GEOMETRY
from ..data.dataset import Geometry
from ..data.preprocessing import PREPROCESSING_MODES
from ..errors import ConfigError, ModelFileError
from ..files.jsonfile import Fields, parse_json
from ..files.npzfile import NpzArchive
from ..nn.architecture import Architecture
from ..nn.rules import parse_hidden_dims

MODEL_FORMAT = "numpy-mlp"
MODEL_FORMAT_VERSION = 1
MODEL_FIX = "retrain, or use another model.npz written by 'numpy-mlp train'"
MAX_META_CHARS = 1 << 20        # the architecture, statistics, class names and config
MAX_MODEL_BYTES = 4 << 30       # all W and b together; 1000x the notebook's 12 MB net
MAX_LAYERS = 64
MAX_CLASS_NAME = 100            # characters; CIFAR-10's longest is 10
DTYPES = ("float32", "float64")
# the modes whose inputs are images (of the model's geometry)
IMAGE_MODES = tuple(m for m in PREPROCESSING_MODES if m != "per_feature")
STATS_MODES = ("per_channel", "per_feature", "whiten")  # modes that keep training statistics
# a whitened model is saved as the per_channel model it equals (saving.image_model)
FILE_MODES = tuple(m for m in PREPROCESSING_MODES if m != "whiten")


def array_shapes(arch):
    """``{"W1": (D, H1), "b1": (H1,), ..., "running_mean1": (H1,), ...}``: the parameters and
    buffers of the :class:`~numpy_mlp.architecture.Architecture` ``arch``."""
    return {**arch.param_shapes(), **arch.buffer_shapes()}


def check_size(fields, shapes, itemsize, limit=None, what="the model"):
    """Refuse architectures whose arrays would take more than ``limit`` bytes (default
    MAX_MODEL_BYTES)."""
    limit = MAX_MODEL_BYTES if limit is None else limit
    nbytes = sum(math.prod(s) for s in shapes.values()) * itemsize
    if nbytes > limit:
        raise fields.error(f"{fields.where}: {what} it describes would take {nbytes:,} bytes, more "
                           f"than the {limit:,} numpy-mlp loads; {fields.fix}")
    return nbytes


def check_meta(meta, fields):
    """The checked meta table of a model file: returns ``(arch, meta)``, an Architecture."""
    fields.mapping(meta, "meta", keys=("format", "format_version", "input_dim", "hidden_dim",
                                       "num_classes", "dtype", "preprocessing", "class_names"))
    fields.format_of(meta, "meta", expected=MODEL_FORMAT, newest=MODEL_FORMAT_VERSION,
                     kind="numpy-mlp model", then="load it")
    mode = check_preprocessing(meta["preprocessing"], fields, modes=FILE_MODES)["mode"]
    input_dim = fields.integer(meta["input_dim"], "meta.input_dim", low=1)
    geometry = CIFAR10_GEOMETRY  # files written before geometries were recorded: all CIFAR-10
    if meta.get("geometry") is not None:
        try:
            geometry = Geometry.from_dict(meta["geometry"])
        except ValueError as e:
            raise fields.error(f"{fields.where}: meta.{e}; {fields.fix}") from None
    if mode in IMAGE_MODES and input_dim != geometry.D:
        fields.fail("meta.input_dim", input_dim, f"not {geometry.D}: {mode} prepares "
                                                 f"{geometry} images")
    if mode == "per_channel" and len(meta["preprocessing"]["stats"]["mean"]) != geometry.channels:
        fields.fail("meta.preprocessing.stats.mean", meta["preprocessing"]["stats"]["mean"],
                    f"not one number per channel of its {geometry} images")
    if mode == "per_feature":
        width = len(meta["preprocessing"]["stats"]["mean"])
        if width != input_dim:
            fields.fail("meta.preprocessing.stats.mean", f"<{width} numbers>",
                        f"not one per input feature ({input_dim})")
    hidden = fields.list_of(meta["hidden_dim"], "meta.hidden_dim",
                            lambda v, f: fields.integer(v, f, low=1), max_length=MAX_LAYERS)
    try:
        hidden = parse_hidden_dims(hidden)
    except ConfigError as e:
        raise fields.error(f"{fields.where}: meta.{e}; {fields.fix}") from None
    num_classes = fields.integer(meta["num_classes"], "meta.num_classes", low=1)
    try:
        arch = Architecture.of(input_dim, hidden, num_classes, meta)
    except ConfigError as e:
        raise fields.error(f"{fields.where}: meta.{e}; {fields.fix}") from None
    fields.choice(meta["dtype"], "meta.dtype", DTYPES)
    fields.list_of(meta["class_names"], "meta.class_names",
                   lambda v, f: fields.text(v, f, max_chars=MAX_CLASS_NAME), length=num_classes)
    if meta.get("data_dir") is not None:
        fields.text(meta["data_dir"], "meta.data_dir", max_chars=4096)
    config = meta.get("config")
    if config is not None:
        fields.mapping(config, "meta.config")
        if "reg" in config:
            fields.number(config["reg"], "meta.config.reg", low=0)
        if "dropout" in config:
            dropout = fields.number(config["dropout"], "meta.config.dropout", low=0)
            if dropout >= 1:
                fields.fail("meta.config.dropout", dropout, "not a probability below 1")
    return arch, meta


def check_preprocessing(prep, fields, field="meta.preprocessing", modes=PREPROCESSING_MODES):
    """A preprocessing table (``Preprocessor.to_dict()``): its mode, one of ``modes``, and the
    statistics the mode needs: per_channel and whiten one or three finite means and stds >= 0,
    per_feature one of each per input feature (as many means as stds; the caller checks their
    number against D)."""
    fields.mapping(prep, field, keys=("mode",))
    mode = fields.choice(prep["mode"], f"{field}.mode", modes)
    stats = prep.get("stats")
    if stats is None:
        if mode in STATS_MODES:
            fields.missing(f"{field}.stats")
        return prep
    fields.mapping(stats, f"{field}.stats", keys=("mean", "std"))
    if set(stats) != {"mean", "std"}:
        fields.fail(f"{field}.stats", sorted(stats), "not exactly mean and std")
    width = len(stats["mean"]) if isinstance(stats["mean"], list) else None
    if mode in ("per_channel", "whiten") and width not in (1, 3):  # grey or colour images
        fields.fail(f"{field}.stats.mean", f"<{width} numbers>", "not 1 or 3 (one per channel)")
    if mode == "per_feature":
        width = len(stats["mean"]) if isinstance(stats["mean"], list) else None
    fields.list_of(stats["mean"], f"{field}.stats.mean", fields.number, length=width)
    fields.list_of(stats["std"], f"{field}.stats.std", lambda v, f: _std(fields, v, f),
                   length=width)
    return prep


def _std(fields, value, field):
    value = fields.number(value, field)
    if value < 0:  # 0 is a constant channel, which preprocessing guards against
        fields.fail(field, value, "not a standard deviation >= 0")
    return value


def read_model_file(path):
    """The checked contents of the model file ``path``: ``(params, meta)``.

    ``params`` maps ``W1, b1, ...`` (and the buffers) to float arrays of the shapes ``meta``
    declares, every
    value finite; ``meta`` is the checked JSON table (statistics still plain lists).

    Raises:
        ModelFileError: naming the file and the field, for anything :mod:`numpy_mlp.npzfile`
        or this module refuses.
    """
    fields = Fields(path, ModelFileError, MODEL_FIX)
    with NpzArchive(path, error=ModelFileError, fix=MODEL_FIX,
                    what="numpy-mlp model file") as archive:
        if "meta" not in archive.members:
            archive.fail("it has no 'meta' entry, so it is not a numpy-mlp model")
        meta = parse_json(archive.text("meta", max_chars=MAX_META_CHARS), where=f"{fields.where}: "
                                                                                "meta",
                          error=ModelFileError, fix=MODEL_FIX)
        arch, meta = check_meta(meta, fields)
        shapes = array_shapes(arch)
        arrays = sorted(set(archive.members) - {"meta"})
        if arrays != sorted(shapes):
            archive.fail(f"its arrays {arrays} do not match the architecture its meta declares "
                         f"(hidden_dim={list(arch.hidden_dims)}, {arch.to_dict()}: "
                         f"{sorted(shapes)})")
        itemsize = max(archive.require(k).dtype.itemsize for k in shapes)
        check_size(fields, shapes, itemsize)
        params = {k: archive.read(k, kinds="f", shape=shape) for k, shape in shapes.items()}
    return params, meta
