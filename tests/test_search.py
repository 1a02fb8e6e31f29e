"""The hyperparameter search: space handling, pruning, several workers on one study
(journal file, a real PostgreSQL server and a real Redis server), a worker killed
mid-trial, damaged journals, two studies in one folder and the search's pictures."""

import csv
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pytest
from fixtures_cifar import write_cifar_dir
from optuna.distributions import FloatDistribution
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from synthetic_data import synthetic

from numpy_mlp.cli import commands as cli
from numpy_mlp.errors import ConfigError, UserError
from numpy_mlp.runs import plots
from numpy_mlp.search import (
    HEARTBEAT,
    STALE_AFTER,
    SearchSettings,
    check_settings,
    fail_dead_trials,
    grid_of,
    load_search_file,
    merge_space,
    objective,
    open_storage,
    open_study,
    run_search,
    shares,
    study_folder,
    suggest_config,
)
from numpy_mlp.search.storage import HeartbeatJournalStorage, redact, scrub, worker_identity
from numpy_mlp.training.config import TrainConfig
from numpy_mlp.training.model_file import load_model

# tiny trials: 200 training images of fixture data, a few SGD steps
TINY = {"val_size": 50, "num_iters": 30, "evals": 3, "eval_train_size": 50}
TINY_SPACE = {"hidden_dim": {"low": 8, "high": 32, "log": True}, "batch_size": {"choices": [8, 16]},
              "alpha": {"low": 1e-3, "high": 1e-1, "log": True}}


@pytest.fixture
def tiny_dir(tmp_path):
    write_cifar_dir(tmp_path / "data", n_per_batch=40, n_test=20)
    return tmp_path / "data"


def settings(out, data_dir, **kw):
    kw.setdefault("fixed", dict(TINY))
    kw.setdefault("space", dict(TINY_SPACE))
    return SearchSettings(out=str(out), data_dir=str(data_dir), download=False, **kw)


def load(s):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return open_study(s)


def check_result(out, study, n_finished):
    """Every trial accounted for, numbers unique, and the best chosen by validation accuracy."""
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials)))
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == n_finished
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert sorted(int(r["number"]) for r in rows) == numbers
    best = json.loads((out / "best.json").read_text())
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    top = max(t.value for t in complete)
    assert best["trial_val_accuracy"] == top
    assert best["best_trial"] == min(t.number for t in complete if t.value == top)
    assert best["val_accuracy"] == pytest.approx(top)  # the reused model is the trial's model
    assert 0 <= best["test_accuracy"] <= 1
    for f in ("best_model.npz", "history.png", "params.png", "importance.png", "search.json"):
        assert (out / f).is_file(), f
    return trials, best


# --------------------------------------------------------------------------- the space

def test_cli_parses_fixed_fields_and_ranges():
    args = cli.build_parser().parse_args(
        ["search", "--set", "epochs=10", "--set", "schedule=cosine", "--set", "flip=true",
         "--set", "hidden_dim=512,256", "--space", "alpha=1e-3:1e-1:log", "--space", "beta=0:0.9",
         "--space", "batch_size=64,128"])
    fixed, space = merge_space(args.space, args.set)
    assert fixed == {"epochs": 10, "schedule": "cosine", "flip": True, "hidden_dim": (512, 256)}
    assert space["alpha"] == {"low": 1e-3, "high": 1e-1, "log": True}
    assert space["beta"] == {"low": 0, "high": 0.9, "log": False}
    assert space["batch_size"] == {"choices": [64, 128]}
    assert space["reg"]["log"]  # the defaults stay for what was not given


def test_a_fixed_field_is_not_searched(tmp_path):
    s = SearchSettings(out=str(tmp_path), fixed={"hidden_dim": (64,), "num_iters": 5})
    study = optuna.create_study(direction="maximize")
    config = suggest_config(study.ask(), s)
    assert config.hidden_dim == (64,) and config.num_iters == 5
    t = study.trials[0]
    # num_iters fixed: epochs unused
    assert "hidden_dim" not in t.params and "epochs" not in t.params
    assert set(t.params) == {"alpha", "beta", "batch_size", "reg"}


