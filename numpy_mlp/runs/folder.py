"""The one writer of a run folder: one owner while the run lives, atomic files, no links.

``numpy-mlp train`` opens its ``--out`` folder (or the folder it resumes) as a
:class:`RunFolder` and writes every file of the run through it:

- **one owner**: the folder's ``.lock`` file is held with ``fcntl.flock`` for the run's
  whole life, the write-up included; a second run on the folder is refused with one line
  naming the owner's pid. The kernel drops the lock when its process ends, by SIGKILL
  too, so a dead run never leaves the folder stuck (there is no stale lock to delete).
  The searches of one folder share its lock (they may join one study), and exclude a run
  as a run excludes them. A folder that holds another command's files (a run's
  ``run.json`` or ``model.npz``, a search's ``search.json``) is refused by
  :func:`check_owner` to every other command (``evaluate --out``, ``search --out``,
  ``train --out``), with a free folder named instead.
- **whole files**: each file is written to a temporary file beside it and renamed over it
  (:func:`numpy_mlp.files.atomic.atomic_write`); a crash, a kill or a full disk leaves the
  previous version whole.
- **no links followed**: a symbolic link (or a folder, a FIFO) where a run file goes is
  refused with one line; the log is opened with ``O_NOFOLLOW``. A rename replaces a link
  that appears later instead of writing through it.
- **a lifecycle in run.json**: how the run was started (its data folder, whether it may
  download), so that ``--resume`` starts it the same way even before its first
  checkpoint, and its phase: ``training``; ``writeup`` from the moment the model is about
  to be saved until the last file is written; ``done``. A run stopped in the write-up
  phase is finished by ``--resume``.
- **one line per failure**: a folder that is missing, a file, read-only or full, a file
  too large for the system, or a name that is not UTF-8 is a
  :class:`~numpy_mlp.errors.RunFolderError` naming the path and what to do.

Without ``fcntl`` (Windows) the folder is not locked; everything else holds.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from ..errors import Interrupted, RunFileError, RunFolderError, printable
from ..files.atomic import atomic_write
from ..files.jsonfile import Fields, read_json
from ..training.signals import catching_stop_signals

LOCK_NAME = ".lock"
STATE_NAME = "run.json"
STATE_FORMAT = "numpy-mlp-run"
STATE_VERSION = 1
PHASES = ("training", "writeup", "done")
MAX_PROVENANCE_CHARS = 1 << 16  # each text of run.json's provenance: a command line, versions
# a file that says whose a folder is: another command never writes into such a folder
OWNER_MARKS = {STATE_NAME: "a training run", "model.npz": "a training run",
               "config.json": "a training run", "search.json": "a search"}
STATE_FIX = "delete run.json to treat the folder as a run started without it"
# never follow a link, never block on a FIFO, never leak into a child program
_OPEN_FLAGS = (getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_NONBLOCK", 0))

# errno of a failed write -> (what happened, what to do), for the one-line message
CAUSES = {
    errno.ENOSPC: ("the disk is full", "free some space"),
    errno.EDQUOT: ("the disk quota is used up", "free some space"),
    errno.EFBIG: ("the file would exceed the size limit of this system",
                  "raise the limit or free space"),
    errno.EACCES: ("permission denied", "make the folder writable"),
    errno.EPERM: ("the folder does not allow it", "make the folder writable"),
    errno.EROFS: ("the disk is read-only", "use a folder on a writable disk"),
    errno.ENOENT: ("a folder on its path does not exist", "check the path"),
    errno.ENOTDIR: ("a part of its path is a file, not a folder", "check the path"),
    errno.EISDIR: ("a folder has that name", "remove the folder"),
    errno.ENAMETOOLONG: ("a name in the path is too long (File name too long: at most 255 "
                         "bytes a part on most systems)", "choose a shorter name"),
    errno.ELOOP: ("it is a symbolic link, which numpy-mlp never writes through", "remove the link"),
}


def _write_error(path, error, then=None):
    """A RunFolderError for the OSError ``error`` raised while writing ``path``."""
    what, todo = CAUSES.get(error.errno, (error.strerror or str(error), "check the folder"))
    then = f", then {then}" if then else ""
    return RunFolderError(f"cannot write {printable(path)}: {what}; {todo}{then}")


def os_error_line(error):
    """One line for an OSError that reached the command line (a path too long, a part of it
    a file, a read-only disk, no permission): the path and what to do, from CAUSES; None for
    an errno CAUSES does not know (a bug, which keeps its traceback)."""
    if error.errno not in CAUSES:
        return None
    what, todo = CAUSES[error.errno]
    where = error.filename if error.filename is not None else error.filename2
    shown = f"cannot use {printable(where)}" if where is not None else "cannot go on"
    return f"{shown}: {what}; {todo}"


def free_name(path):
    """``path`` itself if nothing is there, else the first of ``path-2``, ``path-3``, ...
    that is free: the folder a refusal suggests instead."""
    path, n = Path(path), 2
    free = path
    while os.path.lexists(free):
        free, n = path.with_name(f"{path.name}-{n}"), n + 1
    return free


def check_owner(path, flag, *, owner):
    """Refuse to write into ``path`` when it belongs to another run or search: a folder
    holding one of OWNER_MARKS of a kind other than ``owner`` ("a training run", "a search";
    None: any mark refuses). The message names a free folder to use instead."""
    path = Path(path)
    for mark, kind in OWNER_MARKS.items():
        if kind != owner and os.path.lexists(path / mark):
            raise RunFolderError(f"{flag} {printable(path)} holds {kind} ({mark}), which numpy-mlp "
                                 f"never writes over for another command; choose a new folder, "
                                 f"e.g. {flag} {printable(free_name(path))}")


def resume_then(path):
    """What continues the training run in ``path`` after a failed write: its --resume."""
    return f"continue with 'numpy-mlp train --resume {printable(path)}'"


def _check_utf8_name(path, flag):
    """Refuse a path that is not UTF-8 text: the log, config.json and the report spell it."""
    try:
        str(Path(path).absolute()).encode("utf-8")
    except UnicodeEncodeError:
        raise RunFolderError(f"{flag} {printable(path)}: the name is not UTF-8 text, which the "
                             f"run's log and report cannot record; choose a name in "
                             f"UTF-8") from None


class RunLog:
    """The run's log file, opened for appending without following a link; ``write(line)``."""

    def __init__(self, path, fd, then):
        self.path, self.then = path, then
        self._file = open(fd, "a", encoding="utf-8", errors="backslashreplace")

    def __repr__(self):
        return f"RunLog({printable(self.path)!r})"

    def write(self, line):
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as e:
            raise _write_error(self.path, e, self.then) from None

    def close(self):
        try:
            self._file.close()
        except OSError:
            pass  # the lines that could not be written were already reported


