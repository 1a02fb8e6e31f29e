"""The run folder through the real command line, in real processes: two trains on one
folder, kills in the write-up, links in the folder, hostile model files, resumed runs that
must find their data again.

Each child is ``python -c`` running ``numpy_mlp.cli.commands.main`` (the ``numpy-mlp`` command);
where a child must be caught in a given phase, it first replaces one function with one
that prints a line and waits, then it is signalled.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest
from fixtures_cifar import write_cifar_dir
from test_modelfile import PEAK_MB

from numpy_mlp.cli.commands import main
from numpy_mlp.training.checkpoint_file import CHECKPOINT_NAME

TINY = ["--hidden-dim", "8", "--batch-size", "10", "--val-size", "10", "--threads", "1", "--quiet"]

CLI = """
    import sys
    from numpy_mlp.cli.commands import main
    sys.exit(main(sys.argv[1:]))
"""


def cli(*argv, code=CLI):
    """``numpy-mlp ARGV`` in a child process, its output piped."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(*argv, code=CLI, timeout=120):
    proc = cli(*argv, code=code)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_for(proc, line, timeout=60):
    """Read the child's stdout until ``line`` comes (the child has reached that phase)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = proc.stdout.readline()
        if got.strip() == line:
            return
        if not got and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the child never printed {line!r}: {proc.stderr.read()[-2000:]}")


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    write_cifar_dir(folder, "py3")  # 5 x 20 training images
    return folder


# a train whose first evaluation waits: the folder is its own while the test acts
HOLDS_THE_FOLDER = """
    import sys, time
    from numpy_mlp.runs import display
    from numpy_mlp.cli.commands import main
    def on_eval(self, step, history):
        print("training", flush=True)
        time.sleep(60)
    display.TrainingDisplay.on_eval = on_eval
    sys.exit(main(sys.argv[1:]))
"""


def test_a_second_train_on_the_same_out_is_refused_while_the_first_lives(tmp_path, data):
    out = tmp_path / "run"
    first = cli("train", "--data-dir", data, "--offline", "--out", out, "--num-iters", "50",
                "--checkpoint-every", "0", *TINY, code=HOLDS_THE_FOLDER)
    try:
        wait_for(first, "training")
        config_before = (out / "config.json").read_bytes()
        status, _, err = run("train", "--data-dir", data, "--offline", "--out", out,
                             "--num-iters", "3", "--alpha", "0.5", *TINY)
        assert status == 2 and err.count("\n") == 1, err
        assert f"is in use by another numpy-mlp run (pid {first.pid})" in err and str(out) in err
        assert (out / "config.json").read_bytes() == config_before  # the first run's, untouched
        status, _, err = run("train", "--resume", out)
        assert status == 2 and f"pid {first.pid}" in err
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
        first.wait()
    # the dead owner left no lock: a new run takes the folder (it held no checkpoint yet)
    status, _, err = run("train", "--data-dir", data, "--offline", "--out", out, "--num-iters", "3",
                         *TINY)
    assert status == 0, err
    assert json.loads((out / "config.json").read_text())["num_iters"] == 3
    assert (out / "report.html").is_file()


# a train that stops in its write-up, after model.npz, history.csv and metrics.json
STOPS_IN_THE_WRITEUP = """
    import sys, time
    from numpy_mlp.runs import writeup
    from numpy_mlp.cli.commands import main
    def write_pictures(*args, **kw):
        print("writing up", flush=True)
        time.sleep(60)
    writeup.write_pictures = write_pictures
    sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_kill_in_the_write_up_then_resume_finishes_the_write_up(signum, tmp_path, data):
    out = tmp_path / "run"
    proc = cli("train", "--data-dir", data, "--offline", "--out", out, "--num-iters", "12",
               "--patience", "1", *TINY, code=STOPS_IN_THE_WRITEUP)
    try:
        wait_for(proc, "writing up")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    if signum == signal.SIGTERM:  # stopped at once, with the command that finishes it
        assert proc.returncode == 143 and "stopped during the write-up" in err and "--resume" in err
    model = (out / "model.npz").read_bytes()
    assert (out / CHECKPOINT_NAME).exists() and not (out / "report.html").exists()
    assert not (out / "loss.png").exists()
    assert json.loads((out / "run.json").read_text())["phase"] == "writeup"
    status, _, err = run("train", "--resume", out)  # no flags: run.json says where the data is
    assert status == 0, err
    assert json.loads((out / "run.json").read_text())["phase"] == "done"
    assert (out / "report.html").is_file() and (out / "loss.png").is_file()
    assert not (out / CHECKPOINT_NAME).exists()
    with np.load(out / "model.npz") as new, np.load(zipfile.io.BytesIO(model)) as old:
        assert all(np.array_equal(new[k], old[k]) for k in old.files if k != "meta")
    status, _, err = run("train", "--resume", out)
    assert status == 2 and "has finished" in err


def test_a_symlinked_train_log_is_refused_before_training_and_not_followed(tmp_path, data):
    out = tmp_path / "run"
    out.mkdir()
    victim = tmp_path / "bashrc"
    victim.write_text("export PATH=/usr/bin\n")
    (out / "train.log").symlink_to(victim)
    status, _, err = run("train", "--data-dir", data, "--offline", "--out", out, "--num-iters", "3",
                         *TINY)
    assert status == 2 and err.count("\n") == 1 and "symbolic link" in err, err
    assert str(out / "train.log") in err
    assert victim.read_text() == "export PATH=/usr/bin\n"
    assert not (out / "config.json").exists()  # refused before anything was written


