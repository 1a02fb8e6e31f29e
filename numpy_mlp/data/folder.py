"""A folder of the user's images, ``DIR/<class>/*.png|jpg|jpeg``: the kind :data:`FOLDER`.

One subfolder per class (sorted by name: label i is the i-th), each image read by
:func:`~numpy_mlp.data.images.image_to_row` (bounded, named formats only) at the size the
config asks (``--image-size``). The test set is a fixed seeded split,
:data:`FOLDER_TEST_FRACTION` of each class chosen with seed :data:`FOLDER_TEST_SEED` (the
same whatever ``--seed``, so every run is tested on the same images); the validation set is
carved from the rest as for every dataset. Nothing is downloaded: the folder has no default.

    N  images      D  3 x image_size x image_size      C  class subfolders
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import DataError, UserError
from .cifar10 import MAX_NAME_CHARS
from .dataset import DatasetKind, Geometry, Parts
from .images import image_to_row

FOLDER_TEST_FRACTION = 0.2  # of each class's images, held out as the test set
FOLDER_TEST_SEED = 0
MAX_FOLDER_IMAGES = 200_000  # images a folder dataset may hold
# bytes of its decoded uint8 images (N x D) a folder dataset may hold: 2 GiB, 43,690 images
# at 128 px or all 200,000 at 59 px; training needs about four times as much again (float32)
MAX_FOLDER_BYTES = 2**31
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_image_folder(kind: DatasetKind, data_dir, geometry: Geometry, fetch=None) -> Parts:
    """The user's images in ``data_dir``, one subfolder per class, resized to ``geometry``.
    ``fetch`` is not used: the user's images are never downloaded."""
    if data_dir is None:
        raise UserError("--dataset folder needs --data-dir DIR: a folder with one subfolder "
                        "of PNG/JPEG images per class")
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise DataError(f"the image folder {folder} does not exist; pass --data-dir with a "
                        "folder that has one subfolder of images per class")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{folder} holds {len(classes)} class subfolder(s); a classifier needs "
                        "at least 2 (one subfolder of PNG/JPEG images per class)")
    names = [c.name for c in classes]
    for n in names:
        if len(n) > MAX_NAME_CHARS or not n.isprintable():
            raise DataError(f"{folder}: the class folder name {n[:MAX_NAME_CHARS]!r} must be 1 "
                            f"to {MAX_NAME_CHARS} printable characters; rename it")
    files = [sorted(f for f in c.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
             for c in classes]
    for c, found in zip(classes, files):
        if len(found) < 2:
            raise DataError(f"{c} holds {len(found)} image(s) ({', '.join(IMAGE_SUFFIXES)}); "
                            "each class needs at least 2: one to train on, one to test")
    if sum(map(len, files)) > MAX_FOLDER_IMAGES:
        raise DataError(f"{folder} holds more than {MAX_FOLDER_IMAGES:,} images; use a "
                        "smaller folder")
    rng = np.random.default_rng(FOLDER_TEST_SEED)
    is_test = []  # per class: (n,) bool, the images held out for the test set
    for found in files:
        n_test = max(1, int(round(FOLDER_TEST_FRACTION * len(found))))
        held = np.zeros(len(found), bool)
        held[rng.permutation(len(found))[:n_test]] = True
        is_test.append(held)
    held = np.concatenate(is_test)  # (N,) per image, in the order of files
    labels = np.repeat(np.arange(len(files), dtype=np.int64), [len(found) for found in files])
    row = np.where(held, np.cumsum(held), np.cumsum(~held)) - 1  # (N,) its row in its split
    _check_bytes(folder, len(held), geometry)
    # decoded straight into place: never a list of rows and a stacked copy of it besides
    X_train = np.empty((int((~held).sum()), geometry.D), np.uint8)
    X_test = np.empty((int(held.sum()), geometry.D), np.uint8)
    for k, f in enumerate(f for found in files for f in found):
        (X_test if held[k] else X_train)[row[k]] = image_to_row(f, geometry=geometry)
    train, test = (X_train, labels[~held]), (X_test, labels[held])
    return Parts(train, test, names, str(folder))


def _check_bytes(folder: Path, n: int, geometry: Geometry) -> None:
    """DataError if ``n`` images of ``geometry`` take more than :data:`MAX_FOLDER_BYTES`
    as uint8 rows (N, D), before any is decoded; the message names a size that fits."""
    nbytes = n * geometry.D
    if nbytes <= MAX_FOLDER_BYTES:
        return
    side = math.isqrt(MAX_FOLDER_BYTES // (n * geometry.channels))
    smaller = f"--image-size {side} or smaller, or " if side >= 1 else ""
    raise DataError(f"{folder}: its {n:,} images at {geometry.height}x{geometry.width} px "
                    f"would take {nbytes:,} bytes ({nbytes / 2**30:.1f} GiB) of memory, more "
                    f"than the {MAX_FOLDER_BYTES:,} a folder dataset may hold; use "
                    f"{smaller}a folder with fewer images")


FOLDER = DatasetKind("folder", "a folder of images", None, read_image_folder)
