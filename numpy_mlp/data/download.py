"""Download an official dataset file and verify it before anyone opens it; and what a loader
does about a file missing from its data folder (:class:`Fetch`), the same for every format.

The file is streamed to ``<dest>/<name>.part`` (``cifar-10-python.tar.gz.part``) while its
md5 is computed; only if the byte count matches ``Content-Length`` and the md5 matches is it
renamed into place. On any failure the ``.part`` file is deleted, so a bad archive is
never left where the loader would find it, and an existing archive is never overwritten.

Three bounds keep a download from hanging or filling the disk, whatever the server does:

- ``timeout`` (:data:`READ_TIMEOUT`): the longest wait for the connection or any one read;
- ``deadline`` (:data:`DEADLINE`): the longest the whole download may take, headers
  included (a server sending a byte every few seconds never trips the read timeout). A
  download that cannot make it is stopped early: from 1/:data:`JUDGED_AFTER` of the deadline
  on (a minute of the default hour), once its average rate so far would need longer than the
  time left for the bytes ``Content-Length`` announced, it fails as too slow;
- ``max_bytes`` (:data:`MAX_BYTES`): the most bytes accepted, announced or received (an
  endless body stops there).

The network is read by a helper thread that hands chunks over a small queue, so that the
caller's thread keeps the deadline even while the helper waits inside the HTTP layer. After
a failure the helper hangs up at its next chunk; one held inside the headers by a dripping
server ends with the connection (a daemon thread: it holds no file and never delays exit).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import queue
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..errors import DataError, printable
from ..files.regular import kind_of, open_regular

READ_TIMEOUT = 60.0  # seconds without data before giving up
DEADLINE = 3600.0  # seconds for the whole download: 170 MB at 47 kB/s or faster
JUDGED_AFTER = 60  # the rate is judged from deadline / JUDGED_AFTER on (module doc)
# 1% above the largest official file, CIFAR-10's archive of 170,498,071 bytes
# (numpy_mlp.data.cifar10.OFFICIAL_BYTES; tests/test_download.py holds the two together)
MAX_BYTES = 172_203_051
_CHUNK = 1 << 20  # the most bytes asked of the network at once
_QUEUED = 8  # chunks the helper thread may read ahead of the writer


def _md5_of(path: Path) -> str:
    """Hex md5 of a file, read in chunks."""
    h = hashlib.md5(usedforsecurity=False)
    with open_regular(path, error=DataError, fix="delete it to download it again") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class OfficialFile:
    """One file as its publishers serve it, and its md5."""

    name: str
    url: str
    md5: str


@dataclass(frozen=True)
class Fetch:
    """What a loader may do about an official file missing from its data folder; the same
    for every dataset format.

    Args:
        download: fetch a missing file (False, the CLI's ``--offline``: never touch the
            network).
        create: a missing data folder may be created to download into (False: for a folder
            recorded by an earlier run, gone means moved).
        progress: show a progress bar while downloading.
        log: callable taking one line of text: told when a download starts and ends.
        sources: ``{file name: (url, md5)}`` instead of the official ones (tests, mirrors).
        deadline: seconds the whole download may take (:data:`DEADLINE`, module doc).
    """

    download: bool = True
    create: bool = True
    progress: bool = True
    log: Callable[[str], None] | None = None
    sources: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    deadline: float = DEADLINE

    def __call__(self, folder: Path, official: OfficialFile, *, what: str, parents: bool,
                 size: str = "a few MB or more", offline: str | None = None) -> Path:
        """``folder/official.name``: the file there, else downloaded with its md5 checked.

        ``what`` names the dataset in messages ("MNIST"); ``parents``: the folder's missing
        parents may be created too (the default data folder's way); ``size`` is told in the
        log line; ``offline`` is the message when the file is missing and downloads are off
        (default: the file is missing, download it by hand).

        Raises:
            DataError: the file is missing and downloads are off; the folder is missing and
                may not be created; or the download failed (:func:`download_file`).
        """
        path = folder / official.name
        if path.exists():
            return path
        # the first part of the folder's path that exists must be a folder: a file there
        # (--data-dir FILE, NUMPY_MLP_DATA=FILE) can hold no dataset and no download
        there = next((p for p in (folder, *folder.parents) if os.path.lexists(p)), None)
        if there is not None and not there.is_dir():
            raise DataError(f"the {what} folder {printable(folder)}: {printable(there)} is a file, "
                            f"not a folder; pass --data-dir (or set NUMPY_MLP_DATA to) a folder")
        if not self.download:
            raise DataError(offline or f"{what}: {path} is missing; download {official.url} "
                                       f"into {folder}, or pass --data-dir with the folder "
                                       "that has it")
        if not self.create and not folder.is_dir():
            raise DataError(f"the {what} folder {folder} does not exist (it is not created "
                            f"again here); pass --data-dir with the folder that has {what}")
        url, md5 = self.sources.get(official.name, (official.url, official.md5))
        return download_file(folder, official.name, url, md5, self.progress, self.log,
                             what=what, size=size, official_url=official.url, parents=parents,
                             deadline=self.deadline)


def _check_part(part, by_hand):
    """Refuse to stream into ``part`` when something other than a regular file has its name:
    opening a FIFO for writing waits for a reader for ever, and a link or a device would be
    written through."""
    try:
        mode = os.lstat(part).st_mode
    except OSError:
        return  # nothing there (or unreachable: the download's own open says why)
    if not stat.S_ISREG(mode):
        raise DataError(f"{printable(part)}, where the download is written, is "
                        f"{kind_of(mode)}; remove it, or {by_hand}")


def download_file(
    dest_dir: str | os.PathLike,
    name: str,
    url: str,
    md5: str,
    progress: bool = True,
    log=None,
    *,
    what: str,
    size: str,
    official_url: str | None = None,
    parents: bool = False,
    timeout: float = READ_TIMEOUT,
    deadline: float = DEADLINE,
    max_bytes: int = MAX_BYTES,
) -> Path:
    """Download the file ``name`` of dataset ``what`` (e.g. "MNIST") into ``dest_dir``.

    ``size`` is told in the log line ("about 170 MB"); ``official_url`` is where a message
    sends a person downloading by hand (default ``url``: a mirror's is not the official one).

    ``progress`` shows a progress bar (for terminals); ``log``, a callable taking one line
    of text, gets a plain line when the download starts and one when it is checked (for
    logs and pipes, where a bar would be noise).

    ``dest_dir`` is created if missing, but its missing parents only with ``parents=True``
    (for the default cache folder): a mistyped or vanished path never becomes a folder tree.
    ``timeout``, ``deadline`` (seconds) and ``max_bytes`` bound the download (module doc).

    If ``dest_dir/name`` already exists with the expected md5 it is
    returned untouched, without any download.

    Raises:
        DataError: the download failed, was truncated, too slow or too large, or has the wrong
            md5 (nothing is left behind); the parent of ``dest_dir`` is missing (nothing is
            created); or an archive with a different md5 is already there (it is kept).
    """
    dest_dir = Path(dest_dir).expanduser()
    final = dest_dir / name
    part = dest_dir / (name + ".part")
    if official_url is None:
        official_url = url
    by_hand = (f"download {official_url} by hand into {dest_dir}, "
               f"or pass --data-dir / set NUMPY_MLP_DATA to a folder that has {what}")
    if final.exists():
        _check_existing(final, md5)
        return final
    if not parents and not dest_dir.is_dir() and not dest_dir.parent.is_dir():
        raise DataError(f"cannot download {what} into {dest_dir}: its parent folder "
                        f"{dest_dir.parent} does not exist, and a folder tree is not created "
                        f"for it; check the path, create {dest_dir.parent}, or pass "
                        f"--data-dir / set NUMPY_MLP_DATA to a folder that has {what}")
    _check_part(part, by_hand)
    try:
        dest_dir.mkdir(parents=parents, exist_ok=True)
        if log:
            log(f"downloading {what} ({size}) from {url} into {dest_dir} ...")
        got = _fetch(url, part, progress, what=what, timeout=timeout, deadline=deadline,
                     max_bytes=max_bytes)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        reason = exc if isinstance(exc, urllib.error.HTTPError) else getattr(exc, "reason", exc)
        raise DataError(f"download of {what} from {url} failed ({reason}); {by_hand}") from exc
    except BaseException:  # e.g. Ctrl-C: never leave a partial file behind
        part.unlink(missing_ok=True)
        raise
    if got != md5.lower():
        part.unlink(missing_ok=True)
        raise DataError(f"download of {what} from {url} failed: md5 checksum is {got}, "
                        f"expected {md5}; try again, or {by_hand}")
    if final.exists():  # appeared meanwhile (another process): keep it
        part.unlink(missing_ok=True)
        _check_existing(final, md5)
    else:
        os.replace(part, final)
    if log:
        log(f"downloaded {final} (md5 checked)")
    return final


def _fetch(url: str, part: Path, progress: bool, *, what: str, timeout: float, deadline: float,
           max_bytes: int) -> str:
    """Stream ``url`` into ``part`` within ``deadline`` and ``max_bytes``; returns its md5.

    Raises ``OSError`` (``TimeoutError`` for the deadline, or as soon as the rate so far
    cannot meet it) if the download is too slow or too large, or if fewer bytes arrive than
    ``Content-Length`` announced.
    """
    start = time.monotonic()
    end = start + deadline
    chunks: queue.Queue = queue.Queue(maxsize=_QUEUED)
    stop = threading.Event()
    helper = threading.Thread(target=_receive, args=(url, timeout, chunks, stop),
                              name="dataset-download", daemon=True)
    helper.start()
    received = 0

    def next_item():
        try:
            kind, value = chunks.get(timeout=max(0.0, end - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"not finished within the deadline of {deadline:g} s, "
                               f"{received:,} bytes received") from None
        if kind == "error":
            raise value
        return kind, value

    try:
        _, length = next_item()  # the response's Content-Length header, or None
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > max_bytes:
            raise OSError(f"the server announces {total:,} bytes, more than the "
                          f"{max_bytes:,} accepted")
        h = hashlib.md5(usedforsecurity=False)
        with open(part, "wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                           unit_divisor=1024, desc=what,
                                           disable=not progress) as bar:
            while (item := next_item())[0] == "data":
                chunk = item[1]
                received += len(chunk)
                if received > max_bytes:
                    raise OSError(f"the server sent more than the {max_bytes:,} bytes "
                                  "accepted")
                out.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
                if total is not None:
                    _judge_rate(received, total, time.monotonic() - start, deadline)
    finally:
        stop.set()  # the helper stops at its next chunk and closes the connection
    if total is not None and received != total:
        raise OSError(f"truncated: received {received} of {total} bytes")
    return h.hexdigest()


def _judge_rate(received: int, total: int, elapsed: float, deadline: float) -> None:
    """Raise TimeoutError if, at the mean rate of ``received`` bytes in ``elapsed`` seconds,
    the rest of ``total`` would not arrive before ``deadline``; judged only after
    ``deadline / JUDGED_AFTER`` seconds, so that a slow start is not mistaken for a slow line.
    """
    if elapsed < deadline / JUDGED_AFTER or received >= total:
        return
    if (total - received) * elapsed > received * (deadline - elapsed):
        raise TimeoutError(f"too slow: {received:,} of {total:,} bytes in {elapsed:.0f} s, "
                           f"{received / elapsed / 1000:.1f} kB/s, cannot finish within the "
                           f"deadline of {deadline:g} s")


def _receive(url: str, timeout: float, chunks: queue.Queue, stop: threading.Event) -> None:
    """The helper thread: put ``("length", header)``, then ``("data", bytes)`` ... and
    ``("end", None)`` on ``chunks``, or ``("error", exception)``; give up once ``stop`` is set.
    """
    def put(item) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            if not put(("length", resp.headers.get("Content-Length"))):
                return
            while chunk := resp.read1(_CHUNK):  # one network read: the deadline is checked
                if not put(("data", chunk)):
                    return
        put(("end", None))
    except BaseException as exc:  # handed to the caller's thread, which raises it
        put(("error", exc))


def _check_existing(final: Path, md5: str) -> None:
    """Raise DataError if the archive already at ``final`` does not have ``md5``."""
    got = _md5_of(final)
    if got != md5.lower():
        raise DataError(f"{final} already exists but its md5 is {got}, expected {md5}; "
                        "delete it to download it again")
