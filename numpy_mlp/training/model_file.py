"""model.npz: a trained model's file, written atomically and read back field by field.

A model file holds the parameters ``W1, b1, ..., WL, bL`` (and ``gamma{k}, beta{k}``), batch
norm's running statistics ``running_mean{k}, running_var{k}`` (the model's buffers) and one
JSON string ``meta``: the format and its version, the architecture, the preprocessing
(``Preprocessor.to_dict``), the class names, the training config, the data folder and the
images' geometry: everything ``evaluate`` and ``predict`` need (:class:`SavedModel`). A
model trained on whitened images is saved as the per_channel model it equals
(:func:`_image_model`).

The public pair (``numpy_mlp.save_model``, ``numpy_mlp.load_model``): :func:`save_model`
writes what ``train()`` returns, :func:`load_model` reads any model file back as a
:class:`SavedModel` that predicts. Underneath, :func:`write_model_file` writes the arrays
and meta, and :func:`load_model` builds the model from :func:`read_model_file`, the one
validation, which reads the file through
:class:`~numpy_mlp.files.npzfile.NpzArchive` (sizes bounded before anything is allocated,
no pickle, so loading one never runs code) and checks, in order:

1. ``meta``: a JSON table of at most ``MAX_META_CHARS`` with the format and its version,
   ``input_dim`` D (the geometry's for the image modes), ``hidden_dim`` [H1, ...],
   ``num_classes`` C >= 1, the architecture's ``norm``, ``activation``, ``blocks`` and
   ``expansion`` (absent in files from before them: the plain ReLU stack), ``dtype``,
   ``preprocessing`` (the mode, and its statistics: three finite numbers each per channel,
   or one per feature), ``class_names`` (C texts), ``config`` (a table or null),
   ``data_dir`` (a text or null) and ``geometry`` (absent in files from before it: CIFAR-10's);
2. the arrays: exactly those that architecture has (nn/architecture.py), each of the shape
   it implies, of floats, the whole model at most ``MAX_MODEL_BYTES``, and only then read,
   every value finite.

Each failure is one :class:`~numpy_mlp.errors.ModelFileError` line naming the file, the
field and what to do.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.cifar10 import CIFAR10_GEOMETRY
from ..data.dataset import Geometry
from ..data.preprocessing import PREPROCESSING_MODES, Preprocessor
from ..errors import ConfigError, ModelFileError, UserError
from ..files.atomic import atomic_write
from ..files.jsonfile import Fields, parse_json
from ..files.npzfile import NpzArchive
from ..nn.architecture import Architecture
from ..nn.model import FullyConnectedNet
from ..nn.rules import parse_hidden_dims
from .config import MAX_SHIFT, is_tta_shift
from .inference import predict_labels, probabilities

MODEL_NAME = "model.npz"  # the model file in a run folder
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
# a whitened model is saved as the per_channel model it equals (_image_model)
FILE_MODES = tuple(m for m in PREPROCESSING_MODES if m != "whiten")


@dataclass(frozen=True)
class SavedModel:
    """A model file read back: everything ``evaluate`` and ``predict`` need.

    ``saved.predict(X)`` gives the labels (N,) and ``saved.predict_proba(X)`` the class
    probabilities (N, C) of uint8 images X, prepared as in training: rows (N, D) laid out
    as the data set's, channel-first (CIFAR-10: 1024 red, 1024 green, 1024 blue values), or
    4-D arrays (N, H, W, C) or (N, C, H, W), converted to those rows. Rows flattened in any
    other order cannot be told apart and get wrong classes (:meth:`Geometry.as_rows`).
    """

    path: Path                    # the .npz file read
    model: FullyConnectedNet      # the trained parameters
    preprocessor: Preprocessor    # how its inputs are normalised (training statistics)
    class_names: tuple            # the C class names, in label order
    config: dict | None           # the training config, as TrainConfig.to_dict() wrote it
    data_dir: str | None          # the data folder it was trained on (None: not recorded)
    geometry: Geometry            # the shape of its input rows (D = geometry.D)

    def predict(self, X):
        """Labels (N,) int64 of the uint8 images ``X``: (N, D) channel-first rows, or
        (N, H, W, C) or (N, C, H, W)."""
        return predict_labels(self.model, self.preprocessor, self._rows(X))

    def predict_proba(self, X):
        """Class probabilities (N, C) float64 of the uint8 images ``X``, as :meth:`predict`."""
        return probabilities(self.model, self.preprocessor, self._rows(X))

    def _rows(self, X):
        """``X`` as rows (N, D), channel-first (:meth:`Geometry.as_rows`); UserError if its
        shape is not one of the layouts that method knows."""
        X = np.asarray(X)
        rows = self.geometry.as_rows(X)
        if rows is None:
            g = self.geometry
            arrays = ("" if g.is_features else
                      f", or images (N, {g.height}, {g.width}, {g.channels}) or "
                      f"(N, {g.channels}, {g.height}, {g.width})")
            one = (X.shape in ((g.height, g.width, g.channels), (g.channels, g.height, g.width))
                   and not g.is_features)
            raise UserError(f"{self.path} takes rows (N, {g.D}) of {g} values, each image "
                            f"channel-first{arrays}; not an array of shape {X.shape}"
                            + ("; for one image pass X[None]" if one else ""))
        return rows

    @property
    def description(self):
        """The model in one line, as its run's metrics.json says it (:func:`describe_model`)."""
        return describe_model(self.model, self.preprocessor, self.config)


