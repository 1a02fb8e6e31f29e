"""Tests for numpy_mlp.data.download and reading archives, against a local HTTP server."""

import hashlib
import http.server
import io
import os
import tarfile
import threading
import time

import numpy as np
import pytest
from fixtures_cifar import write_archive, write_cifar_dir

from numpy_mlp.data import cifar10, download
from numpy_mlp.data.cifar10 import ARCHIVE_NAME, download_cifar10, load_cifar10
from numpy_mlp.errors import DataError


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.routes[path] = (body, content_length)``; a larger length truncates.

    ``body`` may instead be a callable ``body(handler)`` that writes the whole response.
    """

    protocol_version = "HTTP/1.0"  # one request per connection, closed after the body

    def do_GET(self):
        self.server.hits.append(self.path)
        if self.path not in self.server.routes:
            self.send_error(404)
            return
        body, length = self.server.routes[self.path]
        if callable(body):  # a misbehaving server: body(handler) writes the whole response
            try:
                body(self)
            except OSError:  # the client hung up, as it should
                pass
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    """A threaded HTTP server on 127.0.0.1 (port 0). ``serve(path, body, length=None) -> url``."""
    monkeypatch.setenv("no_proxy", "*")  # never route 127.0.0.1 through a proxy
    monkeypatch.setenv("NO_PROXY", "*")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes, httpd.hits = {}, []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def serve(path, body, length=None):
        httpd.routes[path] = (body, len(body) if length is None and not callable(body) else length)
        return f"http://127.0.0.1:{httpd.server_address[1]}{path}"

    serve.hits = httpd.hits
    yield serve
    httpd.shutdown()
    httpd.server_close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def archive_bytes(tmp_path_factory):
    """A good tiny CIFAR-10 archive (py2-style pickles, like the official one), as bytes."""
    work = tmp_path_factory.mktemp("archive")
    arrays = write_cifar_dir(work / "src", "py2")
    path = write_archive(work / "good.tar.gz", work / "src")
    return path.read_bytes(), arrays


def test_download_and_load(tmp_path, server, archive_bytes):
    body, arrays = archive_bytes
    url = server("/cifar.tar.gz", body)
    dest = tmp_path / "dest"  # does not exist yet: created
    data = load_cifar10(dest, url=url, md5=md5(body), progress=False, val_size=10)
    assert (len(data.X_train), len(data.X_val), len(data.X_test)) == (90, 10, 10)
    np.testing.assert_array_equal(data.X_test, arrays["test_batch"][0])
    assert data.source == str(dest / ARCHIVE_NAME)
    assert sorted(os.listdir(dest)) == [ARCHIVE_NAME]  # no .part, nothing extracted
    assert (dest / ARCHIVE_NAME).read_bytes() == body

    # second load reads the archive already there, without downloading again
    load_cifar10(dest, url=url, md5=md5(body), progress=False, val_size=10)
    assert server.hits == ["/cifar.tar.gz"]


def test_progress_bar_does_not_break_download(tmp_path, server, archive_bytes):
    body, _ = archive_bytes
    url = server("/cifar.tar.gz", body)
    path = download_cifar10(tmp_path, url=url, md5=md5(body), progress=True)
    assert path.read_bytes() == body


def test_wrong_checksum_leaves_nothing(tmp_path, server, archive_bytes):
    body, _ = archive_bytes
    url = server("/cifar.tar.gz", body)
    with pytest.raises(DataError, match="md5") as err:
        load_cifar10(tmp_path, url=url, md5="0" * 32, progress=False)
    assert url in str(err.value) and "--data-dir" in str(err.value)
    assert os.listdir(tmp_path) == []


def test_truncated_download_leaves_nothing(tmp_path, server, archive_bytes):
    body, _ = archive_bytes
    url = server("/cifar.tar.gz", body[: len(body) // 2], length=len(body))
    with pytest.raises(DataError, match="failed") as err:
        download_cifar10(tmp_path, url=url, md5=md5(body), progress=False)
    assert url in str(err.value)
    assert os.listdir(tmp_path) == []


def test_http_error_says_how_to_get_the_data(tmp_path, server):
    url = server("/other", b"").replace("/other", "/missing.tar.gz")
    with pytest.raises(DataError) as err:
        load_cifar10(tmp_path, url=url, progress=False)
    msg = str(err.value)
    assert msg.startswith(f"download of CIFAR-10 from {url} failed") and "404" in msg
    assert "--data-dir" in msg and "\n" not in msg
    assert os.listdir(tmp_path) == []


def test_connection_refused(tmp_path):
    with pytest.raises(DataError, match="failed"):
        download_cifar10(tmp_path, url="http://127.0.0.1:1/x.tar.gz", progress=False)
    assert os.listdir(tmp_path) == []


def test_existing_archive_is_never_overwritten(tmp_path, server, archive_bytes):
    body, _ = archive_bytes
    url = server("/cifar.tar.gz", b"something else")
    (tmp_path / ARCHIVE_NAME).write_bytes(body)
    assert download_cifar10(tmp_path, url=url, md5=md5(body), progress=False).read_bytes() == body
    with pytest.raises(DataError, match="already exists"):  # a different archive: kept
        download_cifar10(tmp_path, url=url, md5="0" * 32, progress=False)
    assert (tmp_path / ARCHIVE_NAME).read_bytes() == body
    assert server.hits == []


# ------------------------------------------------------------------ hostile or broken archives


def _info(name, kind=tarfile.REGTYPE, size=0, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    return info


def _hostile(tmp_path, case):
    """A tiny archive with one hostile member (and the good files, except where replaced)."""
    src = tmp_path / "src"
    write_cifar_dir(src, "py3")
    name = "cifar-10-batches-py/data_batch_1"
    extra = {
        "dotdot": [_info("../x", size=3)],
        "dotdot inside": [_info("cifar-10-batches-py/../../x", size=3)],
        "absolute": [_info("/tmp/numpy_mlp_test_x", size=3)],
        "symlink": [_info(name, tarfile.SYMTYPE, linkname="/etc/passwd")],
        "hardlink": [_info(name, tarfile.LNKTYPE, linkname="cifar-10-batches-py/test_batch")],
        "directory": [_info(name, tarfile.DIRTYPE)],
        "fifo": [_info(name, tarfile.FIFOTYPE)],
    }[case]
    if case in ("symlink", "hardlink", "directory", "fifo"):
        (src / "data_batch_1").unlink()  # the hostile member stands in for it
    return write_archive(tmp_path / "hostile.tar.gz", src, extra)


HOSTILE = ["dotdot", "dotdot inside", "absolute", "symlink", "hardlink", "directory", "fifo"]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_archive_is_refused_after_download(tmp_path, server, case):
    body = _hostile(tmp_path, case).read_bytes()
    url = server("/cifar.tar.gz", body)
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match="not the official archive"):
        load_cifar10(dest, url=url, md5=md5(body), progress=False)
    assert sorted(os.listdir(dest)) == [ARCHIVE_NAME]  # nothing extracted
    assert not (tmp_path / "x").exists() and not os.path.exists("/tmp/numpy_mlp_test_x")


@pytest.mark.parametrize("case", ["symlink", "dotdot"])
def test_hostile_archive_in_folder_is_refused(tmp_path, case):
    folder = tmp_path / "data"
    folder.mkdir()
    _hostile(tmp_path, case).rename(folder / ARCHIVE_NAME)
    with pytest.raises(DataError, match=ARCHIVE_NAME):
        load_cifar10(folder, download=False)
    assert os.listdir(folder) == [ARCHIVE_NAME]


def test_symlink_added_after_a_good_member_wins_and_is_refused(tmp_path):
    """tarfile takes the last member of a name; a later symlink must not slip through."""
    src = tmp_path / "src"
    write_cifar_dir(src, "py3")
    name = "cifar-10-batches-py/test_batch"
    folder = tmp_path / "data"
    folder.mkdir()
    write_archive(folder / ARCHIVE_NAME, src, [_info(name, tarfile.SYMTYPE, linkname="x")])
    with pytest.raises(DataError, match="test_batch is not a regular file"):
        load_cifar10(folder, download=False)


def test_archive_missing_a_member_is_named(tmp_path):
    src = tmp_path / "src"
    write_cifar_dir(src, "py3")
    (src / "data_batch_5").unlink()
    folder = tmp_path / "data"
    folder.mkdir()
    write_archive(folder / ARCHIVE_NAME, src)
    with pytest.raises(DataError, match="data_batch_5"):
        load_cifar10(folder, download=False)


@pytest.mark.parametrize("content", ["random", "truncated"])
def test_corrupt_archive_is_refused(tmp_path, archive_bytes, content):
    body, _ = archive_bytes
    data = {"random": os.urandom(5000), "truncated": body[: len(body) // 2]}[content]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / ARCHIVE_NAME).write_bytes(data)
    with pytest.raises(DataError, match=ARCHIVE_NAME):
        load_cifar10(tmp_path / "data", download=False)


def test_archive_member_is_read_not_extracted(tmp_path, archive_bytes, monkeypatch):
    """Reading must never call any of tarfile's extraction methods."""
    body, _ = archive_bytes
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / ARCHIVE_NAME).write_bytes(body)

    def forbidden(*args, **kwargs):
        raise AssertionError("tarfile extraction was called")

    monkeypatch.setattr(tarfile.TarFile, "extract", forbidden)
    monkeypatch.setattr(tarfile.TarFile, "extractall", forbidden)
    load_cifar10(tmp_path / "data", download=False, val_size=0)
    assert os.listdir(tmp_path / "data") == [ARCHIVE_NAME]