def test_toml_file_fixes_and_narrows(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[fixed]\nschedule = "constant"\n[space]\n'
                 'alpha = {low = 0.01, high = 0.05, log = true}\n'
                 'hidden_dim = [[64, 32], 128]\n')
    fixed, space = load_search_file(f)
    assert fixed == {"schedule": "constant"}
    s = SearchSettings(out=str(tmp_path), fixed=fixed, space=merge_space([space])[1])
    check_settings(s)
    configs = {suggest_config(optuna.create_study().ask(), s).hidden_dim for _ in range(30)}
    assert configs == {(64, 32), (128,)}


@pytest.mark.parametrize("fixed, space, match", [
    # momentum 1 is refused by TrainConfig
    ({}, {"beta": {"low": 0.5, "high": 1.0}}, "beta"),
    ({}, {"dropuot": {"low": 0.1, "high": 0.5}}, "dropuot"),        # a typo names the known fields
    ({}, {"seed": {"choices": [0, 1]}}, "validation split"),
    ({}, {"alpha": {"low": 0.0, "high": 0.1, "log": True}}, "low > 0"),
    ({}, {"alpha": {"low": 0.1, "high": 0.01}}, "low < high"),
    ({"batch_size": 0}, {}, "batch_size"),
    ({"not_a_field": 1}, {}, "unknown config key"),
])
def test_bad_space_or_fixed_values_are_refused_up_front(tmp_path, fixed, space, match):
    s = SearchSettings(out=str(tmp_path), fixed=fixed, space=merge_space([space])[1])
    with pytest.raises(ConfigError, match=match):
        check_settings(s)


def test_space_values_are_checked_in_trainconfig_s_own_words(tmp_path):
    with pytest.raises(ConfigError) as own:
        TrainConfig(beta=1.0)
    space = merge_space([{"beta": {"low": 0.5, "high": 1.0}}])[1]
    s = SearchSettings(out=str(tmp_path), space=space)
    with pytest.raises(ConfigError) as searched:
        check_settings(s)
    assert str(searched.value) == f"--space beta: {own.value}"


@pytest.mark.parametrize("text, match", [
    ("fixed = 3\n", "fixed must be a table"),
    ("[space]\nalpha = 0.01\n", "give a range"),
    ("[other]\n", "unknown table"),
])
def test_a_search_file_of_the_wrong_shape_is_one_line_error(tmp_path, capsys, text, match):
    f = tmp_path / "s.toml"
    f.write_text(text)
    rc = cli.main(["search", "--out", str(tmp_path / "out"), "--config", str(f)])
    err = capsys.readouterr().err
    assert rc == 2 and match in err and str(f) in err and len(err.splitlines()) == 1


def test_sqlite_with_several_workers_is_refused(tmp_path):
    s = SearchSettings(out=str(tmp_path), storage=f"sqlite:///{tmp_path}/s.db", workers=2)
    with pytest.raises(UserError, match="SQLite"):
        check_settings(s)


def test_grid_spaces_ranges_and_keeps_lists(tmp_path):
    s = SearchSettings(out=str(tmp_path), fixed={"num_iters": 5}, space={
        "hidden_dim": {"low": 100, "high": 400, "log": True}, "alpha": {"low": 0.0, "high": 0.1},
        "batch_size": {"choices": [32, 64]}})
    assert grid_of(s) == {"hidden_dim": [100, 200, 400], "alpha": [0.0, 0.05, 0.1],
                          "batch_size": [32, 64]}


def test_grid_search_runs_each_point_once_and_stops(tmp_path, tiny_dir):
    s = settings(tmp_path / "grid", tiny_dir, n_trials=10, sampler="grid", grid_points=2,
                 space={"hidden_dim": {"choices": [8, 16]},
                        "alpha": {"low": 1e-3, "high": 1e-2, "log": True}})
    run_search(s, log=None)
    trials = load(s).get_trials()
    assert sorted((t.params["hidden_dim"], t.params["alpha"]) for t in trials) == [
        (8, 1e-3), (8, 1e-2), (16, 1e-3), (16, 1e-2)]


