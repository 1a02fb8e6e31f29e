"""Advice in a message is a command the caller has: the flags of ``numpy-mlp train``, the
``--set``/``--space`` of ``numpy-mlp search``, the keywords of the Python API and of the
estimator (nn.rules.setting), and it names the real cause."""

import json
import re

import numpy as np
import pytest
from fixtures_cifar import write_cifar_dir
from synthetic_data import synthetic

from numpy_mlp.cli.commands import main
from numpy_mlp.errors import ConfigError, DivergenceError, UserError
from numpy_mlp.nn.rules import check_blocks, flag_spelling, setting, spelled_as
from numpy_mlp.training.config import TrainConfig
from numpy_mlp.training.loop import train

TINY = ["--num-iters", "20", "--evals", "2", "--eval-train-size", "50"]


@pytest.fixture
def tiny_dir(tmp_path):
    write_cifar_dir(tmp_path / "data", n_per_batch=40, n_test=20)  # 200 training images
    return tmp_path / "data"


def one_line(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("numpy-mlp: error: "), err
    return err.strip()


def test_setting_is_spelled_as_the_caller_writes_it():
    assert setting("batch_size", 64) == "batch_size=64"  # Python and the estimator
    with spelled_as(flag_spelling):
        assert setting("batch_size", 64) == "--batch-size 64"
        with pytest.raises(ConfigError, match="--hidden-dim 512.*--blocks 0"):
            check_blocks((512, 256), 2)
    with pytest.raises(ConfigError, match=r"\(hidden_dim=512\) or blocks=0"):
        check_blocks((512, 256), 2)


def test_a_batch_larger_than_the_data_is_advised_in_each_caller_s_words(tmp_path, tiny_dir,
                                                                          capsys):
    data = synthetic(n_train=100, n_val=20)
    with pytest.raises(ConfigError, match="batch_size=64$") as e:  # Python: a keyword
        train(TrainConfig(batch_size=500, num_iters=5, evals=1), data)
    assert "--" not in str(e.value)
    argv = ["train", "--data-dir", str(tiny_dir), "--offline", "--val-size", "50", *TINY,
            "--out", str(tmp_path / "run")]
    assert main([*argv, "--batch-size", "400"]) == 2
    advice = re.search(r"e\.g\. (--batch-size \d+)$", one_line(capsys)).group(1)
    assert main([*argv, advice.split()[0], advice.split()[1], "-q"]) == 0  # the advice works


def test_a_search_on_a_small_folder_advises_a_space_it_can_run(tmp_path, tiny_dir, capsys):
    argv = ["search", "--data-dir", str(tiny_dir), "--offline", "--n-trials", "1",
            "--set", "val_size=50", "--set", "num_iters=20", "--set", "evals=2",
            "--set", "eval_train_size=50", "--space", "hidden_dim=8:16", "-q"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 2  # the default batch sizes: 32..512
    line = one_line(capsys)
    assert "--batch-size" not in line and "150 images" in line
    advice = re.search(r"search (--space batch_size=\S+)$", line).group(1)
    assert main([*argv, "--out", str(tmp_path / "b"), *advice.split(" ", 1)]) == 0
    # a fixed batch: --set
    assert main([*argv, "--out", str(tmp_path / "c"), "--set", "batch_size=300"]) == 2
    advice = re.search(r"search (--set batch_size=\d+)$", one_line(capsys)).group(1)
    assert main([*argv, "--out", str(tmp_path / "d"), *advice.split(" ", 1)]) == 0


def test_a_search_with_no_validation_set_is_refused_up_front(tmp_path, capsys):
    assert main(["search", "--out", str(tmp_path / "s"), "--set", "val_size=0"]) == 2
    line = one_line(capsys)
    assert "no validation images" in line and "--set val_size=N" in line
    assert not (tmp_path / "s").exists()


def test_a_search_whose_trials_all_diverge_advises_smaller_rates_that_work(tmp_path, tiny_dir,
                                                                           capsys):
    argv = ["search", "--data-dir", str(tiny_dir), "--offline", "--n-trials", "2",
            "--set", "val_size=50", "--set", "num_iters=20", "--set", "evals=2",
            "--set", "eval_train_size=50", "--set", "schedule=constant",
            "--space", "hidden_dim=8:16", "--space", "batch_size=8,16", "-q"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--space", "alpha=1e6:1e7:log"]) == 2
    line = one_line(capsys)
    assert "every trial diverged" in line and "widen" not in line
    advice = re.search(r"e\.g\. (--space alpha=\S+)$", line).group(1)
    assert main([*argv, "--out", str(tmp_path / "b"), *advice.split(" ", 1)]) == 0
    best = json.loads((tmp_path / "b" / "best.json").read_text())
    assert best["trials"]["complete"] >= 1


def test_divergence_from_python_names_the_keyword_not_a_flag():
    data = synthetic(n_train=100, n_val=20)
    with pytest.raises(DivergenceError, match=r"e\.g\. alpha=1000\)") as e:
        train(TrainConfig(alpha=1e4, batch_size=20, num_iters=50, evals=1, schedule="constant",
                          flip=False), data)
    assert "--alpha" not in str(e.value)


def test_the_estimator_on_huge_features_names_the_inputs_not_the_learning_rate():
    from numpy_mlp.sklearn import FullyConnectedClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    y = (X[:, 0] > 0).astype(int)
    with pytest.raises(UserError, match=r"values up to \|x\| = .*e\+300.*divide them by") as e:
        FullyConnectedClassifier(hidden_dim=(8,), epochs=2).fit(X * 1e300, y)
    assert "--" not in str(e.value) and "learning rate" not in str(e.value)
    scale = float(re.search(r"divide them by (\S+),", str(e.value)).group(1))
    clf = FullyConnectedClassifier(hidden_dim=(8,), epochs=2).fit(X * 1e300 / scale, y)
    assert np.isfinite(clf.history_["loss"]).all()  # the advice works: no divergence


REPORT_ON_A_FULL_DISK = """
import resource, signal, sys
from numpy_mlp.cli.commands import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))  # report.html is larger
sys.exit(main(["report", sys.argv[1]]))
"""


def test_report_on_a_full_disk_advises_report_again_not_resume(tmp_path, tiny_dir):
    import subprocess
    import sys

    run = tmp_path / "run"
    assert main(["train", "--data-dir", str(tiny_dir), "--offline", "--val-size", "50", *TINY,
                 "--batch-size", "16", "--out", str(run), "-q"]) == 0
    before = (run / "report.html").read_bytes()
    proc = subprocess.run([sys.executable, "-c", REPORT_ON_A_FULL_DISK, str(run)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"then run 'numpy-mlp report {run}' again" in proc.stderr
    assert "--resume" not in proc.stderr
    assert (run / "report.html").read_bytes() == before  # the old report stays whole
    assert main(["report", str(run), "-q"]) == 0  # the advice works once there is room
