"""The write-up of a trained run: its model, history, metrics, pictures and report.

Everything here writes through the run's :class:`~numpy_mlp.runs.folder.RunFolder` (whole
files, never through a link, one line per failed write). :func:`write_up` is the
write-up phase of ``numpy-mlp train``: run.json says ``writeup`` until its last file is
written, so a run stopped in the middle (a kill, a full disk) is finished by
``--resume``, from the checkpoint of its last step.

    N  images      C  classes
"""

from __future__ import annotations

import csv
import io
import json
import time

from ..data.dataset import to_images
from ..errors import RunFileError, printable
from ..files.atomic import atomic_write
from ..files.jsonfile import read_regular_bytes
from ..training.checkpoint_file import CHECKPOINT_NAME
from ..training.inference import predict_labels
from ..training.loop import EMA_HISTORY_KEYS, HISTORY_KEYS
from ..training.metrics import accuracy, confusion_matrix, per_class_accuracy
from ..training.model_file import MODEL_NAME, describe_model, write_model_file
from . import plots
from .report import write_report

# eval_step is no column: an evaluation's figures fill the row of its step
HISTORY_COLUMNS = [k for k in HISTORY_KEYS if k != "eval_step"]
EMA_COLUMNS = list(EMA_HISTORY_KEYS)  # last, only in the history of a run with an EMA


def write_json(path, obj):
    """``obj`` as indented JSON in file ``path``, atomically (files outside a run folder)."""
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def _columns(history):
    return HISTORY_COLUMNS + (EMA_COLUMNS if EMA_COLUMNS[0] in history else [])


def history_csv(history):
    """history.csv's text: one row per step; evaluation columns filled where measured (with
    an EMA, its validation accuracy in a last column, ``val_acc_ema``)."""
    evals = {s: i for i, s in enumerate(history["eval_step"])}
    columns = _columns(history)
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(columns)
    for step, loss in zip(history["step"], history["loss"]):
        i = evals.get(step)
        w.writerow([step, f"{loss:.6g}"] + ["" if i is None else f"{history[c][i]:.6g}"
                                            for c in columns[2:]])
    return text.getvalue()


MAX_HISTORY_BYTES = 256 << 20  # a row per step: about 40 bytes; 10^6 steps take 40 MB
HISTORY_FIX = "the run folder is damaged: train the run again, or leave it out"


def read_history(path):
    """A run's ``history.csv`` (as :func:`history_csv` writes it) read back, checked: the
    lists ``step`` and ``loss`` of every step, and ``eval_step``, ``epoch``, ``train_acc``
    and ``val_acc`` (and ``val_acc_ema``, if it has that column) of every evaluation. A
    link is refused; RunFileError names the row."""
    data = read_regular_bytes(path, limit=MAX_HISTORY_BYTES, error=RunFileError,
                              fix=HISTORY_FIX, follow_links=False)
    rows = csv.reader(io.StringIO(data.decode("utf-8", errors="replace")))
    columns = next(rows, None)
    if columns not in (HISTORY_COLUMNS, HISTORY_COLUMNS + EMA_COLUMNS):
        raise RunFileError(f"{printable(path)}: its first row is not {','.join(HISTORY_COLUMNS)} "
                           f"(with ,{','.join(EMA_COLUMNS)} for a run with an EMA); {HISTORY_FIX}")
    read = ["epoch", "train_acc", "val_acc"] + columns[len(HISTORY_COLUMNS):]
    out = {k: [] for k in ["step", "loss", "eval_step"] + read}
    for n, row in enumerate(rows, 2):
        try:
            if len(row) != len(columns):
                raise ValueError(f"{len(row)} columns")
            out["step"].append(int(row[0]))
            out["loss"].append(float(row[1]))
            if row[2]:  # an evaluation's row
                out["eval_step"].append(int(row[0]))
                for k in read:
                    out[k].append(float(row[columns.index(k)]))
        except ValueError as e:
            raise RunFileError(f"{printable(path)}: row {n} is not a step of a history ({e}); "
                               f"{HISTORY_FIX}") from None
    return out


def score_splits(model, preprocessor, data, tta_shift=0):
    """Accuracy on train, val and test, and the test confusion matrix (C, C), one view per
    image. A run without a validation split (``--val-size 0``) has no ``"val"``.

    With ``tta_shift`` > 0, also ``"val_tta"`` and ``"test_tta"``: the accuracy of
    predictions averaged over ten views (``inference.predict_labels(..., tta_shift=...)``).
    """
    out = {}
    for name, X, y in (("train", data.X_train, data.y_train), ("val", data.X_val, data.y_val),
                       ("test", data.X_test, data.y_test)):
        if name == "val" and not len(y):
            continue
        pred = predict_labels(model, preprocessor, X)
        out[name] = accuracy(y, pred)
        if name == "test":
            cm = confusion_matrix(y, pred, len(data.class_names))
        if tta_shift and name != "train":
            views = predict_labels(model, preprocessor, X, tta_shift=tta_shift,
                                   geometry=data.geometry)
            out[name + "_tta"] = accuracy(y, views)
    return out, cm


