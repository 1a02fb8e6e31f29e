"""A restricted unpickler that can read CIFAR-10 batch files and nothing else.

A pickle is a small program: unpickling one with :func:`pickle.load` may call any
importable function (``os.system``, ``builtins.eval``, ...), and even NumPy's own array
reconstruction crashes the interpreter on a 150-byte object-array pickle whose list is
shorter than its shape. CIFAR-10 batches are a dict of bytes keys, plain numbers, strings,
flat lists and arrays of numbers, so :class:`_CifarUnpickler` executes only the opcodes
that build those and checks each array before NumPy sees it:

- globals: ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``
  (Python 2 / NumPy 1 pickles such as the official files, and NumPy 2 pickles), ``numpy.
  ndarray`` (an inert token: only ``_reconstruct`` takes it), ``numpy.dtype`` and the
  ``scalar`` of either module (a NumPy number such as a label stored as ``np.int64``);
  every other global is refused *before* anything is called;
- arrays and scalars: only bool, integer and float dtypes, and exactly as many bytes as
  the shape needs, so an array can never be larger than the file that holds it;
- dict keys: only bytes, str or int (hashing a deeply nested tuple key overflows the C
  stack); no sets, no extension codes, no class instantiation, no persistent ids;
- the file: at most ``max_bytes`` (:data:`MAX_BYTES` by default) are read, and at most
  :data:`MAX_OPCODES` opcodes executed, so that time and memory stay bounded.

It runs on the pure-Python unpickler of :mod:`pickle`, whose opcodes can be replaced one
by one (the C unpickler cannot be hooked); a batch has some 40 000 opcodes, read in under
a tenth of a second.

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

from ..errors import DataError

try:  # NumPy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray as _multiarray

# The largest file read: an official batch is 31,035,704 bytes (10000 rows of D = 3072
# values, their labels and file names); 32 MiB leaves room for another pickler's framing.
MAX_BYTES = 1 << 25
# The most opcodes executed: an official batch has about 30 000 (a label and a file name per
# image); the pure-Python unpickler runs some 300 000 a second.
MAX_OPCODES = 250_000
_KINDS = "biuf"  # dtype kinds an array or scalar may have: bool, int, uint, float
_KEY_TYPES = (bytes, str, int)  # dict keys whose hash never recurses


class _Refused(Exception):
    """The pickle asked for something a CIFAR-10 file never needs (message: what)."""


class _ArrayClass:
    """What ``numpy.ndarray`` resolves to: an argument of ``_reconstruct``, never called."""

    def __call__(self, *args):
        raise _Refused("a call of numpy.ndarray (it allocates any shape before a check)")

    def __repr__(self):
        return "numpy.ndarray"


_NDARRAY = _ArrayClass()


def _plain_dtype(dtype) -> np.dtype:
    """A fresh dtype equal to ``dtype`` (flags a pickle set are dropped); bool/int/float only."""
    if not isinstance(dtype, np.dtype):
        raise _Refused(f"an array whose dtype is a {type(dtype).__name__}")
    clean = np.dtype(dtype.str)
    if clean.kind not in _KINDS or clean.hasobject:
        raise _Refused(f"an array of dtype {dtype.str!r} (only numbers are allowed)")
    return clean


class _CheckedArray(np.ndarray):
    """An ndarray whose ``__setstate__`` checks the pickled state before NumPy applies it."""

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise _Refused("an array state other than NumPy's (1, shape, dtype, order, bytes)")
        _, shape, dtype, fortran, raw = state
        if not (isinstance(shape, tuple) and len(shape) <= 32 and
                all(type(n) is int and n >= 0 for n in shape)):
            raise _Refused("an array whose shape is not a tuple of sizes")
        dtype = _plain_dtype(dtype)
        size = dtype.itemsize
        for n in shape:
            size *= n
        if type(fortran) is not bool or type(raw) is not bytes or len(raw) != size:
            raise _Refused(f"an array of shape {shape} whose data is not {size} bytes")
        super().__setstate__((1, shape, dtype, fortran, raw))


def _reconstruct(cls, shape, typecode):
    """NumPy's ``_reconstruct(ndarray, (0,), b'b')``, building a :class:`_CheckedArray`."""
    if cls is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise _Refused("an array reconstruction other than NumPy's own")
    return _multiarray._reconstruct(_CheckedArray, (0,), b"b")


