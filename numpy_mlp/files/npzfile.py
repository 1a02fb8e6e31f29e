"""Bounded reading of ``.npz`` archives: every size checked before anything is allocated.

``np.load`` trusts an archive: it allocates the shape an array's header declares (a 2 KB
file can claim 112 TiB) and inflates whatever a compressed member holds (1.9 MB can
become 2 GB). :class:`NpzArchive` reads each member's ``.npy`` header from the zip member
itself (``numpy.lib.format``) and refuses, before reading any data:

- a member whose name does not end in ``.npy``, a repeated name, an encrypted member or a
  compression numpy does not write;
- object, string, structured or complex arrays, and any version of ``.npy`` beyond 2.0;
- a header whose declared bytes differ from the member's size in the zip directory;
- a stored member that runs past the end of the file, and a compressed one that claims
  to inflate more than ``MAX_RATIO`` times (weights compress little) or more than
  ``DEFLATE_LIMIT`` times (what deflate can do at all).

What is left is bounded by the file's size; callers add their own bound from what the
file declares (see training/model_file.py) and read only then. Every failure is one line of the
caller's error class naming the file and the member.
"""

from __future__ import annotations

import math
import os
import tokenize
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
from numpy.lib import format as npy_format

from ..errors import ModelFileError, printable
from .regular import open_regular

MAX_MEMBERS = 1024          # a model holds 2 per layer; a checkpoint about 6 per layer
MAX_HEADER = 10_000         # numpy's own limit on an .npy header
MAX_RATIO = 100             # weights deflate by a few percent; 100x is zeros, not a model
RATIO_FREE = 1 << 20        # members this small may compress as they like
DEFLATE_LIMIT = 1032        # the most deflate can compress (258 bytes from 2 bits)
CHUNK = 16 << 20            # bytes read at a time, so reading never holds a second copy
KINDS = {"f": "floats", "i": "integers", "u": "integers", "b": "booleans", "U": "text"}


@dataclass(frozen=True)
class Member:
    """One array of the archive as its ``.npy`` header declares it (nothing read yet)."""
    name: str              # the key np.load would give: the zip name without ``.npy``
    shape: tuple
    dtype: np.dtype
    fortran_order: bool
    nbytes: int            # what reading it allocates
    header_bytes: int      # where its data starts in the member
    info: zipfile.ZipInfo