def write_pictures(folder, model, preprocessor, data, cm, *, history=None, W1_init=None,
                   n_images=32):
    """The PNGs of a run (or of an evaluation, without ``history``) into the RunFolder
    ``folder``.

    Writes predictions.png (the first ``n_images`` test images), confusion.png,
    weights.png (W1 minus ``W1_init`` where given, both on the per_channel images for a
    whitened model: :meth:`~numpy_mlp.data.preprocessing.Preprocessor.input_weights`), and, with a
    history, loss.png and accuracy.png. Returns the paths written.
    """
    X, y = data.X_test[:n_images], data.y_test[:n_images]
    pred = predict_labels(model, preprocessor, X)
    names, geometry = data.class_names, data.geometry
    draw = {"predictions.png": lambda f: plots.plot_predictions(to_images(X, geometry), y, pred,
                                                                names, f),
            "confusion.png": lambda f: plots.plot_confusion(cm, names, f),
            "weights.png": lambda f: plots.plot_first_layer_weights(
                preprocessor.input_weights(model.params["W1"]), f,
                W1_init=None if W1_init is None else preprocessor.input_weights(W1_init),
                geometry=geometry)}
    if history is not None:
        draw["loss.png"] = lambda f: plots.plot_loss(history, f)
        draw["accuracy.png"] = lambda f: plots.plot_accuracy(history, f)
    return [folder.write(name, picture) for name, picture in draw.items()]


def run_metrics(acc, cm, result, data, config, t0):
    """metrics.json of a run: accuracies, per-class test accuracy, steps and times. The
    accuracies are those of ``acc`` (:func:`score_splits`): a run without a validation split
    has no val figures, rather than NaN, which strict JSON readers (JSON.parse) refuse."""
    named = (("train_accuracy", "train"), ("val_accuracy", "val"), ("test_accuracy", "test"),
             ("val_accuracy_tta", "val_tta"), ("test_accuracy_tta", "test_tta"))
    return {
        **{key: acc[split] for key, split in named if split in acc},
        **({"tta_shift": config.tta_shift} if config.tta_shift else {}),
        "per_class_test_accuracy": dict(zip(data.class_names,
                                            per_class_accuracy(cm).round(4).tolist())),
        "best_step": result.best_step, "steps": result.steps,
        **({"best_source": result.best_source} if config.ema else {}),  # "raw" or "ema"
        "train_seconds": round(result.seconds, 2),
        "total_seconds": round(time.perf_counter() - t0, 2),
        "model": describe_model(result.model, result.preprocessor),
    }


def write_up(folder, config, data, result, *, data_dir, W1_init, say, t0):
    """The write-up phase of a run in the RunFolder ``folder``: model.npz, history.csv,
    metrics.json, the pictures and report.html, then the checkpoint removed.

    ``data_dir`` is the data folder the model records (absolute); ``W1_init`` (D, H) the
    initial first-layer weights for weights.png; ``say`` the log; ``t0`` the run's start
    (``time.perf_counter()``). Returns the metrics.
    """
    model, preprocessor = result.model, result.preprocessor
    with folder.writing_up():
        acc, cm = score_splits(model, preprocessor, data, config.tta_shift)
        metrics = run_metrics(acc, cm, result, data, config, t0)
        folder.write(MODEL_NAME, lambda f: write_model_file(
            f, model, preprocessor, class_names=data.class_names, config=config.to_dict(),
            data_dir=data_dir, geometry=data.geometry))
        folder.write_text("history.csv", history_csv(result.history))
        folder.write_json("metrics.json", metrics)
        write_pictures(folder, model, preprocessor, data, cm, history=result.history,
                       W1_init=W1_init)
        has_val = "val" in acc  # --val-size 0: the last step's weights, no val figures
        kept = (f"best val at step {result.best_step}"
                f"{', the EMA weights' if result.best_source == 'ema' else ''}" if has_val
                else f"no validation split: the weights of step {result.best_step}")
        say(f"done in {metrics['total_seconds']:.0f}s: train {acc['train']:.4f}  "
            + (f"val {acc['val']:.4f}  " if has_val else "") + f"test {acc['test']:.4f}  ({kept})")
        if config.tta_shift:
            say(f"ten views (shift {config.tta_shift}): "
                + (f"val {acc['val_tta']:.4f}  " if has_val else "")
                + f"test {acc['test_tta']:.4f}")
        say(f"saved to {folder.path}/ (open {folder.path / 'report.html'} in a browser)")
        write_report(folder.path, folder=folder)
    folder.remove(CHECKPOINT_NAME)  # the run is complete: nothing left to resume
    return metrics