def _dtype(spec, align=False, copy=True):
    """``numpy.dtype(spec, False, True)`` for a numeric type code such as ``'u1'``.

    Always a copy, as NumPy pickles ask for: its byte order is then set by the pickle's
    BUILD, which must never reach NumPy's shared ``np.dtype('u1')``.
    """
    if isinstance(spec, bytes):
        spec = spec.decode("latin-1")
    if not isinstance(spec, str) or type(align) is not bool or type(copy) is not bool:
        raise _Refused("a dtype that is not a type code")
    _plain_dtype(np.dtype(spec))
    return np.dtype(spec, False, True)


def _scalar(dtype, data):
    """NumPy's ``scalar(dtype, bytes)`` (a pickled NumPy number), numbers only."""
    dtype = _plain_dtype(dtype)
    if type(data) is not bytes or len(data) != dtype.itemsize:
        raise _Refused(f"a {dtype} scalar that is not {dtype.itemsize} bytes")
    return _multiarray.scalar(dtype, data)


# (module, name) as written in the pickle -> the object it resolves to.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
}

# The opcodes of plain data (numbers, strings, lists, tuples, dicts, memo) and of a reduce;
# anything else (sets, instances, extension codes, persistent ids, out-of-band buffers) is
# refused. SETITEM(S), DICT, APPEND(S) and BUILD are replaced by checked versions below.
_PLAIN_OPCODES = """PROTO FRAME STOP MARK POP POP_MARK DUP NONE NEWTRUE NEWFALSE INT BININT
    BININT1 BININT2 LONG LONG1 LONG4 FLOAT BINFLOAT STRING BINSTRING SHORT_BINSTRING BINBYTES
    SHORT_BINBYTES BINBYTES8 UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8 EMPTY_LIST LIST
    EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_DICT GET BINGET LONG_BINGET PUT BINPUT
    LONG_BINPUT MEMOIZE GLOBAL STACK_GLOBAL REDUCE""".split()
_NAMES = {getattr(pickle, name)[0]: name for name in dir(pickle)
          if name.isupper() and isinstance(getattr(pickle, name), bytes)
          and len(getattr(pickle, name)) == 1}


class _Opcodes(dict):
    """One load's dispatch table: an opcode not in it is refused by name, and at most
    ``budget`` lookups (opcodes executed) are allowed.
    """

    def __init__(self, table, budget: int):
        super().__init__(table)
        self.budget, self.left = budget, budget

    def __getitem__(self, code):
        self.left -= 1
        if self.left < 0:
            raise _Refused(f"more than {self.budget:,} opcodes")
        return super().__getitem__(code)

    def __missing__(self, code):
        if code not in _NAMES:  # not a pickle at all: reported as corrupt
            raise pickle.UnpicklingError(f"invalid load key {bytes([code])!r}")
        raise _Refused(f"the pickle opcode {_NAMES[code]}")


def _keys_ok(items) -> None:
    """Refuse dict keys that are not bytes, str or int (``items``: key, value, key, ...)."""
    if not all(type(k) in _KEY_TYPES for k in items[::2]):
        raise _Refused("a dict key that is not a string or a number")


def _target(stack: list, kind: type) -> None:
    """Refuse a SETITEM or APPEND whose target (the top of ``stack``) is not a ``kind``.

    (An array as the target would let NumPy expand a nested list inside the unpickler.)
    """
    if not stack or type(stack[-1]) is not kind:
        raise _Refused(f"adding items to something other than a {kind.__name__}")


class _CifarUnpickler(pickle._Unpickler):
    """A pure-Python :class:`pickle.Unpickler` limited to CIFAR-10's contents (module doc).

    Args:
        fileobj: binary file object positioned at the start of a pickle.
        name (str): the file's name, used in error messages.
    """

    table = {code: pickle._Unpickler.dispatch[code]
             for code in (getattr(pickle, op)[0] for op in _PLAIN_OPCODES)}

    def __init__(self, fileobj: IO[bytes], name: str, max_opcodes: int = MAX_OPCODES):
        super().__init__(fileobj, encoding="bytes")
        self.name = name
        self.dispatch = _Opcodes(self.table, max_opcodes)  # what load() looks opcodes up in

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"refused to unpickle {module}.{name} from {self.name}: "
                "not a CIFAR-10 batch"
            ) from None

    # After a MARK the pure-Python unpickler starts a new self.stack (the one below it is
    # self.metastack[-1]), so SETITEMS, DICT and APPENDS find their items in self.stack.

    def load_setitem(self):
        _target(self.stack[:-2], dict)
        _keys_ok(self.stack[-2:])
        pickle._Unpickler.load_setitem(self)

    def load_setitems(self):
        _target(self.metastack[-1] if self.metastack else [], dict)
        _keys_ok(self.stack)
        pickle._Unpickler.load_setitems(self)

    def load_dict(self):
        _keys_ok(self.stack)
        pickle._Unpickler.load_dict(self)

    def load_append(self):
        _target(self.stack[:-1], list)
        pickle._Unpickler.load_append(self)

    def load_appends(self):
        _target(self.metastack[-1] if self.metastack else [], list)
        pickle._Unpickler.load_appends(self)

    def load_build(self):
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, _CheckedArray):
            inst.__setstate__(state)
        elif isinstance(inst, np.dtype):
            _build_dtype(inst, state)
        else:
            raise _Refused(f"setting the state of a {type(inst).__name__}")
        self.stack.pop()

    table[pickle.SETITEM[0]] = load_setitem
    table[pickle.SETITEMS[0]] = load_setitems
    table[pickle.DICT[0]] = load_dict
    table[pickle.APPEND[0]] = load_append
    table[pickle.APPENDS[0]] = load_appends
    table[pickle.BUILD[0]] = load_build

    def __repr__(self) -> str:
        return f"_CifarUnpickler({self.name!r})"


