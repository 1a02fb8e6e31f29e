"""Writing a file so that a crash leaves either the old file or the new one, whole."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from ..errors import UserError, printable
from .regular import kind_of


def check_output_path(path, flag=""):
    """Refuse ``path`` as a place to write unless it is a regular file or a new name.

    A rename over a device, a FIFO or a symbolic link would replace the node itself (as
    root, ``/dev/null`` for everyone), so each is refused with one UserError naming ``path``
    (after ``flag``, the option that gave it, where given) before anything is written.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError:
        return  # the write itself reports a path it cannot reach, with its errno
    if stat.S_ISREG(st.st_mode):
        return
    shown = f"{flag} {printable(path)}" if flag else printable(path)
    raise UserError(f"{shown} is {kind_of(st.st_mode)}; numpy-mlp writes only a regular file or "
                    f"a new name, never through a link or into a device: choose another path")


def atomic_write(path, write):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over ``path``.

    ``path`` must be a regular file or a new name (:func:`check_output_path`, checked before
    anything is written).

    A crash mid-write leaves the previous file (if any) intact; the data is flushed to disk
    before the rename and the rename itself after it, so a power cut leaves one of the two
    whole files. The new file gets the usual permissions (0666 minus the umask).
    """
    path = Path(path)
    check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _read_umask():
    mask = os.umask(0)  # the only way to read it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _fsync_dir(folder):
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
