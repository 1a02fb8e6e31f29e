"""What a dataset is: images of one geometry, split into train / validation / test.

Every image is a uint8 row (D,) laid out channel-first, as CIFAR-10's batch files store it:
``channels`` planes, each a row-major ``height x width`` grid. A :class:`Dataset` states its
:class:`Geometry` and class names (there is no default), so that augmentation, pictures,
image files and the ONNX export reshape every row the same way; rows that are not images
(the scikit-learn estimator's features) say so with :meth:`Geometry.features`.

Each ``--dataset`` choice is a :class:`DatasetKind`, declared by the module of its file
format (cifar10.py, cifar100.py, idx.py, folder.py) with the reader that turns its files
into :class:`Parts`; registry.py lists them.

    N  images      D  channels * height * width      C  classes
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import DataError
from ..nn.rules import setting

MAX_SIDE = 4096  # pixels: the largest height or width of an image
MAX_VALUES = 3 * MAX_SIDE * MAX_SIDE  # the most values a row may have (the largest image's)
SHOWN_CLASSES = 5  # class names a message lists before "..."
# how a row holds an image, in the words of every place that takes rows from outside (the
# ONNX model's input, export's help and message, docs/onnx.md): one fact, said once
ROW_LAYOUT = ("each image channel-first (C planes of H rows of W pixels), as "
              "numpy.asarray(PIL image).transpose(2, 0, 1).reshape(1, -1) lays out one "
              "(H, W, C) image")


@dataclass(frozen=True)
class Geometry:
    """The shape of one image: ``channels`` (1 grey or 3 RGB) x ``height`` x ``width``."""

    channels: int
    height: int
    width: int

    @property
    def D(self) -> int:
        """Values per image row."""
        return self.channels * self.height * self.width

    @property
    def plane(self) -> int:
        """Values per channel: height * width."""
        return self.height * self.width

    def to_dict(self) -> dict:
        return {"channels": self.channels, "height": self.height, "width": self.width}

    @classmethod
    def features(cls, D: int) -> Geometry:
        """Rows of D plain features, not images: one channel, one row of D values. Nothing
        that needs an image (flips, crops, CutMix, test-time views) makes sense on them."""
        return cls(1, 1, int(D))

    @property
    def is_features(self) -> bool:
        """One channel of one row: the shape :meth:`features` gives."""
        return self.channels == 1 and self.height == 1

    def as_rows(self, X):
        """Images ``X`` of this geometry as the rows (N, D) a model takes, channel-first; None
        if ``X``'s shape is none of these:

        - (N, D): rows, taken as they are. Two dimensions cannot show a layout, so rows
          flattened height x width x channel pass unnoticed (and get wrong classes);
        - (N, H, W, C): pixels last, as ``numpy.asarray`` of a PIL image gives them, moved
          channel-first;
        - (N, C, H, W): channel-first already, as PyTorch keeps images;
        - (N, H, W): one-channel images only.

        Features (:meth:`features`) are rows only. Images whose sides equal their channels
        (3 x 3 x 3) fit both 4-D layouts, so their 4-D arrays are refused (None), not guessed.
        """
        X = np.asarray(X)
        C, H, W = self.channels, self.height, self.width
        if X.ndim == 2:
            return X if X.shape[1] == self.D else None
        if self.is_features:
            return None
        shape = X.shape[1:]
        if X.ndim == 3 and C == 1 and shape == (H, W):
            return X.reshape(len(X), -1)
        last, first = shape == (H, W, C), shape == (C, H, W)
        if X.ndim != 4 or not (last or first) or (last and first and C > 1):
            return None
        return (X.transpose(0, 3, 1, 2) if last else X).reshape(len(X), -1)  # (N, D)

    @classmethod
    def from_dict(cls, d) -> Geometry:
        """The geometry :meth:`to_dict` wrote; ValueError if ``d`` is not one."""
        try:
            g = cls(*(d[k] for k in ("channels", "height", "width")))
        except (KeyError, TypeError):
            raise ValueError(f"geometry {d!r}: expected channels, height and width") from None
        sides = (g.height, g.width)
        image = g.channels in (1, 3) and all(type(v) is int and 1 <= v <= MAX_SIDE
                                             for v in sides)
        # features (1 x 1 x D) may be a wider row than an image, never more values
        features = g.is_features and type(g.width) is int and 1 <= g.width <= MAX_VALUES
        if not (image or features):
            raise ValueError(f"geometry {d!r}: expected 1 or 3 channels and sides 1..4096")
        return g

    def __str__(self) -> str:
        return f"{self.channels}x{self.height}x{self.width}"


class Parts(NamedTuple):
    """What a format's reader returns: the images and labels before the validation split."""

    train: tuple  # (X (N_train, D) uint8, y (N_train,) int64)
    test: tuple  # (X (N_test, D) uint8, y (N_test,) int64)
    class_names: tuple  # C names, label i is the i-th
    source: str  # the folder or archive read, for logs