def test_shares_split_the_trials_exactly():
    assert shares(7, 3) == [3, 2, 2] and shares(1, 2) == [1, 0] and sum(shares(100, 7)) == 100


# --------------------------------------------------------------------------- pruning

def test_poor_trials_are_pruned_and_divergence_counts_as_pruned(tmp_path):
    """Four good runs, then runs that cannot learn (tiny alpha): the median pruner stops those."""
    data = synthetic(n_train=300, n_val=100)
    s = SearchSettings(out=str(tmp_path),
                       fixed={"hidden_dim": (32,), "batch_size": 32, "num_iters": 60, "evals": 6,
                              "val_size": 100, "eval_train_size": 100, "reg": 0.0, "flip": False,
                              "schedule": "cosine"},
                       space={"alpha": {"low": 1e-7, "high": 1e4, "log": True}})
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=4,
                                                                   n_warmup_steps=1))
    for alpha in [1e-2] * 4 + [1e-7] * 2 + [1e4]:
        study.enqueue_trial({"alpha": alpha})
    study.optimize(lambda t: objective(t, data, s), n_trials=7)
    states = [t.state for t in study.trials]
    assert states[:4] == [TrialState.COMPLETE] * 4 and min(t.value for t in study.trials[:4]) > 0.5
    assert states[4:] == [TrialState.PRUNED] * 3
    assert max(study.trials[4].intermediate_values) < 6  # stopped before its last evaluation
    assert (study.trials[6].user_attrs.get("diverged")
            and not study.trials[4].user_attrs.get("diverged"))


# --------------------------------------------------------------------------- several workers

def test_three_workers_share_one_journal_study_and_resume(tmp_path, tiny_dir):
    out = tmp_path / "search"
    s = settings(out, tiny_dir, n_trials=7, workers=3)
    run_search(s, log=None)
    trials, best = check_result(out, load(s), 7)
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 3  # three processes did the work
    assert best["trials"]["complete"] + best["trials"]["pruned"] == 7

    # the same command with a larger target continues the study where it stopped
    run_search(settings(out, tiny_dir, n_trials=10, workers=2), log=None)
    trials, _ = check_result(out, load(s), 10)
    assert len(trials) == 10


def test_search_runs_from_the_command_line(tmp_path, tiny_dir, capsys):
    out = tmp_path / "cli"
    rc = cli.main(["search", "--data-dir", str(tiny_dir), "--offline", "--out", str(out),
                   "--n-trials", "3", "--sampler", "random", "--pruner", "halving", "--quiet",
                   *[a for k, v in TINY.items() for a in ("--set", f"{k}={v}")],
                   "--space", "hidden_dim=8:16", "--space", "batch_size=8,16"])
    assert rc == 0
    assert "best trial" in capsys.readouterr().out
    saved = json.loads((out / "search.json").read_text())
    assert saved["sampler"] == "random" and saved["fixed"]["num_iters"] == 30
    check_result(out, load(settings(out, tiny_dir)), 3)


def test_bad_flag_is_one_line_error(tmp_path, capsys):
    rc = cli.main(["search", "--out", str(tmp_path), "--space", "beta=0:1.5"])
    err = capsys.readouterr().err
    assert (rc == 2 and err.startswith("numpy-mlp: error:") and "beta" in err
            and len(err.splitlines()) == 1)


# --------------------------------------------------------------------------- killed workers

