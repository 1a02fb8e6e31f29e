"""Download the official CIFAR-10 archive and verify it before anyone opens it.

The archive is streamed to ``<dest>/cifar-10-python.tar.gz.part`` while its md5 is
computed; only if the byte count matches ``Content-Length`` and the md5 matches is it
renamed into place. On any failure the ``.part`` file is deleted, so a bad archive is
never left where the loader would find it, and an existing archive is never overwritten.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .errors import DataError

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
_CHUNK = 1 << 20  # bytes read per network call
_TIMEOUT = 60  # seconds without data before giving up


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
) -> Path:
    """Download the CIFAR-10 archive into ``dest_dir`` and return its path.

    ``progress`` shows a progress bar (for terminals); ``log``, a callable taking one line
    of text, gets a plain line when the download starts and one when it is checked (for
    logs and pipes, where a bar would be noise).

    If ``dest_dir/cifar-10-python.tar.gz`` already exists with the expected md5 it is
    returned untouched, without any download.

    Raises
    ------
    DataError : the download failed, was truncated or has the wrong md5 (nothing is left
        behind), or an archive with a different md5 is already there (it is kept).
    """
    dest_dir = Path(dest_dir).expanduser()
    final = dest_dir / ARCHIVE_NAME
    part = dest_dir / (ARCHIVE_NAME + ".part")
    by_hand = (f"download {OFFICIAL_URL} by hand into {dest_dir}, "
               "or pass --data-dir / set NUMPY_MLP_DATA to a folder that has CIFAR-10")
    if final.exists():
        _check_existing(final, md5)
        return final
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        if log:
            log(f"downloading CIFAR-10 (about 170 MB) from {url} into {dest_dir} ...")
        got = _fetch(url, part, progress)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        reason = exc if isinstance(exc, urllib.error.HTTPError) else getattr(exc, "reason", exc)
        raise DataError(f"download of CIFAR-10 from {url} failed ({reason}); {by_hand}") from exc
    except BaseException:  # e.g. Ctrl-C: never leave a partial file behind
        part.unlink(missing_ok=True)
        raise
    if got != md5.lower():
        part.unlink(missing_ok=True)
        raise DataError(f"download of CIFAR-10 from {url} failed: md5 checksum is {got}, "
                        f"expected {md5}; try again, or {by_hand}")
    if final.exists():  # appeared meanwhile (another process): keep it
        part.unlink(missing_ok=True)
        _check_existing(final, md5)
    else:
        os.replace(part, final)
    if log:
        log(f"downloaded {final} (md5 checked)")
    return final


def _fetch(url: str, part: Path, progress: bool) -> str:
    """Stream ``url`` into ``part``; returns the md5 of what was received.

    Raises ``OSError`` if fewer bytes arrive than ``Content-Length`` announced.
    """
    h = hashlib.md5(usedforsecurity=False)
    received = 0
    with urllib.request.urlopen(url, timeout=_TIMEOUT) as resp, open(part, "wb") as out:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc="CIFAR-10", disable=not progress) as bar:
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                h.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise OSError(f"truncated: received {received} of {total} bytes")
    return h.hexdigest()


def _check_existing(final: Path, md5: str) -> None:
    """Raise DataError if the archive already at ``final`` does not have ``md5``."""
    got = md5_of(final)
    if got != md5.lower():
        raise DataError(f"{final} already exists but its md5 is {got}, expected {md5}; "
                        "delete it to download it again")
