"""A saved run: train, evaluate once on the test set, and write everything to a folder.

``run_training`` is what ``numpy-mlp train`` does; ``evaluate_saved`` is ``numpy-mlp
evaluate``. :class:`TrainingDisplay` is what a person sees of ``train``: the progress bar
and the log lines. The folder of a run is written only through its
:class:`~numpy_mlp.runfolder.RunFolder`, locked for the run's whole life, and holds::

    config.json     the TrainConfig, as given
    run.json        how the run was started (data folder, downloads) and its phase
    train.log       the log lines printed during training
    checkpoint.npz  while the run is unfinished: everything to continue it (checkpoint.py)
    history.csv     one row per step: step, loss, and the evaluation columns where measured
    metrics.json    train/val/test accuracy, per-class test accuracy, times
    model.npz       the parameters with the best validation accuracy and the data folder
                    they were trained on (see saving.py)
    loss.png, accuracy.png, confusion.png, predictions.png, weights.png   (see plots.py)
    report.html     all of the above on one self-contained page (see report.py)

The write-up (everything from model.npz on) is writeup.py.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from ..training.checkpoint import (CHECKPOINT_NAME, Checkpointer, checkpoint_interval,
    data_fingerprint, load_checkpoint, restore)
from ..training.config import TrainConfig
from ..data.registry import DEFAULT_DATASET, default_folder, load_dataset
from ..training.config import data_config
from ..errors import DivergenceError, Interrupted, UserError
from ..training.config import read_config
from ..training.metrics import per_class_accuracy
from .report import PICTURES
from .folder import STATE_NAME, RunFolder, read_run_state, resume_data_dir
from ..training.model_file import MODEL_NAME, load_model, save_model, tta_shift_for
from ..training.loop import build, initial_params, result_of, total_steps, train
from .writeup import evaluate_splits, history_csv, write_json, write_pictures, write_up

__all__ = ["evaluate_splits", "write_json"]  # kept here for search and older callers

# what makes a folder hold a run: a config.json alone is left by a run that stopped at
# bad input before training, and may be written over
RUN_FILES = (MODEL_NAME, "metrics.json", "history.csv")
# every file a run writes, each refused before the run starts if a link or a folder is there
RUN_WRITES = ("config.json", STATE_NAME, "train.log", CHECKPOINT_NAME, "history.csv",
              "metrics.json", MODEL_NAME, *(name for name, _ in PICTURES), "report.html")
EVALUATE_PICTURES = ("predictions.png", "confusion.png", "weights.png")


def default_run_dir(root="runs"):
    """``runs/<YYYYmmdd-HHMMSS>``, with a suffix if that folder already exists."""
    base = Path(root) / datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = base, 1
    while path.exists():
        path, n = Path(f"{base}-{n}"), n + 1
    return path


def check_free(folder):
    """Refuse a folder (already locked by this run) that holds a run, so nothing saved is lost."""
    out, state = folder.path, folder.state()
    if (out / CHECKPOINT_NAME).exists() or (state is not None and state["phase"] == "writeup"):
        raise UserError(f"--out {out} holds an unfinished run; continue it with 'numpy-mlp train "
                        f"--resume {out}', or choose another folder")
    taken = [f for f in RUN_FILES if (out / f).exists()]
    if taken:
        raise UserError(f"--out {out} already holds a run ({', '.join(taken)}); choose another "
                        f"folder or delete that one first")


def run_training(config, *, data_dir=None, download=True, out=None, log=print, progress=False,
                 resume=False, folder=None):
    """Train as ``config`` says and write a complete run folder.

    The folder is locked for the whole run (``folder``, a RunFolder already open, is used
    as it is: :func:`resume_training` passes its own). A checkpoint is kept in the folder
    while training (see :func:`train_with_checkpoints`); ``resume=True`` continues the run
    already in ``out`` (use :func:`resume_training`), ``resume="writeup"`` only writes up
    a run whose training had ended.

    Returns:
        (out_dir, metrics dict).
    """
    owned = folder is None
    if owned:
        folder = RunFolder(out or default_run_dir()).open(check=RUN_WRITES)
    out = folder.path
    try:
        if not resume:
            check_free(folder)
            folder.write_json("config.json", config.to_dict())
        if not resume or folder.state() is None:  # a folder of an older numpy-mlp: from now on
            folder.record_start(data_dir=data_dir, download=download)
        log_file = folder.open_log()
        try:
            return out, _train_and_write_up(config, folder, log_file, data_dir=data_dir,
                                            download=download, log=log, progress=progress,
                                            resume=resume)
        finally:
            log_file.close()
    finally:
        if owned:
            folder.close()


def _train_and_write_up(config, folder, log_file, *, data_dir, download, log, progress, resume):
    def say(line):
        log_file.write(line)
        if log:
            with tqdm.external_write_mode():  # above the progress bar, if one is shown
                log(line)

    t0 = time.perf_counter()
    data = load_dataset(config, data_dir, download=download, progress=progress, log=say)
    say(f"data: {len(data.y_train)} train / {len(data.y_val)} val / {len(data.y_test)} test images "
        f"from {data.source}")
    say(f"config: {json.dumps(config.to_dict())}")
    result = train_with_checkpoints(config, data, folder.path, say=say, progress=progress,
                                    resume=bool(resume), data_dir=data_dir, folder=folder,
                                    finished=resume == "writeup")
    model = result.model
    W1_init = initial_params(config, model.input_dim, model.num_classes)["W1"]
    return write_up(folder, config, data, result, data_dir=data_folder(data_dir, config.dataset),
                    W1_init=W1_init, say=say, t0=t0)


def data_folder(data_dir, dataset=DEFAULT_DATASET):
    """The data folder ``data_dir`` names (the default one of ``dataset`` for None), absolute:
    what a run records so that ``evaluate`` reads the same images without being told where."""
    return Path(default_folder(dataset) if data_dir is None else data_dir).expanduser().resolve()


def evaluate_saved(model_path, *, data_dir=None, download=True, progress=False, out=None,
                   pictures=True, log=None, tta_shift=None):
    """Accuracies of a saved model on train/val/test and per class (test), and its pictures.

    ``model_path`` is a model file or a run folder. The data is read from ``data_dir``,
    else from the folder the run recorded (if it is still there), else from the default
    folder. ``tta_shift`` (default: the saved config's, else 0) adds "val_tta" and
    "test_tta" to the accuracies (see :func:`evaluate_splits`).

    The validation split is carved exactly as in training (the saved config's val_size
    and seed), so "val" means the images the run did not train on. With ``pictures``,
    predictions.png, confusion.png and weights.png are written into ``out`` (default: the
    model's folder) and listed under ``"pictures"``.
    """
    saved = load_model(model_path)
    tta_shift = tta_shift_for(saved, tta_shift)  # checked before the data is read
    cfg = saved.config or {}
    if data_dir is None and saved.data_dir is not None:
        if Path(saved.data_dir).is_dir():
            data_dir = saved.data_dir
        elif log:
            log(f"the run's data folder {saved.data_dir} is gone; looking in the default one")
    data = load_dataset(data_config(cfg), data_dir, download=download, progress=progress,
                        log=log)
    model, preprocessor = saved.model, saved.preprocessor
    acc, cm = evaluate_splits(model, preprocessor, data, tta_shift)
    written = []
    if pictures:
        where = Path(out) if out is not None else saved.path.parent
        with RunFolder(where, flag="--out", then="choose another folder with --out").open(
                check=EVALUATE_PICTURES) as folder:
            written = write_pictures(folder, model, preprocessor, data, cm,
                                     W1_init=initial_W1(cfg, model))
    per_class = dict(zip(data.class_names, per_class_accuracy(cm).tolist()))
    return {"model": model, "saved": saved, "accuracy": acc, "confusion": cm, "pictures": written,
            "tta_shift": tta_shift, "per_class": per_class}


def initial_W1(cfg, model):
    """W1 (D, H) as the saved config ``cfg`` (a dict) initialised it, or None if it cannot."""
    if not cfg or cfg.get("preprocessing") == "whiten":  # its W1 was K wide, the file's is D
        return None
    try:
        W1 = initial_params(TrainConfig.from_dict(cfg), model.input_dim, model.num_classes)["W1"]
    except (UserError, TypeError, ValueError):
        return None
    return W1 if W1.shape == model.params["W1"].shape else None


# --------------------------------------------------------------------------- reliability


def eval_line(history, total):
    """The log line of the last evaluation in ``history`` of a run of ``total`` steps."""
    step, epoch, loss, train_acc, val_acc, alpha, seconds = (history[k][-1] for k in (
        "eval_step", "epoch", "train_loss", "train_acc", "val_acc", "alpha", "seconds"))
    ema = f"  val_acc_ema {history['val_acc_ema'][-1]:.3f}" if history.get("val_acc_ema") else ""
    return (f"step {step:>{len(str(total))}}/{total}  epoch {epoch:5.2f}  loss {loss:.4f}  "
            f"train_acc {train_acc:.3f}  val_acc {val_acc:.3f}{ema}  alpha {alpha:.3g}  "
            f"({seconds:.1f}s)")


class TrainingDisplay:
    """What a person sees of ``train``: a tqdm bar (``bar=True``, for terminals) and a log
    line per evaluation through ``say``. ``on_step`` and ``on_eval`` are train's callbacks."""

    def __init__(self, total, *, say=None, bar=False, initial=0):
        self.total, self.say = total, say
        self.bar = tqdm(total=total, initial=initial, disable=not bar, unit="step",
                        dynamic_ncols=True, leave=False)

    def __repr__(self):
        return f"TrainingDisplay(total={self.total}, bar={not self.bar.disable})"

    def on_step(self, run):
        self.bar.update(run.loop.step - self.bar.n)

    def on_eval(self, step, history):
        if self.say:
            self.say(eval_line(history, self.total))
        self.bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}",
                             val=f"{history['val_acc'][-1]:.3f}")

    def close(self):
        self.bar.close()