@pytest.mark.parametrize("storage", ["journal", "redis"])
def test_a_worker_killed_mid_trial_fails_its_trial_and_the_study_carries_on(tmp_path, tiny_dir,
                                                                           storage, request):
    url = request.getfixturevalue("redis_url") if storage == "redis" else None
    out = tmp_path / "kill"
    args = [sys.executable, "-m", "numpy_mlp", "search", "--data-dir", str(tiny_dir), "--offline",
            "--out", str(out), "--n-trials", "4", "--workers", "2", "--pruner", "none",
            "--set", "val_size=50", "--set", "evals=5", "--set", "eval_train_size=50",
            "--set", "num_iters=3000", "--space", "hidden_dim=8:16", "--space", "batch_size=8,16",
            *(["--storage", url] if url else [])]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    s = settings(out, tiny_dir, storage=url)
    victim = _wait_for_running_trial(s, proc)
    os.kill(victim.user_attrs["worker"]["pid"], signal.SIGKILL)
    killed_at = time.time()
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, text
    assert "killed by signal 9" in text

    study = load(s)  # still readable
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL
    # marked FAIL as soon as a worker looked, not after Optuna's grace period
    assert killed.datetime_complete.timestamp() - killed_at < STALE_AFTER / 2
    again = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(again) == 1 and again[0].params == killed.params  # its config runs once more
    others = [t for t in study.trials if t.number != victim.number]
    assert all(t.state in (TrialState.COMPLETE, TrialState.WAITING) for t in others)
    assert any(t.state == TrialState.COMPLETE for t in others)  # the other worker carried on

    # resuming reaches the target: the queued config runs, new trials get new numbers
    space = merge_space([{"hidden_dim": {"low": 8, "high": 16, "log": False},
                          "batch_size": {"choices": [8, 16]}}])[1]
    run_search(settings(out, tiny_dir, n_trials=4, pruner="none", fixed={**TINY, "num_iters": 30},
                        space=space, storage=url), log=None)
    trials, _ = check_result(out, load(s), 4)
    assert trials[victim.number].state == TrialState.FAIL
    assert all(t.state == TrialState.COMPLETE for t in trials if t.number != victim.number)

    # a resumed study refuses a space of another kind (here: hidden_dim on a log scale)
    with pytest.raises(ConfigError, match="hidden_dim.*--study-name"):
        run_search(settings(out, tiny_dir, n_trials=5, fixed=TINY, storage=url), log=None)


def _wait_for_running_trial(s, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        if s.storage or (Path(s.out) / "study.journal").exists():
            running = [t for t in load(s).get_trials(states=(TrialState.RUNNING,))
                       if "worker" in t.user_attrs and t.intermediate_values]
            if running:
                return running[0]
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no trial started running within a minute")


def test_optuna_journal_storages_have_no_heartbeat(tmp_path):
    """Why study.HeartbeatJournalStorage exists: should this fail, Optuna's journal has a
    heartbeat of its own and ours can go."""
    plain = JournalStorage(JournalFileBackend(str(tmp_path / "plain.journal")))
    assert not is_heartbeat_enabled(plain)
    assert is_heartbeat_enabled(open_storage(SearchSettings(out=str(tmp_path))))


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning",
                            "ignore:Heartbeat of storage is supposed to be used")  # study.ask
@pytest.mark.parametrize("kind", ["journal", "rdb"])
def test_a_trial_whose_process_is_gone_fails_at_once(tmp_path, kind):
    """Optuna's heartbeat alone leaves the trial of a killed worker RUNNING for its grace
    period; a process known to be gone on this host fails its trial at once."""
    url = None if kind == "journal" else f"sqlite:///{tmp_path}/study.db"
    s = SearchSettings(out=str(tmp_path), storage=url)
    study = open_study(s)
    alpha = {"alpha": FloatDistribution(1e-3, 1e-1, log=True)}
    trial = study.ask(alpha)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    trial.set_user_attr("worker", {**worker_identity(trial.number), "pid": int(gone.stdout)})

    plain = (JournalStorage(JournalFileBackend(str(tmp_path / "study.journal"))) if not url else
             RDBStorage(url, heartbeat_interval=HEARTBEAT, grace_period=STALE_AFTER))
    fail_stale_trials(optuna.load_study(study_name=s.study_name, storage=plain))
    assert study.trials[0].state == TrialState.RUNNING  # Optuna's own rule: not stale yet

    assert fail_dead_trials(study) == [0]
    first, again = study.trials
    assert first.state == TrialState.FAIL and again.state == TrialState.WAITING
    assert again.params == first.params and again.system_attrs["failed_trial"] == 0

    # the queued copy carries the dead worker's tag until its own worker tags it: not dead
    assert study.ask().number == again.number
    assert fail_dead_trials(study) == []
    assert study.trials[1].state == TrialState.RUNNING


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")  # study.ask
def test_a_silent_trial_of_another_machine_fails_after_the_grace_period(tmp_path):
    storage = HeartbeatJournalStorage(JournalFileBackend(str(tmp_path / "j")), "j",
                                      grace_period=1)
    study = optuna.create_study(storage=storage)
    beating, silent = study.ask(), study.ask()
    for t in (beating, silent):
        t.set_user_attr("worker", {"host": "another-machine", "pid": 1, "start": 1,
                                   "trial": t.number})
    time.sleep(1.3)
    storage.record_heartbeat(beating._trial_id)
    assert fail_dead_trials(study) == [silent.number]
    assert study.trials[beating.number].state == TrialState.RUNNING


