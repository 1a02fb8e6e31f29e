"""Saving and loading trained models as ``.npz`` files, atomically and without pickle.

A model file holds the parameter arrays (``W1, b1, ...``), batch norm's running statistics
(``running_mean1, ...``, the model's buffers) and one JSON string ``meta``
with the format version, the architecture, the preprocessing (``Preprocessor.to_dict``),
the class names, the training config and the data folder: everything ``evaluate`` and
``predict`` need (:class:`SavedModel`). Files are
read with ``allow_pickle=False``, so loading one never runs code. A model trained on
whitened images is saved as the per_channel model it equals (:func:`image_model`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.cifar10 import CIFAR10_GEOMETRY
from ..data.dataset import Geometry
from ..data.preprocessing import Preprocessor
from ..errors import ConfigError, ModelFileError, UserError
from ..files.atomic import atomic_write
from ..nn.architecture import Architecture
from ..nn.model import FullyConnectedNet
from .config import MAX_SHIFT, is_tta_shift
from .model_format import MODEL_FIX, MODEL_FORMAT, MODEL_FORMAT_VERSION, read_model_file

FORMAT_VERSION = MODEL_FORMAT_VERSION
MODEL_NAME = "model.npz"  # the model file in a run folder



@dataclass(frozen=True)
class SavedModel:
    """A model file read back: everything ``evaluate`` and ``predict`` need."""

    path: Path                    # the .npz file read
    model: FullyConnectedNet      # the trained parameters
    preprocessor: Preprocessor    # how its inputs are normalised (training statistics)
    class_names: tuple            # the C class names, in label order
    config: dict | None           # the training config, as TrainConfig.to_dict() wrote it
    data_dir: str | None          # the data folder it was trained on (None: not recorded)
    geometry: Geometry            # the shape of its input rows (D = geometry.D)


def model_file(path):
    """The model file ``path`` names: itself, or ``path/model.npz`` for a run folder."""
    path = Path(path)
    return path / MODEL_NAME if path.is_dir() else path


def image_model(model, preprocessor):
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


def save_model(path, model, preprocessor, *, class_names, geometry, config=None,
               data_dir=None):
    """Write ``model`` to ``path`` (.npz), atomically, or into ``path`` if it is a binary
    file object (a RunFolder's write).

    Args:
        preprocessor: the :class:`~numpy_mlp.data.Preprocessor` its inputs need.
        class_names: the C class names, in label order.
        config: optional dict of the training config, kept for reference.
        data_dir: the data folder it was trained on (absolute), so that ``evaluate``
            finds it again; None if not known.
        geometry: the shape of its input rows (a Geometry: the data's).
    """
    model, preprocessor = image_model(model, preprocessor)
    meta = {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
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
    """Read a model file written by :func:`save_model`, or ``path/model.npz`` of a run folder.

    Every field is checked before anything is built, every size before anything is
    allocated (:func:`numpy_mlp.modelfile.read_model_file`).

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
        # checked against the weights and statistics by read_model_file; files written
        # before geometries were recorded all hold CIFAR-10 models
        recorded = meta.get("geometry")
        geometry = CIFAR10_GEOMETRY if recorded is None else Geometry.from_dict(recorded)
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