def train_with_checkpoints(config, data, out, *, say=None, progress=False, resume=False,
                           data_dir=None, folder=None, finished=False):
    """``train`` with a checkpoint in ``out``: continued after a crash, saved on Ctrl-C and
    divergence.

    A checkpoint (``out/checkpoint.npz``, see checkpoint.py) is written every
    ``config.checkpoint_every`` steps and at the last step (an early stop included, so
    that the write-up can be finished from it). With ``resume`` the run goes
    on from it (or from step 0 if there is none yet) and ends bit for bit where the
    uninterrupted run would; with ``finished`` its training had ended, and the result is
    the checkpoint's, without a step. Ctrl-C finishes the step, writes a checkpoint and raises
    :class:`Interrupted`. If the loss diverges, the best parameters so far are saved as
    ``out/model.npz`` (with ``history.csv``) before the :class:`DivergenceError` goes on.
    ``say`` gets the log lines; ``progress`` shows a progress bar; ``folder`` is the
    RunFolder that writes ``out`` (None: the files are written directly).

    Returns:
        the ``TrainResult`` of ``train``.
    """
    out = Path(out)
    path = out / CHECKPOINT_NAME
    if resume and path.exists():
        run = restore(path, config, data)
        if say:
            say(f"resuming from step {run.loop.step} ({path})")
    else:
        if finished:
            raise UserError(f"--resume {out}: the run's write-up cannot be finished: its "
                            f"checkpoint is gone; train it again")
        if resume and say:
            say("no checkpoint yet: starting the run from step 0")
        run = build(config, data)
    n_train = len(data.y_train)
    total = total_steps(config, n_train)[0]
    if finished:
        return result_of(run, data, seconds=run.loop.seconds, stopped_early=run.loop.step < total)
    hint = f"numpy-mlp train --resume {out}"
    saver = Checkpointer(path, config, every=checkpoint_interval(config, n_train), total=total,
                         resume_hint=hint, fingerprint=data_fingerprint(data),
                         data_dir=None if data_dir is None else data_folder(data_dir),
                         folder=folder)
    display = TrainingDisplay(total, say=say, bar=progress, initial=run.loop.step)

    def on_step(run):
        display.on_step(run)
        saver(run)

    try:
        with saver:
            result = train(config, data, state=run, on_step=on_step, on_eval=display.on_eval)
    except DivergenceError as e:
        message = f"{e}; {save_best_so_far(out, config, data, run, data_dir, folder=folder)}"
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


