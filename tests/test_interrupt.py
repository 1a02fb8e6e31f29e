"""Real processes: ``numpy-mlp train`` killed with SIGKILL, or stopped with Ctrl-C (SIGINT) or
SIGTERM, then ``numpy-mlp train --resume DIR``, ends with the files of the run never interrupted.

The runs train a small net on tiny CIFAR-10 look-alike files for 3000 steps (about 5 s of
training); kills come at random moments (seeded) after the first checkpoint appears.
``--threads 1`` fixes the BLAS thread count: with ``auto`` the count is chosen by timing,
and some OpenBLAS products (e.g. (128, 1000) @ (1000, 10)) differ in the last bits
between 1 and 2 threads, so two runs could differ even without any interruption.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from fixtures_cifar import write_cifar_dir

from numpy_mlp.training.checkpoint_file import CHECKPOINT_NAME, read_checkpoint

STEPS = 3000
FLAGS = ["--offline", "--hidden-dim", "64", "--batch-size", "10", "--num-iters", str(STEPS),
         "--val-size", "50", "--evals", "10", "--checkpoint-every", "50", "--dropout", "0.1",
         "--flip", "--threads", "1", "--quiet"]


def cli(*args):
    return [sys.executable, "-m", "numpy_mlp", *map(str, args)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    write_cifar_dir(folder, "py3", n_per_batch=40)  # 200 training images, 50 of them for validation
    return folder


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "uninterrupted"
    subprocess.run(cli("train", "--data-dir", data_dir, "--out", out, *FLAGS), check=True,
                   capture_output=True)
    return out


def wait_for_checkpoint(out, proc, newer_than=0.0, timeout=60):
    path = out / CHECKPOINT_NAME
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_mtime > newer_than):
        assert proc.poll() is None, (
            f"the run ended before its first checkpoint: {proc.communicate()}")
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def assert_same_run_folder(a, b):
    """model.npz bit for bit, history.csv except its wall-clock column, the same metrics."""
    with np.load(a / "model.npz") as fa, np.load(b / "model.npz") as fb:
        assert fa.files == fb.files
        for k in fa.files:
            assert fa[k].tobytes() == fb[k].tobytes(), k

    def rows(folder):
        with open(folder / "history.csv") as f:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]

    assert rows(a) == rows(b) and len(rows(a)) == STEPS
    metrics = [json.loads((f / "metrics.json").read_text()) for f in (a, b)]
    for key in ("train_accuracy", "val_accuracy", "test_accuracy", "best_step", "steps"):
        assert metrics[0][key] == metrics[1][key], key
    assert not (b / CHECKPOINT_NAME).exists()  # a finished run keeps no checkpoint


def test_killed_twice_with_sigkill_at_random_moments_then_resumed_is_bit_for_bit(data_dir,
                                                                                reference,
                                                                                tmp_path):
    out = tmp_path / "run"
    rng = np.random.default_rng(6)
    command = cli("train", "--data-dir", data_dir, "--out", out, *FLAGS)
    killed_at = []
    for attempt in range(2):
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started = time.time()
        wait_for_checkpoint(out, proc, newer_than=started - 1 if attempt == 0 else started)
        time.sleep(rng.uniform(0.0, 0.5))  # the rest of a resumed run can take under 1.5 s
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        assert not (out / "model.npz").exists(), "the run finished before the kill; make it longer"
        killed_at.append(read_checkpoint(out / CHECKPOINT_NAME)[0]["loop"]["step"])
        command = cli("train", "--resume", out, "--quiet")
    assert 0 < killed_at[0] < killed_at[1] < STEPS
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert_same_run_folder(reference, out)
    log = (out / "train.log").read_text()
    assert log.count("resuming from step") == 2


@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_says_how_to_resume_and_resuming_is_bit_for_bit(
        data_dir, reference, tmp_path, signum, status):
    out = tmp_path / "run"
    proc = subprocess.Popen(cli("train", "--data-dir", data_dir, "--out", out, *FLAGS),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(out, proc)
    time.sleep(0.3)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    step = read_checkpoint(out / CHECKPOINT_NAME)[0]["loop"]["step"]
    assert lines[0] == (f"numpy-mlp: interrupted: stopped at step {step} of {STEPS}; "
                        f"checkpoint saved to {out / CHECKPOINT_NAME}; "
                        f"continue with: numpy-mlp train --resume {out}")
    assert 0 < step < STEPS
    assert not (out / "model.npz").exists()
    assert [p for p in os.listdir(out) if p.endswith(".tmp")] == []

    done = subprocess.run(cli("train", "--resume", out, "--quiet"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert_same_run_folder(reference, out)
