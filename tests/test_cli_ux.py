"""The command line as a user meets it: help, -q/-v, plain lines off a terminal, TOML flags."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_cifar import write_cifar_dir

import numpy_mlp.runs.evaluate
import numpy_mlp.runs.train
from numpy_mlp.cli.commands import main
from numpy_mlp.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def captured(monkeypatch):
    """Replace run_training by a recorder: the CLI's mapping is tested without training."""
    calls = []

    def fake(config, **kw):
        calls.append((config, kw))
        return Path(kw.get("out") or "runs/x"), {"test_accuracy": 0.5, "val_accuracy": 0.5,
                                                  "total_seconds": 1.0, "model": "m"}

    monkeypatch.setattr(numpy_mlp.runs.train, "run_training", fake)
    return calls


def toml(tmp_path, text):
    path = tmp_path / "flags.toml"
    path.write_text(text)
    return str(path)


def test_help_shows_examples_and_the_config_file(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "numpy-mlp train --config" in text
    assert "--quiet" in text and "--verbose" in text and "FILE.toml holds any flag" in text


def test_python_dash_m_runs_the_same_cli():
    done = subprocess.run([sys.executable, "-m", "numpy_mlp", "--help"], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0
    assert ("usage: numpy-mlp" in done.stdout and "report" in done.stdout
            and "examples:" in done.stdout)


def test_quiet_and_verbose_together_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "-q", "-v"])
    assert e.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_config_file_sets_flags_with_dashes_or_underscores(tmp_path, captured):
    path = toml(tmp_path, 'hidden-dim = [64, 32]\nnum_iters = 50\nalpha = 2e-2\nnesterov = true\n'
                          'schedule = "constant"\nout = "runs/from-file"\n')
    assert main(["train", "--config", path]) == 0
    config, kw = captured[-1]
    assert config.hidden_dim == (64, 32) and config.num_iters == 50 and config.alpha == 0.02
    assert config.nesterov is True and config.schedule == "constant"
    assert kw["out"] == "runs/from-file"


def test_command_line_flags_override_the_file_and_its_command_table(tmp_path, captured):
    path = toml(tmp_path, 'alpha = 1e-3\nseed = 3\nepochs = 2\n[train]\nalpha = 5e-2\n'
                          'quiet = true\n[evaluate]\nno-pictures = true\n')
    assert main(["train", "--config", path]) == 0
    config, kw = captured[-1]
    # [train] beats the top level
    assert config.alpha == 0.05 and config.seed == 3 and config.epochs == 2
    assert kw["log"] is None  # quiet from the file
    assert main(["train", "--config", path, "--alpha", "0.01", "--num-iters", "7"]) == 0
    config, _ = captured[-1]
    # the command line wins, also over a file value of the other flag in an either-or pair
    assert (config.alpha == 0.01 and config.num_iters == 7
            and config.epochs == TrainConfig().epochs and config.seed == 3)


