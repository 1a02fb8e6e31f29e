"""A saved run: train, evaluate once on the test set, and write everything to a folder.

``run_training`` is what ``numpy-mlp train`` does; ``evaluate_saved`` is ``numpy-mlp
evaluate``. :class:`TrainingDisplay` is what a person sees of ``train``: the progress bar
and the log lines. The folder of a run holds::

    config.json     the TrainConfig, as given
    train.log       the log lines printed during training
    history.csv     one row per step: step, loss, and the evaluation columns where measured
    metrics.json    train/val/test accuracy, per-class test accuracy, times
    model.npz       the parameters with the best validation accuracy and the data folder
                    they were trained on (see saving.py)
    loss.png, accuracy.png, confusion.png, predictions.png, weights.png   (see plots.py)
    report.html     all of the above on one self-contained page (see report.py)
"""

from __future__ import annotations

import csv
import json
import time
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from . import plots
from .checkpoint import CHECKPOINT_NAME, Checkpointer, checkpoint_interval, data_fingerprint, load_checkpoint, restore
from .config import TrainConfig
from .data import default_data_dir, load_cifar10, to_images
from .errors import ConfigError, DivergenceError, Interrupted, UserError
from .inference import predict
from .metrics import accuracy, confusion_matrix, per_class_accuracy
from .report import write_report
from .saving import MODEL_NAME, atomic_write, load_model, save_model, tta_shift_for
from .train import build, initial_params, total_steps, train

# what makes a folder hold a run: a config.json alone is left by a run that stopped at
# bad input before training, and may be written over
RUN_FILES = ("model.npz", "metrics.json", "history.csv")


def default_run_dir(root="runs"):
    """``runs/<YYYYmmdd-HHMMSS>``, with a suffix if that folder already exists."""
    base = Path(root) / datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = base, 1
    while path.exists():
        path, n = Path(f"{base}-{n}"), n + 1
    return path


