"""The one opener of every file numpy-mlp reads: regular files only, never blocking.

Opening a FIFO for reading waits until a writer comes, so a FIFO with no writer given as a
config, a data file or a journal would hang the command for ever; a device can be read
without end. :func:`open_regular` opens with ``O_NONBLOCK`` (a FIFO opens at once), checks
with ``fstat`` that what it opened is a regular file (no race with a rename between a check
and the open), and only then hands the file over, back in blocking mode. Every failure is
one line of the caller's error class naming the file and what to do.
"""

from __future__ import annotations

import os
import stat

from ..errors import UserError, printable

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def kind_of(mode):
    """What a file of ``st_mode`` is, for a message: "a folder", "a FIFO", ..."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path, *, error=UserError, fix, what="", follow_links=True):
    """The regular file ``path`` opened for binary reading (a file object; close it).

    ``what`` prefixes the name in messages ("config file"); ``fix`` ends them. A missing
    file, a folder, a FIFO, a device or a socket raises ``error``; with
    ``follow_links=False`` so does a symbolic link.
    """
    name = f"{what} {printable(path)}" if what else printable(path)
    flags = _FLAGS | (0 if follow_links else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{name} does not exist; {fix}") from None
    except OSError as e:
        if not follow_links and os.path.islink(path):
            raise error(f"{name} is a symbolic link, which numpy-mlp does not follow "
                        f"inside a run folder; replace it with the file itself") from None
        raise error(f"{name} cannot be read ({e.strerror}); {fix}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{name} is {kind_of(mode)}, not a regular file; {fix}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")