def test_part_file_is_removed_on_interrupt(tmp_path, server, archive_bytes, monkeypatch):
    body, _ = archive_bytes
    url = server("/cifar.tar.gz", body)

    class InterruptedBar(download.tqdm):
        def update(self, n=1):
            assert (tmp_path / (ARCHIVE_NAME + ".part")).exists()
            raise KeyboardInterrupt  # Ctrl-C in the middle of the download

    monkeypatch.setattr(download, "tqdm", InterruptedBar)
    with pytest.raises(KeyboardInterrupt):
        download_cifar10(tmp_path, url=url, md5=md5(body), progress=False)
    assert os.listdir(tmp_path) == []


def test_short_body_without_a_protocol_error_is_still_caught(tmp_path, monkeypatch):
    """Even if the HTTP layer did not notice, fewer bytes than Content-Length is a failure."""

    class ShortResponse(io.BytesIO):
        headers = {"Content-Length": "100"}

    monkeypatch.setattr(download.urllib.request, "urlopen",
                        lambda url, timeout: ShortResponse(b"x" * 50))
    with pytest.raises(DataError, match="received 50 of 100 bytes"):
        download_cifar10(tmp_path, url="http://example.invalid/c.tar.gz",
                                  md5=md5(b"x" * 50), progress=False)
    assert os.listdir(tmp_path) == []


