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

from ..errors import UserError, printable
from ..files.regular import open_regular

OPERATIONS = frozenset(int(op) for op in JournalOperation)  # the op_code of each kind of entry
_CHUNK = 1 << 16  # bytes read at a time when looking back for the last newline
ENTRY_START = b'{"op_code":'  # how every line Optuna's JournalFileBackend appends begins


def check_journal_file(path):
    """Make the journal ``path`` safe to append to, or raise UserError naming its bad line.

    Only a file that is provably an Optuna journal is repaired: a regular file whose every
    whole line is an entry Optuna writes and whose torn tail begins as one does. Anything
    else (a model.npz, a note given to ``--storage`` by a slip) is refused untouched.
    Returns one line saying what was repaired and where the whole file was kept, or None
    when the file was whole (or new).
    """
    path = Path(path)
    if not os.path.lexists(path):
        return None  # a new study: Optuna creates the file
    _check_lines(path)  # before anything is written: a file that is no journal stays as it is
    note = None
    if _torn(path):
        lock = JournalFileSymlinkLock(str(path))  # the lock Optuna's appends take
        lock.acquire()
        try:
            if _torn(path):  # still torn with no append in progress: a crash left it so
                _check_lines(path)
                note = _cut_torn_tail(path)
        finally:
            lock.release()
    return note


def _open(path):
    """``path`` opened for reading: a regular file, never a FIFO that would block."""
    return open_regular(path, error=UserError, what="search journal",
                        fix="give --storage a journal file written by a search, or a new name")


def _torn(path):
    """Whether the file ``path`` has bytes after its last newline."""
    with _open(path) as f:
        try:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
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
        raise UserError(f"search journal {printable(path)}: its last line is torn and it cannot "
                        f"be repaired ({e.strerror}: {printable(e.filename)}); free some space or "
                        f"make the folder writable, then run the search again") from None
    return (f"search journal {printable(path)}: its last line was cut short ({size - keep} bytes: "
            f"an append interrupted by a crash or a full disk); cut them off, the whole file is "
            f"kept as {printable(backup)}")


def _end_of_last_line(path, size):
    """The offset just after the last newline of ``path`` (0 if it has none)."""
    with _open(path) as f:
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
    """Raise UserError naming the first line of ``path`` that Optuna did not write; a last
    line without its newline (torn, or another worker's append in progress) must begin as
    Optuna's lines do."""
    with _open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                head = line[:len(ENTRY_START)]
                if not ENTRY_START.startswith(head) and not line.startswith(ENTRY_START):
                    raise _not_a_journal(path, number, "does not begin as an entry of an "
                                                       "Optuna journal")
                return
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                raise _not_a_journal(path, number, "is not JSON") from None
            if not (isinstance(entry, dict) and entry.get("op_code") in OPERATIONS
                    and isinstance(entry.get("worker_id"), str)):
                raise _not_a_journal(path, number, "is not an entry of an Optuna journal")


def _not_a_journal(path, number, what):
    """A bad line: on line 1 the file is no journal at all (a model, a note) and the advice
    is another file; further on, a damaged journal."""
    if number > 1:
        return bad_entry(path, number, what)
    return UserError(f"search journal {printable(path)}, line 1: {what}: this file is not an "
                     f"Optuna journal; give --storage a journal file written by a search, or a "
                     f"new name; nothing was written to it")


def _unreadable(path, e):
    return UserError(f"search journal {printable(path)} cannot be read ({e.strerror}); "
                     f"check the path (--out or --storage)")


def bad_entry(where, number, what, unit="line"):
    """The one message for an entry of a journal (a file's line) that cannot be read."""
    return UserError(f"search journal {printable(where)}, {unit} {number}: {what}; the journal "
                     f"is damaged or was edited. Delete that line, or move the file away to start "
                     f"a new study; nothing was written to it")
