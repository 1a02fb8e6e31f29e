"""Classify image files (PNG, JPEG, any size), or the images in a folder, with a saved model.

Each image is read as the model's images are (its saved geometry; numpy_mlp.data.images):
for CIFAR-10 converted to RGB, resized to 32 x 32 (the whole image, aspect ratio not
kept, as CIFAR-10's own thumbnails were made) and laid out like a CIFAR-10 row: 1024 red,
1024 green, 1024 blue values, each row-major; for MNIST grey, 28 x 28.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..data.images import image_to_row
from ..errors import UserError
from ..training.inference import probabilities
from ..training.model_file import load_model, tta_shift_for

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # what a folder given to predict is searched for


class Prediction(NamedTuple):
    """What ``predict`` says of one file: its top classes, or why it could not classify it."""

    path: str          # the file (a folder's image files each get their own)
    top: tuple         # ((class_name, probability), ...), most likely first; () on an error
    error: str | None  # one line naming the file and what is wrong with it; None if classified


def _image_paths(paths):
    """The image files ``paths`` name, in the order given: each file itself, each folder's
    PNG/JPEG files (sorted by name, not in subfolders); a folder without any is
    ``(folder, message)`` instead of a path."""
    out = []
    for p in map(Path, paths):
        if not p.is_dir():
            out.append(p)  # a missing file is named by image_to_row
            continue
        found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not found:
            kinds = ", ".join(IMAGE_SUFFIXES)
            out.append((p, f"folder {p} holds no image files ({kinds}); give image files or a "
                           f"folder of them"))
        out += found
    return out


def classify_files(model_path, paths, top=3, tta_shift=None):
    """A :class:`Prediction` for each image file ``paths`` name (a folder: its images), in
    that order: every file that can be read is classified, and every one that cannot
    (missing, not an image, damaged, too large; an empty folder) is named with its error.

    ``model_path`` is a model file or a run folder. With a test-time shift s > 0
    (``tta_shift``; default: the one the model's run was trained with) the probabilities
    are the mean over the ten views of :func:`~numpy_mlp.data.augment.tta_views`, as
    ``evaluate`` counts its ten-view accuracy (:func:`numpy_mlp.training.inference.probabilities`).

    Raises:
        UserError: the model cannot be read or the shift is not one (nothing is classified).
    """
    saved = load_model(model_path)
    tta_shift = tta_shift_for(saved, tta_shift)
    out, rows = [], {}  # rows: index in out -> (D,) uint8
    for p in _image_paths(paths):
        if isinstance(p, tuple):
            out.append(Prediction(str(p[0]), (), p[1]))
            continue
        try:
            rows[len(out)] = image_to_row(p, geometry=saved.geometry)
        except UserError as e:
            out.append(Prediction(str(p), (), str(e)))
            continue
        out.append(Prediction(str(p), (), None))
    if rows:
        probs = probabilities(saved.model, saved.preprocessor, np.stack(list(rows.values())),
                              tta_shift=tta_shift, geometry=saved.geometry)  # (N, C)
        for i, row in zip(rows, probs):
            order = np.argsort(row)[::-1][:top]
            out[i] = out[i]._replace(top=tuple((saved.class_names[k], float(row[k]))
                                               for k in order))
    return out


def predict_files(model_path, paths, top=3, tta_shift=None):
    """Top-``top`` classes with probabilities for each image file (a folder: its images), as
    :func:`classify_files`, all or nothing.

    Returns:
        list of ``(path, [(class_name, probability), ...])``, most likely first.
    Raises:
        UserError: the first file that cannot be classified, named.
    """
    out = classify_files(model_path, paths, top=top, tta_shift=tta_shift)
    for p in out:
        if p.error is not None:
            raise UserError(p.error)
    return [(p.path, list(p.top)) for p in out]


# the columns of --format csv: one row per class shown, one row with its error per bad file
CSV_COLUMNS = ("file", "rank", "class", "probability", "error")


def as_json(predictions):
    """``--format json``: a list with, per file, ``{"file", "top": [{"class", "probability"}]}``
    or ``{"file", "error"}``."""
    return json.dumps([{"file": p.path, "error": p.error} if p.error is not None else
                       {"file": p.path, "top": [{"class": c, "probability": q} for c, q in p.top]}
                       for p in predictions], indent=2)


def as_csv(predictions):
    """``--format csv``: :data:`CSV_COLUMNS`, one row per class shown (rank 1 first)."""
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for p in predictions:
        if p.error is not None:
            w.writerow([p.path, "", "", "", p.error])
        for rank, (c, q) in enumerate(p.top, 1):
            w.writerow([p.path, rank, c, f"{q:.6g}", ""])
    return text.getvalue()