def test_off_a_terminal_a_download_is_two_plain_lines(tmp_path, server, archive_bytes, capsys):
    body, _ = archive_bytes
    url = server("/cifar.tar.gz", body)
    lines = []
    load_cifar10(tmp_path / "d", url=url, md5=md5(body), progress=False, val_size=10,
                 log=lines.append)
    assert len(lines) == 2
    assert (lines[0].startswith("downloading CIFAR-10") and url in lines[0]
            and str(tmp_path / "d") in lines[0])
    assert lines[1] == f"downloaded {tmp_path / 'd' / ARCHIVE_NAME} (md5 checked)"
    assert capsys.readouterr().err == ""  # no progress bar
    lines.clear()
    load_cifar10(tmp_path / "d", url=url, md5=md5(body), progress=False, val_size=10,
                 log=lines.append)
    assert lines == []  # already there: nothing downloaded, nothing said


# ------------------------------------------------------------------ slow, endless and oversized


def _drip_body(handler, interval=0.2, seconds=20):
    """Headers at once, then one byte of a 1000-byte body every ``interval`` seconds."""
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        handler.wfile.write(b"x")
        time.sleep(interval)


def _drip_headers(handler, interval=0.2, seconds=3):
    """The status line and headers themselves, one byte every ``interval`` seconds."""
    end = time.monotonic() + seconds
    for byte in b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\nX-Slow: " + b"y" * 10_000:
        if time.monotonic() > end:
            break
        handler.wfile.write(bytes([byte]))
        time.sleep(interval)


def _endless(handler, seconds=20):
    """A body without Content-Length that never ends (until the client hangs up)."""
    handler.send_response(200)
    handler.end_headers()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        handler.wfile.write(b"z" * 65536)


def _helper_threads():
    return [t for t in threading.enumerate() if t.name == "dataset-download"]


@pytest.mark.parametrize("respond", [_drip_body, _drip_headers], ids=["body", "headers"])
def test_a_server_dripping_bytes_fails_by_the_deadline(tmp_path, server, respond):
    """A byte every 0.2 s never trips a 5 s read timeout; the 1 s deadline stops it, and a
    body whose announced size cannot arrive in time at its rate stops before it.

    The helper thread hangs up at its next chunk of body; inside the headers it is held by
    the HTTP layer until the server stops (3 s here), then it ends too.
    """
    url = server("/slow.tar.gz", respond)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError) as err:
        download_cifar10(tmp_path, url=url, progress=False, timeout=5, deadline=1.0)
    msg = str(err.value)
    why = ("too slow: " if respond is _drip_body
           else "not finished within the deadline of 1 s")
    assert msg.startswith(f"download of CIFAR-10 from {url} failed ({why}"), msg
    assert "\n" not in msg and "--data-dir" in msg and "by hand" in msg
    assert os.listdir(tmp_path) == ["notes.txt"]  # no .part; what was there stays
    deadline = time.monotonic() + 4
    while _helper_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _helper_threads()