# --------------------------------------------------------------------------- damaged journals

def test_a_torn_journal_line_is_cut_off_and_the_search_goes_on(tmp_path, tiny_dir):
    out = tmp_path / "torn"
    run_search(settings(out, tiny_dir, n_trials=2, workers=2, pruner="none"), log=None)
    journal = out / "study.journal"
    whole = journal.read_bytes()
    last = whole[:-1].rfind(b"\n") + 1  # where the last line starts
    torn = whole[:last + (len(whole) - last) // 2]  # a power cut halfway through that append
    journal.write_bytes(torn)

    lines = []
    run_search(settings(out, tiny_dir, n_trials=3, pruner="none"), log=lines.append)
    notes = [line for line in lines if "cut short" in line]
    backups = list(out.glob("study.journal.torn-*"))
    assert len(notes) == 1 and str(journal) in notes[0]
    assert len(backups) == 1 and backups[0].name in notes[0] and backups[0].read_bytes() == torn
    repaired = journal.read_bytes()
    assert repaired.startswith(whole[:last]) and repaired.endswith(b"\n")

    # Optuna itself reads the study, which reached its new target; a later search goes on
    def optuna_finished():
        plain = JournalStorage(JournalFileBackend(str(journal)))
        trials = optuna.load_study(study_name="numpy-mlp", storage=plain).trials
        return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)

    assert optuna_finished() == 3
    run_search(settings(out, tiny_dir, n_trials=4, pruner="none"), log=None)
    assert optuna_finished() == 4 and len(list(out.glob("study.journal.torn-*"))) == 1


