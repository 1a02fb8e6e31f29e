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

from pathlib import Path

import numpy as np

from ..errors import DataError, UserError
from .cifar10 import MAX_NAME_CHARS
from .dataset import DatasetKind, Geometry, Parts
from .images import image_to_row

FOLDER_TEST_FRACTION = 0.2  # of each class's images, held out as the test set
FOLDER_TEST_SEED = 0
MAX_FOLDER_IMAGES = 200_000  # images a folder dataset may hold
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
    parts = {"train": ([], []), "test": ([], [])}
    for label, found in enumerate(files):
        n_test = max(1, int(round(FOLDER_TEST_FRACTION * len(found))))
        test = set(rng.permutation(len(found))[:n_test].tolist())
        for i, f in enumerate(found):
            X, y = parts["test" if i in test else "train"]
            X.append(image_to_row(f, geometry=geometry))
            y.append(label)
    train, test = ((np.stack(X), np.asarray(y, np.int64)) for X, y in parts.values())
    return Parts(train, test, names, str(folder))


FOLDER = DatasetKind("folder", "a folder of images", None, read_image_folder)
