"""CIFAR-10: find it, read it safely, split off a validation set, normalise it.

Dimension letters used in every docstring: N images, D = 3072 = 3 * 32 * 32 values per
CIFAR-10 image (another dataset's: its ``geometry.D``, numpy_mlp/datasets.py), stored
channel-first exactly as in the batch files (1024 red, then 1024 green,
then 1024 blue, each a row-major 32 x 32 plane).

Where the data comes from (:func:`load_cifar10`), in one folder (``data_dir``, else
:func:`default_data_dir`), the first of:

a. the batch files themselves (``data_batch_1`` .. ``data_batch_5``, ``test_batch``,
   ``batches.meta``);
b. a ``cifar-10-batches-py/`` subfolder holding them;
c. the official archive ``cifar-10-python.tar.gz``, read member by member with
   :mod:`tarfile` (never extracted to disk);
d. otherwise the official archive is downloaded there (:mod:`numpy_mlp.download`) and read.

Every file is validated, and every read bounded, by :mod:`numpy_mlp.cifar_files`.

Images stay ``uint8`` (N, D) everywhere; :func:`numpy_mlp.preprocessing.preprocess` makes
the float copy that the network sees, batch by batch, into a reused buffer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .datasets import CIFAR10_GEOMETRY, Geometry
from .download import OFFICIAL_MD5, OFFICIAL_URL
from .errors import DataError

# normalisation lives in preprocessing.py; these names stay importable from here, where
# the course notebook's users look for them (numpy_mlp.data.preprocess)
from .preprocessing import Preprocessor, channel_stats, feature_stats, preprocess

__all__ = [
    "CLASS_NAMES", "OFFICIAL_URL", "OFFICIAL_MD5", "CIFAR10", "Dataset", "default_data_dir",
    "load_cifar10", "split_validation", "preprocess", "Preprocessor", "channel_stats",
    "feature_stats", "to_images",
]

CLASS_NAMES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
D = 3072  # values per image: 3 channels * 32 * 32
ARCHIVE_DIR = "cifar-10-batches-py"  # the folder inside the official archive
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
BATCH_FILES = TRAIN_FILES + (TEST_FILE, META_FILE)
# every name the official archive holds; anything else in an archive is refused
ARCHIVE_MEMBERS = frozenset({ARCHIVE_DIR, f"{ARCHIVE_DIR}/readme.html",
                             *(f"{ARCHIVE_DIR}/{f}" for f in BATCH_FILES)})


@dataclass(frozen=True)
class CIFAR10:
    """A dataset (CIFAR-10 by default) split into train / validation / test; every X is
    (N, D) uint8 rows of ``geometry`` (D = geometry.D), y (N,) int64 in 0..C-1."""

    X_train: np.ndarray  # (N_train, D) uint8, rows in batch-file order
    y_train: np.ndarray  # (N_train,) int64 in 0..C-1 (CIFAR-10: 0..9)
    X_val: np.ndarray  # (N_val, D) uint8, carved from the training images
    y_val: np.ndarray  # (N_val,) int64
    X_test: np.ndarray  # (N_test, D) uint8, CIFAR-10: test_batch's 10000 as stored
    y_test: np.ndarray  # (N_test,) int64
    class_names: tuple[str, ...]  # label i is class_names[i]
    source: str  # the folder or archive it was read from, for logs
    geometry: Geometry = CIFAR10_GEOMETRY  # the shape of each row: channels x height x width
    name: str = "cifar10"  # its --dataset name (numpy_mlp.datasets.DATASETS)

    def __repr__(self) -> str:
        kind = "CIFAR10(" if self.name == "cifar10" else f"Dataset({self.name!r}, "
        return (
            f"{kind}train={len(self.y_train)}, val={len(self.y_val)}, "
            f"test={len(self.y_test)}, source={self.source!r})"
        )


Dataset = CIFAR10  # every dataset is one of these; the name CIFAR10 stays for existing code


def default_data_dir() -> Path:
    """Where CIFAR-10 lives by default.

    ``$NUMPY_MLP_DATA`` if set, else ``$XDG_CACHE_HOME/numpy-mlp``, else
    ``~/.cache/numpy-mlp``.
    """
    if os.environ.get("NUMPY_MLP_DATA"):
        return Path(os.environ["NUMPY_MLP_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "numpy-mlp"


def load_cifar10(
    data_dir: str | os.PathLike | None = None,
    *,
    val_size: int = 5000,
    seed: int = 0,
    download: bool = True,
    create: bool = True,
    progress: bool = True,
    url: str = OFFICIAL_URL,
    md5: str = OFFICIAL_MD5,
    log=None,
) -> CIFAR10:
    """Load CIFAR-10 from ``data_dir`` (default :func:`default_data_dir`), downloading if allowed.

    Args:
        data_dir: folder to look in (see the module docstring for the accepted layouts).
        val_size: number of training images held out for validation (0 allowed).
        seed: seeds ``np.random.default_rng(seed)``, which picks the validation images.
        download: if False (the CLI's ``--offline``) never touch the network.
        create: if False, a missing ``data_dir`` is an error instead of a folder to download
            into (for a folder recorded by an earlier run: gone means moved). Even if True, an
            explicit ``data_dir`` whose parent is missing is an error, never a new folder tree;
            only the default folder is created with its parents.
        progress: show a progress bar while downloading.
        url, md5: where to download the archive from and its expected md5.
        log: callable taking one line of text: told when a download starts and ends.

    Returns:
        CIFAR10 with X_train (50000 - val_size, D), X_val (val_size, D), X_test (10000, D),
        all uint8, and int64 labels.

    Raises:
        DataError: data not found (and not downloadable), or a file is missing or damaged.
    """
    from .cifar_files import read_folder  # here: cifar_files reads this module's constants

    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    arrays, source = read_folder(folder, download=download, create=create,
                                 parents=data_dir is None, progress=progress, url=url, md5=md5,
                                 log=log)
    X, y = arrays["train"]
    X_train, y_train, X_val, y_val = split_validation(X, y, val_size, np.random.default_rng(seed))
    X_test, y_test = arrays["test"]
    return CIFAR10(X_train, y_train, X_val, y_val, X_test, y_test, arrays["names"], source)


def split_validation(
    X: np.ndarray, y: np.ndarray, val_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out ``val_size`` random rows of (X (N, D), y (N,)) as a validation set.

    The rows are chosen by ``rng.permutation(N)[:val_size]``; both parts keep the
    original row order. Returns copies ``(X_train, y_train, X_val, y_val)`` of shapes
    (N - val_size, D), (N - val_size,), (val_size, D), (val_size,).
    """
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)} labels")
    if not 0 <= val_size < n:
        raise DataError(
            f"val_size={val_size} must be between 0 and {n - 1} "
            f"(the number of training images is {n}); choose a smaller --val-size"
        )
    perm = rng.permutation(n)
    val_idx = np.sort(perm[:val_size])
    train_idx = np.sort(perm[val_size:])
    return X[train_idx], y[train_idx], X[val_idx], y[val_idx]


def to_images(X: np.ndarray, geometry: Geometry = CIFAR10_GEOMETRY) -> np.ndarray:
    """Rows X (N, D) uint8 as images (N, height, width, 3) uint8 (RGB) for plotting.

    A single row (D,) gives one (height, width, 3) image. Colour rows give a view, grey
    ones (one channel) a copy with the channel repeated three times.
    """
    g = geometry
    if X.shape[-1] != g.D:
        raise ValueError(f"X must have shape (N, {g.D}) for {g} images, got {X.shape}")
    images = np.moveaxis(X.reshape(*X.shape[:-1], g.channels, g.height, g.width), -3, -1)
    return images if g.channels == 3 else np.repeat(images, 3, axis=-1)