@dataclass(frozen=True)
class DatasetKind:
    """One ``--dataset`` choice: its images' geometry, its files, and how they are read.

    ``read(kind, data_dir, geometry, fetch) -> Parts`` reads the files of ``kind`` from
    ``data_dir`` (None: :meth:`folder` says), getting each official file through ``fetch``
    (a :class:`~numpy_mlp.data.download.Fetch`: there, refused, or downloaded).
    """

    name: str                     # the --dataset value
    title: str                    # for messages: "MNIST"
    geometry: Geometry | None     # None: 3 x image_size x image_size (a folder of images)
    read: Callable[..., Parts]    # the format's reader, see above
    files: tuple = ()             # the OfficialFiles downloaded into the data folder
    class_names: tuple = ()       # fixed names; empty: read from the files or subfolders
    labels: str = ""              # CIFAR-100: which labels, "fine" or "coarse"
    home: str | None = None       # its subfolder of the default data folder (None: its name)

    def geometry_for(self, image_size: int | None) -> Geometry:
        return self.geometry or Geometry(3, image_size, image_size)

    def default_folder(self) -> Path:
        """Where it lives unless --data-dir says: a subfolder of :func:`default_data_dir`
        (CIFAR-10: that folder itself)."""
        return default_data_dir() / (self.name if self.home is None else self.home)

    def folder(self, data_dir) -> tuple[Path, bool]:
        """The folder to read, ``data_dir`` else :meth:`default_folder`, and whether it is
        the default one (a download may create it with its parents)."""
        if data_dir is not None:
            return Path(data_dir).expanduser(), False
        return self.default_folder(), True

    def load(self, data_dir, fetch, *, val_size: int, seed: int,
             image_size: int | None = None) -> Dataset:
        """The dataset read from ``data_dir`` (see ``read``), with ``val_size`` training
        images held out for validation (chosen by ``np.random.default_rng(seed)``);
        ``image_size``: the side a folder of images is resized to (other kinds have their
        own geometry). DataError if it cannot be read."""
        geometry = self.geometry_for(image_size)
        parts = self.read(self, data_dir, geometry, fetch)
        self._check(parts)
        return Dataset.split(parts.train, parts.test, val_size=val_size, seed=seed,
                             class_names=parts.class_names, source=parts.source,
                             geometry=geometry, name=self.name)

    def _check(self, parts: Parts) -> None:
        """What every format's reader must give, checked in this one place: distinct class
        names (one name twice would merge two classes in every per-class table) and at
        least one training and one test image. DataError naming the source otherwise."""
        again = f"check {parts.source}, or pass --data-dir with a folder that has {self.title}"
        seen = set()
        for name in parts.class_names:
            if name in seen:
                raise DataError(f"{self.title} in {parts.source} names the class {name!r} "
                                f"twice, and classes need distinct names; {again}")
            seen.add(name)
        for split, (_, y) in (("training", parts.train), ("test", parts.test)):
            if len(y) == 0:
                raise DataError(f"{self.title} in {parts.source} has no {split} images; "
                                f"{again}")


