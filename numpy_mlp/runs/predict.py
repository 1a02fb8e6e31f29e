"""Classify image files (PNG, JPEG, any size), or the images in a folder, with a saved model.

Each image is read as the model's images are (its saved geometry; numpy_mlp.data.images):
for CIFAR-10 converted to RGB, resized to 32 x 32 (the whole image, aspect ratio not
kept, as CIFAR-10's own thumbnails were made) and laid out like a CIFAR-10 row: 1024 red,
1024 green, 1024 blue values, each row-major; for MNIST grey, 28 x 28.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.images import image_to_row
from ..errors import UserError
from ..training.inference import probabilities
from ..training.model_file import load_model, tta_shift_for

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # what a folder given to predict is searched for


def _image_paths(paths):
    """The image files ``paths`` name: each file itself, each folder's PNG/JPEG files
    (sorted by name, not in subfolders), in the order given.

    Raises:
        UserError: a folder holds no such file.
    """
    out = []
    for p in map(Path, paths):
        if not p.is_dir():
            out.append(p)  # a missing file is named by image_to_row
            continue
        found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not found:
            kinds = ", ".join(IMAGE_SUFFIXES)
            raise UserError(f"folder {p} holds no image files ({kinds}); give image files or a "
                            f"folder of them")
        out += found
    return out


def predict_files(model_path, paths, top=3, tta_shift=None):
    """Top-``top`` classes with probabilities for each image file (a folder: its images).

    ``model_path`` is a model file or a run folder. With a test-time shift s > 0
    (``tta_shift``; default: the one the model's run was trained with) the probabilities
    are the mean over the ten views of :func:`~numpy_mlp.data.augment.tta_views`, as
    ``evaluate`` counts its ten-view accuracy (:func:`numpy_mlp.training.inference.probabilities`).

    Returns:
        list of ``(path, [(class_name, probability), ...])``, most likely first.
    """
    saved = load_model(model_path)
    tta_shift = tta_shift_for(saved, tta_shift)
    files = _image_paths(paths)
    rows = np.stack([image_to_row(p, geometry=saved.geometry) for p in files])  # (N, D) uint8
    probs = probabilities(saved.model, saved.preprocessor, rows, tta_shift=tta_shift,
                          geometry=saved.geometry)  # (N, C)
    out = []
    for p, row in zip(files, probs):
        order = np.argsort(row)[::-1][:top]
        out.append((str(p), [(saved.class_names[i], float(row[i])) for i in order]))
    return out
