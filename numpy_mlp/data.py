"""CIFAR-10: find it, read it safely, split off a validation set, normalise it.

Dimension letters used in every docstring: N images, D = 3072 = 3 * 32 * 32 values per
image, stored channel-first exactly as in the batch files (1024 red, then 1024 green,
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

Images stay ``uint8`` (N, D) everywhere; :func:`preprocess` makes the float copy that the
network sees, batch by batch, into a reused buffer (``per_feature``: any numeric (N, D)).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import PREPROCESSING as PREPROCESSING_MODES
from .download import OFFICIAL_MD5, OFFICIAL_URL
from .errors import DataError

__all__ = [
    "CLASS_NAMES", "OFFICIAL_URL", "OFFICIAL_MD5", "CIFAR10", "default_data_dir",
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
ARCHIVE_MEMBERS = frozenset({ARCHIVE_DIR, f"{ARCHIVE_DIR}/readme.html", *(f"{ARCHIVE_DIR}/{f}" for f in BATCH_FILES)})
EPS = 1e-8  # guards a division by the std of a constant image / channel
# values preprocessed together, see preprocess(): 1 MB of float32 rows (85 images) plus their
# uint8 source fit a core's L2 cache; 7-15% faster than 256 KB blocks for batches of 40-2000
# (the optimizer's update, with four arrays per block, is fastest at 256 KB: optim.BLOCK)
_BLOCK = 262144


@dataclass(frozen=True)
class CIFAR10:
    """CIFAR-10 split into train / validation / test; every X is (N, D) uint8, y (N,) int64."""

    X_train: np.ndarray  # (N_train, D) uint8, rows in batch-file order
    y_train: np.ndarray  # (N_train,) int64 in 0..9
    X_val: np.ndarray  # (N_val, D) uint8, carved from the 50k training images
    y_val: np.ndarray  # (N_val,) int64
    X_test: np.ndarray  # (10000, D) uint8, test_batch as stored
    y_test: np.ndarray  # (10000,) int64
    class_names: tuple[str, ...]  # label i is class_names[i]
    source: str  # the folder or archive it was read from, for logs

    def __repr__(self) -> str:
        return (
            f"CIFAR10(train={len(self.y_train)}, val={len(self.y_val)}, "
            f"test={len(self.y_test)}, source={self.source!r})"
        )


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

    Parameters
    ----------
    data_dir : folder to look in (see the module docstring for the accepted layouts).
    val_size : number of training images held out for validation (0 allowed).
    seed : seeds ``np.random.default_rng(seed)``, which picks the validation images.
    download : if False (the CLI's ``--offline``) never touch the network.
    create : if False, a missing ``data_dir`` is an error instead of a folder to download
        into (for a folder recorded by an earlier run: gone means moved). Even if True, an
        explicit ``data_dir`` whose parent is missing is an error, never a new folder tree;
        only the default folder is created with its parents.
    progress : show a progress bar while downloading.
    log : callable taking one line of text: told when a download starts and ends.
    url, md5 : where to download the archive from and its expected md5.

    Returns
    -------
    CIFAR10 with X_train (50000 - val_size, D), X_val (val_size, D), X_test (10000, D),
    all uint8, and int64 labels.

    Raises
    ------
    DataError : data not found (and not downloadable), or a file is missing or damaged.
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


def channel_stats(X_train: np.ndarray, chunk: int = 1024) -> dict[str, np.ndarray]:
    """Per-channel mean and std (float64, shape (3,)) of X_train (N, D) uint8.

    Computed from exact integer-valued sums in float64, ``chunk`` rows at a time, so it
    never makes a float copy of the whole training set.
    """
    n = len(X_train)
    if n == 0:
        raise ValueError("channel_stats needs at least one image")
    total = np.zeros(3)
    total_sq = np.zeros(3)
    for start in range(0, n, chunk):
        # (chunk, 3, 1024): integer-valued float64, so the sums below are exact
        block = X_train[start:start + chunk].reshape(-1, 3, 1024).astype(np.float64)
        total += block.sum(axis=(0, 2))
        total_sq += np.einsum("ncd,ncd->c", block, block)
    count = n * 1024
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return {"mean": mean, "std": std}


def feature_stats(X_train: np.ndarray) -> dict[str, np.ndarray]:
    """Mean and std (float64, shape (D,)) of each column of numeric features X_train (N, D)."""
    return {"mean": np.mean(X_train, axis=0, dtype=np.float64),
            "std": np.std(X_train, axis=0, dtype=np.float64)}


def _feature_scale(stats):
    """per_feature's ``(mean, 1 / std)`` (D,) float64: 1 for a column constant in training."""
    mean, std = (np.asarray(stats[k], dtype=np.float64) for k in ("mean", "std"))
    return mean, 1.0 / np.where(std > EPS, std, 1.0)


