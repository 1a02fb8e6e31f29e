"""The journal file of a study, checked before Optuna appends to it.

Optuna's ``JournalFileBackend`` appends one JSON line per operation while it holds its
lock file. What it does not handle, each shown by a test in tests/test_search.py:

- **A torn last line** (a power cut or a full disk during an append): Optuna reads the
  file, but appends its next line onto the torn bytes, after which no reader can replay
  the journal (``test_a_torn_journal_line_is_cut_off_and_the_search_goes_on``). Under
  Optuna's own lock, so that no append is half done, :func:`check_journal_file` copies the
  file to ``<journal>.torn-<time>`` and cuts the torn bytes off.
- **Garbage lines** (not JSON, or JSON that is not an entry Optuna writes): Optuna fails
  with a traceback naming neither the file nor the line, or skips a bad last line until
  the next append makes it fatal (``test_a_damaged_journal_line_is_one_line_error``).
  Each line is checked here; an entry of the right kind whose fields are wrong is named
  by its line when Optuna replays it (``study.HeartbeatJournalStorage``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from optuna.storages.journal import JournalFileSymlinkLock
from optuna.storages.journal._storage import JournalOperation  # not exported by Optuna

from ..errors import UserError

OPERATIONS = frozenset(int(op) for op in JournalOperation)  # the op_code of each kind of entry
_CHUNK = 1 << 16  # bytes read at a time when looking back for the last newline


def check_journal_file(path):
    """Make the journal ``path`` safe to append to, or raise UserError naming its bad line.

    Returns one line saying what was repaired, or None when the file was whole (or new).
    """
    path = Path(path)
    note = None
    if _torn(path):
        lock = JournalFileSymlinkLock(str(path))  # the lock Optuna's appends take
        lock.acquire()
        try:
            if _torn(path):  # still torn with no append in progress: a crash left it so
                note = _cut_torn_tail(path)
        finally:
            lock.release()
    _check_lines(path)
    return note


def _torn(path):
    """Whether the file ``path`` has bytes after its last newline."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except FileNotFoundError:
        return False
    except OSError as e:
        raise _unreadable(path, e) from None


def _cut_torn_tail(path):
    """Copy ``path`` aside whole, then truncate it after its last newline."""
    size = path.stat().st_size
    keep = _end_of_last_line(path, size)
    stem = f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}"
    backup, n = path.with_name(stem), 1
    while backup.exists():  # a second repair within the same second
        n += 1
        backup = path.with_name(f"{stem}-{n}")
    try:
        shutil.copyfile(path, backup)
        with open(path, "r+b") as f:
            f.truncate(keep)
            os.fsync(f.fileno())
    except OSError as e:
        raise UserError(f"search journal {path}: its last line is torn and it cannot be "
                        f"repaired ({e.strerror}: {e.filename}); free some space or make the "
                        f"folder writable, then run the search again") from None
    return (f"search journal {path}: its last line was cut short ({size - keep} bytes: an "
            f"append interrupted by a crash or a full disk); cut them off, the whole file is "
            f"kept as {backup.name}")


def _end_of_last_line(path, size):
    """The offset just after the last newline of ``path`` (0 if it has none)."""
    with open(path, "rb") as f:
        end = size
        while end > 0:
            start = max(0, end - _CHUNK)
            f.seek(start)
            i = f.read(end - start).rfind(b"\n")
            if i >= 0:
                return start + i + 1
            end = start
    return 0


def _check_lines(path):
    """Raise UserError naming the first line of ``path`` that Optuna did not write."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    except OSError as e:
        raise _unreadable(path, e) from None
    with f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                return  # another worker's append in progress
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                raise bad_entry(path, number, "is not JSON") from None
            if not (isinstance(entry, dict) and entry.get("op_code") in OPERATIONS
                    and isinstance(entry.get("worker_id"), str)):
                raise bad_entry(path, number, "is not an entry of an Optuna journal")


def _unreadable(path, e):
    return UserError(f"search journal {path} cannot be read ({e.strerror}); "
                     f"check the path (--out or --storage)")


def bad_entry(where, number, what, unit="line"):
    """The one message for an entry of a journal (a file's line) that cannot be read."""
    return UserError(f"search journal {where}, {unit} {number}: {what}; the journal is damaged "
                     f"or was edited. Delete that line, or move the file away to start a new "
                     f"study; nothing was written to it")