def prepare_out_dir(out):
    """Create ``out``; refuse a folder that already holds a run, so nothing saved is lost."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose a folder name")
    if (out / CHECKPOINT_NAME).exists():
        raise UserError(f"--out {out} holds an unfinished run ({CHECKPOINT_NAME}); continue it with "
                        f"'numpy-mlp train --resume {out}', or choose another folder")
    taken = [f for f in RUN_FILES if (out / f).exists()]
    if taken:
        raise UserError(f"--out {out} already holds a run ({', '.join(taken)}); choose another folder "
                        f"or delete that one first")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_json(path, obj):
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def write_history_csv(path, history):
    """One row per step; evaluation columns filled on the steps where they were measured."""
    cols = ["step", "loss", "epoch", "train_loss", "train_acc", "val_acc", "alpha", "seconds"]
    evals = {s: i for i, s in enumerate(history["eval_step"])}

    def write(f):
        import io
        text = io.StringIO()
        w = csv.writer(text)
        w.writerow(cols)
        for step, loss in zip(history["step"], history["loss"]):
            row = [step, f"{loss:.6g}"]
            i = evals.get(step)
            row += ["" if i is None else f"{history[c][i]:.6g}" for c in cols[2:]]
            w.writerow(row)
        f.write(text.getvalue().encode())

    atomic_write(path, write)


def evaluate_splits(model, preprocessor, data, tta_shift=0):
    """Accuracy on train, val and test, and the test confusion matrix, one view per image.

    With ``tta_shift`` > 0, also ``"val_tta"`` and ``"test_tta"``: the accuracy of
    predictions averaged over ten views (``inference.predict(..., tta_shift=...)``).
    """
    out = {}
    for name, X, y in (("train", data.X_train, data.y_train), ("val", data.X_val, data.y_val),
                       ("test", data.X_test, data.y_test)):
        pred = predict(model, preprocessor, X)
        out[name] = accuracy(y, pred)
        if name == "test":
            cm = confusion_matrix(y, pred, len(data.class_names))
        if tta_shift and name != "train":
            out[name + "_tta"] = accuracy(y, predict(model, preprocessor, X, tta_shift=tta_shift))
    return out, cm


def write_pictures(out, model, preprocessor, data, cm, *, history=None, W1_init=None, n_images=32):
    """The PNGs of a run (or of an evaluation, without ``history``) into folder ``out``.

    Writes predictions.png (the first ``n_images`` test images), confusion.png,
    weights.png (W1 minus ``W1_init`` where given), and, with a history, loss.png and
    accuracy.png. Returns the paths written.
    """
    out = Path(out)
    X, y = data.X_test[:n_images], data.y_test[:n_images]
    pred = predict(model, preprocessor, X)
    paths = [plots.plot_predictions(to_images(X), y, pred, data.class_names,
                                    out / "predictions.png"),
             plots.plot_confusion(cm, data.class_names, out / "confusion.png"),
             plots.plot_first_layer_weights(model.params["W1"], out / "weights.png", W1_init=W1_init)]
    if history is not None:
        paths += [plots.plot_loss(history, out / "loss.png"), plots.plot_accuracy(history, out / "accuracy.png")]
    return paths


def run_training(config, *, data_dir=None, download=True, out=None, log=print, progress=False, resume=False):
    """Train as ``config`` says and write a complete run folder.

    A checkpoint is kept in the folder while training (see :func:`train_with_checkpoints`);
    ``resume=True`` continues the run already in ``out`` (use :func:`resume_training`).

    Returns:
        (out_dir, metrics dict).
    """
    if resume:
        out = Path(out)
    else:
        out = prepare_out_dir(out or default_run_dir())
        write_json(out / "config.json", config.to_dict())
    log_file = open(out / "train.log", "a", encoding="utf-8")

    def say(line):
        log_file.write(line + "\n")
        log_file.flush()
        if log:
            with tqdm.external_write_mode():  # above the progress bar, if one is shown
                log(line)

    try:
        t0 = time.perf_counter()
        data = load_cifar10(data_dir, val_size=config.val_size, seed=config.seed,
                            download=download, progress=progress, log=say)
        say(f"data: {len(data.y_train)} train / {len(data.y_val)} val / {len(data.y_test)} test images from {data.source}")
        say(f"config: {json.dumps(config.to_dict())}")
        result = train_with_checkpoints(config, data, out, say=say, progress=progress, resume=resume,
                                        data_dir=data_dir)
        model, preprocessor = result.model, result.preprocessor
        acc, cm = evaluate_splits(model, preprocessor, data, config.tta_shift)
        metrics = {
            "train_accuracy": acc["train"], "val_accuracy": acc["val"], "test_accuracy": acc["test"],
            **({"val_accuracy_tta": acc["val_tta"], "test_accuracy_tta": acc["test_tta"],
                "tta_shift": config.tta_shift} if config.tta_shift else {}),
            "per_class_test_accuracy": dict(zip(data.class_names, per_class_accuracy(cm).round(4).tolist())),
            "best_step": result.best_step, "steps": result.steps,
            "train_seconds": round(result.seconds, 2), "total_seconds": round(time.perf_counter() - t0, 2),
            "model": repr(model),
        }
        save_model(out / MODEL_NAME, model, preprocessor, class_names=data.class_names,
                   config=config.to_dict(), data_dir=data_folder(data_dir))
        write_history_csv(out / "history.csv", result.history)
        write_json(out / "metrics.json", metrics)
        W1_init = initial_params(config, model.input_dim, model.num_classes)["W1"]
        write_pictures(out, model, preprocessor, data, cm, history=result.history, W1_init=W1_init)
        say(f"done in {metrics['total_seconds']:.0f}s: train {acc['train']:.4f}  val {acc['val']:.4f}  "
            f"test {acc['test']:.4f}  (best val at step {result.best_step})")
        if config.tta_shift:
            say(f"ten views (shift {config.tta_shift}): val {acc['val_tta']:.4f}  test {acc['test_tta']:.4f}")
        say(f"saved to {out}/ (open {out / 'report.html'} in a browser)")
        write_report(out)
        (out / CHECKPOINT_NAME).unlink(missing_ok=True)  # the run is complete: nothing left to resume
    finally:
        log_file.close()
    return out, metrics


def data_folder(data_dir):
    """The data folder ``data_dir`` names (the default one for None), absolute: what a run
    records so that ``evaluate`` reads the same images without being told where."""
    return (default_data_dir() if data_dir is None else Path(data_dir)).expanduser().resolve()


def evaluate_saved(model_path, *, data_dir=None, download=True, progress=False, out=None, pictures=True,
                   log=None, tta_shift=None):
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
    data = load_cifar10(data_dir, val_size=cfg.get("val_size", 5000), seed=cfg.get("seed", 0),
                        download=download, progress=progress, log=log)
    model, preprocessor = saved.model, saved.preprocessor
    acc, cm = evaluate_splits(model, preprocessor, data, tta_shift)
    written = []
    if pictures:
        folder = Path(out) if out is not None else saved.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            written = write_pictures(folder, model, preprocessor, data, cm,
                                     W1_init=initial_W1(cfg, model))
        except OSError as e:
            raise UserError(f"cannot write the pictures into {folder} ({e.strerror}); choose a folder "
                            f"with --out") from None
    per_class = dict(zip(data.class_names, per_class_accuracy(cm).tolist()))
    return {"model": model, "saved": saved, "accuracy": acc, "confusion": cm, "pictures": written,
            "tta_shift": tta_shift, "per_class": per_class}


def initial_W1(cfg, model):
    """W1 (D, H) as the saved config ``cfg`` (a dict) initialised it, or None if it cannot."""
    if not cfg:
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
    return (f"step {step:>{len(str(total))}}/{total}  epoch {epoch:5.2f}  loss {loss:.4f}  "
            f"train_acc {train_acc:.3f}  val_acc {val_acc:.3f}  alpha {alpha:.3g}  "
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


def train_with_checkpoints(config, data, out, *, say=None, progress=False, resume=False, data_dir=None):
    """``train`` with a checkpoint in ``out``, continued after a crash, saved on Ctrl-C and divergence.

    A checkpoint (``out/checkpoint.npz``, see checkpoint.py) is written every
    ``config.checkpoint_every`` steps and at the last step. With ``resume`` the run goes
    on from it (or from step 0 if there is none yet) and ends bit for bit where the
    uninterrupted run would. Ctrl-C finishes the step, writes a checkpoint and raises
    :class:`Interrupted`. If the loss diverges, the best parameters so far are saved as
    ``out/model.npz`` (with ``history.csv``) before the :class:`DivergenceError` goes on.
    ``say`` gets the log lines; ``progress`` shows a progress bar.

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
        if resume and say:
            say("no checkpoint yet: starting the run from step 0")
        run = build(config, data)
    n_train = len(data.y_train)
    total = total_steps(config, n_train)[0]
    hint = f"numpy-mlp train --resume {out}"
    saver = Checkpointer(path, config, every=checkpoint_interval(config, n_train), total=total,
                         resume_hint=hint, fingerprint=data_fingerprint(data),
                         data_dir=None if data_dir is None else data_folder(data_dir))
    display = TrainingDisplay(total, say=say, bar=progress, initial=run.loop.step)

    def on_step(run):
        display.on_step(run)
        saver(run)

    try:
        with saver:
            result = train(config, data, state=run, on_step=on_step, on_eval=display.on_eval)
    except DivergenceError as e:
        message = f"{e}; {save_best_so_far(out, config, data, run, data_dir)}"
        if say:
            say(message)
        raise DivergenceError(message) from None
    except Interrupted as e:
        if say:
            say(str(e))
        raise
    except KeyboardInterrupt as e:  # a second signal: the last checkpoint, if any, stays
        last = f"the last checkpoint ({path}) stays" if path.exists() else "no checkpoint was written yet"
        raise Interrupted(f"stopped at once; {last}; continue with: {hint}",
                          signum=getattr(e, "signum", 2)) from None
    finally:
        display.close()
    if result.stopped_early and say:
        say(f"early stop at step {result.steps}: no better val_acc in {config.patience} "
            f"evaluations; keeping step {result.best_step} (val_acc {result.best_val_acc:.3f})")
    return result


