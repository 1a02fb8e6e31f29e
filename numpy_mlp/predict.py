"""Classify image files (PNG, JPEG, any size) with a saved model.

Each image is converted to RGB, resized to 32 x 32 (the whole image, aspect ratio not
kept, as CIFAR-10's own thumbnails were made) and laid out like a CIFAR-10 row:
1024 red, 1024 green, 1024 blue values, each row-major.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .augment import tta_views
from .errors import UserError
from .losses import softmax
from .saving import load_model, tta_shift_for
from .train import make_preparer


def image_to_row(path):
    """Read an image file into one uint8 CIFAR-10 row (3072,) = channel-first 3 x 32 x 32."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"image {path} does not exist")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB").resize((32, 32), Image.Resampling.BICUBIC)
            hwc = np.asarray(im, dtype=np.uint8)  # (32, 32, 3)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"{path} is not an image this tool can read (PNG or JPEG): {e}") from None
    return hwc.transpose(2, 0, 1).reshape(-1)  # (3072,)


def predict_files(model_path, paths, top=3, tta_shift=None):
    """Top-``top`` classes with probabilities for each image file.

    With a test-time shift s > 0 (``tta_shift``; default: the one the model's run was
    trained with) the probabilities are the mean over the ten views of
    :func:`~numpy_mlp.augment.tta_views`, as ``evaluate`` counts its ten-view accuracy.

    Returns:
        list of ``(path, [(class_name, probability), ...])``, most likely first.
    """
    model, meta = load_model(model_path)
    tta_shift = tta_shift_for(model_path, meta, tta_shift)
    rows = np.stack([image_to_row(p) for p in paths])  # (N, 3072) uint8
    prep = meta["preprocessing"]
    prepare = make_preparer(prep["mode"], prep["stats"], model.dtype)
    views = list(tta_views(rows, tta_shift)) if tta_shift else [rows]
    probs = sum(softmax(model.scores(prepare(v)).astype(np.float64)) for v in views) / len(views)  # (N, C)
    names = meta["class_names"]
    out = []
    for p, row in zip(paths, probs):
        order = np.argsort(row)[::-1][:top]
        out.append((str(p), [(names[i], float(row[i])) for i in order]))
    return out