def save_best_so_far(out, config, data, run, data_dir=None, folder=None):
    """After a divergence: ``out/model.npz`` from the best parameters so far, and ``history.csv``.

    Before the first evaluation the best known parameters are the initial ones (step 0),
    rebuilt from the seed. The run is then finished (run.json says ``done``). Returns a
    sentence saying what was saved, for the message.
    """
    model, s = run.model, run.loop
    if s.best_params is not None:
        model.load_params(s.best_params)
        what = f"step {s.best_step}, val_acc {s.best_val:.3f}"
    else:
        model.load_params(initial_params(config, model.input_dim, model.num_classes))
        what = "step 0, the initial weights: no evaluation came before the divergence"
    out = Path(out)

    def write_model(f):
        save_model(f, model, run.preprocessor, class_names=data.class_names,
                   config=config.to_dict(), data_dir=data_folder(data_dir, config.dataset),
                   geometry=data.geometry)

    if folder is None:
        write_model(out / MODEL_NAME)
        (out / "history.csv").write_text(history_csv(s.history), encoding="utf-8")
        (out / CHECKPOINT_NAME).unlink(missing_ok=True)
    else:
        folder.write(MODEL_NAME, write_model)
        folder.write_text("history.csv", history_csv(s.history))
        if folder.state() is not None:
            folder.set_phase("done")
        folder.remove(CHECKPOINT_NAME)  # resuming would diverge again
    return f"the best parameters so far ({what}) are saved in {out / MODEL_NAME}"


def resume_training(out, *, data_dir=None, overrides=None, download=True, **kw):
    """Continue the run in folder ``out`` (``numpy-mlp train --resume``) and complete its folder.

    The folder is locked first. Reads ``out/config.json`` (checked field by field);
    ``overrides`` may change its fields that do not change the results
    (``config.RESUMABLE_FIELDS``). The data folder and whether the run may download
    default to what run.json recorded at its start (else to the checkpoint's folder); a
    recorded folder that is gone is refused before anything could create it. A run
    stopped in its write-up has its write-up finished. Other keyword arguments go to
    :func:`run_training`.
    """
    out = Path(out)
    if not out.is_dir():
        raise UserError(f"--resume {out}: no run there (no such folder); give a folder written by "
                        f"'numpy-mlp train --out DIR'")
    with RunFolder(out, flag="--resume").open(create=False, check=RUN_WRITES) as folder:
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
            recorded = load_checkpoint(out / CHECKPOINT_NAME, arrays=False)[0].get("data_dir")
        data_dir = resume_data_dir(out, recorded, data_dir)
        download = download and (state is None or state["download"])
        return run_training(config, data_dir=data_dir, download=download, out=out,
                            resume="writeup" if phase == "writeup" else True, folder=folder, **kw)