def describe_model(model, preprocessor, config=None):
    """The one line that describes a trained model wherever it is shown (metrics.json, the
    report, ``evaluate``): ``FullyConnectedNet(3072 -> 1000 -> 10, ..., params=3,083,010)``.

    A whitened model reads K whitened components of the D values of an image, and is
    saved with its whitening folded into W1 (D inputs, :func:`_image_model`) beside the
    config that says K. Both are described as the net that was trained:
    ``3072 -> whiten 1024 -> 4096 -> 10``, its params those it trained (W1 is K x H1).

    Args:
        model: the FullyConnectedNet, as ``train()`` returns it or as its file holds it.
        preprocessor: its Preprocessor (with the whitening, for the model ``train()`` returns).
        config: the training config as a dict (a model file's), or None.
    """
    if preprocessor.whitening is not None:  # the trained model: (N, K) inputs
        D, K = preprocessor.whitening["proj"].shape
        return model.describe(inputs=f"{D} -> whiten {K}")
    config = config or {}
    K, D = config.get("whiten_dim"), model.input_dim
    if (config.get("preprocessing") == "whiten" and isinstance(K, int)
            and not isinstance(K, bool) and 1 <= K <= D):  # a model file: the whitening folded in
        return model.describe(dataclasses.replace(model.arch, input_dim=K),
                              inputs=f"{D} -> whiten {K}")
    return model.describe()


def model_file(path):
    """The model file ``path`` names: itself, or ``path/model.npz`` for a run folder."""
    path = Path(path)
    return path / MODEL_NAME if path.is_dir() else path


def _image_model(model, preprocessor):
    """``(model, preprocessor)`` as a model file holds them: themselves, or for ``whiten`` a
    copy of the model that takes the per_channel images (D inputs, not K), the whitening
    folded into W1 and b1 (:meth:`Preprocessor.unwhitened`; equal up to float rounding).
    So every reader of model files, ONNX export included, sees a per_channel model."""
    if preprocessor.whitening is None:
        return model, preprocessor
    W1, b1, plain = preprocessor.unwhitened(model.params["W1"], model.params["b1"])
    folded = FullyConnectedNet(len(W1), model.hidden_dims, model.num_classes,
                               **model.arch.to_dict(), reg=model.reg, dropout=model.dropout,
                               dtype=model.dtype, seed=0)
    folded.load_params({**model.params, **model.buffers, "W1": W1, "b1": b1})
    return folded, plain


