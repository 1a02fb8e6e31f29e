"""CIFAR-10: its constants and official archive, its files read safely, its
:data:`CIFAR10` kind (``--dataset cifar10``) and :func:`load_cifar10`.

Dimension letters used in every docstring: N images, D = 3072 = 3 * 32 * 32 values per
CIFAR-10 image, stored channel-first exactly as in the batch files (1024 red, then 1024
green, then 1024 blue, each a row-major 32 x 32 plane).

Where the data comes from (:func:`load_cifar10`), in one folder (``data_dir``, else
:func:`~numpy_mlp.data.dataset.default_data_dir`), the first of:

a. the batch files themselves (``data_batch_1`` .. ``data_batch_5``, ``test_batch``,
   ``batches.meta``);
b. a ``cifar-10-batches-py/`` subfolder holding them;
c. the official archive ``cifar-10-python.tar.gz``, read member by member with
   :mod:`tarfile` (never extracted to disk);
d. otherwise the official archive is downloaded there (:mod:`numpy_mlp.data.download`) and
   read.

:func:`read_cifar10` finds the files and returns their arrays; nothing else in the package
opens them (:mod:`numpy_mlp.data.cifar100` reads CIFAR-100 with the same checks). Each kind
is checked before anything is built from it:

- a batch (``data_batch_1`` .. ``data_batch_5``, ``test_batch``): at most
  :data:`~numpy_mlp.files.safe_pickle.MAX_BYTES` bytes, unpickled by the restricted
  unpickler; a dict whose ``data`` is an (N, D) array of integers 0..255 and whose
  ``labels`` are N integers 0..9, a flat list of ints or a 1-D integer array, checked
  element by element before NumPy converts them (nested lists with shared references
  describe 10^10 labels in a few hundred bytes);
- ``batches.meta``: at most :data:`MAX_META_BYTES`; exactly ``len(CLASS_NAMES)``
  ``label_names``, each 1 to :data:`MAX_NAME_CHARS` printable characters (they are drawn
  into every picture and printed by ``predict``);
- the archive: gzip-compressed tar, decompressed at most :data:`MAX_TAR_BYTES`; members
  only of the official names, each once, regular files (the folder a directory) no
  larger than their kind allows, refused as they are met; read member by member, never
  extracted.

Images stay ``uint8`` (N, D) everywhere; :func:`numpy_mlp.data.preprocessing.preprocess`
makes the float copy that the network sees, batch by batch, into a reused buffer.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import DataError
from ..files.regular import open_regular
from ..files.safe_pickle import MAX_BYTES, safe_load
from .dataset import Dataset, DatasetKind, Geometry, Parts
from .download import DEADLINE, READ_TIMEOUT, Fetch, OfficialFile, download_file
from .download import MAX_BYTES as MAX_DOWNLOAD_BYTES

CLASS_NAMES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
CIFAR10_GEOMETRY = Geometry(3, 32, 32)  # CIFAR-100 shares it
D = CIFAR10_GEOMETRY.D  # 3072 values per image: 3 channels * 32 * 32
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
OFFICIAL_BYTES = 170_498_071  # the size of the official archive
ARCHIVE_NAME = "cifar-10-python.tar.gz"
OFFICIAL_FILE = OfficialFile(ARCHIVE_NAME, OFFICIAL_URL, OFFICIAL_MD5)
ARCHIVE_SIZE = "about 170 MB"  # told when the download starts
ARCHIVE_DIR = "cifar-10-batches-py"  # the folder inside the official archive
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
BATCH_FILES = TRAIN_FILES + (TEST_FILE, META_FILE)
# every name the official archive holds; anything else in an archive is refused
ARCHIVE_MEMBERS = frozenset({ARCHIVE_DIR, f"{ARCHIVE_DIR}/readme.html",
                             *(f"{ARCHIVE_DIR}/{f}" for f in BATCH_FILES)})
MAX_META_BYTES = 1 << 16  # batches.meta: the official one is 158 bytes
MAX_NAME_CHARS = 100  # a class name's length; the official ones have at most 10
# the decompressed archive: every member at its largest (the official one is 186 MB)
MAX_TAR_BYTES = len(BATCH_FILES) * MAX_BYTES
_REDOWNLOAD = "delete it and download CIFAR-10 again"


def download_cifar10(
    dest_dir: str | os.PathLike,
    url: str = OFFICIAL_URL,
    md5: str = OFFICIAL_MD5,
    progress: bool = True,
    log=None,
    *,
    parents: bool = False,
    timeout: float = READ_TIMEOUT,
    deadline: float = DEADLINE,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> Path:
    """Download the CIFAR-10 archive into ``dest_dir`` and return its path
    (:func:`~numpy_mlp.data.download.download_file` of ``cifar-10-python.tar.gz``)."""
    return download_file(dest_dir, ARCHIVE_NAME, url, md5, progress, log, what="CIFAR-10",
                         size=ARCHIVE_SIZE, official_url=OFFICIAL_URL, parents=parents,
                         timeout=timeout, deadline=deadline, max_bytes=max_bytes)


def read_cifar10(kind: DatasetKind, data_dir, geometry, fetch: Fetch) -> Parts:
    """Find CIFAR-10 in ``data_dir`` (layouts a-d of the module docstring) and read it;
    the archive, if that is what is needed, comes through ``fetch``."""
    folder, default = kind.folder(data_dir)
    for candidate in (folder, folder / ARCHIVE_DIR):
        if any((candidate / name).exists() for name in BATCH_FILES):
            arrays = _read_batches(lambda name, c=candidate: _load_file(c / name))
            return Parts(arrays["train"], arrays["test"], arrays["names"], str(candidate))
    archive = fetch(folder, OFFICIAL_FILE, what=kind.title, parents=default, size=ARCHIVE_SIZE,
                    offline=f"CIFAR-10 not found in {folder} (looked for the batch files, "
                            f"{ARCHIVE_DIR}/ and {ARCHIVE_NAME}); download {OFFICIAL_URL} "
                            "into that folder, or pass --data-dir / set NUMPY_MLP_DATA to "
                            "where it is")
    arrays = read_archive(archive)
    return Parts(arrays["train"], arrays["test"], arrays["names"], str(archive))


CIFAR10 = DatasetKind("cifar10", "CIFAR-10", CIFAR10_GEOMETRY, read_cifar10, (OFFICIAL_FILE,),
                      home="")  # in the default data folder itself, where it always was


def _limit(name: str) -> int:
    """The most bytes the file ``name`` (a member of BATCH_FILES) may have."""
    return MAX_META_BYTES if name == META_FILE else MAX_BYTES


def _load_file(path: Path):
    """``(unpickled object, its name for messages)`` for one batch file in a folder."""
    fix = f"the folder needs all of {', '.join(BATCH_FILES)} (download {OFFICIAL_URL} again)"
    if not os.path.lexists(path):
        raise DataError(f"{path} is missing; {fix}")
    with open_regular(path, error=DataError, fix=fix) as f:
        return safe_load(f, name=str(path), max_bytes=_limit(path.name)), str(path)


class _Capped:
    """``read``/``seek``/``tell`` of a decompressing file that stop at ``limit`` bytes.

    tarfile reads whole pax and GNU long-name headers into memory, so an archive's
    decompressed length is bounded here, below tarfile.
    """

    def __init__(self, fileobj, limit: int, name: str, what: str = "CIFAR-10",
                 largest: int = MAX_BYTES):
        self.fileobj, self.limit, self.name, self.what = fileobj, limit, name, what
        self.largest = largest  # the largest member: no read asks for more at once

    def _check(self, position: int) -> None:
        if position > self.limit:
            raise DataError(f"{self.name} decompresses to more than {self.limit:,} bytes, "
                            f"more than {self.what} has; delete it and download {self.what} "
                            "again")

    def tell(self) -> int:
        return self.fileobj.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence not in (0, 1):
            raise OSError("seeking from the end of a compressed stream is not supported")
        target = offset + (self.fileobj.tell() if whence == 1 else 0)
        self._check(target)
        return self.fileobj.seek(target)

    def read(self, n: int = -1) -> bytes:
        left = self.limit - self.fileobj.tell()
        n = left + 1 if n is None or n < 0 or n > left else n
        if n > self.largest + 1:  # no member is read at once beyond its bound plus one byte
            raise DataError(f"{self.name} holds a tar header of more than {self.largest:,} "
                            f"bytes; delete it and download {self.what} again")
        data = self.fileobj.read(n)
        self._check(self.fileobj.tell())
        return data


def read_archive(archive: Path, max_bytes: int = MAX_TAR_BYTES) -> dict:
    """Read the batches straight out of the .tar.gz: expected, regular members only.

    At most ``max_bytes`` are decompressed. Returns what :func:`_read_batches` does.
    """
    redownload = f"it is not the official archive: delete it and download {OFFICIAL_URL}"
    return read_tar(archive, top=ARCHIVE_DIR, members=ARCHIVE_MEMBERS, limit=_limit,
                    read=_read_batches, max_bytes=max_bytes, redownload=redownload)


def read_tar(archive: Path, *, top: str, members, limit, read, max_bytes: int, redownload: str,
             what: str = "CIFAR-10"):
    """``read(load)`` on a .tar.gz whose members are the folder ``top`` and files in
    ``members`` (full names), each at most ``limit(file name)`` bytes; ``load(name)``
    unpickles ``top/name`` safely and returns ``(object, where)``. At most ``max_bytes``
    are decompressed; every message ends with ``redownload``."""
    largest = max(limit(PurePosixPath(m).name) for m in members)
    try:
        with open_regular(archive, error=DataError, fix=redownload) as raw, \
                gzip.GzipFile(fileobj=raw, mode="rb") as gz, \
                tarfile.open(fileobj=_Capped(gz, max_bytes, str(archive), what, largest),
                             mode="r:") as tar:
            by_name = {}
            for m in tar:  # each header is checked as it is met, before the next is read
                if m.name.startswith(("/", "\\")) or ".." in PurePosixPath(m.name).parts:
                    raise DataError(
                        f"{archive} contains the unsafe member {m.name!r}; {redownload}")
                if m.name not in members:
                    raise DataError(
                        f"{archive} contains the unexpected member {m.name!r}; {redownload}")
                if not (m.isdir() if m.name == top else m.isreg()):
                    kind = "a directory" if m.name == top else "a regular file"
                    raise DataError(f"{archive}: {m.name} is not {kind}; {redownload}")
                name = PurePosixPath(m.name).name
                if m.size > limit(name):
                    raise DataError(f"{archive}: {m.name} has {m.size:,} bytes, more than "
                                    f"{limit(name):,}; {redownload}")
                if m.name in by_name:
                    raise DataError(f"{archive} holds {m.name} twice; {redownload}")
                by_name[m.name] = m

            def load(name: str):
                m = by_name.get(f"{top}/{name}")
                if m is None:
                    raise DataError(f"{archive} has no member {top}/{name}; {redownload}")
                where = f"{archive}:{m.name}"
                return safe_load(tar.extractfile(m), name=where, max_bytes=limit(name)), where

            return read(load)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:  # also gzip errors
        raise DataError(
            f"could not read {archive} ({type(exc).__name__}: {exc}); {redownload}"
        ) from exc


def _read_batches(load) -> dict:
    """Read and validate the 7 files through ``load(name) -> (unpickled object, where)``.

    Returns ``{"train": (X (N, D) uint8, y (N,) int64), "test": (X, y), "names": tuple}``.
    """
    train = [check_batch(*load(name)) for name in TRAIN_FILES]
    test = check_batch(*load(TEST_FILE))
    names = check_meta(*load(META_FILE))
    X = np.concatenate([b[0] for b in train])  # (50000, D)
    y = np.concatenate([b[1] for b in train])  # (50000,)
    return {"train": (X, y), "test": test, "names": names}


def _get(d: dict, key: str):
    """``d[b'key']`` (Python 2 / bytes keys) or ``d['key']`` (Python 3 str keys), else None."""
    return d.get(key.encode(), d.get(key))


def check_batch(d, where: str, *, labels: str = "labels", classes: int = len(CLASS_NAMES),
                what: str = "CIFAR-10") -> tuple[np.ndarray, np.ndarray]:
    """Validate one unpickled batch; returns (X (N, D) uint8, y (N,) int64).

    ``labels``: the key of its labels (CIFAR-100's ``fine_labels`` or ``coarse_labels``),
    each in 0..``classes``-1.
    """
    bad = f"{where} is not a valid {what} batch"
    redownload = f"delete it and download {what} again"
    if not isinstance(d, dict) or _get(d, "data") is None or _get(d, labels) is None:
        raise DataError(f"{bad}: expected a dict with 'data' and {labels!r}; {redownload}")
    X, y = _get(d, "data"), _get(d, labels)
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[1] != D:
        raise DataError(f"{bad}: 'data' must be an array of shape (N, {D}), "
                        f"got {getattr(X, 'shape', type(X).__name__)}; {redownload}")
    if X.dtype != np.uint8:
        if X.dtype.kind not in "iu" or (X.size and (X.min() < 0 or X.max() > 255)):
            raise DataError(f"{bad}: 'data' must hold integers 0..255, got {X.dtype}; "
                            f"{redownload}")
        X = X.astype(np.uint8)
    return X, check_labels(y, len(X), bad, classes, redownload, key=labels)


def check_labels(y, n: int, bad: str, classes: int = len(CLASS_NAMES),
                 redownload: str = _REDOWNLOAD, key: str = "labels") -> np.ndarray:
    """Labels ``y`` as (n,) int64 in 0..C-1, checked before NumPy converts anything.

    ``y`` must be a flat list of n ints (Python or NumPy) or a 1-D integer array of n.
    """
    if isinstance(y, np.ndarray):
        ok = y.shape == (n,) and (n == 0 or y.dtype.kind in "iu")
    else:
        ok = isinstance(y, list) and len(y) == n and all(
            type(v) is int or isinstance(v, np.integer) for v in y)
    if not ok:
        raise DataError(f"{bad}: {key!r} must be {n} integers, one per image (a flat list "
                        f"or a 1-D integer array); {redownload}")
    if n == 0:
        return np.zeros(0, np.int64)
    # exact, before any int64 cast: a list's Python ints may be any size
    lo, hi = (int(y.min()), int(y.max())) if isinstance(y, np.ndarray) else (min(y), max(y))
    if lo < 0 or hi >= classes:
        raise DataError(f"{bad}: labels must be in 0..{classes - 1}, "
                        f"got {lo}..{hi}; {redownload}")
    return np.asarray(y, dtype=np.int64).reshape(n)


def check_meta(d, where: str, *, key: str = "label_names", classes: int = len(CLASS_NAMES),
               kind: str = "batches.meta", what: str = "CIFAR-10") -> tuple[str, ...]:
    """Validate ``batches.meta`` (or CIFAR-100's ``meta``: ``key`` its list of names);
    returns its C = ``classes`` class names as str."""
    redownload = f"delete it and download {what} again"
    bad = (f"{where} is not a valid {kind}: expected {classes} {key!r}, "
           f"each 1 to {MAX_NAME_CHARS} printable characters")
    names = _get(d, key) if isinstance(d, dict) else None
    if not isinstance(names, list) or len(names) != classes or \
            not all(isinstance(n, (bytes, str)) and 0 < len(n) <= MAX_NAME_CHARS for n in names):
        raise DataError(f"{bad}; {redownload}")
    names = tuple(n.decode("latin-1") if isinstance(n, bytes) else n for n in names)
    if not all(n.isprintable() for n in names):
        raise DataError(f"{bad} (one holds a control character); {redownload}")
    return names


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
    deadline: float = DEADLINE,
) -> Dataset:
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
        deadline: seconds a download may take in all; one that cannot make it at its rate so
            far stops early (:mod:`numpy_mlp.data.download`).

    Returns:
        a Dataset with X_train (50000 - val_size, D), X_val (val_size, D), X_test
        (10000, D), all uint8, and int64 labels.

    Raises:
        DataError: data not found (and not downloadable), or a file is missing or damaged.
    """
    fetch = Fetch(download, create, progress, log, sources={ARCHIVE_NAME: (url, md5)},
                  deadline=deadline)
    return CIFAR10.load(data_dir, fetch, val_size=val_size, seed=seed)