class NpzArchive:
    """A ``.npz`` file opened for bounded reading; use as a context manager.

    Args:
        path: the file.
        error: the exception class of this kind of file (ModelFileError, CheckpointError).
        fix: what the user can do, the end of every message ("retrain or use another
            model.npz").
        what: the kind of file, for a file that is no archive ("numpy-mlp model file").

    ``members`` maps each name to its :class:`Member`; :meth:`read` reads one array,
    :meth:`text` one JSON string saved as a 0-d text array.
    """

    def __init__(self, path, *, error=ModelFileError, fix, what="numpy-mlp file"):
        self.path, self.error, self.fix, self.what = path, error, fix, what
        self._file = self._zip = None
        self.members = {}

    def __repr__(self):
        return f"NpzArchive({printable(self.path)!r}, {len(self.members)} members)"

    def fail(self, what):
        raise self.error(f"{printable(self.path)}: {what}; {self.fix}")

    def __enter__(self):
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        for f in (self._zip, self._file):
            if f is not None:
                f.close()
        self._zip = self._file = None

    def _open(self):
        self._file = open_regular(self.path, error=self.error, fix=self.fix)
        size = os.fstat(self._file.fileno()).st_size
        try:
            self._zip = zipfile.ZipFile(self._file)
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            self.fail(f"it is not a {self.what} (not an .npz archive, or damaged or truncated: "
                      f"{type(e).__name__})")
        if len(infos) > MAX_MEMBERS:
            self.fail(f"it holds {len(infos)} members, more than a numpy-mlp file ({MAX_MEMBERS})")
        for info in infos:
            member = self._header(info, size)
            if member.name in self.members:
                self.fail(f"member {info.filename!r} appears twice")
            self.members[member.name] = member

    def _header(self, info, file_size):
        """The :class:`Member` of zip entry ``info``, from its header alone, size-checked."""
        name = info.filename
        if not name.endswith(".npy") or len(name) == 4:
            self.fail(f"member {name!r} is not an array (its name does not end in .npy)")
        if info.flag_bits & 0x1:
            self.fail(f"member {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            self.fail(f"member {name!r} uses a compression numpy does not write")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            self.fail(f"member {name!r} is stored uncompressed but its sizes differ")
        if info.header_offset + info.compress_size > file_size:
            self.fail(f"member {name!r} runs past the end of the file (it is truncated)")
        if info.compress_type == zipfile.ZIP_DEFLATED:
            limit = DEFLATE_LIMIT if info.file_size <= RATIO_FREE else MAX_RATIO
            if info.file_size > limit * max(info.compress_size, 1):
                self.fail(f"member {name!r} would inflate from {info.compress_size:,} to "
                          f"{info.file_size:,} bytes, more than saved weights ever do")
        try:
            with self._zip.open(info) as fp:
                version = npy_format.read_magic(fp)
                readers = {(1, 0): npy_format.read_array_header_1_0,
                           (2, 0): npy_format.read_array_header_2_0}
                if version in readers:
                    shape, fortran, dtype = readers[version](fp, max_header_size=MAX_HEADER)
                else:
                    self.fail(f"member {name!r} is .npy version {version}, which numpy-mlp does "
                              "not read")
                header_bytes = fp.tell()
        except (ValueError, TypeError, SyntaxError, tokenize.TokenError, OSError, EOFError,
                zipfile.BadZipFile, zlib.error) as e:
            self.fail(f"member {name!r} has no valid .npy header ({type(e).__name__})")
        if dtype.hasobject:
            self.fail(f"member {name!r} holds pickled Python objects, which numpy-mlp never loads "
                      f"(they could run code)")
        if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in KINDS:
            self.fail(f"member {name!r} holds {dtype} values, not plain numbers or text")
        if any(n < 0 for n in shape):
            self.fail(f"member {name!r} declares the impossible shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        if header_bytes + nbytes != info.file_size:
            self.fail(f"member {name!r} declares shape {shape} of {dtype} ({nbytes:,} bytes) but "
                      f"holds {max(info.file_size - header_bytes, 0):,} bytes")
        return Member(name[:-4], tuple(shape), dtype, bool(fortran), nbytes, header_bytes, info)

    def require(self, name, *, kinds="f", ndim=None, shape=None):
        """The :class:`Member` ``name``, checked to hold ``kinds`` ('f' floats, 'iu'
        integers, 'U' text) with ``ndim`` dimensions or exactly ``shape``."""
        member = self.members.get(name)
        if member is None:
            self.fail(f"it has no {name!r} array")
        if member.dtype.kind not in kinds:
            wanted = " or ".join(sorted({KINDS[k] for k in kinds}))
            self.fail(f"{name} holds {member.dtype} values, expected {wanted}")
        if ndim is not None and len(member.shape) != ndim:
            self.fail(f"{name} has shape {member.shape}, expected {ndim} dimension(s)")
        if shape is not None and member.shape != tuple(shape):
            self.fail(f"{name} has shape {member.shape}, expected {tuple(shape)}")
        return member

    def read(self, name, *, kinds="f", ndim=None, shape=None, finite=True):
        """Array ``name`` (after :meth:`require`), its values finite if ``finite`` (floats)."""
        member = self.require(name, kinds=kinds, ndim=ndim, shape=shape)
        buf = bytearray(member.nbytes)
        view, got = memoryview(buf), 0
        try:
            with self._zip.open(member.info) as fp:
                fp.read(member.header_bytes)
                while got < member.nbytes:
                    chunk = fp.read(min(CHUNK, member.nbytes - got))
                    if not chunk:
                        break
                    view[got:got + len(chunk)] = chunk
                    got += len(chunk)
                fp.read(1)  # reaching the end checks the member's CRC
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            self.fail(f"{name} cannot be read ({type(e).__name__}: {e}); the file is damaged")
        if got != member.nbytes:
            self.fail(f"{name} is truncated")
        order = "F" if member.fortran_order else "C"
        array = np.frombuffer(buf, dtype=member.dtype).reshape(member.shape, order=order)
        if finite and member.dtype.kind == "f" and not np.isfinite(array).all():
            self.fail(f"{name} holds NaN or infinite values")
        return array

    def text(self, name, *, max_chars):
        """The string saved as the 0-d text array ``name`` (a JSON document), at most
        ``max_chars`` characters."""
        member = self.require(name, kinds="U", shape=())
        if member.dtype.itemsize > 4 * max_chars:
            self.fail(f"{name} is {member.dtype.itemsize // 4:,} characters long, more than the "
                      f"{max_chars:,} numpy-mlp writes")
        return str(self.read(name, kinds="U", shape=())[()])
