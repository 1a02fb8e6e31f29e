"""Saving and loading trained models as ``.npz`` files, atomically and without pickle.

A model file holds the parameter arrays (``W1, b1, ...``) and one JSON string ``meta``
with the format version, the architecture, the preprocessing (``Preprocessor.to_dict``),
the class names, the training config and the data folder: everything ``evaluate`` and
``predict`` need (:class:`SavedModel`). Files are
read with ``allow_pickle=False``, so loading one never runs code.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import MAX_SHIFT, is_tta_shift
from .data import Preprocessor
from .errors import ConfigError, ModelFileError, UserError
from .model import FullyConnectedNet

FORMAT_VERSION = 1
MODEL_NAME = "model.npz"  # the model file in a run folder


def atomic_write(path, write):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash mid-write leaves the previous file (if any) intact; the data is flushed to disk
    before the rename and the rename itself after it, so a power cut leaves one of the two
    whole files. The new file gets the usual permissions (0666 minus the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _read_umask():
    mask = os.umask(0)  # the only way to read it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _fsync_dir(folder):
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class SavedModel:
    """A model file read back: everything ``evaluate`` and ``predict`` need."""

    path: Path                    # the .npz file read
    model: FullyConnectedNet      # the trained parameters
    preprocessor: Preprocessor    # how its inputs are normalised (training statistics)
    class_names: tuple            # the C class names, in label order
    config: dict | None           # the training config, as TrainConfig.to_dict() wrote it
    data_dir: str | None          # the data folder it was trained on (None: not recorded)


def model_file(path):
    """The model file ``path`` names: itself, or ``path/model.npz`` for a run folder."""
    path = Path(path)
    return path / MODEL_NAME if path.is_dir() else path


def save_model(path, model, preprocessor, *, class_names, config=None, data_dir=None):
    """Write ``model`` to ``path`` (.npz), atomically.

    Args:
        preprocessor: the :class:`~numpy_mlp.data.Preprocessor` its inputs need.
        class_names: the C class names, in label order.
        config: optional dict of the training config, kept for reference.
        data_dir: the data folder it was trained on (absolute), so that ``evaluate``
            finds it again; None if not known.
    """
    meta = {
        "format": "numpy-mlp",
        "format_version": FORMAT_VERSION,
        "input_dim": model.input_dim,
        "hidden_dim": list(model.hidden_dims),
        "num_classes": model.num_classes,
        "dtype": model.dtype.name,
        "preprocessing": preprocessor.to_dict(),
        "class_names": list(class_names),
        "config": config,
        "data_dir": None if data_dir is None else str(data_dir),
    }
    arrays = dict(model.params)
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_model(path):
    """Read a model file written by :func:`save_model`, or ``path/model.npz`` of a run folder.

    Returns:
        a :class:`SavedModel`.
    Raises:
        ModelFileError: the file is missing, not a model file, damaged, from a newer
        format version, or its arrays do not fit its architecture.
    """
    given, path = Path(path), model_file(path)
    if given.is_dir() and not path.is_file():
        raise ModelFileError(f"{given} holds no {MODEL_NAME}; pass a run folder written by "
                             f"'numpy-mlp train' (an unfinished run goes on with 'numpy-mlp train "
                             f"--resume {given}')")
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist; pass the model.npz written by 'numpy-mlp train'")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a numpy-mlp model file (not an .npz archive; it may be truncated): "
                             f"train again or use another copy")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise ModelFileError(f"{path} is not a readable numpy-mlp model file ({e}); train again or use "
                                 f"another copy") from None
        raise ModelFileError(f"{path} holds pickled Python objects, which numpy-mlp never loads (they could run "
                             f"code); use a model.npz written by 'numpy-mlp train'") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise ModelFileError(f"{path} is not a readable numpy-mlp model file ({type(e).__name__}: {e}); "
                             f"it may be truncated: train again or use another copy") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
        version = int(meta["format_version"])
    except (KeyError, ValueError, TypeError):
        raise ModelFileError(f"{path} is an .npz file but not a numpy-mlp model (no valid 'meta' entry)") from None
    if meta.get("format") != "numpy-mlp":
        raise ModelFileError(f"{path} is an .npz file but not a numpy-mlp model")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} has model format version {version}, newer than this numpy-mlp reads "
                             f"({FORMAT_VERSION}); upgrade numpy-mlp to load it")
    try:  # the shapes the meta entry declares, checked against the arrays before building anything
        dims = (int(meta["input_dim"]), *(int(h) for h in meta["hidden_dim"]), int(meta["num_classes"]))
        expected = {}
        for l in range(1, len(dims)):
            expected[f"W{l}"], expected[f"b{l}"] = (dims[l - 1], dims[l]), (dims[l],)
        if len(meta["class_names"]) != dims[-1]:
            raise ValueError(f"{len(meta['class_names'])} class names for {dims[-1]} classes")
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise ModelFileError(f"{path}: its 'meta' entry does not describe a model ({type(e).__name__}: {e}); "
                             f"the file is damaged") from None
    if set(arrays) != set(expected):
        raise ModelFileError(f"{path}: its arrays {sorted(arrays)} do not match the architecture it declares "
                             f"({sorted(expected)}); the file is damaged")
    for k, shape in expected.items():
        if arrays[k].shape != shape:
            raise ModelFileError(f"{path}: {k} has shape {arrays[k].shape}, expected {shape} for "
                                 f"hidden_dim={meta['hidden_dim']}; the file is damaged")
    try:
        trained = meta.get("config") or {}  # reg and dropout only matter for training, but keep them
        model = FullyConnectedNet(dims[0], dims[1:-1], dims[-1], dtype=meta["dtype"], seed=0,
                                  reg=trained.get("reg", 0.0), dropout=trained.get("dropout", 0.0))
        preprocessor = Preprocessor.from_dict(meta["preprocessing"], model.dtype)
        data_dir = meta.get("data_dir")
        if data_dir is not None and not isinstance(data_dir, str):
            raise ValueError(f"data_dir={data_dir!r} is not a folder name")
    except (KeyError, ValueError, TypeError, ConfigError) as e:
        raise ModelFileError(f"{path}: its 'meta' entry does not describe a model ({e}); the file is damaged") from None
    for k, v in model.params.items():
        v[...] = arrays[k]
    return SavedModel(path=path, model=model, preprocessor=preprocessor,
                      class_names=tuple(meta["class_names"]), config=meta.get("config"),
                      data_dir=data_dir)


def tta_shift_for(saved, tta_shift=None):
    """The test-time shift to evaluate the :class:`SavedModel` ``saved`` with: ``tta_shift``
    if given, else the one its run was trained with (its config's, 0 if absent).

    Raises:
        UserError: ``tta_shift`` is outside 0..MAX_SHIFT.
        ModelFileError: the saved value is not such a shift (a hand-edited file).
    """
    if tta_shift is not None:
        if not is_tta_shift(tta_shift):
            raise UserError(f"--tta-shift {tta_shift}: give a shift of 0..{MAX_SHIFT} pixels (about half the "
                            f"training crops' padding; 0 = off)")
        return tta_shift
    shift = (saved.config or {}).get("tta_shift", 0)
    if not is_tta_shift(shift):
        raise ModelFileError(f"{saved.path}: its saved config has tta_shift={shift!r}, not a "
                             f"shift of 0..{MAX_SHIFT} pixels; pass --tta-shift S to choose one "
                             f"(0 = off)")
    return shift
