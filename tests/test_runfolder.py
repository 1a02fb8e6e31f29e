"""RunFolder: one owner per run folder, whole files, no links followed, one line per failure.

The lock and the kills are tried with real processes: a child holds the folder, the test
tries to take it, kills the child with SIGKILL and takes it then.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from numpy_mlp.errors import Interrupted, RunFileError, RunFolderError, UserError
from numpy_mlp.runs.folder import (
    LOCK_NAME,
    STATE_NAME,
    RunFolder,
    read_run_state,
    resume_data_dir,
    resume_then,
)


def child(code, *args):
    """A Python process running ``code`` (with ``sys.argv[1:] = args``), its output piped."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


HOLD = """
    import sys, time
    from numpy_mlp.runs.folder import RunFolder
    folder = RunFolder(sys.argv[1]).open()
    print("locked", flush=True)
    time.sleep(60)
"""


def leftovers(folder):
    """Temporary files a write left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_second_owner_is_refused_while_the_first_lives_and_a_sigkill_frees_the_folder(tmp_path):
    out = tmp_path / "run"
    holder = child(HOLD, out)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError) as e:
            RunFolder(out).open()
        message = str(e.value)
        assert f"pid {holder.pid}" in message and str(out) in message and "\n" not in message
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        holder.kill()
        holder.wait()
    with RunFolder(out).open() as folder:  # the kernel released the dead owner's lock
        folder.write_text("config.json", "{}")
    assert (out / "config.json").read_text() == "{}"


def test_the_lock_is_released_on_close_and_two_owners_in_one_process_conflict(tmp_path):
    first = RunFolder(tmp_path / "run").open()
    with pytest.raises(RunFolderError, match="in use by another numpy-mlp run"):
        RunFolder(tmp_path / "run", flag="--resume").open()
    first.close()
    with RunFolder(tmp_path / "run").open():
        assert (tmp_path / "run" / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert (tmp_path / "run" / LOCK_NAME).read_text() == ""  # no owner named after close


def test_a_file_written_through_a_closed_folder_is_a_programming_error(tmp_path):
    folder = RunFolder(tmp_path / "run").open()
    folder.close()
    with pytest.raises(RuntimeError, match="not open"):
        folder.write_text("x.txt", "x")


@pytest.mark.parametrize("name", ["train.log", "confusion.png", "metrics.json"])
def test_a_symlink_where_a_run_file_goes_is_refused_and_its_target_untouched(name, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "run"
    out.mkdir()
    (out / name).symlink_to(victim)
    with pytest.raises(RunFolderError, match="symbolic link") as e:  # found before the run starts
        RunFolder(out).open(check=(name,))
    assert str(out / name) in str(e.value)
    with RunFolder(out).open() as folder:
        with pytest.raises(RunFolderError, match="symbolic link"):
            if name == "train.log":
                folder.open_log(name)
            else:
                folder.write_bytes(name, b"new")
    assert victim.read_text() == "precious" and (out / name).is_symlink()


def test_a_link_that_appears_after_the_check_is_replaced_not_written_through(tmp_path, monkeypatch):
    from numpy_mlp.files import atomic

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    with RunFolder(tmp_path / "run").open() as folder:
        real_target, real_check = folder.target, atomic.check_output_path

        def target_then_link(name):  # the attacker's link lands between the check and the write
            path = real_target(name)
            path.symlink_to(victim)
            return path

        monkeypatch.setattr(folder, "target", target_then_link)
        with pytest.raises(UserError, match="loss.png is a symbolic link"):  # atomic_write's check
            folder.write_bytes("loss.png", b"png")
        assert (tmp_path / "run" / "loss.png").is_symlink()
        (tmp_path / "run" / "loss.png").unlink()

        def check_then_link(path, flag=""):  # later still: after atomic_write's own check
            real_check(path, flag)
            path.symlink_to(victim)

        monkeypatch.setattr(folder, "target", real_target)
        monkeypatch.setattr(atomic, "check_output_path", check_then_link)
        folder.write_bytes("loss.png", b"png")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "run" / "loss.png").is_symlink()
    assert (tmp_path / "run" / "loss.png").read_bytes() == b"png"


def test_a_folder_or_a_fifo_where_a_run_file_goes_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").mkdir()
    os.mkfifo(out / "train.log")  # opening a FIFO for writing would block for ever
    with RunFolder(out).open() as folder:
        with pytest.raises(RunFolderError, match="is a folder"):
            folder.write_json("metrics.json", {})
        with pytest.raises(RunFolderError, match="special file"):
            folder.open_log("train.log")


def test_the_log_appends_and_survives_a_line_that_is_not_utf8(tmp_path):
    with RunFolder(tmp_path / "run").open() as folder:
        log = folder.open_log()
        log.write("first")
        log.write("data from /data/caf\udce9")  # a data folder whose name is Latin-1
        log.close()
        log = folder.open_log()
        log.write("second")
        log.close()
    log = (tmp_path / "run" / "train.log").read_text()
    assert log == "first\ndata from /data/caf\\udce9\nsecond\n"


def test_out_that_is_a_file_is_one_line_and_the_file_is_kept(tmp_path):
    out = tmp_path / "run"
    out.write_text("mine")
    with pytest.raises(RunFolderError, match="is a file, not a folder"):
        RunFolder(out).open()
    with pytest.raises(RunFolderError, match="a part of its path is a file"):
        RunFolder(out / "sub").open()
    assert out.read_text() == "mine"


def test_a_name_that_is_not_utf8_is_refused_before_anything_is_created(tmp_path):
    out = tmp_path / os.fsdecode(b"run-\xff")
    with pytest.raises(RunFolderError, match="not UTF-8") as e:
        RunFolder(out).open()
    assert "\\xff" in str(e.value)
    str(e.value).encode("utf-8")  # the message itself can be printed
    assert list(tmp_path.iterdir()) == []


def test_a_folder_removed_while_the_run_writes_is_one_line_and_not_recreated(tmp_path):
    out = tmp_path / "run"
    with RunFolder(out).open() as folder:
        folder.write_text("config.json", "{}")
        for p in out.iterdir():
            p.unlink()
        out.rmdir()
        with pytest.raises(RunFolderError, match="removed or replaced"):
            folder.write_text("metrics.json", "{}")
    assert not out.exists()


@pytest.fixture
def read_only(tmp_path):
    """Make a folder read-only for this process (chattr +i as root, chmod otherwise)."""
    made = []

    def make(folder):
        if os.geteuid() == 0:
            subprocess.run(["chattr", "+i", str(folder)], check=True)
        else:
            folder.chmod(0o555)
        made.append(folder)

    yield make
    for folder in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def test_a_read_only_folder_is_one_line_and_nothing_saved_is_lost(tmp_path, read_only):
    out = tmp_path / "run"
    with RunFolder(out, then=resume_then(out)).open() as folder:
        folder.write_json("metrics.json", {"test_accuracy": 0.5})
        read_only(out)
        with pytest.raises(RunFolderError) as e:
            folder.write_json("metrics.json", {"test_accuracy": 0.9})
    message = str(e.value)
    assert str(out / "metrics.json") in message and "make the folder writable" in message
    assert "--resume" in message  # the run goes on once the cause is gone
    assert json.loads((out / "metrics.json").read_text()) == {"test_accuracy": 0.5}
    assert leftovers(out) == []


def test_a_read_only_parent_is_one_line(tmp_path, read_only):
    read_only(tmp_path)
    with pytest.raises(RunFolderError, match="cannot write .*run"):
        RunFolder(tmp_path / "run").open()


FULL = """
    import resource, signal, sys
    from numpy_mlp.errors import UserError
    from numpy_mlp.runs.folder import RunFolder
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    folder = RunFolder(sys.argv[1]).open()
    folder.write_bytes("model.npz", b"a" * 10_000)
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
    log = folder.open_log()
    for what in ("model.npz", "log"):
        try:
            if what == "log":
                log.write("x" * 100_000)
            else:
                folder.write_bytes("model.npz", b"b" * 100_000)
        except UserError as e:
            print(type(e).__name__, e)
