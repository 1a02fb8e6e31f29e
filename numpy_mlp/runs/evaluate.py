"""``numpy-mlp evaluate``: a saved model's accuracies on its data set, and its pictures."""

from __future__ import annotations

import os
from pathlib import Path

from ..data.registry import load_dataset
from ..errors import UserError, printable
from ..training.config import TrainConfig, data_config
from ..training.loop import initial_params
from ..training.metrics import per_class_accuracy
from ..training.model_file import load_model, tta_shift_for
from .folder import RunFolder, check_owner
from .writeup import score_splits, write_pictures

# the pictures an evaluation writes (a run's write-up also draws its history)
EVALUATE_PICTURES = ("predictions.png", "confusion.png", "weights.png")


def evaluate_saved(model_path, *, data_dir=None, download=True, progress=False, out=None,
                   pictures=True, log=None, tta_shift=None):
    """Accuracies of a saved model on train/val/test and per class (test), and its pictures.

    ``model_path`` is a model file or a run folder. The data is read from ``data_dir``,
    else from the folder the run recorded (if it is still there), else from the default
    folder. ``tta_shift`` (default: the saved config's, else 0) adds "val_tta" and
    "test_tta" to the accuracies (see :func:`~numpy_mlp.runs.writeup.score_splits`).

    The data must have the model's classes, in its order (DataError otherwise).
    The validation split is carved exactly as in training (the saved config's val_size
    and seed), so "val" means the images the run did not train on. With ``pictures``,
    predictions.png, confusion.png and weights.png are written into ``out`` (default: the
    model's folder) and listed under ``"pictures"``.
    """
    saved = load_model(model_path)
    tta_shift = tta_shift_for(saved, tta_shift)  # checked before the data is read
    if pictures and out is not None and not _same_folder(out, saved.path.parent):
        check_owner(out, "--out", owner=None)  # another run's or search's pictures stay theirs
    cfg = saved.config or {}
    if data_dir is None and saved.data_dir is not None:
        if Path(saved.data_dir).is_dir():
            data_dir = saved.data_dir
        elif log:
            log(f"the run's data folder {saved.data_dir} is gone; looking in the default one")
    data = load_dataset(data_config(cfg), data_dir, download=download, progress=progress,
                        log=log)
    data.require_classes(saved.class_names, whose=f"the model {printable(saved.path)}",
                         then="pass --data-dir with the folder it was trained on")
    model, preprocessor = saved.model, saved.preprocessor
    acc, cm = score_splits(model, preprocessor, data, tta_shift)
    written = []
    if pictures:
        where = Path(out) if out is not None else saved.path.parent
        with RunFolder(where, flag="--out", then="choose another folder with --out").open(
                check=EVALUATE_PICTURES) as folder:
            written = write_pictures(folder, model, preprocessor, data, cm,
                                     W1_init=initial_W1(cfg, model))
    per_class = dict(zip(data.class_names, per_class_accuracy(cm).tolist()))
    return {"model": model, "description": saved.description, "saved": saved, "accuracy": acc,
            "confusion": cm, "pictures": written, "tta_shift": tta_shift, "per_class": per_class}


def _same_folder(a, b):
    """Whether the paths ``a`` and ``b`` name one folder (links and ``..`` resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them is not there (yet)
        return False


def initial_W1(cfg, model):
    """W1 (D, H) as the saved config ``cfg`` (a dict) initialised it, or None if it cannot:
    what weights.png subtracts to show what training changed."""
    if not cfg or cfg.get("preprocessing") == "whiten":  # its W1 was K wide, the file's is D
        return None
    try:
        W1 = initial_params(TrainConfig.from_dict(cfg), model.input_dim, model.num_classes)["W1"]
    except (UserError, TypeError, ValueError):
        return None
    return W1 if W1.shape == model.params["W1"].shape else None
