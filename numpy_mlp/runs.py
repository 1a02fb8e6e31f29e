"""A saved run: train, evaluate once on the test set, and write everything to a folder.

``run_training`` is what ``numpy-mlp train`` does; ``evaluate_saved`` is ``numpy-mlp
evaluate``. The folder of a run holds::

    config.json     the TrainConfig, as given
    train.log       the log lines printed during training
    history.csv     one row per step: step, loss, and the evaluation columns where measured
    metrics.json    train/val/test accuracy, per-class test accuracy, times
    model.npz       the parameters with the best validation accuracy (see saving.py)
    loss.png, accuracy.png, confusion.png, predictions.png, weights.png   (see plots.py)
    report.html     all of the above on one self-contained page (see report.py)
"""

from __future__ import annotations

import csv
import json
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from . import plots
from .config import TrainConfig
from .data import load_cifar10, to_images
from .errors import UserError
from .metrics import accuracy, confusion_matrix, per_class_accuracy, predict_uint8
from .report import write_report
from .saving import atomic_write, load_model, save_model
from .train import build, make_preparer, train

RUN_FILES = ("config.json", "history.csv", "metrics.json", "model.npz")


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


def evaluate_splits(model, data, prepare):
    """Accuracy on train, val and test, and the test confusion matrix."""
    out = {}
    for name, X, y in (("train", data.X_train, data.y_train), ("val", data.X_val, data.y_val),
                       ("test", data.X_test, data.y_test)):
        pred = predict_uint8(model, X, prepare)
        out[name] = accuracy(y, pred)
        if name == "test":
            cm = confusion_matrix(y, pred, len(data.class_names))
    return out, cm


def write_pictures(out, model, data, prepare, cm, *, history=None, W1_init=None, n_images=32):
    """The PNGs of a run (or of an evaluation, without ``history``) into folder ``out``.

    Writes predictions.png (the first ``n_images`` test images), confusion.png,
    weights.png (W1 minus ``W1_init`` where given), and, with a history, loss.png and
    accuracy.png. Returns the paths written.
    """
    out = Path(out)
    X, y = data.X_test[:n_images], data.y_test[:n_images]
    paths = [plots.plot_predictions(to_images(X), y, predict_uint8(model, X, prepare), data.class_names,
                                    out / "predictions.png"),
             plots.plot_confusion(cm, data.class_names, out / "confusion.png"),
             plots.plot_first_layer_weights(model.params["W1"], out / "weights.png", W1_init=W1_init)]
    if history is not None:
        paths += [plots.plot_loss(history, out / "loss.png"), plots.plot_accuracy(history, out / "accuracy.png")]
    return paths


def run_training(config, *, data_dir=None, download=True, out=None, log=print, progress=False):
    """Train as ``config`` says and write a complete run folder.

    Returns:
        (out_dir, metrics dict).
    """
    out = prepare_out_dir(out or default_run_dir())
    write_json(out / "config.json", config.to_dict())
    log_file = open(out / "train.log", "a", encoding="utf-8")

    def say(line):
        log_file.write(line + "\n")
        log_file.flush()
        if log:
            log(line)

    try:
        t0 = time.perf_counter()
        data = load_cifar10(data_dir, val_size=config.val_size, seed=config.seed,
                            download=download, progress=progress)
        say(f"data: {len(data.y_train)} train / {len(data.y_val)} val / {len(data.y_test)} test images from {data.source}")
        say(f"config: {json.dumps(config.to_dict())}")
        result = train(config, data, log=say, progress=progress)
        model = result.model
        prepare = make_preparer(result.preprocessing["mode"], result.preprocessing["stats"], model.dtype)
        acc, cm = evaluate_splits(model, data, prepare)
        metrics = {
            "train_accuracy": acc["train"], "val_accuracy": acc["val"], "test_accuracy": acc["test"],
            "per_class_test_accuracy": dict(zip(data.class_names, per_class_accuracy(cm).round(4).tolist())),
            "best_step": result.best_step, "steps": result.steps,
            "train_seconds": round(result.seconds, 2), "total_seconds": round(time.perf_counter() - t0, 2),
            "model": repr(model),
        }
        save_model(out / "model.npz", model, preprocessing=result.preprocessing,
                   class_names=data.class_names, config=config.to_dict())
        write_history_csv(out / "history.csv", result.history)
        write_json(out / "metrics.json", metrics)
        write_pictures(out, model, data, prepare, cm, history=result.history,
                       W1_init=build(config, data)[0].params["W1"])
        say(f"done in {metrics['total_seconds']:.0f}s: train {acc['train']:.4f}  val {acc['val']:.4f}  "
            f"test {acc['test']:.4f}  (best val at step {result.best_step})")
        say(f"saved to {out}/ (open {out / 'report.html'} in a browser)")
        write_report(out)
    finally:
        log_file.close()
    return out, metrics


def evaluate_saved(model_path, *, data_dir=None, download=True, progress=False, out=None, pictures=True):
    """Accuracies of a saved model on train/val/test and per class (test), and its pictures.

    The validation split is carved exactly as in training (the saved config's val_size
    and seed), so "val" means the images the run did not train on. With ``pictures``,
    predictions.png, confusion.png and weights.png are written into ``out`` (default: the
    model's folder) and listed under ``"pictures"``.
    """
    model, meta = load_model(model_path)
    cfg = meta.get("config") or {}
    data = load_cifar10(data_dir, val_size=cfg.get("val_size", 5000), seed=cfg.get("seed", 0),
                        download=download, progress=progress)
    prep = meta["preprocessing"]
    prepare = make_preparer(prep["mode"], prep["stats"], model.dtype)
    acc, cm = evaluate_splits(model, data, prepare)
    written = []
    if pictures:
        folder = Path(out) if out is not None else Path(model_path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            written = write_pictures(folder, model, data, prepare, cm, W1_init=_initial_W1(cfg, data, model))
        except OSError as e:
            raise UserError(f"cannot write the pictures into {folder} ({e.strerror}); choose a folder "
                            f"with --out") from None
    return {"model": model, "meta": meta, "accuracy": acc, "confusion": cm, "pictures": written,
            "per_class": dict(zip(data.class_names, per_class_accuracy(cm).tolist()))}


def _initial_W1(cfg, data, model):
    """W1 as the saved config's seed initialised it, or None if the config cannot rebuild it."""
    if not cfg:
        return None
    try:
        W1 = build(TrainConfig.from_dict(cfg), data)[0].params["W1"]
    except (UserError, TypeError, ValueError):
        return None
    return W1 if W1.shape == model.params["W1"].shape else None