"""


def test_a_full_disk_is_one_line_and_the_previous_file_stays_whole(tmp_path):
    # a real process under a file-size limit: the kernel refuses the writes as a full disk would
    out = tmp_path / "run"
    proc = child(FULL, out)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    lines = stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("RunFolderError cannot write") for line in lines)
    assert str(out / "model.npz") in lines[0] and str(out / "train.log") in lines[1]
    assert (out / "model.npz").read_bytes() == b"a" * 10_000
    assert leftovers(out) == []


def test_no_space_left_names_the_path_and_what_to_do(tmp_path, monkeypatch):
    def full(f):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with RunFolder(tmp_path / "run", then=resume_then(tmp_path / "run")).open() as folder:
        folder.write_bytes("history.csv", b"step\n")
        with pytest.raises(RunFolderError) as e:
            folder.write("history.csv", full)
    path = tmp_path / "run" / "history.csv"
    assert str(e.value).startswith(f"cannot write {path}: the disk is full; "
                                   f"free some space, then continue with 'numpy-mlp train --resume")
    assert (tmp_path / "run" / "history.csv").read_bytes() == b"step\n"
    assert leftovers(tmp_path / "run") == []


def test_run_json_records_the_start_and_each_phase(tmp_path):
    data = tmp_path / "data"
    with RunFolder(tmp_path / "run").open() as folder:
        assert folder.state() is None
        folder.record_start(data_dir=data, download=False)
        assert folder.state() == {"format": "numpy-mlp-run", "format_version": 1,
                                  "phase": "training", "data_dir": str(data), "download": False}
        with folder.writing_up():
            assert folder.state()["phase"] == "writeup"
        assert folder.state()["phase"] == "done"


def test_a_failure_in_the_write_up_leaves_the_phase_for_resume_to_finish(tmp_path):
    with RunFolder(tmp_path / "run").open() as folder:
        folder.record_start(data_dir=None, download=True)
        with pytest.raises(RunFolderError):
            with folder.writing_up():
                raise RunFolderError("disk full")
        assert folder.state()["phase"] == "writeup"


def test_sigterm_in_the_write_up_stops_it_at_once_and_leaves_it_resumable(tmp_path):
    previous = signal.getsignal(signal.SIGTERM)
    with RunFolder(tmp_path / "run").open() as folder:
        folder.record_start(data_dir=None, download=True)
        with pytest.raises(Interrupted) as e:
            with folder.writing_up():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises before this ends
        assert e.value.signum == signal.SIGTERM and "--resume" in str(e.value)
        assert folder.state()["phase"] == "writeup"
    assert signal.getsignal(signal.SIGTERM) is previous


KILLED_IN_WRITEUP = """
    import sys, time
    from numpy_mlp.runs.folder import RunFolder
    folder = RunFolder(sys.argv[1]).open()
    folder.record_start(data_dir=None, download=True)
    with folder.writing_up():
        folder.write_bytes("model.npz", b"model")
        print("writing up", flush=True)
        time.sleep(60)