def save_model(trained, path, *, data_dir=None):
    """Write the model ``train()`` returned to the file ``path`` (a model.npz), atomically:
    ``numpy-mlp evaluate --model`` and ``predict --model`` read it as a run's model.npz.

    Args:
        trained: the TrainResult of ``train(config, data)`` (its model, preprocessing,
            config, class names and image geometry), or a :class:`SavedModel`.
        data_dir: the data folder it was trained on, so that ``evaluate`` finds it without
            ``--data-dir``; None if not known (a SavedModel keeps its own).
    Returns:
        the Path written.
    Raises:
        UserError: ``trained`` is neither.
    """
    if not all(hasattr(trained, k) for k in ("model", "preprocessor", "class_names", "geometry",
                                             "config")) or trained.geometry is None:
        raise UserError(f"save_model takes what train(config, data) returns or what load_model "
                        f"reads, not {type(trained).__name__}")
    config = trained.config
    config = config.to_dict() if hasattr(config, "to_dict") else config
    if data_dir is None:
        data_dir = getattr(trained, "data_dir", None)
    else:
        data_dir = Path(data_dir).expanduser().absolute()
    write_model_file(Path(path), trained.model, trained.preprocessor,
                     class_names=trained.class_names, geometry=trained.geometry, config=config,
                     data_dir=data_dir)
    return Path(path)


def write_model_file(path, model, preprocessor, *, class_names, geometry, config=None,
                     data_dir=None):
    """Write ``model`` to ``path`` (.npz), atomically, or into ``path`` if it is a binary
    file object (a RunFolder's write).

    Args:
        preprocessor: the :class:`~numpy_mlp.data.preprocessing.Preprocessor` its inputs need.
        class_names: the C class names, in label order.
        config: optional dict of the training config, kept for reference.
        data_dir: the data folder it was trained on (absolute), so that ``evaluate``
            finds it again; None if not known.
        geometry: the shape of its input rows (a Geometry: the data's).
    """
    model, preprocessor = _image_model(model, preprocessor)
    meta = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "input_dim": model.input_dim,
        "hidden_dim": list(model.hidden_dims),
        "num_classes": model.num_classes,
        **model.arch.to_dict(),
        "dtype": model.dtype.name,
        "preprocessing": preprocessor.to_dict(),
        "class_names": list(class_names),
        "config": config,
        "data_dir": None if data_dir is None else str(data_dir),
        "geometry": geometry.to_dict(),
    }
    arrays = {**model.params, **model.buffers}
    arrays["meta"] = np.array(json.dumps(meta))
    if hasattr(path, "write"):
        np.savez(path, **arrays)
    else:
        atomic_write(path, lambda f: np.savez(f, **arrays))


def load_model(path):
    """Read a model file (``numpy-mlp train``'s model.npz, :func:`save_model`'s), or
    ``path/model.npz`` of a run folder: a :class:`SavedModel`, whose ``predict(X)`` takes
    uint8 images (N, D) channel-first, or (N, H, W, C) or (N, C, H, W).

    Every field is checked before anything is built, every size before anything is
    allocated (:func:`read_model_file`).

    Returns:
        a :class:`SavedModel`.
    Raises:
        ModelFileError: one line naming the file and the field: missing, not a model
        file, damaged, hostile (sizes it does not hold), from a newer format version.
    """
    given, path = Path(path), model_file(path)
    if given.is_dir() and not path.is_file():
        raise ModelFileError(f"{given} holds no {MODEL_NAME}; pass a run folder written by "
                             f"'numpy-mlp train' (an unfinished run goes on with 'numpy-mlp train "
                             f"--resume {given}')")
    params, meta = read_model_file(path)
    trained = meta.get("config") or {}  # reg and dropout only matter for training, but keep them
    try:
        arch = Architecture.of(meta["input_dim"], meta["hidden_dim"], meta["num_classes"], meta)
        model = FullyConnectedNet(arch.input_dim, arch.hidden_dims, arch.num_classes,
                                  **arch.to_dict(), dtype=meta["dtype"], seed=0,
                                  reg=trained.get("reg", 0.0), dropout=trained.get("dropout", 0.0))
        preprocessor = Preprocessor.from_dict(meta["preprocessing"], model.dtype)
        data_dir = meta.get("data_dir")
        geometry = _recorded_geometry(meta)  # checked against the weights by read_model_file
    except (KeyError, ValueError, TypeError, ConfigError) as e:
        raise ModelFileError(f"{path}: its 'meta' entry does not describe a model ({e}); "
                             f"{MODEL_FIX}") from None
    model.load_params(params)  # the buffers too
    return SavedModel(path=path, model=model, preprocessor=preprocessor,
                      class_names=tuple(meta["class_names"]), config=meta.get("config"),
                      data_dir=data_dir, geometry=geometry)