def save_best_so_far(out, config, data, run, data_dir=None):
    """After a divergence: ``out/model.npz`` from the best parameters so far, and ``history.csv``.

    Before the first evaluation the best known parameters are the initial ones (step 0),
    rebuilt from the seed. Returns a sentence saying what was saved, for the message.
    """
    model, s = run.model, run.loop
    if s.best_params is not None:
        model.load_params(s.best_params)
        what = f"step {s.best_step}, val_acc {s.best_val:.3f}"
    else:
        model.load_params(initial_params(config, model.input_dim, model.num_classes))
        what = "step 0, the initial weights: no evaluation came before the divergence"
    save_model(out / MODEL_NAME, model, run.preprocessor, class_names=data.class_names,
               config=config.to_dict(), data_dir=data_folder(data_dir))
    write_history_csv(out / "history.csv", s.history)
    (out / CHECKPOINT_NAME).unlink(missing_ok=True)  # resuming would diverge again
    return f"the best parameters so far ({what}) are saved in {out / MODEL_NAME}"


def resume_training(out, *, data_dir=None, overrides=None, **kw):
    """Continue the run in folder ``out`` (``numpy-mlp train --resume``) and complete its folder.

    Reads ``out/config.json``; ``overrides`` may change its fields that do not change the
    results (checkpoint.RESUMABLE_CHANGES). The data folder defaults to the one the
    checkpoint records. Other keyword arguments go to :func:`run_training`.
    """
    out = Path(out)
    if not (out / "config.json").is_file():
        raise UserError(f"--resume {out}: no run there (no config.json); give a folder written by "
                        f"'numpy-mlp train --out DIR'")
    if (out / "model.npz").exists():
        raise UserError(f"--resume {out}: that run has finished (model.npz exists); nothing to resume")
    for tmp in out.glob(f".{CHECKPOINT_NAME}.*.tmp"):  # left by a crash in the middle of a write
        tmp.unlink()
    try:
        saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
        config = TrainConfig.from_dict(saved)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{out / 'config.json'} is damaged ({e}); start a new run instead") from None
    if overrides:
        config = config.replace(**overrides)
    if data_dir is None and (out / CHECKPOINT_NAME).exists():  # a damaged checkpoint stops here, before the data
        data_dir = load_checkpoint(out / CHECKPOINT_NAME)[0].get("data_dir")
    return run_training(config, data_dir=data_dir, out=out, resume=True, **kw)
