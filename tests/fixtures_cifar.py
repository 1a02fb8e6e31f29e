"""Tiny CIFAR-10 look-alikes written by the tests into ``tmp_path`` (nothing committed).

Two pickle styles, because a loader must read both:

- ``"py3"``: what Python 3 + NumPy 2 writes (protocol 4, ``numpy._core.multiarray``
  names), like the rebuilt files in ``/work/shared/data``;
- ``"py2"``: what Python 2 + NumPy 1 wrote for the official archive (protocol 2,
  ``numpy.core.multiarray`` names, every string a ``BINSTRING``). Python 2 is not
  available, so :func:`py2_dumps` produces those opcodes with a patched pure-Python
  pickler.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

from numpy_mlp.data.cifar10 import ARCHIVE_DIR, CLASS_NAMES

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))


class _Py2Pickler(pickle._Pickler):
    """Protocol-2 pickler that writes ``str`` and ``bytes`` the way Python 2 wrote ``str``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str


def py2_dumps(obj) -> bytes:
    """Pickle ``obj`` as Python 2 + NumPy 1 would have: protocol 2, ``numpy.core`` names."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # GLOBAL opcodes are "module\nname\n" text, so renaming the module is a plain replace.
    return buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def dumps(obj, style: str) -> bytes:
    """Pickle ``obj`` in ``style`` ``"py3"`` (protocol 4) or ``"py2"`` (see :func:`py2_dumps`)."""
    if style == "py2":
        return py2_dumps(obj)
    assert style == "py3", style
    return pickle.dumps(obj, protocol=4)


def make_arrays(n_per_batch: int = 20, n_test: int = 10, seed: int = 0) -> dict:
    """Random batches: ``{file name: (X (n, 3072) uint8, y (n,) int64)}`` for the 6 batch files.

    Every row is random, so rows are (with overwhelming probability) distinct, which lets
    tests recognise rows by their bytes. Each batch holds every class at least once.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, n in [(f, n_per_batch) for f in TRAIN_FILES] + [("test_batch", n_test)]:
        X = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        y = rng.permutation(np.arange(n) % 10).astype(np.int64)
        arrays[name] = (X, y)
    return arrays


def batch_dict(X: np.ndarray, y, name: str) -> dict:
    """The dict stored in an official batch file (``bytes`` keys, labels as a list of ints)."""
    return {
        b"batch_label": f"{name} of 5".encode(),
        b"labels": [int(v) for v in y],
        b"data": X,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(X))],
    }


def meta_dict() -> dict:
    return {
        b"num_cases_per_batch": 10000,
        b"label_names": [n.encode() for n in CLASS_NAMES],
        b"num_vis": 3072,
    }


def write_cifar_dir(folder: Path, style: str = "py3", **kw) -> dict:
    """Write the 7 CIFAR-10 files into ``folder``; returns the arrays (see :func:`make_arrays`)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = make_arrays(**kw)
    for name, (X, y) in arrays.items():
        (folder / name).write_bytes(dumps(batch_dict(X, y, name), style))
    (folder / "batches.meta").write_bytes(dumps(meta_dict(), style))
    return arrays


def write_archive(path: Path, src: Path, extra=()) -> Path:
    """Pack the files of ``src`` as ``cifar-10-batches-py/<name>`` into a .tar.gz at ``path``.

    ``extra`` is a sequence of ``tarfile.TarInfo`` (with ``size`` 0 unless data follows)
    appended after the regular members, to build hostile archives.
    """
    with tarfile.open(path, "w:gz") as tar:
        for f in sorted(src.iterdir()):
            tar.add(f, arcname=f"{ARCHIVE_DIR}/{f.name}", recursive=False)
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.size else None)
    return path


def all_train(arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    """The 5 training batches concatenated: (X (N, 3072) uint8, y (N,) int64)."""
    X = np.concatenate([arrays[f][0] for f in TRAIN_FILES])
    y = np.concatenate([arrays[f][1] for f in TRAIN_FILES])
    return X, y