@pytest.mark.parametrize("bad, what", [
    (b"garbage \xff\n", "line 3: is not JSON"),
    (b"[1, 2]\n", "line 3: is not an entry of an Optuna journal"),
    (b'{"op_code": 99, "worker_id": "w"}\n', "line 3: is not an entry"),
    (b'{"op_code": 4, "worker_id": "w"}\n', "line 3: Optuna cannot replay it"),
    (b"{" * 100_000 + b"\n", "line 3: is not JSON"),
    (b"last\n", "line {last}: is not JSON"),  # Optuna would skip it until the next append
])
def test_a_damaged_journal_line_is_one_line_error(tmp_path, tiny_dir, capsys, bad, what):
    out = tmp_path / "bad"
    out.mkdir()
    journal = out / "study.journal"
    study = optuna.create_study(study_name="numpy-mlp", direction="maximize",
                                storage=JournalStorage(JournalFileBackend(str(journal))))
    study.optimize(lambda t: t.suggest_float("alpha", 1e-3, 1e-1, log=True), n_trials=1)
    lines = journal.read_bytes().splitlines(keepends=True)
    damaged = b"".join(lines + [bad] if bad == b"last\n" else lines[:2] + [bad] + lines[2:])
    journal.write_bytes(damaged)

    rc = cli.main(["search", "--data-dir", str(tiny_dir), "--offline", "--out", str(out),
                   "--n-trials", "2", *[a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert f"{journal}, {what.format(last=len(lines) + 1)}" in err
    assert journal.read_bytes() == damaged  # nothing appended to it


# --------------------------------------------------------------------------- two studies

def test_two_studies_in_one_folder_keep_their_own_models(tmp_path, tiny_dir):
    out = tmp_path / "two"
    wide = settings(out, tiny_dir, n_trials=1, study_name="wide", fixed={**TINY, "hidden_dim": 32})
    narrow = settings(out, tiny_dir, n_trials=1, study_name="narrow",
                      fixed={**TINY, "hidden_dim": 8})
    run_search(wide, log=None)
    run_search(narrow, log=None)  # its trial 0 is another model than wide's trial 0
    best = run_search(wide, log=None)  # nothing left to run: picks wide's best again
    (trial,) = load(wide).trials
    assert best["model"] == "reused the saved model of the trial"
    assert best["val_accuracy"] == pytest.approx(trial.value)
    assert best["config"]["hidden_dim"] == [32]
    saved = load_model(out / "best_model.npz")
    assert saved.model.hidden_dims == (32,) and saved.config["hidden_dim"] == [32]
    for name in ("wide", "narrow"):
        assert (out / "trial-models" / name / "trial-0.npz").is_file()
    # names that are not plain file names still get folders of their own
    assert len({study_folder(n) for n in ("a/b", "a_b", "a b", "..")}) == 4


# --------------------------------------------------------------------------- PostgreSQL

def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1 and a free port; stopped at the end."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                  key=lambda p: int(Path(p).parts[-3]))
    if not bins and not shutil.which("initdb"):
        pytest.fail("PostgreSQL server binaries not found; install Debian's 'postgresql' package "
                    "(scripts/test.sh does so where missing)")
    bindir = Path(bins[-1]).parent if bins else Path(shutil.which("initdb")).parent
    root = Path(tempfile.mkdtemp(prefix="numpy-mlp-pg-"))
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*a):
        return subprocess.run([*as_user, *a], check=True, capture_output=True, text=True)

    try:
        run(str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth=trust",
            "-E", "UTF8")
        run(str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w",
            "-t", "60", "-o", f"-h 127.0.0.1 -p {port} -k {root}", "start")
    except subprocess.CalledProcessError as e:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {e.stderr}\n{log}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(root / "data"),
                        "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_and_a_second_machine_share_a_postgresql_study(tmp_path, tiny_dir,
                                                                   postgres_url):
    a, b = tmp_path / "machine-a", tmp_path / "machine-b"
    sa = settings(a, tiny_dir, n_trials=5, workers=2, storage=postgres_url, study_name="shared")
    run_search(sa, log=None)
    check_result(a, load(sa), 5)
    # another "machine" (its own folder) runs the same command with a larger target: it joins
    sb = settings(b, tiny_dir, n_trials=8, workers=2, storage=postgres_url, study_name="shared")
    best = run_search(sb, log=None)
    trials, _ = check_result(b, load(sb), 8)
    assert len(trials) == 8 and best["trials"]["total"] == 8
    # the best trial may have run in machine a's folder: then b trains it again from its config
    assert best["model"] in ("reused the saved model of the trial", "trained again from its config")


# --------------------------------------------------------------------------- Redis

@pytest.fixture
def redis_url(tmp_path):
    """A throw-away Redis server on 127.0.0.1 and a free port; stopped at the end."""
    exe = shutil.which("redis-server")
    if not exe:
        pytest.fail("redis-server not found; install Debian's 'redis-server' package "
                    "(scripts/test.sh does so where missing)")
    import redis  # the client, in the test extra

    port, log = _free_port(), tmp_path / "redis.log"
    proc = subprocess.Popen([exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path), "--logfile", str(log)])
    client, deadline = redis.Redis(host="127.0.0.1", port=port), time.time() + 30
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                text = log.read_text() if log.exists() else ""
                pytest.fail(f"could not start redis-server: {text}")
            time.sleep(0.1)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_an_unreachable_redis_is_one_line_error(tmp_path, capsys):
    url = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    rc = cli.main(["search", "--out", str(tmp_path / "r"), "--storage", url])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and url in err and "Redis" in err


# --------------------------------------------------------------------------- pictures