def tta_shift_for(saved, tta_shift=None):
    """The test-time shift to evaluate the :class:`SavedModel` ``saved`` with: ``tta_shift``
    if given, else the one its run was trained with (its config's, 0 if absent).

    Raises:
        UserError: ``tta_shift`` is outside 0..MAX_SHIFT.
        ModelFileError: the saved value is not such a shift (a hand-edited file).
    """
    if tta_shift is not None:
        if not is_tta_shift(tta_shift):
            raise UserError(f"--tta-shift {tta_shift}: give a shift of 0..{MAX_SHIFT} pixels "
                            "(about half the "
                            f"training crops' padding; 0 = off)")
        return tta_shift
    shift = (saved.config or {}).get("tta_shift", 0)
    if not is_tta_shift(shift):
        raise ModelFileError(f"{saved.path}: its saved config has tta_shift={shift!r}, not a "
                             f"shift of 0..{MAX_SHIFT} pixels; pass --tta-shift S to choose one "
                             f"(0 = off)")
    return shift


# ----------------------------------------------------------------------- reading, checked


def read_model_file(path):
    """The checked contents of the model file ``path``: ``(params, meta)``.

    ``params`` maps ``W1, b1, ...`` (and the buffers) to float arrays of the shapes ``meta``
    declares, every value finite; ``meta`` is the checked JSON table (statistics still plain
    lists).

    Raises:
        ModelFileError: naming the file and the field, for anything
        :mod:`numpy_mlp.files.npzfile` or this module refuses.
    """
    fields = Fields(path, ModelFileError, MODEL_FIX)
    with NpzArchive(path, error=ModelFileError, fix=MODEL_FIX,
                    what="numpy-mlp model file") as archive:
        if "meta" not in archive.members:
            archive.fail("it has no 'meta' entry, so it is not a numpy-mlp model")
        meta = parse_json(archive.text("meta", max_chars=MAX_META_CHARS), where=f"{fields.where}: "
                                                                                "meta",
                          error=ModelFileError, fix=MODEL_FIX)
        arch, meta = _check_meta(meta, fields)
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


def array_shapes(arch):
    """``{"W1": (D, H1), "b1": (H1,), ..., "running_mean1": (H1,), ...}``: the parameters and
    buffers of the :class:`~numpy_mlp.nn.architecture.Architecture` ``arch``."""
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


def _recorded_geometry(meta):
    """The Geometry of the input rows that a model file's meta records; ValueError if it is
    not one. Files written before geometries were recorded all hold CIFAR-10 models."""
    recorded = meta.get("geometry")
    return CIFAR10_GEOMETRY if recorded is None else Geometry.from_dict(recorded)


def _check_meta(meta, fields):
    """The checked meta table of a model file: returns ``(arch, meta)``, an Architecture."""
    fields.mapping(meta, "meta", keys=("format", "format_version", "input_dim", "hidden_dim",
                                       "num_classes", "dtype", "preprocessing", "class_names"))
    fields.format_of(meta, "meta", expected=MODEL_FORMAT, newest=MODEL_FORMAT_VERSION,
                     kind="numpy-mlp model", then="load it")
    mode = check_preprocessing(meta["preprocessing"], fields, modes=FILE_MODES)["mode"]
    input_dim = fields.integer(meta["input_dim"], "meta.input_dim", low=1)
    try:
        geometry = _recorded_geometry(meta)
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
