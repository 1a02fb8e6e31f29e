"""Hostile paths given to the commands: FIFOs, devices, links, files that are no journal,
another run's folder, names too long or holding a newline.

Each class is held in one place (files/regular.py opens every file read, files/atomic.py
checks every path written, runs/folder.py owns every folder written, search/journal.py
repairs only journals, cli/commands.py main() turns an OSError into one line,
errors.printable shows names); the tests run the commands as a user would, in real
processes where a hang is the failure (a timeout ends the child, and the test fails)."""

import gzip
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_cifar import write_cifar_dir
from test_bad_inputs import TINY  # a finished run in a few steps, quiet, offline

from numpy_mlp.cli.commands import main
from numpy_mlp.data.idx import IDX_NAMES

CLI = "import sys; from numpy_mlp.cli.commands import main; sys.exit(main(sys.argv[1:]))"
HANG = 60  # seconds: far beyond what a refused path takes; reaching it means a hang


def run_cli(*argv, env=None, timeout=HANG):
    """``numpy-mlp ARGV`` in a child process: (status, stdout, stderr). A child still running
    after ``timeout`` is killed and the test fails: the command hung."""
    proc = subprocess.Popen([sys.executable, "-c", CLI, *map(str, argv)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"numpy-mlp {' '.join(map(str, argv))} hung for {timeout} s")
    return proc.returncode, out, err


def one_error_line(err):
    """The single ``numpy-mlp: error:`` line of ``err``, asserting it is the only line."""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("numpy-mlp: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny finished run folder, trained through the CLI on CIFAR-10 look-alike files."""
    tmp = tmp_path_factory.mktemp("hostile")
    write_cifar_dir(tmp / "data", "py3")
    assert main(["train", "--data-dir", str(tmp / "data"), "--out", str(tmp / "run"), *TINY]) == 0
    return tmp / "run"


# --------------------------------------------------------------- FIFOs: every reader refuses

def _fifo(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def _mnist_with_a_fifo(tmp):
    """An MNIST folder whose training images are a FIFO (the others real gzip files)."""
    folder = tmp / "mnist"
    folder.mkdir()
    for name in IDX_NAMES[1:]:
        (folder / name).write_bytes(gzip.compress(b"\0" * 16))
    return ["--dataset", "mnist", "--data-dir", folder], _fifo(folder / IDX_NAMES[0])


FIFO_CASES = {
    "train --config": lambda tmp: (["train", "--config", "{fifo}", "--out", tmp / "o"],
                                   _fifo(tmp / "c.toml")),
    "search --config": lambda tmp: (["search", "--config", "{fifo}", "--out", tmp / "o"],
                                    _fifo(tmp / "s.toml")),
    "search --storage": lambda tmp: (["search", "--storage", "{fifo}", "--out", tmp / "o",
                                      "--data-dir", tmp, "--offline"], _fifo(tmp / "j.log")),
    "an MNIST idx file": lambda tmp: _with_train(tmp, *_mnist_with_a_fifo(tmp)),
    "the CIFAR-100 archive": lambda tmp: _with_train(
        tmp, ["--dataset", "cifar100", "--data-dir", tmp / "c100"],
        _fifo(tmp / "c100" / "cifar-100-python.tar.gz")),
    "the CIFAR-10 archive": lambda tmp: _with_train(
        tmp, ["--data-dir", tmp / "c10"], _fifo(tmp / "c10" / "cifar-10-python.tar.gz")),
    "a CIFAR-10 batch file": lambda tmp: _with_train(
        tmp, ["--data-dir", tmp / "b"], _fifo(tmp / "b" / "data_batch_1")),
    "evaluate --model": lambda tmp: (["evaluate", "--model", "{fifo}"], _fifo(tmp / "m.npz")),
}


def _with_train(tmp, data_flags, fifo):
    return ["train", *data_flags, "--out", tmp / "o", *TINY], fifo


@pytest.mark.parametrize("case", list(FIFO_CASES))
def test_a_fifo_with_no_writer_is_one_line_not_a_hang(tmp_path, case):
    args, fifo = FIFO_CASES[case](tmp_path)
    args = [str(fifo) if a == "{fifo}" else a for a in args]
    rc, _, err = run_cli(*args)
    line = one_error_line(err)
    assert rc == 2 and str(fifo) in line and "FIFO" in line, line


def test_a_fifo_given_as_an_image_is_refused_by_the_image_reader(tmp_path):
    from numpy_mlp.data.dataset import Geometry
    from numpy_mlp.data.images import image_to_row
    from numpy_mlp.errors import UserError

    fifo = _fifo(tmp_path / "cat.png")
    with pytest.raises(UserError, match="cat.png"):
        image_to_row(fifo, geometry=Geometry(3, 32, 32))


@pytest.mark.parametrize("node", ["fifo", "device", "folder"])
def test_the_one_opener_refuses_what_is_not_a_regular_file(tmp_path, node):
    from numpy_mlp.errors import DataError
    from numpy_mlp.files.regular import open_regular

    path = {"fifo": lambda: _fifo(tmp_path / "f"), "device": lambda: Path(os.devnull),
            "folder": lambda: tmp_path}[node]()
    kind = {"fifo": r"a FIFO \(named pipe\)", "device": "a character device",
            "folder": "a folder"}[node]
    with pytest.raises(DataError, match=f"{path} is {kind}, not a regular file; fix it"):
        open_regular(path, error=DataError, fix="fix it")


# --------------------------------------------------------------- output paths: every writer checks

def _device(path):
    """A character device at ``path``: a twin of /dev/null made with mknod (as root), else
    the real /dev/null, which only a check that writes nothing may be given."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        return path
    except PermissionError:
        return Path(os.devnull)


OUTPUT_NODES = {
    "a FIFO": lambda tmp: _fifo(tmp / "out.onnx"),
    "a character device": lambda tmp: _device(tmp / "null.onnx"),
    "a symbolic link to a device": lambda tmp: _symlink(tmp / "link.onnx", Path(os.devnull)),
    "a symbolic link to a file": lambda tmp: _symlink(tmp / "file.onnx", tmp / "target.onnx"),
}


def _symlink(link, target):
    if not target.exists() and target.parent == link.parent:
        target.write_bytes(b"kept")
    link.symlink_to(target)
    return link


def _node(path):
    st = os.lstat(path)
    return stat.S_IFMT(st.st_mode), st.st_ino, st.st_rdev


@pytest.mark.parametrize("case", list(OUTPUT_NODES))
def test_export_never_replaces_a_device_a_fifo_or_a_link(tmp_path, run_dir, case):
    node = OUTPUT_NODES[case](tmp_path)
    before = _node(node)
    if node == Path(os.devnull):  # not root: only the check that writes nothing is tried
        from numpy_mlp.errors import UserError
        from numpy_mlp.files.atomic import check_output_path

        with pytest.raises(UserError, match="a character device; numpy-mlp writes only"):
            check_output_path(node, "--onnx")
        return
    rc, _, err = run_cli("export", run_dir, "--onnx", node)
    line = one_error_line(err)
    assert rc == 2 and f"--onnx {node} is " in line and "choose another path" in line, line
    assert _node(node) == before  # the node itself, not a regular file in its place
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_dev_null_is_refused_by_the_check_every_write_makes_first(monkeypatch):
    """/dev/null itself is given only to the check: atomic_write must refuse it before it
    creates its temporary file (mkstemp is made to fail the test if reached)."""
    import tempfile

    from numpy_mlp.errors import UserError
    from numpy_mlp.files import atomic

    def reached(*a, **kw):
        raise AssertionError("atomic_write went on to write beside /dev/null")

    monkeypatch.setattr(tempfile, "mkstemp", reached)
    with pytest.raises(UserError, match=f"{os.devnull} is a character device"):
        atomic.atomic_write(os.devnull, lambda f: f.write(b"x"))


def test_a_picture_written_by_name_goes_through_the_same_check(tmp_path):
    """The search's pictures are written by name (not through a run folder): a FIFO there
    is refused, not replaced and not blocked on."""
    import matplotlib.pyplot as plt

    from numpy_mlp.errors import UserError
    from numpy_mlp.runs.plots import save_figure

    fifo = _fifo(tmp_path / "history.png")
    with pytest.raises(UserError, match="history.png is a FIFO"):
        save_figure(plt.figure(), fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# --------------------------------------------------------------- journals: repair only journals

def _note(tmp):
    path = tmp / "notes.txt"
    path.write_bytes(b"my notes\nsecond line without newline")  # 36 bytes, as reported
    return path


NOT_JOURNALS = {
    "a run's model.npz": lambda tmp, run: _copy(run / "model.npz", tmp / "model.npz"),
    "a text file without a final newline": lambda tmp, run: _note(tmp),
    "one line that is no journal entry": lambda tmp, run: _write(tmp / "x.log", b"hello"),
}


def _copy(src, dst):
    dst.write_bytes(src.read_bytes())
    return dst


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(NOT_JOURNALS))
def test_search_storage_that_is_no_journal_is_left_byte_for_byte(tmp_path, run_dir, case):
    path = NOT_JOURNALS[case](tmp_path, run_dir)
    before = path.read_bytes()
    rc, _, err = run_cli("search", "--storage", path, "--out", tmp_path / "s", "--offline",
                         "--data-dir", tmp_path / "none", "--n-trials", "1")
    line = one_error_line(err)
    assert rc == 2 and str(path) in line and "not an Optuna journal" in line, line
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.torn-*"))  # no copy: there was nothing to repair


def _torn_journal(tmp):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    journal = tmp / "study.journal"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(journal))))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    whole = journal.read_bytes()
    last = whole[:-1].rfind(b"\n") + 1
    return journal, whole, last


def test_a_torn_journal_is_repaired_and_the_message_names_the_copy(tmp_path):
    from numpy_mlp.search.journal import check_journal_file

    journal, whole, last = _torn_journal(tmp_path)
    journal.write_bytes(whole[:last + 5])  # a power cut five bytes into the last append
    note = check_journal_file(journal)
    copies = list(tmp_path.glob("study.journal.torn-*"))
    assert len(copies) == 1 and f"kept as {copies[0]}" in note
    assert copies[0].read_bytes() == whole[:last + 5] and journal.read_bytes() == whole[:last]


def test_a_journal_whose_torn_tail_is_no_entry_is_refused_untouched(tmp_path):
    from numpy_mlp.errors import UserError
    from numpy_mlp.search.journal import check_journal_file

    journal, whole, last = _torn_journal(tmp_path)
    damaged = whole + b"not an entry"
    journal.write_bytes(damaged)
    with pytest.raises(UserError, match="does not begin as an entry of an Optuna journal"):
        check_journal_file(journal)
    assert journal.read_bytes() == damaged and not list(tmp_path.glob("*.torn-*"))


# --------------------------------------------------------------- paths the system refuses

LONG = "n" * 300  # one part of a path over the 255 bytes a file name may have


def _long_cases(tmp, run, data):
    long = tmp / LONG
    return {
        "train --out": ["train", "--data-dir", data, "--out", long, *TINY],
        "train --data-dir (cifar10)": ["train", "--data-dir", long, "--out", tmp / "o", *TINY],
        **{f"train --data-dir ({d})": ["train", "--dataset", d, "--data-dir", long, "--out",
                                       tmp / "o", *TINY[:-1]]  # without --offline
           for d in ("mnist", "fashion-mnist", "cifar100")},
        "train --resume": ["train", "--resume", long],
        "evaluate --model": ["evaluate", "--model", long],
        "evaluate --out": ["evaluate", "--model", run, "--out", long],
        "predict an image": ["predict", "--model", run, long / "cat.png"],
        "report": ["report", long],
        "export": ["export", long, "--onnx", tmp / "m.onnx"],
        "search --out": ["search", "--out", long, "--data-dir", data, "--offline"],
    }


LONG_CASES = list(_long_cases(Path("t"), Path("r"), Path("d")))


@pytest.mark.parametrize("case", LONG_CASES)
def test_a_name_too_long_is_one_line_for_every_command(tmp_path, run_dir, case, capsys):
    args = _long_cases(tmp_path, run_dir, run_dir.parent / "data")[case]
    assert main([str(a) for a in args]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert LONG in line and "too long" in line, line


@pytest.mark.parametrize("dataset", ["cifar10", "mnist", "fashion-mnist", "cifar100"])
@pytest.mark.parametrize("given", ["--data-dir", "NUMPY_MLP_DATA"])
def test_a_data_folder_that_is_a_file_is_one_line(tmp_path, dataset, given):
    file = tmp_path / "notes.txt"
    file.write_text("not a folder")
    flags = ["--data-dir", file] if given == "--data-dir" else []
    env = {"NUMPY_MLP_DATA": str(file)} if given == "NUMPY_MLP_DATA" else None
    rc, _, err = run_cli("train", "--dataset", dataset, *flags, "--out", tmp_path / "o",
                         "--num-iters", "1", env=env)  # downloads allowed: none may start
    line = one_error_line(err)
    assert rc == 2 and f"{file} is a file, not a folder" in line, line
    assert file.read_text() == "not a folder"


def test_search_out_where_nothing_may_be_written_is_one_line(tmp_path):
    """/sys refuses a new folder even to root (EPERM; EACCES to others)."""
    rc, _, err = run_cli("search", "--out", "/sys/numpy-mlp-search", "--data-dir", tmp_path,
                         "--offline")
    line = one_error_line(err)
    assert rc == 2 and "/sys/numpy-mlp-search" in line and "writable" in line, line
    assert not os.path.exists("/sys/numpy-mlp-search")


def test_search_out_on_a_read_only_disk_is_one_line(tmp_path, monkeypatch, capsys):
    """A read-only file system (EROFS), as the kernel reports it when a folder is made."""
    import errno

    def read_only(path, *a, **kw):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(os, "mkdir", read_only)
    out = tmp_path / "ro" / "search"
    assert main(["search", "--out", str(out), "--data-dir", str(tmp_path), "--offline"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(out.parent) in line and "the disk is read-only" in line, line


# --------------------------------------------------------------- names shown on one line

@pytest.mark.parametrize("args", [
    ["train", "--config", "c.toml\nnumpy-mlp: error: forged"],
    ["train", "--data-dir", "d\nnumpy-mlp: error: forged", "--offline"],
    ["evaluate", "--model", "m.npz\nnumpy-mlp: error: forged"],
    ["report", "r\x1b[2K\nnumpy-mlp: error: forged"],
    ["search", "--storage", "j\nnumpy-mlp: error: forged", "--offline"],
], ids=["config", "data-dir", "model", "report", "storage"])
def test_a_name_with_a_newline_cannot_forge_a_second_error_line(tmp_path, args, capsys,
                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "j\nnumpy-mlp: error: forged").write_bytes(b"garbage\n")  # no journal
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "\\nnumpy-mlp: error: forged" in line, line


# --------------------------------------------------------------- one owner for every folder written

def _tree(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def other_run(run_dir):
    """A second finished run beside ``run_dir``, trained on the same files."""
    other = run_dir.parent / "other"
    assert main(["train", "--data-dir", str(run_dir.parent / "data"), "--out", str(other),
                 *TINY, "--seed", "1"]) == 0
    return other


def test_evaluate_out_into_another_run_is_refused_and_its_pictures_kept(run_dir, other_run):
    before = _tree(other_run)
    rc, _, err = run_cli("evaluate", "--model", run_dir, "--out", other_run)
    line = one_error_line(err)
    assert rc == 2 and f"--out {other_run} holds a training run" in line, line
    assert f"e.g. --out {other_run}-2" in line and not Path(f"{other_run}-2").exists()
    assert _tree(other_run) == before


def test_evaluate_out_into_its_own_folder_or_a_new_one_is_written(tmp_path, run_dir):
    assert main(["evaluate", "--model", str(run_dir / "model.npz"), "--out", str(run_dir),
                 "--quiet"]) == 0
    assert main(["evaluate", "--model", str(run_dir), "--out", str(tmp_path / "new"),
                 "--quiet"]) == 0
    assert (tmp_path / "new" / "confusion.png").is_file()


def test_search_out_into_a_finished_run_is_refused_and_the_run_kept(run_dir, other_run):
    before = _tree(other_run)
    rc, _, err = run_cli("search", "--out", other_run, "--data-dir", run_dir.parent / "data",
                         "--offline", "--n-trials", "1")
    line = one_error_line(err)
    assert rc == 2 and f"--out {other_run} holds a training run" in line, line
    assert _tree(other_run) == before


@pytest.mark.parametrize("owner, command", [
    ("run", "search"), ("search", "train"), ("search", "search")])
def test_a_live_folder_is_shared_only_between_searches(tmp_path, run_dir, owner, command):
    """A live owner (held here, as the command holds it): a run excludes everyone; the
    searches of one folder share it (they may join one study) and exclude a run."""
    from numpy_mlp.runs.folder import RunFolder

    out = tmp_path / "live"
    data = run_dir.parent / "data"
    args = {"search": ["search", "--out", out, "--data-dir", data, "--offline", "--n-trials", "1",
                       *[a for kv in ("hidden_dim=8", "num_iters=3", "val_size=10", "evals=1",
                                      "batch_size=16")
                         for a in ("--set", kv)], "-q"],
            "train": ["train", "--out", out, "--data-dir", data, *TINY]}[command]
    with RunFolder(out).open(shared=owner == "search"):
        rc, _, err = run_cli(*args)
    if owner == "search" and command == "search":
        assert rc == 0, err
        assert (out / "best.json").is_file()
    else:
        line = one_error_line(err)
        assert rc == 2 and f"--out {out} is in use by another numpy-mlp run" in line, line


def test_train_out_into_a_finished_search_is_refused_and_the_search_kept(tmp_path, run_dir,
                                                                         capsys):
    search = tmp_path / "search"
    search.mkdir()
    (search / "search.json").write_text("{}\n")
    (search / "trials.csv").write_text("number\n")
    before = _tree(search)
    assert main(["train", "--out", str(search), "--data-dir", str(run_dir.parent / "data"),
                 *TINY]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"--out {search} holds a search (search.json)" in line, line
    assert f"e.g. --out {search}-2" in line
    assert {k: v for k, v in _tree(search).items() if k.name != ".lock"} == before  # lock: empty


def test_a_fifo_among_a_folders_images_is_passed_over_not_waited_on(tmp_path):
    from PIL import Image

    data = tmp_path / "images"
    for c in ("cat", "dog"):
        (data / c).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (9, 9), (40 * i, 0, 0)).save(data / c / f"{i}.png")
    _fifo(data / "cat" / "fifo.png")
    rc, _, err = run_cli("train", "--dataset", "folder", "--data-dir", data, "--image-size", "8",
                         "--out", tmp_path / "o", *TINY, "--val-size", "2", "--batch-size", "4")
    assert rc == 0, err
    assert (tmp_path / "o" / "model.npz").is_file()


@pytest.mark.parametrize("node", ["fifo", "link"])
def test_a_stale_part_file_that_is_no_file_is_refused_before_the_download(tmp_path, node):
    """The download streams into NAME.part: a FIFO there would block its open for ever, a
    link would be written through."""
    from numpy_mlp.data.download import download_file
    from numpy_mlp.errors import DataError

    part = tmp_path / "archive.tar.gz.part"
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    os.mkfifo(part) if node == "fifo" else part.symlink_to(target)
    # nothing listens on port 9 of 127.0.0.1: the check comes before any connection
    with pytest.raises(DataError) as e:
        download_file(tmp_path, "archive.tar.gz", "http://127.0.0.1:9/a.tar.gz", "0" * 32,
                      what="the archive", size="1 kB")
    kind = "a FIFO (named pipe)" if node == "fifo" else "a symbolic link"
    assert f"archive.tar.gz.part, where the download is written, is {kind}; remove it" in \
        str(e.value)
    assert target.read_bytes() == b"keep" and os.path.lexists(part)
