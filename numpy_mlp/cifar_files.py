"""Reading the CIFAR-10 files: one validation layer per file kind, every read bounded.

:func:`read_folder` finds the files in a folder (layouts a-d of :mod:`numpy_mlp.data`) and
returns their arrays; nothing else in the package opens them. Each kind is checked before
anything is built from it:

- a batch (``data_batch_1`` .. ``data_batch_5``, ``test_batch``): at most
  :data:`~numpy_mlp.safe_pickle.MAX_BYTES` bytes, unpickled by the restricted unpickler;
  a dict whose ``data`` is an (N, D) array of integers 0..255 and whose ``labels`` are N
  integers 0..9, a flat list of ints or a 1-D integer array, checked element by element
  before NumPy converts them (nested lists with shared references describe 10^10 labels
  in a few hundred bytes);
- ``batches.meta``: at most :data:`MAX_META_BYTES`; exactly ``len(CLASS_NAMES)``
  ``label_names``, each 1 to :data:`MAX_NAME_CHARS` printable characters (they are drawn
  into every picture and printed by ``predict``);
- the archive: gzip-compressed tar, decompressed at most :data:`MAX_TAR_BYTES`; members
  only of the official names, each once, regular files (the folder a directory) no
  larger than their kind allows, refused as they are met; read member by member, never
  extracted.
"""

from __future__ import annotations

import gzip
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from .data import (
    ARCHIVE_DIR,
    ARCHIVE_MEMBERS,
    BATCH_FILES,
    CLASS_NAMES,
    META_FILE,
    TEST_FILE,
    TRAIN_FILES,
    D,
)
from .download import ARCHIVE_NAME, OFFICIAL_URL, download_cifar10
from .errors import DataError
from .safe_pickle import MAX_BYTES, safe_load

MAX_META_BYTES = 1 << 16  # batches.meta: the official one is 158 bytes
MAX_NAME_CHARS = 100  # a class name's length; the official ones have at most 10
# the decompressed archive: every member at its largest (the official one is 186 MB)
MAX_TAR_BYTES = len(BATCH_FILES) * MAX_BYTES
_REDOWNLOAD = "delete it and download CIFAR-10 again"


def read_folder(folder: Path, *, download: bool, create: bool, parents: bool, progress: bool,
                url: str, md5: str, log=None):
    """Find CIFAR-10 in ``folder`` (layouts a-d of :mod:`numpy_mlp.data`) and read it.

    ``download``: fetch the archive if nothing is there; ``create``: the folder may be
    created for it (its missing parents too with ``parents``). Returns ``(arrays,
    source)``, see :func:`read_batches`.
    """
    for candidate in (folder, folder / ARCHIVE_DIR):
        if any((candidate / name).exists() for name in BATCH_FILES):
            return read_batches(lambda name, c=candidate: _load_file(c / name)), str(candidate)
    archive = folder / ARCHIVE_NAME
    if not archive.exists():
        if not download:
            raise DataError(
                f"CIFAR-10 not found in {folder} (looked for the batch files, "
                f"{ARCHIVE_DIR}/ and {ARCHIVE_NAME}); download {OFFICIAL_URL} into that "
                "folder, or pass --data-dir / set NUMPY_MLP_DATA to where it is"
            )
        if not create and not folder.is_dir():
            raise DataError(f"the CIFAR-10 folder {folder} does not exist (it is not created "
                            "again here); pass --data-dir with the folder that has CIFAR-10")
        archive = download_cifar10(folder, url=url, md5=md5, progress=progress, log=log,
                                   parents=parents)
    return read_archive(archive), str(archive)


def _limit(name: str) -> int:
    """The most bytes the file ``name`` (a member of BATCH_FILES) may have."""
    return MAX_META_BYTES if name == META_FILE else MAX_BYTES


def _load_file(path: Path):
    """``(unpickled object, its name for messages)`` for one batch file in a folder."""
    if not path.is_file():
        raise DataError(
            f"{path} is missing; the folder needs all of {', '.join(BATCH_FILES)} "
            f"(download {OFFICIAL_URL} again)"
        )
    with open(path, "rb") as f:
        return safe_load(f, name=str(path), max_bytes=_limit(path.name)), str(path)


class _Capped:
    """``read``/``seek``/``tell`` of a decompressing file that stop at ``limit`` bytes.

    tarfile reads whole pax and GNU long-name headers into memory, so an archive's
    decompressed length is bounded here, below tarfile.
    """

    def __init__(self, fileobj, limit: int, name: str):
        self.fileobj, self.limit, self.name = fileobj, limit, name

    def _check(self, position: int) -> None:
        if position > self.limit:
            raise DataError(f"{self.name} decompresses to more than {self.limit:,} bytes, "
                            f"more than CIFAR-10 has; {_REDOWNLOAD}")

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
        if n > MAX_BYTES + 1:  # no member is read at once beyond its bound plus one byte
            raise DataError(f"{self.name} holds a tar header of more than {MAX_BYTES:,} "
                            f"bytes; {_REDOWNLOAD}")
        data = self.fileobj.read(n)
        self._check(self.fileobj.tell())
        return data


