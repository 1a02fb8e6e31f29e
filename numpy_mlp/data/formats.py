"""Reading MNIST, Fashion-MNIST, CIFAR-100 and a folder of images: every file checked.

The datasets other than CIFAR-10 (:mod:`numpy_mlp.datasets` declares them), each read from
one folder (``data_dir``, else a subfolder of :func:`~numpy_mlp.data.default_data_dir`
named after the dataset), with the official files downloaded there (md5-checked, by
:func:`~numpy_mlp.download.download_file`) when missing and allowed:

- MNIST and Fashion-MNIST: the four idx ``.gz`` files. Each is decompressed lazily and
  checked before anything is allocated: the magic number (unsigned bytes, 3 dimensions
  for images, 1 for labels), the declared dimensions (28 x 28, at most :data:`MAX_IMAGES`
  images), then exactly the declared number of bytes must follow and nothing more; labels
  must be in 0..9 and as many as the images;
- CIFAR-100: ``cifar-100-python.tar.gz``, read member by member with the checks and the
  restricted unpickler of :mod:`numpy_mlp.cifar_files` (``train``, ``test``, ``meta``;
  fine or coarse labels);
- a folder of images: ``DIR/<class>/*.png|jpg|jpeg``, one subfolder per class (sorted by
  name: label i is the i-th), each image read by :func:`~numpy_mlp.images.image_to_row`
  (bounded, named formats only) at the size the config asks. The test set is a fixed
  seeded split, :data:`FOLDER_TEST_FRACTION` of each class chosen with seed
  :data:`FOLDER_TEST_SEED` (the same whatever ``--seed``, so every run is tested on the
  same images); the validation set is carved from the rest as for CIFAR-10.

    N  images      D  channels * height * width
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError, UserError
from .cifar10 import MAX_META_BYTES, MAX_NAME_CHARS, check_batch, check_labels, check_meta, read_tar
from .dataset import Dataset, DatasetKind, Geometry, split_validation
from .download import download_file
from .images import image_to_row

MAX_IMAGES = 100_000  # images an idx file may declare (MNIST's training file has 60,000)
IDX_UBYTE = 0x08  # the idx type code of unsigned bytes, the only one MNIST uses
FOLDER_TEST_FRACTION = 0.2  # of each class's images, held out as the test set
FOLDER_TEST_SEED = 0
MAX_FOLDER_IMAGES = 200_000  # images a folder dataset may hold
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CIFAR100_DIR = "cifar-100-python"
# the most bytes each CIFAR-100 member may have (the official train file has 155 MB)
CIFAR100_LIMITS = {"train": 200_000_000, "test": 40_000_000, "meta": MAX_META_BYTES,
                   "file.txt~": MAX_META_BYTES}
CIFAR100_MEMBERS = frozenset({CIFAR100_DIR, *(f"{CIFAR100_DIR}/{n}" for n in CIFAR100_LIMITS)})
CIFAR100_CLASSES = {"fine": 100, "coarse": 20}


def _cifar100_limit(name: str) -> int:
    return CIFAR100_LIMITS.get(name, MAX_META_BYTES)  # the folder itself: no bytes


def _folder(kind: DatasetKind, data_dir) -> tuple[Path, bool]:
    """The folder of ``kind`` and whether it is the default one (created with parents)."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), False
    return kind.default_folder(), True


def _fetch(kind, folder, name, *, download, create, parents, progress, log, sources) -> Path:
    """``folder/name``, downloaded from its official URL (or ``sources``) if missing."""
    path = folder / name
    if path.exists():
        return path
    official = next(f for f in kind.files if f.name == name)
    if not download:
        raise DataError(f"{kind.title}: {path} is missing; download {official.url} into "
                        f"{folder}, or pass --data-dir with the folder that has it")
    if not create and not folder.is_dir():
        raise DataError(f"the {kind.title} folder {folder} does not exist (it is not created "
                        f"again here); pass --data-dir with the folder that has {kind.title}")
    url, md5 = sources.get(name, (official.url, official.md5))
    return download_file(folder, name, url, md5, progress, log, what=kind.title,
                         size="a few MB or more", official_url=official.url, parents=parents)


def _split(kind, geometry, source, names, train, test, val_size, seed) -> Dataset:
    X_train, y_train, X_val, y_val = split_validation(*train, val_size,
                                                      np.random.default_rng(seed))
    return Dataset(X_train, y_train, X_val, y_val, *test, tuple(names), str(source),
                   geometry=geometry, name=kind.name)


# ------------------------------------------------------------------ MNIST, Fashion-MNIST

