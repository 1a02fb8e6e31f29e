"""The study's storage, and which of its RUNNING trials are dead.

Storages (Optuna's own classes), chosen by ``--storage``:

- none: a journal file ``DIR/study.journal`` (``JournalFileBackend``; no server, safe for
  several processes); a path: a journal file there;
- ``redis://...``: the journal on a Redis server (``JournalRedisBackend``; the
  ``numpy-mlp[redis]`` extra installs the client);
- any other URL: ``RDBStorage`` (``postgresql://...`` with ``numpy-mlp[postgres]``,
  ``mysql://...``; ``sqlite://`` only with one worker).

Dead workers. Optuna's heartbeat (``heartbeat_interval``, ``grace_period``) marks FAIL a
RUNNING trial whose worker has not beaten for ``grace_period`` seconds; it runs
``fail_stale_trials`` before every trial, and ``RetryHeartbeatStaleTrialCallback`` (called
``RetryFailedTrialCallback`` before Optuna 4.9) queues the parameters of such a trial
again. Our code covers only what Optuna does not, each shown by a test in
tests/test_search.py:

1. Optuna's journal storages have no heartbeat
   (``test_optuna_journal_storages_have_no_heartbeat``): :class:`HeartbeatJournalStorage`
   gives them one through Optuna's ``BaseHeartbeat`` interface, so that Optuna's own
   heartbeat thread and ``fail_stale_trials`` run it as they do for ``RDBStorage``.
2. The heartbeat judges by time alone, so a worker killed on this machine leaves its
   trial RUNNING for ``grace_period`` seconds
   (``test_a_trial_whose_process_is_gone_fails_at_once``): on every storage, a RUNNING
   trial whose process on this host is gone is stale as well (:func:`_process_gone`).

A FAIL trial does not count towards ``n_trials``, so the study still reaches its target.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

try:
    import fcntl
except ImportError:  # Windows: no lock; two searches creating one SQLite file may clash there
    fcntl = None

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat  # the interface RDBStorage implements
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend, JournalStorage
from optuna.trial import TrialState

from ..errors import UserError
from .journal import bad_entry, check_journal_file

JOURNAL = "study.journal"  # the default storage, in the search's folder
HEARTBEAT = 20  # seconds between heartbeats of a running trial
STALE_AFTER = 120  # a RUNNING trial silent this long is dead (Optuna's grace_period)
RETRIES = 1  # a dead worker's trial runs once more; a config that kills twice is dropped
BEAT = "numpy_mlp:heartbeat"  # system attr of a journal trial: unix time of its last beat
HOST = socket.gethostname()
CREATE_ATTEMPTS = 5  # tries to open a server's new study tables another process is creating
_REPLAY_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, AssertionError)


def open_storage(settings, log=None):
    """The Optuna storage of ``settings``; ``log`` gets the line of a repaired journal."""
    url = settings.storage
    retry = _quiet(RetryHeartbeatStaleTrialCallback, max_retry=RETRIES)
    if url is None or "://" not in url:
        path = Path(url) if url else Path(settings.out) / JOURNAL
        note = check_journal_file(path)
        if note and log:
            log(note)
        try:
            backend = JournalFileBackend(str(path))
        except OSError as e:
            raise UserError(f"search journal {path} cannot be created ({e.strerror}); "
                            f"check the path (--out or --storage)") from None
        return HeartbeatJournalStorage(backend, str(path), retry)
    if url.startswith(("redis://", "rediss://")):
        return _redis_storage(url, retry)
    return _rdb_storage(url, retry)


def _redis_storage(url, retry):
    try:
        import redis
    except ImportError:
        raise UserError(f"--storage {redact(url)}: the redis client is missing; "
                        f"pip install 'numpy-mlp[redis]'") from None
    try:  # the server and the URL's options first, so that their faults are not the journal's
        redis.Redis.from_url(url).ping()
        backend = _quiet(JournalRedisBackend, url)
        return HeartbeatJournalStorage(backend, redact(url), retry, unit="entry")
    except (redis.exceptions.RedisError, ValueError, TypeError) as e:
        raise UserError(f"--storage {redact(url)}: cannot use the Redis server "
                        f"({_reason(e, url)})") from None


def _rdb_storage(url, retry):
    shown = redact(url)
    if url.startswith(("postgresql://", "postgres://")) and not _has_module("psycopg"):
        # SQLAlchemy 2.1 reads postgresql:// as psycopg 3; our [postgres] extra installs psycopg2
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    try:
        with _creation_lock(url):
            return _create_rdb(url, retry)
    except ImportError as e:
        raise UserError(f"--storage {shown}: a database driver is missing ({scrub(e, url)}); "
                        f"install it, e.g. pip install 'numpy-mlp[postgres]'") from None
    except Exception as e:  # sqlalchemy's errors: bad URL, server down, wrong password
        raise UserError(f"--storage {shown}: cannot open the study storage "
                        f"({_reason(e, url)})") from None


def _create_rdb(url, retry, attempts=CREATE_ATTEMPTS):
    """Optuna's RDBStorage on ``url``, tried again while another process is creating its
    tables (on a server; a SQLite file is created under :func:`_creation_lock`)."""
    for attempt in range(attempts):
        try:
            return _quiet(_DeadWorkerRDBStorage, url, heartbeat_interval=HEARTBEAT,
                          grace_period=STALE_AFTER, heartbeat_stale_trial_callback=retry)
        except Exception as e:  # sqlalchemy's IntegrityError, OperationalError, ...
            raced = re.search(r"already exists|UNIQUE constraint|duplicate key", str(e))
            if not raced or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


@contextmanager
def _creation_lock(url):
    """For a SQLite file, hold an exclusive lock on its folder while its tables are created:
    two searches creating one new file at once would otherwise both create them, and one
    fail ("table already exists", "UNIQUE constraint failed: alembic_version")."""
    path = _sqlite_file(url)
    fd = None
    if path and fcntl is not None:
        try:
            fd = os.open(Path(path).resolve().parent, os.O_RDONLY)
        except OSError:  # no such folder: SQLite says what is wrong
            fd = None
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:  # a file system without locks: the retry of _create_rdb is left
                os.close(fd)
                fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def _sqlite_file(url):
    """The database file of a ``sqlite://`` URL; "" for an in-memory database; None for
    another URL."""
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url  # Optuna's RDBStorage needs SQLAlchemy anyway

    try:
        u = make_url(url)
    except Exception:  # a bad URL: RDBStorage says so
        return None
    memory = not u.database or u.database == ":memory:" or u.query.get("mode") == "memory"
    return "" if memory else u.database


def check_storage(settings):
    """Refuse a storage that cannot serve ``settings.workers`` writers, or that no other
    process or thread sees (an in-memory SQLite database)."""
    url = settings.storage or ""
    if _sqlite_file(url) == "":
        raise UserError(f"--storage {redact(url)} is a database in memory, which the heartbeat "
                        f"thread and every worker would see empty; give a file, e.g. "
                        f"--storage sqlite:///{settings.out}/study.db, or leave out --storage "
                        f"to use a journal file")
    if url.startswith("sqlite") and settings.workers > 1:
        raise UserError("SQLite is not safe for several writers (Optuna's advice); "
                        "leave out --storage to use a journal file")


# query parameters whose value is a credential: password=, passwd=, pwd=, sslpassword=,
# secret=, token=, access_token=, api_key=, auth=... (their names, case-insensitive)
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|key|auth|credential", re.IGNORECASE)
HIDDEN = "***"


def redact(url):
    """The storage URL ``url`` as shown in messages and saved in files: the password of its
    user part (``user:pw@``, ``:pw@``) and the value of every query parameter that holds a
    credential (``?password=``, ``&Token=``, ...) replaced by ``***``; a path is returned as
    it is.

    The one redaction of a storage URL: every message, log line and file that names one
    goes through it (or :func:`scrub` for a text that may quote it)."""
    return _redact_parts(url)[0]


def scrub(text, url):
    """``text`` (e.g. a database driver's message) with every credential of ``url`` in it,
    as written or percent-decoded, replaced by ``***``; the URL itself shown redacted."""
    text = str(text)
    if url:
        shown, secrets = _redact_parts(url)
        text = text.replace(url, shown)
        for secret in sorted(secrets, key=len, reverse=True):  # whole words: "pw" is no
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])",  # "pwd"'s
                          HIDDEN, text)
    return text


def _redact_parts(url):
    """``(redacted url, the credentials found in it)``; the URL is never parsed and rebuilt,
    so that what is shown is what was given, credentials aside."""
    url = str(url)
    if "://" not in url:
        return url, set()
    secrets = set()
    scheme, rest = url.split("://", 1)
    head, sep, query = rest.partition("?")
    if "@" in head:  # user info: everything before the last @ of the part before the query
        creds, host = head.rsplit("@", 1)
        user, colon, password = creds.partition(":")
        if colon and password:
            secrets.add(password)
            creds = f"{user}:{HIDDEN}"
        head = f"{creds}@{host}"
    if sep:
        params = []
        for param in re.split(r"([&;#])", query):
            key, eq, value = param.partition("=")
            if eq and value and _SECRET_KEY.search(unquote(key)):
                secrets.add(value)
                param = f"{key}={HIDDEN}"
            params.append(param)
        query = "".join(params)
    secrets |= {unquote(s) for s in secrets}
    return f"{scheme}://{head}{sep}{query}", {s for s in secrets if s}


def _reason(e, url):
    """``Type: first line of the message`` of a storage's exception ``e``, without the
    credentials of ``url``."""
    lines = scrub(e, url).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def _quiet(make, *args, **kwargs):
    """``make(*args, **kwargs)`` without Optuna's experimental-feature warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return make(*args, **kwargs)


def _has_module(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


# --------------------------------------------------------------------------- storages

class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's JournalStorage with a heartbeat, and its entries named when damaged.

    ``record_heartbeat`` writes the time as the trial's system attr :data:`BEAT`; a
    RUNNING trial is stale when it has been silent (since its start or its last beat) for
    :data:`STALE_AFTER` seconds, or when :func:`_process_gone`.
    """

    def __init__(self, backend, where, retry=None, *, unit="line",
                 heartbeat_interval=HEARTBEAT, grace_period=STALE_AFTER):
        self.heartbeat_interval, self.grace_period, self._retry = (
            heartbeat_interval, grace_period, retry)
        try:
            super().__init__(backend)
        except json.JSONDecodeError:  # a backend that yields entries as it reads them (Redis)
            raise bad_entry(where, self._replay_result.log_number_read + 1, "is not JSON",
                            unit) from None
        except _REPLAY_ERRORS as e:  # an entry of a known kind whose fields are wrong
            raise bad_entry(where, self._replay_result.log_number_read,
                            f"Optuna cannot replay it ({type(e).__name__}: {e})", unit) from None

    def record_heartbeat(self, trial_id):
        try:
            self.set_trial_system_attr(trial_id, BEAT, time.time())
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # marked FAIL elsewhere; the worker finds out at its next report

    def _get_stale_trial_ids(self, study_id):
        now = time.time()
        return [t._trial_id for t in self.get_all_trials(study_id, deepcopy=False,
                                                         states=(TrialState.RUNNING,))
                if now - _last_sign_of_life(t) > self.grace_period or _process_gone(t)]

    def get_heartbeat_interval(self):
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):
        return self._retry


class _DeadWorkerRDBStorage(RDBStorage):
    """Optuna's RDBStorage, whose stale trials include those of :func:`_process_gone`."""

    def _get_stale_trial_ids(self, study_id):
        gone = {t._trial_id for t in self.get_all_trials(study_id, deepcopy=False,
                                                          states=(TrialState.RUNNING,))
                if _process_gone(t)}
        return sorted(set(super()._get_stale_trial_ids(study_id)) | gone)


def _last_sign_of_life(trial):
    """Unix time of the trial's start or its last beat (a beat copied from the trial it
    retries is older than its start)."""
    beat = trial.system_attrs.get(BEAT)
    start = trial.datetime_start.timestamp()
    return max(start, beat) if isinstance(beat, (int, float)) else start


# --------------------------------------------------------------------------- dead workers

def worker_identity(trial_number):
    """Who runs trial ``trial_number``; recorded on it so that its death can be seen."""
    return {"host": HOST, "pid": os.getpid(), "start": _process_start(os.getpid()),
            "trial": trial_number}


def _process_gone(trial):
    """Whether the process on this host that runs the RUNNING ``trial`` is gone."""
    w = trial.user_attrs.get("worker")
    if not (isinstance(w, dict) and w.get("trial") == trial.number and w.get("host") == HOST
            and isinstance(w.get("pid"), int) and w["pid"] > 0):
        return False  # not tagged yet, tagged for the trial it retries, or another host's
    start = _process_start(w["pid"])
    return start is None or bool(start and w.get("start") and start != w["start"])


def _process_start(pid):
    """Start time of process ``pid`` in clock ticks (Linux), 0 elsewhere; None if gone.

    A pid reused by a later process has another start time, so it is not taken for the
    worker that had it.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except FileNotFoundError:
        return None
    except OSError:
        try:
            os.kill(pid, 0)
            return 0
        except ProcessLookupError:
            return None
        except PermissionError:
            return 0


def fail_dead_trials(study):
    """Mark FAIL (and queue again, once) each RUNNING trial that is stale; returns their
    numbers."""
    def failed():
        return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}

    before = failed()
    _quiet(optuna.storages.fail_stale_trials, study)
    return sorted(failed() - before)