def read_archive(archive: Path, max_bytes: int = MAX_TAR_BYTES) -> dict:
    """Read the batches straight out of the .tar.gz: expected, regular members only.

    At most ``max_bytes`` are decompressed. Returns what :func:`read_batches` does.
    """
    redownload = f"it is not the official archive: delete it and download {OFFICIAL_URL}"
    try:
        with gzip.open(archive, "rb") as gz, \
                tarfile.open(fileobj=_Capped(gz, max_bytes, str(archive)), mode="r:") as tar:
            by_name = {}
            for m in tar:  # each header is checked as it is met, before the next is read
                if m.name.startswith(("/", "\\")) or ".." in PurePosixPath(m.name).parts:
                    raise DataError(
                        f"{archive} contains the unsafe member {m.name!r}; {redownload}")
                if m.name not in ARCHIVE_MEMBERS:
                    raise DataError(
                        f"{archive} contains the unexpected member {m.name!r}; {redownload}")
                if not (m.isdir() if m.name == ARCHIVE_DIR else m.isreg()):
                    kind = "a directory" if m.name == ARCHIVE_DIR else "a regular file"
                    raise DataError(f"{archive}: {m.name} is not {kind}; {redownload}")
                name = PurePosixPath(m.name).name
                if m.size > _limit(name):
                    raise DataError(f"{archive}: {m.name} has {m.size:,} bytes, more than "
                                    f"{_limit(name):,}; {redownload}")
                if m.name in by_name:
                    raise DataError(f"{archive} holds {m.name} twice; {redownload}")
                by_name[m.name] = m

            def load(name: str):
                m = by_name.get(f"{ARCHIVE_DIR}/{name}")
                if m is None:
                    raise DataError(f"{archive} has no member {ARCHIVE_DIR}/{name}; {redownload}")
                where = f"{archive}:{m.name}"
                return safe_load(tar.extractfile(m), name=where, max_bytes=_limit(name)), where

            return read_batches(load)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:  # also gzip errors
        raise DataError(
            f"could not read {archive} ({type(exc).__name__}: {exc}); {redownload}"
        ) from exc


def read_batches(load) -> dict:
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


def check_batch(d, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate one unpickled batch; returns (X (N, D) uint8, y (N,) int64)."""
    bad = f"{where} is not a valid CIFAR-10 batch"
    if not isinstance(d, dict) or _get(d, "data") is None or _get(d, "labels") is None:
        raise DataError(f"{bad}: expected a dict with 'data' and 'labels'; {_REDOWNLOAD}")
    X, y = _get(d, "data"), _get(d, "labels")
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[1] != D:
        raise DataError(f"{bad}: 'data' must be an array of shape (N, {D}), "
                        f"got {getattr(X, 'shape', type(X).__name__)}; {_REDOWNLOAD}")
    if X.dtype != np.uint8:
        if X.dtype.kind not in "iu" or (X.size and (X.min() < 0 or X.max() > 255)):
            raise DataError(f"{bad}: 'data' must hold integers 0..255, got {X.dtype}; "
                            f"{_REDOWNLOAD}")
        X = X.astype(np.uint8)
    return X, _labels(y, len(X), bad)


def _labels(y, n: int, bad: str) -> np.ndarray:
    """Labels ``y`` as (n,) int64 in 0..C-1, checked before NumPy converts anything.

    ``y`` must be a flat list of n ints (Python or NumPy) or a 1-D integer array of n.
    """
    if isinstance(y, np.ndarray):
        ok = y.shape == (n,) and (n == 0 or y.dtype.kind in "iu")
    else:
        ok = isinstance(y, list) and len(y) == n and all(
            type(v) is int or isinstance(v, np.integer) for v in y)
    if not ok:
        raise DataError(f"{bad}: 'labels' must be {n} integers, one per image (a flat list "
                        f"or a 1-D integer array); {_REDOWNLOAD}")
    if n == 0:
        return np.zeros(0, np.int64)
    # exact, before any int64 cast: a list's Python ints may be any size
    lo, hi = (int(y.min()), int(y.max())) if isinstance(y, np.ndarray) else (min(y), max(y))
    if lo < 0 or hi >= len(CLASS_NAMES):
        raise DataError(f"{bad}: labels must be in 0..{len(CLASS_NAMES) - 1}, "
                        f"got {lo}..{hi}; {_REDOWNLOAD}")
    return np.asarray(y, dtype=np.int64).reshape(n)


def check_meta(d, where: str) -> tuple[str, ...]:
    """Validate ``batches.meta``; returns its C = len(CLASS_NAMES) class names as str."""
    bad = (f"{where} is not a valid batches.meta: expected {len(CLASS_NAMES)} 'label_names', "
           f"each 1 to {MAX_NAME_CHARS} printable characters")
    names = _get(d, "label_names") if isinstance(d, dict) else None
    if not isinstance(names, list) or len(names) != len(CLASS_NAMES) or \
            not all(isinstance(n, (bytes, str)) and 0 < len(n) <= MAX_NAME_CHARS for n in names):
        raise DataError(f"{bad}; {_REDOWNLOAD}")
    names = tuple(n.decode("latin-1") if isinstance(n, bytes) else n for n in names)
    if not all(n.isprintable() for n in names):
        raise DataError(f"{bad} (one holds a control character); {_REDOWNLOAD}")
    return names