def preprocess(
    X: np.ndarray,
    mode: str = "per_image",
    stats: dict[str, np.ndarray] | None = None,
    out: np.ndarray | None = None,
    dtype=np.float32,
) -> np.ndarray:
    """Turn uint8 images X (N, D) into zero-mean, unit-std floats (N, D) of ``dtype``.

    Modes
    -----
    ``"per_image"`` (the course notebook's): each row minus its own mean, divided by its
    own (population) std.
    ``"per_channel"``: each channel minus ``stats["mean"][c]``, divided by
    ``stats["std"][c]``, where ``stats = channel_stats(X_train)`` comes from the
    *training* set, also when normalising validation or test images.
    ``"per_feature"``: X any numeric (N, D), each column d minus ``stats["mean"][d]``, over
    ``stats["std"][d]`` (:func:`feature_stats`); a column constant in training is only
    centred, so that another value later stays finite (StandardScaler's rule).

    ``out``, if given, is a C-contiguous (N, D) array of ``dtype`` that is overwritten and
    returned (the training loop reuses one buffer per batch size). X is never modified.
    """
    dtype = np.dtype(dtype)
    if mode == "per_feature":
        if stats is None:
            raise ValueError("mode='per_feature' needs stats=feature_stats(X_train)")
        mean, inv_std = (v.astype(dtype) for v in _feature_scale(stats))  # (D,), (D,)
    width = len(mean) if mode == "per_feature" else D
    if X.ndim != 2 or X.shape[1] != width:
        raise ValueError(f"X must have shape (N, {width}), got {X.shape}")
    if out is None:
        out = np.empty(X.shape, dtype=dtype)
    elif out.shape != X.shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be a C-contiguous {dtype} array of shape {X.shape}, "
            f"got {out.dtype} {out.shape}"
        )
    if mode == "per_channel":
        if stats is None:
            raise ValueError("mode='per_channel' needs stats=channel_stats(X_train)")
        mean = np.asarray(stats["mean"], dtype=np.float64).reshape(3, 1)
        inv_std = (1.0 / np.maximum(np.asarray(stats["std"], dtype=np.float64), EPS)).reshape(3, 1)
        mean, inv_std = mean.astype(dtype), inv_std.astype(dtype)
    elif mode not in PREPROCESSING_MODES:
        raise ValueError(f"unknown preprocess mode {mode!r}; use one of {PREPROCESSING_MODES}")
    # Row block by row block, so that the passes below find their block in the cache: the
    # uint8 rows are read and the float rows written once (2-3x faster than whole-batch
    # passes for a batch of 2000); each row gets the same operations either way.
    rows = max(1, _BLOCK // width)
    ones = np.ones(D, dtype=dtype)  # (D,)
    for start in range(0, len(X), rows):
        x, o = X[start:start + rows], out[start:start + rows]  # (n, D) views
        np.copyto(o, x, casting="unsafe")  # exact uint8 -> float
        if mode == "per_feature":
            o -= mean
            o *= inv_std
        elif mode == "per_image":
            # Row sums and sums of squares as BLAS products (3-4x faster than o.sum and
            # einsum). The row sums are exact in any order: integers below 255*3072 < 2**24.
            mean = (o @ ones)[:, None]  # (n, 1)
            mean /= D
            o -= mean
            var = np.linalg.vecdot(o, o) / D  # (n,)
            o *= (1.0 / np.maximum(np.sqrt(var), EPS))[:, None]
        else:
            o3 = o.reshape(-1, 3, 1024)  # (n, 3, 1024) view
            o3 -= mean
            o3 *= inv_std
    return out


class Preprocessor:
    """:func:`preprocess` with its mode and training statistics bound, for a model's inputs.

    ``prep(X, out=None)`` is ``preprocess(X, mode, stats, out, dtype)``: uint8 (per_feature:
    numeric) (N, D) -> float (N, D). :meth:`folded` gives the same first layer for evaluation
    without normalising the images at all. :meth:`fit` makes one from the training images;
    :meth:`to_dict` and :meth:`from_dict` are how model files and checkpoints store it.
    """

    def __init__(self, mode="per_image", stats=None, dtype=np.float32):
        self.mode, self.stats, self.dtype = mode, stats, np.dtype(dtype)
        width = len(stats["mean"]) if mode == "per_feature" and stats is not None else D
        preprocess(np.zeros((1, width), np.uint8), mode, stats, dtype=self.dtype)  # check them now

    @classmethod
    def fit(cls, mode, X_train, dtype=np.float32):
        """The preprocessor of ``mode`` for a model trained on uint8 ``X_train`` (N, D):
        per_channel takes its statistics from these images (:func:`channel_stats`),
        per_feature from these features (:func:`feature_stats`)."""
        stats = {"per_channel": channel_stats, "per_feature": feature_stats}.get(mode)
        return cls(mode, stats(X_train) if stats else None, dtype)

    def to_dict(self):
        """``{"mode": str, "stats": {"mean": [floats], "std": [floats]} or None}``, for JSON:
        3 floats each for per_channel, D for per_feature.

        The floats are the float64 statistics themselves: JSON writes them exactly, so
        :meth:`from_dict` gives back the same preprocessing bit for bit.
        """
        stats = None if self.stats is None else {k: np.asarray(self.stats[k], np.float64).tolist()
                                                 for k in ("mean", "std")}
        return {"mode": self.mode, "stats": stats}

    @classmethod
    def from_dict(cls, d, dtype=np.float32):
        """The preprocessor :meth:`to_dict` described, for inputs of ``dtype``.

        Raises:
            ValueError: ``d`` does not describe one (unknown mode, statistics missing,
            not 3 (per_feature: D) finite numbers each, or a std < 0); the caller names the file.
        """
        if not isinstance(d, dict) or d.get("mode") not in PREPROCESSING_MODES:
            modes = ", ".join(PREPROCESSING_MODES)
            raise ValueError(f"preprocessing {d!r}: expected a mode in {modes}")
        stats = d.get("stats")
        if stats is not None:
            try:
                stats = {k: np.asarray(stats[k], dtype=np.float64) for k in ("mean", "std")}
            except (KeyError, TypeError, ValueError):
                raise ValueError("preprocessing stats: expected 'mean' and 'std', three numbers "
                                 "each") from None
            shape = stats["mean"].shape if d["mode"] == "per_feature" else (3,)
            if any(v.shape != shape or v.ndim != 1 or not np.isfinite(v).all()
                   for v in stats.values()) or (stats["std"] < 0).any():
                raise ValueError("preprocessing stats: 'mean' and 'std' must be three (per_feature:"
                                 " D) finite numbers, std >= 0")
        return cls(d["mode"], stats, dtype)

    def __repr__(self):
        return f"Preprocessor(mode={self.mode!r}, dtype={self.dtype.name})"

    def __call__(self, X, out=None):
        return preprocess(X, self.mode, self.stats, out=out, dtype=self.dtype)

    def folded(self, W, b):
        """``f(X, buf) = self(X) @ W + b`` (N, H) for uint8 X (N, D), the normalisation folded in.

        Evaluation spends most of its time outside the products on normalising 3072 values
        per image; folding it into the first layer leaves one uint8 -> float copy into
        ``buf`` (a C-contiguous (N, D) array of the dtype, overwritten):

        - per_channel and per_feature, ``x' = (x - m) * r`` with fixed m, r (D,):
          ``x' @ W + b = x @ (r * W) + (b - (m * r) @ W)``, weights computed once here;
        - per_image, ``x' = (x - mu_n) * r_n`` for each row n: ``x' @ W + b =
          r_n * (x @ W - mu_n * colsum(W)) + b``. The row sums are exact; rows whose std is
          below a tenth of their mean (where the subtraction would lose digits) and constant
          rows go through the plain path.

        Results equal the plain path's up to float rounding (~1e-6 relative; tested).
        """
        W, b = np.asarray(W), np.asarray(b)
        if self.mode == "per_feature":
            m, r = _feature_scale(self.stats)  # (D,), (D,)
        elif self.mode == "per_channel":
            m = np.repeat(np.asarray(self.stats["mean"], np.float64), D // 3)  # (D,)
            r = np.repeat(1.0 / np.maximum(np.asarray(self.stats["std"], np.float64), EPS), D // 3)  # (D,)
        if self.mode != "per_image":
            # in the model's dtype: a float64 copy of W would be 100 MB at H = 4096
            W_fold = W * r.astype(self.dtype)[:, None]  # (D, H)
            b_fold = b - (m * r).astype(self.dtype) @ W  # (H,)

            def first_layer(X, buf):
                np.copyto(buf, X, casting="unsafe")
                out = buf @ W_fold  # (N, H)
                out += b_fold
                return out
            return first_layer

        colsum = W.sum(axis=0, dtype=np.float64).astype(self.dtype)  # (H,)
        ones = np.ones(D, dtype=self.dtype)

        def first_layer(X, buf):
            sums, squares = np.empty(len(X), self.dtype), np.empty(len(X), self.dtype)  # (N,), (N,)
            rows = max(1, _BLOCK // D)
            for i in range(0, len(X), rows):  # by cache-sized row blocks, as in preprocess()
                x = buf[i:i + rows]
                np.copyto(x, X[i:i + rows], casting="unsafe")  # exact uint8 -> float
                np.matmul(x, ones, out=sums[i:i + rows])  # exact: integers below 2**24
                squares[i:i + rows] = np.linalg.vecdot(x, x)
            mean = sums.astype(np.float64) / D  # (N,)
            var = squares.astype(np.float64) / D - mean**2  # (N,)
            out = buf @ W  # (N, H)
            out -= mean.astype(self.dtype)[:, None] * colsum
            out *= (1.0 / np.sqrt(np.maximum(var, EPS**2))).astype(self.dtype)[:, None]
            out += b
            plain = var < 0.01 * mean**2  # low contrast or constant: (N,)
            if plain.any():
                out[plain] = self(X[plain]) @ W + b
            return out
        return first_layer


def to_images(X: np.ndarray) -> np.ndarray:
    """Rows X (N, D) uint8 as images (N, 32, 32, 3) uint8 (height, width, RGB) for plotting.

    A single row (D,) gives one (32, 32, 3) image. Returns a view, not a copy.
    """
    if X.shape[-1] != D:
        raise ValueError(f"X must have shape (N, {D}), got {X.shape}")
    return np.moveaxis(X.reshape(*X.shape[:-1], 3, 32, 32), -3, -1)