def _build_dtype(dtype: np.dtype, state) -> None:
    """Apply a pickled dtype state: only its byte order; the rest must be a plain number's."""
    if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3
            and state[2:7] == (None, None, None, -1, -1)):
        raise _Refused("a dtype state other than a plain number's")
    order = state[1].decode("latin-1") if isinstance(state[1], bytes) else state[1]
    if order not in ("<", ">", "|", "="):
        raise _Refused("a dtype byte order other than <, >, | or =")
    dtype.__setstate__((3, order, None, None, None, -1, -1, dtype.flags))


class _BoundedReader:
    """``read``/``readline`` of a binary file that raise once more than ``limit`` bytes are read.

    Each request is cut to the bytes left plus one, so a pickle that declares a 4 GB string
    never makes the file layer allocate 4 GB.
    """

    def __init__(self, fileobj: IO[bytes], limit: int, name: str):
        self.fileobj, self.left, self.limit, self.name = fileobj, limit, limit, name

    def _take(self, data: bytes) -> bytes:
        self.left -= len(data)
        if self.left < 0:
            raise DataError(f"{self.name} is larger than {self.limit:,} bytes, more than a "
                            "CIFAR-10 file can be; delete it and download CIFAR-10 again")
        return data

    def _size(self, n) -> int:
        return self.left + 1 if n is None or n < 0 or n > self.left else n

    def read(self, n=-1) -> bytes:
        return self._take(self.fileobj.read(self._size(n)))

    def readline(self, n=-1) -> bytes:
        return self._take(self.fileobj.readline(self._size(n)))


def safe_load(fileobj: IO[bytes], name: str | None = None, max_bytes: int = MAX_BYTES) -> Any:
    """Unpickle one CIFAR-10 batch (or ``batches.meta``) without running foreign code.

    Args:
        fileobj (binary file object): an open file, a ``tarfile`` member or a ``BytesIO``.
        name (str, optional): what to call the file in error messages; defaults to
            ``fileobj.name``.
        max_bytes (int): the most bytes read from ``fileobj``; a longer file is refused.

    Returns:
        The unpickled object, normally a dict with ``bytes`` keys such as ``b'data'``
        (ndarray, (N, 3072) uint8) and ``b'labels'`` (list of N ints). Arrays directly in
        that dict (or the object itself, if an array) are plain ``np.ndarray``.

    Raises:
        DataError: if the pickle references anything outside ``ALLOWED_GLOBALS``, uses
            anything a CIFAR-10 file does not (see the module docstring), is longer than
            ``max_bytes``, or is truncated or corrupt. The message names the file.
    """
    if name is None:
        name = str(getattr(fileobj, "name", "<stream>"))
    try:
        obj = _CifarUnpickler(_BoundedReader(fileobj, max_bytes, name), name).load()
    except DataError:
        raise
    except _Refused as exc:
        raise DataError(f"refused to unpickle {exc} from {name}: not a CIFAR-10 batch; "
                        "delete it and download CIFAR-10 again") from None
    except Exception as exc:  # truncated or corrupt: EOFError, UnpicklingError, ...
        raise DataError(
            f"could not read {name}: corrupt or truncated pickle "
            f"({type(exc).__name__}: {exc}); delete it and download CIFAR-10 again"
        ) from exc
    if isinstance(obj, dict):
        return {k: v.view(np.ndarray) if isinstance(v, _CheckedArray) else v
                for k, v in obj.items()}
    return obj.view(np.ndarray) if isinstance(obj, _CheckedArray) else obj