"""


def test_a_sigkill_in_the_write_up_leaves_phase_writeup_and_a_free_folder(tmp_path):
    out = tmp_path / "run"
    proc = child(KILLED_IN_WRITEUP, out)
    try:
        assert proc.stdout.readline().strip() == "writing up"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    with RunFolder(out, flag="--resume").open() as folder:
        assert folder.state()["phase"] == "writeup"
        assert (out / "model.npz").read_bytes() == b"model"


@pytest.mark.parametrize("content, field", [
    ("[]", "run.json"),
    ('{"format": "numpy-mlp-run", "format_version": 1, "phase": "later", "data_dir": null, '
     '"download": true}', "phase"),
    ('{"format": "numpy-mlp-run", "format_version": 1, "phase": "done", "data_dir": 5, '
     '"download": true}', "data_dir"),
    ('{"format": "numpy-mlp-run", "format_version": 1, "phase": "done", "data_dir": null}',
     "download"),
    ('{"format": "numpy-mlp-run", "format_version": 7, "phase": "done", "data_dir": null, '
     '"download": true}', "format_version"),
    ("[" * 100_000, "nests deeper"),
    ("{", "not valid JSON"),
])
def test_a_damaged_run_json_is_one_line_naming_the_field(content, field, tmp_path):
    (tmp_path / STATE_NAME).write_text(content)
    with pytest.raises(RunFileError) as e:
        read_run_state(tmp_path)
    assert field in str(e.value) and str(tmp_path / STATE_NAME) in str(e.value)
    assert "\n" not in str(e.value)


def test_a_symlinked_run_json_is_not_read(tmp_path):
    (tmp_path / "elsewhere.json").write_text("{}")
    (tmp_path / STATE_NAME).symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(RunFileError, match="symbolic link"):
        read_run_state(tmp_path)


def test_resume_refuses_a_recorded_data_folder_that_is_gone_and_creates_nothing(tmp_path):
    gone = tmp_path / "data" / "cifar"
    with pytest.raises(RunFolderError, match="is gone; pass --data-dir") as e:
        resume_data_dir(tmp_path / "run", str(gone), None)
    assert str(gone) in str(e.value)
    assert not (tmp_path / "data").exists()
    (tmp_path / "other").mkdir()
    other = str(tmp_path / "other")
    assert resume_data_dir(tmp_path / "run", str(gone), other) == other
    gone.mkdir(parents=True)
    assert resume_data_dir(tmp_path / "run", str(gone), None) == str(gone)
    assert resume_data_dir(tmp_path / "run", None, None) is None  # the default folder


# ---------------------------------------------------------------- the report reads no links


def a_run_folder(tmp_path):
    """A run folder as far as the report goes: config, metrics, one picture, a log."""
    from PIL import Image

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"hidden_dim": [8], "alpha": 0.01}))
    (run / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5, "per_class_test_accuracy":
                                                  {"cat": 0.5}}))
    Image.new("RGB", (4, 4)).save(run / "loss.png")
    (run / "train.log").write_text("step 1\n")
    return run


@pytest.mark.parametrize("name", ["loss.png", "other.png", "train.log", "metrics.json",
                                  "config.json"])
def test_the_report_refuses_a_symlinked_run_file_and_embeds_nothing_through_it(name, tmp_path):
    from numpy_mlp.errors import UserError
    from numpy_mlp.runs.report import write_report

    run = a_run_folder(tmp_path)
    secret = tmp_path / "secret"
    secret.write_text("ssh-rsa AAAA private")
    (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(secret)
    with pytest.raises(UserError, match="symbolic link") as e:
        write_report(run)
    assert str(run / name) in str(e.value) and "\n" not in str(e.value)
    assert not (run / "report.html").exists()


@pytest.mark.parametrize("name, content, expected", [
    ("config.json", "[1, 2]", "config.json is [1, 2], not a table"),
    ("config.json", "[" * 100_000, "nests deeper"),
    ("metrics.json", '{"test_accuracy": [1]}', "test_accuracy is [1], not a number"),
    ("metrics.json", '{"per_class_test_accuracy": {"cat": null}}', "per_class_test_accuracy.cat"),
])
def test_the_report_of_a_damaged_json_file_is_one_line(name, content, expected, tmp_path):
    from numpy_mlp.runs.report import write_report

    run = a_run_folder(tmp_path)
    (run / name).write_text(content)
    with pytest.raises(RunFileError) as e:
        write_report(run)
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_the_report_of_a_run_still_going_is_refused_and_a_finished_one_written(tmp_path):
    from numpy_mlp.runs.report import write_report

    run = a_run_folder(tmp_path)
    holder = child(HOLD, run)
    try:
        assert holder.stdout.readline().strip() == "locked"
        in_use = f"in use by another numpy-mlp run \\(pid {holder.pid}\\)"
        with pytest.raises(RunFolderError, match=in_use):
            write_report(run)
    finally:
        holder.kill()
        holder.wait()
    page = write_report(run).read_text()
    assert "data:image/png;base64," in page and "step 1" in page