@dataclass(frozen=True)
class Dataset:
    """A dataset split into train / validation / test; every X is (N, D) rows of
    ``geometry`` (D = geometry.D; uint8 images, or numeric features for the scikit-learn
    estimator), y (N,) int64 in 0..C-1, C = len(class_names).

    Raises:
        TypeError: ``geometry`` is not a :class:`Geometry`.
        ValueError: an X is not (N, geometry.D).
    """

    X_train: np.ndarray  # (N_train, D) uint8, rows in batch-file order
    y_train: np.ndarray  # (N_train,) int64 in 0..C-1 (CIFAR-10: 0..9)
    X_val: np.ndarray  # (N_val, D) uint8, carved from the training images
    y_val: np.ndarray  # (N_val,) int64
    X_test: np.ndarray  # (N_test, D) uint8, CIFAR-10: test_batch's 10000 as stored
    y_test: np.ndarray  # (N_test,) int64
    class_names: tuple[str, ...]  # label i is class_names[i]
    source: str  # the folder or archive it was read from, for logs
    geometry: Geometry  # the shape of each row: channels x height x width
    name: str = ""  # its --dataset name (registry.DATASETS); "features": sklearn's X

    def __post_init__(self):
        g = self.geometry
        if not isinstance(g, Geometry):
            raise TypeError(f"a Dataset states the Geometry of its rows, got {g!r}")
        for split in ("X_train", "X_val", "X_test"):
            shape = np.shape(getattr(self, split))
            if len(shape) != 2 or shape[1] != g.D:
                raise ValueError(f"{split} has shape {shape}: rows of {g} have {g.D} values")

    def __repr__(self) -> str:
        name = f"{self.name!r}, " if self.name else ""
        return (f"Dataset({name}train={len(self.y_train)}, val={len(self.y_val)}, "
                f"test={len(self.y_test)}, source={self.source!r})")

    def require_classes(self, names, *, whose: str, then: str) -> None:
        """Raise DataError unless this dataset's classes are ``names``, in label order: what a
        model (or a run's checkpoint) was trained on meets other data. ``whose`` names the
        model ("the model runs/a/model.npz"), ``then`` what to do; the one line names both
        lists (:func:`shown_classes`)."""
        names = tuple(names)
        if names != self.class_names:
            raise DataError(f"{whose} was trained on {shown_classes(names)}, but "
                            f"the data in {self.source} has {shown_classes(self.class_names)}; "
                            f"{then}")

    @classmethod
    def split(cls, train, test, *, val_size: int, seed: int, class_names, source, geometry,
              name) -> Dataset:
        """``train`` (X (N, D), y (N,)) with ``val_size`` random rows held out for validation
        (:func:`split_validation` with ``np.random.default_rng(seed)``), and ``test``."""
        X_train, y_train, X_val, y_val = split_validation(*train, val_size,
                                                          np.random.default_rng(seed))
        return cls(X_train, y_train, X_val, y_val, *test, tuple(class_names), str(source),
                   geometry=geometry, name=name)


def shown_classes(names) -> str:
    """Class names for a message: ``3 classes ['cats', 'dogs', 'owls']``, the first
    :data:`SHOWN_CLASSES` of a longer list then ``...``."""
    names = list(names)
    head = ", ".join(repr(n) for n in names[:SHOWN_CLASSES])
    more = ", ..." if len(names) > SHOWN_CLASSES else ""
    return f"{len(names)} classes [{head}{more}]"


def default_data_dir() -> Path:
    """Where CIFAR-10 lives by default.

    ``$NUMPY_MLP_DATA`` if set, else ``$XDG_CACHE_HOME/numpy-mlp``, else
    ``~/.cache/numpy-mlp``.
    """
    if os.environ.get("NUMPY_MLP_DATA"):
        return Path(os.environ["NUMPY_MLP_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "numpy-mlp"


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
            f"(the number of training images is {n}); choose a smaller one, e.g. "
            f"{setting('val_size', n // 10)}"
        )
    perm = rng.permutation(n)
    val_idx = np.sort(perm[:val_size])
    train_idx = np.sort(perm[val_size:])
    return X[train_idx], y[train_idx], X[val_idx], y[val_idx]


def to_images(X: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Rows X (N, D) uint8 as images (N, height, width, 3) uint8 (RGB) for plotting.

    A single row (D,) gives one (height, width, 3) image. Colour rows give a view, grey
    ones (one channel) a copy with the channel repeated three times.
    """
    g = geometry
    if X.shape[-1] != g.D:
        raise ValueError(f"X must have shape (N, {g.D}) for {g} images, got {X.shape}")
    images = np.moveaxis(X.reshape(*X.shape[:-1], g.channels, g.height, g.width), -3, -1)
    return images if g.channels == 3 else np.repeat(images, 3, axis=-1)