class RunFolder:
    """An output folder owned by this process for a run's life; use as a context manager.

    Args:
        path: the folder.
        flag: the option that named it, for messages (``--out``, ``--resume``).
        then: what continues the command's work after a failed write, for messages, in
            the command's own words (train: :func:`resume_then`); without it the message
            ends with the fix (free some space, ...): no command gives advice for another.

    ``open(create=..., check=NAMES)`` creates the folder (with its parents), takes the lock,
    and refuses a link, folder or special file at any of ``NAMES`` before the run spends
    time; ``close()`` releases the lock.
    """

    def __init__(self, path, *, flag="--out", then=None):
        self.path, self.flag = Path(path), flag
        self.then = then
        self._lock_fd, self._shared = None, False

    def __repr__(self):
        held = "locked" if self._lock_fd is not None else "closed"
        return f"RunFolder({printable(self.path)!r}, {held})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ------------------------------------------------------------------ owning the folder

    def open(self, *, create=True, check=(), shared=False):
        """``shared``: a lock other shared owners may hold at once (the processes of one
        search); an exclusive owner (a run) and a shared one still exclude each other."""
        _check_utf8_name(self.path, self.flag)
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.flag} {printable(self.path)} is a file, not a folder; "
                                 f"choose a folder name")
        if create:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise _write_error(self.path, e, f"choose another {self.flag}") from None
        elif not self.path.is_dir():
            raise RunFolderError(f"{self.flag} {printable(self.path)}: no such folder; give a "
                                 f"folder written by 'numpy-mlp train --out DIR'")
        self._lock(shared)
        try:
            for name in check:
                self.target(name)
        except BaseException:
            self.close()
            raise
        return self

    def _lock(self, shared=False):
        lock = self.path / LOCK_NAME
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | _OPEN_FLAGS, 0o666)
        except OSError as e:
            raise _write_error(lock, e, f"choose another {self.flag}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RunFolderError(f"{printable(lock)} is not a regular file; remove it")
        if fcntl is not None:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise RunFolderError(f"{self.flag} {printable(self.path)} is in use by another "
                                     f"numpy-mlp run (pid {owner}); wait until it ends, or choose "
                                     "another folder") from None
        if not shared:  # a shared lock has several owners: no one pid to name
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except OSError:
                pass  # the pid only makes the message of a refused second run more helpful
        self._lock_fd, self._shared = fd, shared

    def close(self):
        """Release the lock (the lock file stays: deleting it would let two runs own the folder)."""
        if self._lock_fd is not None:
            if not self._shared:
                try:
                    os.ftruncate(self._lock_fd, 0)
                except OSError:
                    pass
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def _check_owned(self):
        """The folder must still be the one locked: not closed, removed or replaced."""
        if self._lock_fd is None:
            raise RuntimeError(f"{self!r} is not open")
        mine = os.fstat(self._lock_fd)
        try:
            now = os.stat(self.path / LOCK_NAME, follow_symlinks=False)
        except OSError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            raise RunFolderError(f"{printable(self.path)} was removed or replaced while the run "
                                 f"was writing it; nothing more is written there: start the run "
                                 f"again")

    # ------------------------------------------------------------------ writing files

    def target(self, name):
        """``path / name`` for a run file; refused if a link, folder or special file is there."""
        if not name or name in (".", "..") or "/" in name or os.sep in name:
            raise ValueError(f"{name!r} is not a file name inside a run folder")
        path = self.path / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return path
        except OSError as e:
            raise _write_error(path, e, self.then) from None
        if stat.S_ISLNK(st.st_mode):
            raise RunFolderError(f"{printable(path)} is a symbolic link; numpy-mlp writes only "
                                 f"its own files in a run folder and never through a link: remove "
                                 "the link, or choose another folder")
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a special file"
            raise RunFolderError(f"{printable(path)} is {kind}, where the run writes a file; "
                                 f"remove it, or choose another folder")
        return path

    def write(self, name, write):
        """Write file ``name`` atomically with ``write(binary file object)``; returns its path."""
        self._check_owned()
        path = self.target(name)
        try:
            atomic_write(path, write)
        except OSError as e:
            raise _write_error(path, e, self.then) from None
        return path

    def write_bytes(self, name, data):
        return self.write(name, lambda f: f.write(data))

    def write_text(self, name, text):
        return self.write_bytes(name, text.encode("utf-8", "backslashreplace"))

    def write_json(self, name, obj):
        return self.write_text(name, json.dumps(obj, indent=2) + "\n")

    def remove(self, name):
        """Delete file ``name`` if it is there (a link is removed, never its target)."""
        self._check_owned()
        try:
            (self.path / name).unlink(missing_ok=True)
        except OSError as e:
            raise _write_error(self.path / name, e, self.then) from None

    def open_log(self, name="train.log"):
        """A :class:`RunLog` appending to ``name``; a link there is refused, never followed."""
        self._check_owned()
        path = self.target(name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _OPEN_FLAGS, 0o666)
        except OSError as e:
            raise _write_error(path, e, self.then) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between the check and the open
            os.close(fd)
            raise RunFolderError(f"{printable(path)} is not a regular file; remove it")
        return RunLog(path, fd, self.then)

    # ------------------------------------------------------------------ the run's lifecycle

    def state(self):
        """The checked run.json of the folder, or None if there is none (an older run)."""
        return read_run_state(self.path)

    def record_start(self, *, data_dir, download, provenance=None):
        """run.json for a run that starts now: phase ``training``, its data folder (absolute,
        or None for the default), whether it may download and, if given, its
        ``provenance`` (a table of texts: :func:`numpy_mlp.runs.train.run_provenance`)."""
        data_dir = None if data_dir is None else str(Path(data_dir).expanduser().absolute())
        state = {"format": STATE_FORMAT, "format_version": STATE_VERSION, "phase": "training",
                 "data_dir": data_dir, "download": bool(download)}
        self._write_state(state if provenance is None else {**state, "provenance": provenance})

    def set_phase(self, phase):
        state = self.state()
        if state is None:
            raise RuntimeError(f"{self!r}: record_start() comes before set_phase()")
        if phase not in PHASES:
            raise ValueError(f"phase {phase!r}: choose one of {', '.join(PHASES)}")
        self._write_state({**state, "phase": phase})

    def _write_state(self, state):
        self.write_json(STATE_NAME, state)

    @contextmanager
    def writing_up(self):
        """The write-up phase: run.json says ``writeup`` until the block ends without an error,
        then ``done``. SIGINT or SIGTERM in the block (main thread) stops it at once with
        :class:`~numpy_mlp.errors.Interrupted`; every file is whole or absent, and
        ``--resume`` finishes the write-up."""
        self.set_phase("writeup")
        message = (f"stopped during the write-up of {printable(self.path)}; the training is saved: "
                   f"{self.then or resume_then(self.path)} to finish it")

        def stop(signum, frame):
            raise Interrupted(message, signum=signum)

        with catching_stop_signals(stop):
            yield self
        self.set_phase("done")


def read_run_state(folder):
    """The checked ``folder/run.json`` (RunFileError naming the field), or None if absent."""
    path = Path(folder) / STATE_NAME
    if not os.path.lexists(path):
        return None
    fields = Fields(path, RunFileError, STATE_FIX)
    state = fields.mapping(read_json(path, fix=STATE_FIX, follow_links=False), STATE_NAME,
                           keys=("format", "format_version", "phase", "data_dir", "download"))
    if state["format"] != STATE_FORMAT:
        fields.fail("format", state["format"], f"not {STATE_FORMAT!r}")
    fields.integer(state["format_version"], "format_version", low=1, high=STATE_VERSION)
    fields.choice(state["phase"], "phase", PHASES)
    if state["data_dir"] is not None:
        fields.text(state["data_dir"], "data_dir", max_chars=4096)
    if not isinstance(state["download"], bool):
        fields.fail("download", state["download"], "not true or false")
    if "provenance" in state:  # absent in runs of older versions
        for k, v in fields.mapping(state["provenance"], "provenance").items():
            fields.text(v, f"provenance.{k}", max_chars=MAX_PROVENANCE_CHARS)
    return state


def resume_data_dir(folder, recorded, given):
    """The data folder a resumed run reads: ``given`` (--data-dir) if any, else the one the
    run recorded. A recorded folder that is gone is refused (RunFolderError) before
    anything would create it or download into it."""
    if given is not None or recorded is None:
        return given
    if not Path(recorded).is_dir():
        raise RunFolderError(f"--resume {printable(folder)}: the run read its data from "
                             f"{printable(recorded)}, which is gone; pass --data-dir with that "
                             "CIFAR-10 folder (the same images)")
    return recorded