def test_load_cifar10_stops_a_trickle_long_before_its_deadline(tmp_path, server):
    """The library path: a byte every 0.5 s of a 1000-byte body would take 500 s; with a
    2 minute deadline the rate is judged from 2 s on (1/60 of it) and the load stops then,
    naming the manual download, with no ``.part`` left."""
    url = server("/trickle.tar.gz", lambda h: _drip_body(h, interval=0.5, seconds=60))
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError) as err:
        load_cifar10(tmp_path, url=url, progress=False, deadline=120.0)
    msg = str(err.value)
    assert msg.startswith(f"download of CIFAR-10 from {url} failed (too slow: "), msg
    assert "cannot finish within the deadline of 120 s" in msg and "\n" not in msg
    assert f"download {cifar10.OFFICIAL_URL} by hand into {tmp_path}" in msg
    assert os.listdir(tmp_path) == ["notes.txt"]


@pytest.mark.parametrize("received, elapsed, too_slow", [
    (1000, 59.0, False),        # not judged before deadline / 60
    (1000, 60.0, True),         # 16.7 B/s: 999,000 bytes left need ~16 hours
    (20_000, 60.0, False),      # 333 B/s: 980,000 bytes left need 2,940 s < 3,540 s left
    (1_000_000, 3599.0, False),  # all there
])
def test_the_rate_is_judged_against_the_time_left(received, elapsed, too_slow):
    judge = lambda: download._judge_rate(received, 1_000_000, elapsed, 3600.0)  # noqa: E731
    if too_slow:
        with pytest.raises(TimeoutError, match="too slow"):
            judge()
    else:
        judge()


def test_an_endless_body_stops_at_the_size_cap(tmp_path, server):
    url = server("/endless.tar.gz", _endless)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError) as err:
        download_cifar10(tmp_path, url=url, progress=False, max_bytes=300_000)
    msg = str(err.value)
    assert "the server sent more than the 300,000 bytes accepted" in msg and "\n" not in msg
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_an_announced_size_above_the_cap_is_refused_before_the_body(tmp_path, server):
    url = server("/huge.tar.gz", b"", length=10**12)
    with pytest.raises(DataError, match="announces 1,000,000,000,000 bytes, more than the "
                                        f"{download.MAX_BYTES:,} accepted"):
        download_cifar10(tmp_path, url=url, progress=False)
    assert os.listdir(tmp_path) == []


def test_the_bounds_fit_the_official_archive():
    """The cap is a little above the official archive; the deadline allows a slow line."""
    assert download.MAX_BYTES == cifar10.OFFICIAL_BYTES + cifar10.OFFICIAL_BYTES // 100
    assert cifar10.OFFICIAL_BYTES / download.DEADLINE < 100_000  # bytes per second needed
    assert download.READ_TIMEOUT < download.DEADLINE


def test_a_verified_archive_survives_a_hostile_server(tmp_path, server, archive_bytes):
    """Nothing already downloaded and checked is touched, whatever the server would send."""
    body, _ = archive_bytes
    url = server("/endless.tar.gz", _endless)
    (tmp_path / ARCHIVE_NAME).write_bytes(body)
    data = load_cifar10(tmp_path, url=url, md5=md5(body), progress=False, val_size=10)
    assert len(data.X_test) == 10 and (tmp_path / ARCHIVE_NAME).read_bytes() == body
    assert server.hits == []


def test_a_download_into_a_missing_folder_creates_only_that_folder(tmp_path, server,
                                                                   archive_bytes):
    body, _ = archive_bytes
    url = server("/cifar.tar.gz", body)
    with pytest.raises(DataError, match="parent folder .* does not exist"):
        download_cifar10(tmp_path / "a" / "b", url=url, md5=md5(body), progress=False)
    assert os.listdir(tmp_path) == [] and server.hits == []
    path = download_cifar10(tmp_path / "a" / "b", url=url, md5=md5(body), progress=False,
                            parents=True)  # the default cache folder's way
    assert path.read_bytes() == body