def test_log_ticks_are_powers_of_ten_or_plain_numbers():
    def labels(low, high):
        ticks, text = plots.log_ticks(low, high)
        assert all(low <= t * (1 + 1e-9) and t <= high * (1 + 1e-9) for t in ticks)
        return text

    assert labels(1e-3, 1e-1) == ["1e-3", "1e-2", "1e-1"]
    assert labels(1e-6, 1e-2) == ["1e-6", "1e-5", "1e-4", "1e-3", "1e-2"]
    assert labels(5e-3, 2e-2) == ["5e-3", "1e-2", "2e-2"]
    assert labels(2e-3, 8e-3) == ["2e-3", "5e-3"]
    assert labels(32, 512) == ["50", "100", "200", "500"]
    assert labels(1536, 3072) == ["2000", "3000"]
    assert len(labels(1e-9, 1e9)) <= 7


def test_search_pictures_have_readable_ticks(tmp_path, monkeypatch):
    drawn = []

    def keep(fig, path, fmt="png"):
        fig.canvas.draw()
        drawn.append(fig)
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    plots.plot_search_history([0, 1, 2, 4], [0.3, 0.5, 0.4, 0.45], [3], [0.1], tmp_path / "h.png")
    params = {"alpha": ([1e-3, 3e-2], [5e-2], True), "epochs": ([5, 9], [7], False)}
    plots.plot_search_params(params, [0.3, 0.4], [0.2], tmp_path / "p.png")
    history, params = drawn
    ax = history.axes[0]
    lo, hi = ax.get_xlim()
    assert all(float(x).is_integer() for x in ax.get_xticks() if lo <= x <= hi)  # trial numbers
    alpha, epochs = params.axes[:2]
    shown = [t.get_text() for t in alpha.get_xticklabels() if t.get_text()]
    assert shown == plots.log_ticks(1e-3, 5e-2)[1]
    assert shown == ["1e-3", "1e-2"]
    assert not any(t.get_text() for t in alpha.get_xticklabels(minor=True))
    lo, hi = epochs.get_xlim()
    assert all(float(x).is_integer() for x in epochs.get_xticks() if lo <= x <= hi)
    for fig in drawn:
        plots.plt.close(fig)


# --------------------------------------------------------------------------- credentials

SECRET = "Sekr3t-Pa55"


