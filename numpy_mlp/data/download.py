"""Download an official dataset file (CIFAR-10's archive, ...) and verify it before anyone
opens it.

The file is streamed to ``<dest>/<name>.part`` (``cifar-10-python.tar.gz.part``) while its
md5 is computed; only if the byte count matches ``Content-Length`` and the md5 matches is it
renamed into place. On any failure the ``.part`` file is deleted, so a bad archive is
never left where the loader would find it, and an existing archive is never overwritten.

Three bounds keep a download from hanging or filling the disk, whatever the server does:

- ``timeout`` (:data:`READ_TIMEOUT`): the longest wait for the connection or any one read;
- ``deadline`` (:data:`DEADLINE`): the longest the whole download may take, headers
  included (a server sending a byte every few seconds never trips the read timeout);
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
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..errors import DataError

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
OFFICIAL_BYTES = 170_498_071  # the size of the official archive
ARCHIVE_NAME = "cifar-10-python.tar.gz"
READ_TIMEOUT = 60.0  # seconds without data before giving up
DEADLINE = 3600.0  # seconds for the whole download: 170 MB at 47 kB/s or faster
MAX_BYTES = OFFICIAL_BYTES + OFFICIAL_BYTES // 100  # 1% above the official archive
_CHUNK = 1 << 20  # the most bytes asked of the network at once
_QUEUED = 8  # chunks the helper thread may read ahead of the writer


def md5_of(path: Path) -> str:
    """Hex md5 of a file, read in chunks."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download_cifar10(
    dest_dir: str | os.PathLike,
    url: str = OFFICIAL_URL,
    md5: str = OFFICIAL_MD5,
    progress: bool = True,
    log=None,
    *,
    parents: bool = False,
    timeout: float = READ_TIMEOUT,
    deadline: float = DEADLINE,
    max_bytes: int = MAX_BYTES,
) -> Path:
    """Download the CIFAR-10 archive into ``dest_dir`` and return its path
    (:func:`download_file` of ``cifar-10-python.tar.gz``)."""
    return download_file(dest_dir, ARCHIVE_NAME, url, md5, progress, log, what="CIFAR-10",
                         size="about 170 MB", parents=parents, timeout=timeout,
                         deadline=deadline, max_bytes=max_bytes)


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
    sends a person downloading by hand (default ``url``; CIFAR-10's: :data:`OFFICIAL_URL`).

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
        official_url = OFFICIAL_URL if name == ARCHIVE_NAME else url
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

    Raises ``OSError`` (``TimeoutError`` for the deadline) if the download is too slow or
    too large, or if fewer bytes arrive than ``Content-Length`` announced.
    """
    end = time.monotonic() + deadline
    chunks: queue.Queue = queue.Queue(maxsize=_QUEUED)
    stop = threading.Event()
    helper = threading.Thread(target=_receive, args=(url, timeout, chunks, stop),
                              name="cifar10-download", daemon=True)
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
    finally:
        stop.set()  # the helper stops at its next chunk and closes the connection
    if total is not None and received != total:
        raise OSError(f"truncated: received {received} of {total} bytes")
    return h.hexdigest()


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
    got = md5_of(final)
    if got != md5.lower():
        raise DataError(f"{final} already exists but its md5 is {got}, expected {md5}; "
                        "delete it to download it again")