def read_idx(path: Path, ndim: int, dims: tuple = ()) -> np.ndarray:
    """One idx ``.gz`` file of unsigned bytes with ``ndim`` dimensions, the ones after the
    first equal to ``dims``; returns its (count, *dims) uint8 array. DataError otherwise."""
    bad = f"{path} is not a valid idx file"
    redownload = "delete it and download it again"
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(4 + 4 * ndim)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] != IDX_UBYTE or head[3] != ndim:
                raise DataError(f"{bad}: wrong magic number {head[:4].hex() or 'none'} (expected "
                                f"0000{IDX_UBYTE:02x}{ndim:02x}); {redownload}")
            if len(head) < 4 + 4 * ndim:
                raise DataError(f"{bad}: the header is cut short; {redownload}")
            shape = tuple(int.from_bytes(head[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
            if shape[1:] != tuple(dims) or shape[0] > MAX_IMAGES:
                want = " x ".join(map(str, ("N", *dims)))
                raise DataError(f"{bad}: it declares {' x '.join(map(str, shape))} values, "
                                f"expected {want} with N <= {MAX_IMAGES:,}; {redownload}")
            size = int(np.prod(shape, dtype=np.int64))
            body = f.read(size + 1)  # bounded: at most the declared size plus one byte
    except (OSError, EOFError, zlib.error) as exc:  # also gzip's errors
        raise DataError(f"could not read {path} ({type(exc).__name__}: {exc}); "
                        f"{redownload}") from exc
    if len(body) != size:
        raise DataError(f"{bad}: it declares {size:,} bytes of data but holds "
                        f"{'more' if len(body) > size else f'{len(body):,}'}; {redownload}")
    return np.frombuffer(body, np.uint8).reshape(shape)


def load_idx(kind: DatasetKind, data_dir=None, *, val_size, seed, download=True, create=True,
             progress=True, log=None, sources=None) -> Dataset:
    """MNIST or Fashion-MNIST from its four idx files (downloaded if missing and allowed)."""
    folder, default = _folder(kind, data_dir)
    g = kind.geometry
    arrays = []
    for i, official in enumerate(kind.files):
        path = _fetch(kind, folder, official.name, download=download, create=create,
                      parents=default, progress=progress, log=log, sources=sources or {})
        arrays.append(read_idx(path, 3, (g.height, g.width)) if i % 2 == 0 else read_idx(path, 1))
    parts = []
    for (X, y), image_file in zip((arrays[0:2], arrays[2:4]), kind.files[0::2]):
        bad = f"{folder / image_file.name} and its labels"
        labels = check_labels(y, len(X), bad, len(kind.class_names),
                              "delete them and download them again")
        parts.append((X.reshape(len(X), g.D), labels))
    return _split(kind, g, folder, kind.class_names, parts[0], parts[1], val_size, seed)


# ------------------------------------------------------------------ CIFAR-100

def load_cifar100(kind: DatasetKind, data_dir=None, *, val_size, seed, download=True,
                  create=True, progress=True, log=None, sources=None) -> Dataset:
    """CIFAR-100 from its official archive (downloaded if missing and allowed), with the
    fine (100) or coarse (20) labels as ``kind.labels`` says."""
    folder, default = _folder(kind, data_dir)
    name = kind.files[0].name
    archive = _fetch(kind, folder, name, download=download, create=create, parents=default,
                     progress=progress, log=log, sources=sources or {})
    classes = CIFAR100_CLASSES[kind.labels]

    def read(load):
        batches = [check_batch(*load(n), labels=f"{kind.labels}_labels", classes=classes,
                               what="CIFAR-100") for n in ("train", "test")]
        names = check_meta(*load("meta"), key=f"{kind.labels}_label_names", classes=classes,
                           kind="CIFAR-100 meta", what="CIFAR-100")
        return batches, names

    (train, test), names = read_tar(
        archive, top=CIFAR100_DIR, members=CIFAR100_MEMBERS, limit=_cifar100_limit,
        read=read, max_bytes=sum(CIFAR100_LIMITS.values()), what="CIFAR-100",
        redownload=f"it is not the official archive: delete it and download {kind.files[0].url}")
    return _split(kind, kind.geometry, archive, names, train, test, val_size, seed)


# ------------------------------------------------------------------ a folder of images

def load_folder(kind: DatasetKind, data_dir, geometry: Geometry, *, val_size,
                seed) -> Dataset:
    """The user's images in ``data_dir``, one subfolder per class, resized to ``geometry``."""
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
    return _split(kind, geometry, folder, names, train, test, val_size, seed)
