"""MNIST and Fashion-MNIST: their four idx ``.gz`` files, every one checked; the kinds
:data:`MNIST` and :data:`FASHION_MNIST`.

Each file is decompressed lazily and checked before anything is allocated: the magic number
(unsigned bytes, 3 dimensions for images, 1 for labels), the declared dimensions (28 x 28,
at most :data:`MAX_IMAGES` images), then exactly the declared number of bytes must follow
and nothing more; labels must be in 0..9 and as many as the images. Missing files are
downloaded (md5-checked) into the data folder when allowed.

    N  images      D  784 = 1 x 28 x 28      C  10
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..files.regular import open_regular
from .cifar10 import check_labels
from .dataset import DatasetKind, Geometry, Parts
from .download import Fetch, OfficialFile

MAX_IMAGES = 100_000  # images an idx file may declare (MNIST's training file has 60,000)
MNIST_GEOMETRY = Geometry(1, 28, 28)  # Fashion-MNIST's too
IDX_UBYTE = 0x08  # the idx type code of unsigned bytes, the only one MNIST uses
# the order the reader expects: train images, train labels, test images, test labels
IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _idx_files(base: str, md5s: tuple) -> tuple:
    return tuple(OfficialFile(n, base + n, m) for n, m in zip(IDX_NAMES, md5s))


# md5s as torchvision (datasets/mnist.py) and the publishers list them
MNIST_FILES = _idx_files("https://ossci-datasets.s3.amazonaws.com/mnist/", (
    "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
    "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))
FASHION_FILES = _idx_files("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", (
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
    "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))
MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


def _read_idx(path: Path, ndim: int, dims: tuple = ()) -> np.ndarray:
    """One idx ``.gz`` file of unsigned bytes with ``ndim`` dimensions, the ones after the
    first equal to ``dims``; returns its (count, *dims) uint8 array. DataError otherwise."""
    bad = f"{path} is not a valid idx file"
    redownload = "delete it and download it again"
    try:
        with open_regular(path, error=DataError, fix=redownload) as raw, \
                gzip.GzipFile(fileobj=raw, mode="rb") as f:
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


def read_mnist(kind: DatasetKind, data_dir, geometry, fetch: Fetch) -> Parts:
    """MNIST or Fashion-MNIST (``kind``) from its four idx files in ``data_dir``, each
    through ``fetch`` (downloaded if missing and allowed)."""
    folder, default = kind.folder(data_dir)
    g = geometry
    arrays = []
    for i, official in enumerate(kind.files):
        path = fetch(folder, official, what=kind.title, parents=default)
        arrays.append(_read_idx(path, 3, (g.height, g.width)) if i % 2 == 0 else _read_idx(path, 1))
    parts = []
    for (X, y), image_file in zip((arrays[0:2], arrays[2:4]), kind.files[0::2]):
        bad = f"{folder / image_file.name} and its labels"
        labels = check_labels(y, len(X), bad, len(kind.class_names),
                              "delete them and download them again")
        parts.append((X.reshape(len(X), g.D), labels))
    return Parts(parts[0], parts[1], kind.class_names, str(folder))


MNIST = DatasetKind("mnist", "MNIST", MNIST_GEOMETRY, read_mnist, MNIST_FILES, MNIST_CLASSES)
FASHION_MNIST = DatasetKind("fashion-mnist", "Fashion-MNIST", MNIST_GEOMETRY, read_mnist,
                            FASHION_FILES, FASHION_CLASSES)