@pytest.mark.parametrize("url", [
    "postgresql://127.0.0.1:{port}/db?user=u&password={secret}",          # query, libpq's key
    "postgresql://u:{secret}@127.0.0.1:{port}/db",                        # user info
    "postgresql://127.0.0.1:{port}/db?user=u&PASSWD={secret}&sslmode=disable",  # any case
    "mysql://u@127.0.0.1:{port}/db?charset=utf8&password={secret}",       # MySQL's query form
    "redis://:{secret}@127.0.0.1:{port}/0",                               # Redis's :pw@
    "redis://127.0.0.1:{port}/0?access_token={secret}",
])
def test_a_storage_password_is_shown_and_saved_nowhere(tmp_path, capsys, url):
    url = url.format(port=_free_port(), secret=SECRET)  # nothing listens there
    out = tmp_path / "s"
    rc = cli.main(["search", "--out", str(out), "--storage", url, "--offline"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("numpy-mlp: error: --storage")
    shown = redact(url)
    assert SECRET not in err and "***" in shown and shown in err
    assert not (out / "search.json").exists()  # nothing saved for a study never opened
    assert SECRET not in repr(SearchSettings(out=str(out), storage=url))  # --debug's traceback


def test_a_storage_password_is_not_saved_in_search_json(tmp_path, tiny_dir, postgres_url):
    """The server trusts every local user, so a password given in any form is accepted."""
    host = postgres_url.split("@", 1)[1]
    for i, url in enumerate([f"postgresql://{host}?user=postgres&password={SECRET}",
                             f"postgresql://postgres:{SECRET}@{host}"]):
        out, lines = tmp_path / f"s{i}", []
        run_search(settings(out, tiny_dir, n_trials=1, storage=url, study_name=f"s{i}"),
                   log=lines.append)
        saved = json.loads((out / "search.json").read_text())
        assert saved["storage"] == redact(url) and "***" in saved["storage"]
        shown = "\n".join(lines) + "".join(p.read_text(errors="replace") for p in out.rglob("*")
                                            if p.is_file())
        assert redact(url) in shown and SECRET not in shown


def test_redaction_keeps_what_is_not_a_credential():
    assert redact("postgresql://db-host:5432/optuna?sslmode=require") == (
        "postgresql://db-host:5432/optuna?sslmode=require")
    assert redact("runs/a@b/study.journal") == "runs/a@b/study.journal"
    assert redact("postgresql://user@host/db") == "postgresql://user@host/db"
    assert redact("postgresql://u:p/w@rd@host/db") == "postgresql://u:***@host/db"
    assert redact("mysql://h/db?Pass%77ord=x&pwd=y") == "mysql://h/db?Pass%77ord=***&pwd=***"
    # a driver's message quoting the password, raw or percent-decoded, loses it too
    assert scrub("auth failed: 'p@ss' for postgresql", "postgresql://u:p%40ss@h/db") == (
        "auth failed: '***' for postgresql")


# --------------------------------------------------------------------------- joining a study

def _picture_folder(root, classes, size=8, n=20):
    from PIL import Image

    rng = np.random.default_rng(len(classes))
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
                root / c / f"{i}.png")
    return root


FOLDER_FIXED = {**TINY, "dataset": "folder", "image_size": 8, "val_size": 6}


@pytest.mark.parametrize("first, second, named", [
    ("cifar", "cifar-val", "val_size=50 there, 40 here"),
    ("cifar", "folder-abc", "dataset=cifar10 there, folder here"),
    ("folder-abc", "folder-xy", "classes [\"a\", \"b\", \"c\"] there, [\"x\", \"y\"] here"),
])
def test_a_study_of_other_data_or_settings_is_not_joined(tmp_path, tiny_dir, first, second,
                                                         named):
    def make(kind):
        if kind.startswith("folder"):
            data = tmp_path / kind
            if not data.exists():
                _picture_folder(data, list(kind.split("-")[1]))
            return settings(out, data, n_trials=1, fixed=dict(FOLDER_FIXED))
        return settings(out, tiny_dir, n_trials=1,
                        fixed={**TINY, "val_size": 40} if kind == "cifar-val" else dict(TINY))

    out = tmp_path / "s"
    run_search(make(first), log=None)
    saved, n = (out / "search.json").read_bytes(), len(load(make(first)).get_trials())
    with pytest.raises(UserError, match="holds trials on other data") as e:
        run_search(make(second), log=None)
    assert named in str(e.value) and "--study-name" in str(e.value)
    assert (out / "search.json").read_bytes() == saved  # the first search's record stands
    assert len(load(make(first)).get_trials()) == n
    run_search(replace(make(second), study_name="other"), log=None)  # a new study is fine


@pytest.mark.parametrize("flag, value, named", [
    ("--study-name", "cifar-\udcff", "--study-name cifar-\\xff: not UTF-8"),  # argv's bytes
    ("--storage", "sqlite://", "is a database in memory"),
    ("--storage", "sqlite:///:memory:", "is a database in memory"),
])
def test_a_study_name_or_storage_no_search_can_use_is_refused_up_front(tmp_path, capsys, flag,
                                                                       value, named):
    out = tmp_path / "s"
    rc = cli.main(["search", "--out", str(out), flag, value, "--offline"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and named in err
    assert not out.exists()  # refused before any folder, journal or trial


RACE = """
import sys, time
from pathlib import Path
from numpy_mlp.search.settings import SearchSettings
from numpy_mlp.search.storage import open_storage
from numpy_mlp.search.study import quiet_optuna
quiet_optuna()
while not Path(sys.argv[2]).exists():  # all start together
    time.sleep(0.001)
open_storage(SearchSettings(out=".", storage=sys.argv[1]))
print("opened")
"""


def test_searches_creating_one_new_sqlite_file_at_once_all_open_it(tmp_path):
    url, go = f"sqlite:///{tmp_path}/new.db", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RACE, url, str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    time.sleep(1)  # let them all reach the start line (the outcome does not depend on it)
    go.touch()
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 and out.strip() == "opened" for p, out in zip(procs, outs)), outs
    assert len(RDBStorage(url).get_all_studies()) == 0  # one set of tables, readable