@pytest.mark.parametrize("text, words", [
    ("hiden-dim = 10\n", ["unknown key 'hiden-dim'", "known keys:", "hidden-dim"]),
    ("alpha = 'fast'\n", ["alpha = 'fast' must be a finite number > 0"]),
    ("schedule = 'linear'\n", ["schedule = 'linear' must be one of constant, cosine, step"]),
    ("flip = 1\n", ["flip = 1 must be true or false"]),
    ("alpha = {a = 1}\n", ["alpha = {'a': 1} must be a finite number"]),  # a table for a value
    ("threads = 5000\n", ["threads = 5000 must be 'auto' or a whole number in 1..1024"]),
    ("epochs = 1\nnum-iters = 5\n", ["give one of num-iters and epochs, not both"]),
    ("alpha = \n", ["not valid TOML"]),
])
def test_bad_config_files_give_one_line_naming_the_problem(tmp_path, captured, capsys, text, words):
    assert main(["train", "--config", toml(tmp_path, text)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("numpy-mlp: error: ") and err.count("\n") == 1
    for w in words:
        assert w in err
    assert not captured


def test_missing_config_file_is_one_line(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_required_flag_can_come_from_the_file(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_evaluate(model, **kw):
        seen.update(kw, model=model)
        return {"model": "m", "accuracy": {"train": 1.0, "val": 0.5, "test": 0.25}, "per_class": {},
                "confusion": [], "pictures": [], "tta_shift": 0}

    monkeypatch.setattr(numpy_mlp.runs.evaluate, "evaluate_saved", fake_evaluate)
    assert main(["evaluate", "--config", toml(tmp_path, 'model = "m.npz"\nquiet = true\n')]) == 0
    assert seen["model"] == "m.npz"
    assert capsys.readouterr().out == "test accuracy 0.2500\n"


def test_off_a_terminal_training_prints_plain_lines_and_quiet_prints_one(tmp_path, capsys):
    write_cifar_dir(tmp_path / "cifar", n_per_batch=20, n_test=20)
    common = ["train", "--data-dir", str(tmp_path / "cifar"), "--offline", "--hidden-dim", "8",
              "--num-iters", "4", "--batch-size", "16", "--val-size", "20", "--evals", "2"]
    assert main(common + ["--out", str(tmp_path / "a")]) == 0
    out, err = capsys.readouterr()
    assert "\r" not in out + err  # no progress bar redraws: pytest's capture is not a terminal
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    assert len(steps) == 2 and "val_acc" in steps[0]
    assert main(common + ["--out", str(tmp_path / "b"), "-q"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("test accuracy")
    assert main(common + ["--out", str(tmp_path / "c"), "-v"]) == 0
    out = capsys.readouterr().out
    assert "BLAS:" in out and "files written:" in out and "report.html" in out


def test_no_arguments_show_the_help_with_its_examples(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: numpy-mlp") and "train" in out and "examples:" in out


def test_the_slow_phases_say_when_they_start_and_quiet_keeps_them_out(tmp_path, capsys):
    """Whitening and the final scoring and write-up each take up to a minute on the real data;
    a line says when each starts, so that the run is not taken for hung."""
    write_cifar_dir(tmp_path / "cifar", n_per_batch=20, n_test=20)
    common = ["train", "--data-dir", str(tmp_path / "cifar"), "--offline", "--hidden-dim", "8",
              "--num-iters", "4", "--batch-size", "16", "--val-size", "20", "--evals", "2",
              "--preprocessing", "whiten", "--whiten-dim", "16"]
    assert main(common + ["--out", str(tmp_path / "a")]) == 0
    lines = capsys.readouterr().out.splitlines()
    whitening = [i for i, line in enumerate(lines) if line.startswith("whitening: ")]
    scoring = [i for i, line in enumerate(lines) if line.startswith("training done at step 4")]
    steps = [i for i, line in enumerate(lines) if line.startswith("step ")]
    assert len(whitening) == 1 and len(scoring) == 1 and steps
    assert whitening[0] < steps[0] and steps[-1] < scoring[0]  # each before its phase
    assert "16 components on the 80 training images" in lines[whitening[0]]
    assert lines[scoring[0] + 1].startswith("done in ")
    log = (tmp_path / "a" / "train.log").read_text()
    assert lines[whitening[0]] in log and lines[scoring[0]] in log
    assert main(common + ["--out", str(tmp_path / "b"), "-q"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("test accuracy")


def command_error(argv, capsys):
    """The usage and the last line a command's argument error prints, and its exit status."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    return stop.value.code, err.splitlines()[0], err.splitlines()[-1]


@pytest.mark.parametrize("argv, line", [
    (["train", "--hidden-dim", "512", "256"], "numpy-mlp train: error: unrecognized argument "
     "'256': --hidden-dim takes its values comma-separated, e.g. --hidden-dim 512,256"),
    (["train", "--hidden-dim=512", "256", "128", "-q"], "numpy-mlp train: error: unrecognized "
     "argument '256': --hidden-dim takes its values comma-separated, e.g. --hidden-dim "
     "512,256,128"),
    (["train", "--alpha", "0.1", "0.2"],
     "numpy-mlp train: error: unrecognized argument '0.2': --alpha takes one value"),
    (["train", "--hiden-dim", "512"],
     "numpy-mlp train: error: unrecognized argument --hiden-dim; did you mean --hidden-dim?"),
    (["train", "--no-flipp"],
     "numpy-mlp train: error: unrecognized argument --no-flipp; did you mean --no-flip?"),
    (["evaluate", "--modle=m.npz"],
     "numpy-mlp evaluate: error: unrecognized argument --modle; did you mean --model?"),
    (["report", "runs/x", "--zzz"], "numpy-mlp report: error: unrecognized argument --zzz; "
     "the command's --help lists its flags"),
])
def test_a_wrong_argument_is_one_line_in_the_commands_own_usage(argv, line, capsys):
    code, usage, last = command_error(argv, capsys)
    assert code == 2 and last == line
    assert usage.startswith(f"usage: numpy-mlp {argv[0]} ")


def test_a_list_given_as_one_argument_is_what_the_error_suggested(captured):
    assert main(["train", "--hidden-dim", "512,256", "-q"]) == 0
    assert captured[-1][0].hidden_dim == (512, 256)


def test_version_prints_the_package_version(capsys):
    from numpy_mlp.version import __version__

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"numpy-mlp {__version__}\n"


def test_version_through_python_dash_m():
    from numpy_mlp.version import __version__

    done = subprocess.run([sys.executable, "-m", "numpy_mlp", "--version"], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert (done.returncode, done.stdout) == (0, f"numpy-mlp {__version__}\n")


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "report", "export", "search"])
def test_a_commands_help_names_only_flags_it_has(command, capsys, monkeypatch):
    """Help that says "(see --dataset)" where the command has no --dataset sends the reader to
    a flag that is not there; every flag its help names is one of its own."""
    from numpy_mlp.cli.commands import _settings_of
    from numpy_mlp.cli.flags import option_strings

    monkeypatch.setenv("COLUMNS", "1000")  # no flag broken over two lines
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    options, _, epilog = text.partition("\nexamples:\n")
    assert epilog.strip(), f"numpy-mlp {command} --help has no examples"
    assert ("--config FILE.toml" in text) == (command != "export")  # export reads no file
    own = {f for s in _settings_of(command) for f in option_strings(s)} | {"--help"}
    own |= {"--set", "--space"} if command == "search" else set()
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", options))
    assert named and named <= own, sorted(named - own)
    # the examples are this command's, with its own flags
    for line in epilog.splitlines():
        if line.strip().startswith("numpy-mlp "):
            assert line.split()[1] == command, line
            assert set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line)) <= own, line


def test_a_run_without_a_validation_split_shows_no_nan(tmp_path, capsys):
    """--val-size 0 trains on every training image (as --preset fast does): the log lines,
    the summary, the quiet line and the report leave the missing validation figures out
    instead of printing nan, and keep the last step's weights."""
    write_cifar_dir(tmp_path / "cifar", n_per_batch=20, n_test=20)
    common = ["train", "--data-dir", str(tmp_path / "cifar"), "--offline", "--hidden-dim", "8",
              "--num-iters", "4", "--batch-size", "16", "--val-size", "0", "--evals", "2",
              "--tta-shift", "1"]
    assert main(common + ["--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    assert len(steps) == 2 and all("train_acc" in s and "val_acc" not in s for s in steps)
    assert "no validation split: the weights of step 4" in out
    assert "ten views (shift 1): test " in out
    log = (tmp_path / "a" / "train.log").read_text()
    page = re.sub(r"data:[^\"]*", "", (tmp_path / "a" / "report.html").read_text())  # no PNGs
    for text in (out, log, page):
        assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    strict = json.loads((tmp_path / "a" / "metrics.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"metrics.json holds {c}"))
    assert "val_accuracy" not in strict and "val_accuracy_tta" not in strict
    assert 0 <= strict["test_accuracy"] <= 1 and 0 <= strict["test_accuracy_tta"] <= 1
    assert main(["evaluate", "--model", str(tmp_path / "a" / "model.npz"), "--data-dir",
                 str(tmp_path / "cifar"), "--offline", "--no-pictures"]) == 0
    out = capsys.readouterr().out
    assert not re.search(r"\bnan\b", out, re.IGNORECASE)
    assert "  val accuracy: none (no validation split" in out and "test accuracy: 0." in out
    assert main(common + ["--out", str(tmp_path / "b"), "-q"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("test accuracy") and "(val" not in line
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"),
                 "--out", str(tmp_path / "cmp")]) == 0
    page = re.sub(r"data:[^\"]*", "", (tmp_path / "cmp" / "compare.html").read_text())
    assert not re.search(r">\s*nan\s*<", page, re.IGNORECASE) and "—" in page
