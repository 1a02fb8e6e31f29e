"""``numpy-mlp train``: a run from its start, or from where it stopped, to its write-up.

:func:`run_training` starts a run; :func:`resume_training` (``--resume``) continues one
from its checkpoint, or finishes the write-up of one whose training had ended. Both
train through :func:`train_with_checkpoints`. The folder of a run is written only through
its :class:`~numpy_mlp.runs.folder.RunFolder`, locked for the run's whole life, and holds::

    config.json     the TrainConfig the run trains with (presets.fit_to_run applied)
    run.json        how the run was started (data folder, downloads; provenance: versions,
                    BLAS, UTC time, command line) and its phase
    train.log       the log lines printed during training
    checkpoint.npz  while the run is unfinished: everything to continue it
                    (training/checkpoint_file.py)
    history.csv     one row per step: step, loss, and the evaluation columns where measured
                    (with --ema, the average's validation accuracy last, val_acc_ema)
    metrics.json    train/val/test accuracy, per-class test accuracy, times
    model.npz       the parameters with the best validation accuracy and the data folder
                    they were trained on (training/model_file.py)
    loss.png, accuracy.png, confusion.png, predictions.png, weights.png   (see plots.py)
    report.html     all of the above on one self-contained page (see report.py)

The write-up (everything from model.npz on) is writeup.py; what a diverged run leaves,
rescue.py; the progress bar and log lines, display.py.
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.registry import DEFAULT_DATASET, default_folder, load_dataset
from ..errors import DivergenceError, Interrupted, UserError
from ..training.checkpoint_file import CHECKPOINT_NAME, read_checkpoint
from ..training.checkpointing import Checkpointer, checkpoint_interval, data_fingerprint, restore
from ..training.config import read_config
from ..training.loop import build, initial_params, result_of, total_steps, train
from ..training.model_file import MODEL_NAME
from ..training.presets import fit_to_run
from ..training.teacher import Teacher
from ..version import __version__
from .display import TrainingDisplay
from .folder import (
    STATE_NAME,
    RunFolder,
    check_owner,
    read_run_state,
    resume_data_dir,
    resume_then,
)
from .report import PICTURES
from .rescue import save_best_so_far
from .writeup import write_up

# what makes a folder hold a run: a config.json alone is left by a run that stopped at
# bad input before training, and may be written over
RUN_FILES = (MODEL_NAME, "metrics.json", "history.csv")
# every file a run writes, each refused before the run starts if a link or a folder is there
RUN_WRITES = ("config.json", STATE_NAME, "train.log", CHECKPOINT_NAME, "history.csv",
              "metrics.json", MODEL_NAME, *(name for name, _ in PICTURES), "report.html")


def default_run_dir(root="runs"):
    """``runs/<YYYYmmdd-HHMMSS>``, with a suffix if that folder already exists."""
    base = Path(root) / datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = base, 1
    while path.exists():
        path, n = Path(f"{base}-{n}"), n + 1
    return path


def _check_free(folder):
    """Refuse a folder (already locked by this run) that holds a run, so nothing saved is lost."""
    out, state = folder.path, folder.state()
    if (out / CHECKPOINT_NAME).exists() or (state is not None and state["phase"] == "writeup"):
        raise UserError(f"--out {out} holds an unfinished run; continue it with 'numpy-mlp train "
                        f"--resume {out}', or choose another folder")
    check_owner(out, "--out", owner="a training run")  # a search's folder is the search's
    taken = [f for f in RUN_FILES if (out / f).exists()]
    if taken:
        raise UserError(f"--out {out} already holds a run ({', '.join(taken)}); choose another "
                        f"folder or delete that one first")


def _data_folder(data_dir, dataset=DEFAULT_DATASET):
    """The data folder ``data_dir`` names (the default one of ``dataset`` for None), absolute:
    what a run records so that ``evaluate`` reads the same images without being told where."""
    return Path(default_folder(dataset) if data_dir is None else data_dir).expanduser().resolve()


def run_provenance(command=None):
    """How and where a run was started, as run.json records it: the package, Python and
    NumPy versions, the BLAS library, the UTC date and time, and the command line
    (``command``, a list of words; default this process's)."""
    from threadpoolctl import threadpool_info

    blas = [f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, "
            f"{p.get('num_threads')} threads)" for p in threadpool_info()
            if p.get("user_api") == "blas"]
    command = [Path(sys.argv[0]).name, *sys.argv[1:]] if command is None else command
    return {"numpy_mlp": __version__,
            "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join(map(str, command)), "python": platform.python_version(),
            "numpy": np.__version__, "blas": "; ".join(blas) or "none found"}


def run_training(config, *, data_dir=None, download=True, out=None, log=print, progress=False,
                 command=None, given=None, preset=None):
    """Start a run: train as ``config`` says and write a complete run folder.

    ``out`` (default: :func:`default_run_dir`) is locked for the whole run and must not hold
    another run. A checkpoint is kept in it while training (see
    :func:`train_with_checkpoints`), so that a run stopped on the way goes on with
    :func:`resume_training`. ``log`` gets the log lines (None: only train.log);
    ``progress`` shows a progress bar; ``command`` is the command line run.json records
    (:func:`run_provenance`). ``given`` names the fields the user chose (None:
    all) and ``preset`` the preset the others came from: once the data is loaded, the
    settings counted in steps or evaluations are fitted to the run's length
    (:func:`~numpy_mlp.training.presets.fit_to_run`, one log line if any changes), and
    config.json holds the config the run trains with.

    Returns:
        (out_dir, metrics dict).
    """

    def fit(config, data, say):
        n_train = len(data.y_train)
        n_eval = min(config.eval_train_size, n_train) + len(data.y_val)
        fitted, note = fit_to_run(config, n_train, n_eval, given=given, preset=preset)
        if note:
            say(note)
            folder.write_json("config.json", fitted.to_dict())
        return fitted

    out = out or default_run_dir()
    with RunFolder(out, then=resume_then(out)).open(check=RUN_WRITES) as folder:
        _check_free(folder)
        folder.write_json("config.json", config.to_dict())
        folder.record_start(data_dir=data_dir, download=download,
                            provenance=run_provenance(command))
        with _logged_data(config, folder, data_dir=data_dir, download=download, log=log,
                          progress=progress, fit=fit) as (config, data, say, t0):
            result = train_with_checkpoints(config, data, folder.path, say=say,
                                            progress=progress, data_dir=data_dir, folder=folder)
            return folder.path, _write_up(folder, config, data, result, data_dir=data_dir,
                                          say=say, t0=t0)


def resume_training(out, *, data_dir=None, overrides=None, download=True, log=print,
                    progress=False):
    """Continue the run in folder ``out`` (``numpy-mlp train --resume``) and complete its folder.

    The folder is locked first. Reads ``out/config.json`` (checked field by field);
    ``overrides`` may change its fields that do not change the results
    (``config.RESUMABLE_FIELDS``). The data folder and whether the run may download
    default to what run.json recorded at its start (else to the checkpoint's folder); a
    recorded folder that is gone is refused before anything could create it. A run
    stopped in its write-up has its write-up finished, from its last checkpoint. ``log``
    and ``progress`` are :func:`run_training`'s.

    Returns:
        (out_dir, metrics dict).
    """
    out = Path(out)
    if not out.is_dir():
        raise UserError(f"--resume {out}: no run there (no such folder); give a folder written by "
                        f"'numpy-mlp train --out DIR'")
    with RunFolder(out, flag="--resume", then=resume_then(out)).open(
            create=False, check=RUN_WRITES) as folder:
        if not (out / "config.json").is_file():
            raise UserError(f"--resume {out}: no run there (no config.json); give a folder "
                            f"written by 'numpy-mlp train --out DIR'")
        state = read_run_state(out)
        phase = state["phase"] if state is not None else None
        if phase == "done" or (state is None and (out / MODEL_NAME).exists()):
            raise UserError(f"--resume {out}: that run has finished ({MODEL_NAME} exists); "
                            f"nothing to resume")
        for tmp in out.glob(".*.tmp"):  # left by a crash in the middle of a write
            tmp.unlink()
        config = read_config(out / "config.json")
        if overrides:
            config = config.replace(**overrides)
        recorded = state["data_dir"] if state is not None else None
        if state is None and (out / CHECKPOINT_NAME).exists():  # a damaged checkpoint stops here
            recorded = read_checkpoint(out / CHECKPOINT_NAME, arrays=False)[0].get("data_dir")
        data_dir = resume_data_dir(out, recorded, data_dir)
        download = download and (state is None or state["download"])
        if state is None:  # a folder of an older numpy-mlp: from now on
            folder.record_start(data_dir=data_dir, download=download,
                                provenance=run_provenance())
        with _logged_data(config, folder, data_dir=data_dir, download=download, log=log,
                          progress=progress) as (config, data, say, t0):
            if phase == "writeup":
                result = _result_of_checkpoint(config, data, out, say=say)
            else:
                result = train_with_checkpoints(config, data, out, say=say, progress=progress,
                                                resume=True, data_dir=data_dir, folder=folder)
            return out, _write_up(folder, config, data, result, data_dir=data_dir, say=say,
                                  t0=t0)


@contextmanager
def _logged_data(config, folder, *, data_dir, download, log, progress, fit=None):
    """``(config, data, say, t0)`` for a run in ``folder``: its config, as ``fit(config,
    data, say)`` returns it if given; its data set, loaded; ``say(line)``, which appends to
    train.log and passes the line to ``log`` above the progress bar; and the run's start,
    ``time.perf_counter()``. train.log is closed after the block."""
    log_file = folder.open_log()

    def say(line):
        log_file.write(line)
        if log:
            with tqdm.external_write_mode():  # above the progress bar, if one is shown
                log(line)

    try:
        t0 = time.perf_counter()
        data = load_dataset(config, data_dir, download=download, progress=progress, log=say)
        say(f"data: {len(data.y_train)} train / {len(data.y_val)} val / {len(data.y_test)} test "
            f"images from {data.source}")
        if fit is not None:
            config = fit(config, data, say)
        say(f"config: {json.dumps(config.to_dict())}")
        yield config, data, say, t0
    finally:
        log_file.close()


def _write_up(folder, config, data, result, *, data_dir, say, t0):
    """:func:`~numpy_mlp.runs.writeup.write_up` of the trained run; returns the metrics."""
    model = result.model
    # scoring every split (ten views each with --tta-shift) and drawing take a while: say so
    say(f"training done at step {result.steps}: scoring train/val/test and writing "
        f"{folder.path}/")
    W1_init = initial_params(config, model.input_dim, model.num_classes)["W1"]
    return write_up(folder, config, data, result, data_dir=_data_folder(data_dir, config.dataset),
                    W1_init=W1_init, say=say, t0=t0)


def train_with_checkpoints(config, data, out, *, say=None, progress=False, resume=False,
                           data_dir=None, folder=None):
    """``train`` with a checkpoint in ``out``: continued after a crash, saved on Ctrl-C and
    divergence.

    A checkpoint (``out/checkpoint.npz``, see training/checkpoint_file.py) is written every
    ``config.checkpoint_every`` steps and at the last step (an early stop included, so
    that the write-up can be finished from it: :func:`_result_of_checkpoint`). With
    ``resume`` the run goes on from it (or from step 0 if there is none yet) and ends bit
    for bit where the uninterrupted run would; without, it starts at step 0. Ctrl-C finishes
    the step, writes a checkpoint and raises :class:`Interrupted`. If the loss diverges, the
    best parameters so far are saved as ``out/model.npz`` (with ``history.csv``) before the
    :class:`DivergenceError` goes on. ``say`` gets the log lines; ``progress`` shows a
    progress bar; ``folder`` is the RunFolder that writes ``out`` (None: the files are
    written directly).

    Returns:
        the ``TrainResult`` of ``train``.
    """
    out = Path(out)
    path = out / CHECKPOINT_NAME
    teacher = Teacher.of(config, data)  # a wrong teacher fails now, not after the whitening
    if resume and path.exists():
        run = _restored(path, config, data, say)
    else:
        if resume and say:
            say("no checkpoint yet: starting the run from step 0")
        if say and config.preprocessing == "whiten":  # an eigendecomposition: up to a minute
            say(f"whitening: fitting {config.whiten_dim} components on the "
                f"{len(data.y_train)} training images before the first step")
        run = build(config, data)
    n_train = len(data.y_train)
    total = total_steps(config, n_train)[0]
    hint = f"numpy-mlp train --resume {out}"
    saver = Checkpointer(path, config, every=checkpoint_interval(config, n_train), total=total,
                         resume_hint=hint, fingerprint=data_fingerprint(data),
                         data_dir=None if data_dir is None else _data_folder(data_dir),
                         folder=folder)
    display = TrainingDisplay(total, say=say, bar=progress, initial=run.loop.step)

    def on_step(run):
        display.on_step(run)
        saver(run)

    try:
        with saver:
            result = train(config, data, state=run, on_step=on_step, on_eval=display.on_eval,
                           teacher=teacher)
    except DivergenceError as e:
        saved = save_best_so_far(out, config, data, run,
                                 data_dir=_data_folder(data_dir, config.dataset), folder=folder)
        message = f"{e}; {saved}"
        if say:
            say(message)
        raise DivergenceError(message) from None
    except Interrupted as e:
        if say:
            say(str(e))
        raise
    except KeyboardInterrupt as e:  # a second signal: the last checkpoint, if any, stays
        last = (f"the last checkpoint ({path}) stays" if path.exists()
                else "no checkpoint was written yet")
        raise Interrupted(f"stopped at once; {last}; continue with: {hint}",
                          signum=getattr(e, "signum", 2)) from None
    finally:
        display.close()
    if result.stopped_early and say:
        say(f"early stop at step {result.steps}: no better val_acc in {config.patience} "
            f"evaluations; keeping step {result.best_step} (val_acc {result.best_val_acc:.3f})")
    return result


def _result_of_checkpoint(config, data, out, *, say=None):
    """The ``TrainResult`` of a run whose training had ended, rebuilt from its last checkpoint
    in ``out`` without a step: what the write-up of a run stopped in it starts from.

    Raises:
        UserError: there is no checkpoint (the run must be trained again).
    """
    out = Path(out)
    path = out / CHECKPOINT_NAME
    if not path.exists():
        raise UserError(f"--resume {out}: the run's write-up cannot be finished: its "
                        f"checkpoint is gone; train it again")
    run = _restored(path, config, data, say)
    total = total_steps(config, len(data.y_train))[0]
    return result_of(run, config, data, seconds=run.loop.seconds,
                     stopped_early=run.loop.step < total)


def _restored(path, config, data, say):
    run = restore(path, config, data)
    if say:
        say(f"resuming from step {run.loop.step} ({path})")
    return run
