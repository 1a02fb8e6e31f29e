"""A restricted unpickler that can read CIFAR-10 batch files and nothing else.

A pickle is a small program: unpickling one with :func:`pickle.load` may call any
importable function (``os.system``, ``builtins.eval``, ...). CIFAR-10 batches only need
NumPy's array reconstruction, so :class:`CifarUnpickler` resolves exactly these globals
and refuses every other one *before* anything is called:

- ``numpy.core.multiarray._reconstruct``  (Python 2 / NumPy 1 pickles, e.g. the official
  files) and ``numpy._core.multiarray._reconstruct`` (NumPy 2 pickles);
- ``numpy.ndarray`` and ``numpy.dtype`` (arguments of ``_reconstruct``);
- ``numpy.core.multiarray.scalar`` / ``numpy._core.multiarray.scalar`` (a NumPy scalar,
  e.g. a label stored as ``np.int64``; inert: it only builds a number from bytes).

``_codecs.encode`` is *not* allowed: Python 2 writes its ``str`` payloads with the
``BINSTRING`` opcodes, so only a Python 3 pickle written with protocol < 3 would use it,
and neither the official files nor the NumPy 2 rebuild are such pickles.

Files are read with ``encoding="bytes"``, so a Python 2 ``str`` comes back as ``bytes``
(``b'data'``, ``b'labels'``), exactly as the CIFAR-10 web page documents.
"""

from __future__ import annotations

import pickle
from typing import IO, Any

import numpy as np

from .errors import DataError

try:  # NumPy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray as _multiarray

# (module, name) as written in the pickle -> the object it may resolve to.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class CifarUnpickler(pickle.Unpickler):
    """An :class:`pickle.Unpickler` whose ``find_class`` only knows ``ALLOWED_GLOBALS``.

    Parameters
    ----------
    fileobj : binary file object positioned at the start of a pickle.
    name : str
        The file's name, used in error messages.
    """

    def __init__(self, fileobj: IO[bytes], name: str):
        super().__init__(fileobj, encoding="bytes")
        self.name = name

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"refused to unpickle {module}.{name} from {self.name}: "
                "not a CIFAR-10 batch"
            ) from None

    def __repr__(self) -> str:
        return f"CifarUnpickler({self.name!r})"


def safe_load(fileobj: IO[bytes], name: str | None = None) -> Any:
    """Unpickle one CIFAR-10 batch (or ``batches.meta``) without running foreign code.

    Parameters
    ----------
    fileobj : binary file object
        An open file, a ``tarfile`` member or a ``BytesIO``.
    name : str, optional
        What to call the file in error messages; defaults to ``fileobj.name``.

    Returns
    -------
    The unpickled object, normally a dict with ``bytes`` keys such as ``b'data'``
    (ndarray, (N, 3072) uint8) and ``b'labels'`` (list of N ints).

    Raises
    ------
    DataError
        If the pickle references anything outside ``ALLOWED_GLOBALS``, or is
        truncated or corrupt. The message names the file.
    """
    if name is None:
        name = str(getattr(fileobj, "name", "<stream>"))
    try:
        return CifarUnpickler(fileobj, name).load()
    except DataError:
        raise
    except Exception as exc:  # truncated or corrupt: EOFError, UnpicklingError, ...
        raise DataError(
            f"could not read {name}: corrupt or truncated pickle "
            f"({type(exc).__name__}: {exc}); delete it and download CIFAR-10 again"
        ) from exc