def test_evaluate_refuses_a_symlinked_picture_in_the_model_folder(tmp_path, data):
    out = tmp_path / "run"
    assert main(["train", "--data-dir", str(data), "--offline", "--out", str(out),
                 "--num-iters", "3", *TINY]) == 0
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"mine")
    (out / "confusion.png").unlink()
    (out / "confusion.png").symlink_to(victim)
    status, _, err = run("evaluate", "--model", out / "model.npz", "--data-dir", data, "--offline",
                         "--quiet")
    assert status == 2 and "symbolic link" in err and err.count("\n") == 1, err
    assert victim.read_bytes() == b"mine"


def killed_before_its_first_checkpoint(tmp_path, data):
    """A run folder as a kill before the first checkpoint leaves it (config.json, run.json)."""
    out = tmp_path / "run"
    proc = cli("train", "--data-dir", data, "--offline", "--out", out, "--num-iters", "8",
               "--checkpoint-every", "0", *TINY, code=HOLDS_THE_FOLDER)
    try:
        wait_for(proc, "training")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert not (out / CHECKPOINT_NAME).exists() and (out / "config.json").exists()
    return out


def test_resume_before_the_first_checkpoint_keeps_the_data_folder_and_offline(tmp_path, data,
                                                                              monkeypatch):
    out = killed_before_its_first_checkpoint(tmp_path, data)
    # the default data folder is empty and a download would go there: neither may happen
    monkeypatch.setenv("NUMPY_MLP_DATA", str(tmp_path / "default"))
    monkeypatch.chdir(tmp_path)
    status, _, err = run("train", "--resume", out)
    assert status == 0, err
    log = (out / "train.log").read_text()
    assert f"from {data}" in log
    assert not (tmp_path / "default").exists()
    state = json.loads((out / "run.json").read_text())
    assert state["data_dir"] == str(data) and state["download"] is False


def test_resume_with_a_recorded_data_folder_that_is_gone_is_one_line_and_downloads_nothing(
        tmp_path, data):
    out = killed_before_its_first_checkpoint(tmp_path, data)
    for p in data.iterdir():
        p.unlink()
    data.rmdir()
    before = sorted(p.name for p in out.iterdir())
    status, _, err = run("train", "--resume", out)
    assert status == 2 and err.count("\n") == 1 and "is gone; pass --data-dir" in err, err
    assert not data.exists()  # no folder tree made for a download
    assert sorted(p.name for p in out.iterdir()) == before


PEAK = PEAK_MB + """
import sys
from numpy_mlp.cli.commands import main
status = main(sys.argv[1:])
print(status, peak_mb(), flush=True)
"""


def hostile_model(path):
    """2 KB whose W1 header claims (2**22, 7 * 2**20) float32: 112 TiB."""
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (4194304, 7340032), }"
    text += " " * (64 - (10 + len(text) + 1) % 64) + "\n"
    header = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("W1.npy", header + b"\0" * 1024)
    assert path.stat().st_size < 2048 + 512


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_hostile_model_is_refused_by_the_commands_without_allocating(command, tmp_path, data):
    model = tmp_path / "model.npz"
    hostile_model(model)
    image = tmp_path / "cat.png"
    from PIL import Image
    Image.new("RGB", (32, 32)).save(image)
    argv = (["predict", "--model", model, image] if command == "predict" else
            ["evaluate", "--model", model, "--data-dir", data, "--offline"])
    status, out, err = run(*argv, code=PEAK)
    code, peak_mb = map(int, out.split())
    assert code == 2 and err.count("\n") == 1 and "declares shape (4194304, 7340032)" in err, err
    assert "--hidden-dim" not in err
    assert peak_mb < 100  # the interpreter with NumPy (38 MB when measured), not 112 TiB


def test_nan_weights_are_refused_by_evaluate_and_predict(tmp_path, data, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data-dir", str(data), "--offline", "--out", str(out),
                 "--num-iters", "3", *TINY]) == 0
    with np.load(out / "model.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["W2"][0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **arrays)
    capsys.readouterr()
    nan = str(tmp_path / "nan.npz")
    for argv in (["evaluate", "--model", nan, "--data-dir", str(data), "--offline"],
                 ["predict", "--model", nan, str(out / "loss.png")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "W2 holds NaN or infinite values" in err and err.count("\n") == 1, err


def test_a_read_only_out_folder_is_one_line_and_resumable_once_writable(tmp_path, data):
    out = tmp_path / "run"
    out.mkdir()
    root = os.geteuid() == 0  # root writes anywhere chmod allows nothing: make it immutable
    subprocess.run(["chattr", "+i", str(out)] if root else ["chmod", "555", str(out)], check=True)
    try:
        status, _, err = run("train", "--data-dir", data, "--offline", "--out", out,
                             "--num-iters", "3", *TINY)
    finally:
        subprocess.run(["chattr", "-i", str(out)] if root else ["chmod", "755", str(out)],
                       check=True)
    assert status == 2 and err.count("\n") == 1 and f"cannot write {out}" in err, err
    status, _, err = run("train", "--data-dir", data, "--offline", "--out", out, "--num-iters", "3",
                         *TINY)
    assert status == 0, err
