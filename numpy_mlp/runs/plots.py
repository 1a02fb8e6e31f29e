"""Pictures of a run and of a search, written as PNG files with matplotlib (no display needed).

Every function takes plain data (the history dict of ``train``, a confusion matrix,
class names) and a path, and returns the path it wrote.

Class names are a dataset's text, drawn as text (:data:`AS_TEXT`): ``cat$\\foo$`` is
shown as it is, never parsed as matplotlib mathtext. A character the font lacks (猫, 🐶)
is drawn as a box without a warning (:func:`save_figure`): the names are in full in
metrics.json and report.html.
"""

from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")  # files only; safe on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from ..files.atomic import atomic_write  # noqa: E402
from ..memory import check_fits  # noqa: E402

MAX_COUNTED_CLASSES = 20  # above this many classes the confusion matrix shows no counts
AS_TEXT = {"parse_math": False}  # the Text properties of every string a dataset supplies


def save_figure(fig, path, fmt="png"):
    """Lay out, write as PNG at 110 dpi (or ``fmt``, such as svg) and close ``fig``; returns
    ``path`` (a file name or a binary file object, as a RunFolder's write gives). A file name
    is written atomically, and only if it is a regular file or a new name
    (files.atomic.atomic_write).

    Glyphs missing from the font are not warned about: one warning per character and per
    drawing, even with ``--quiet``, about names the reader has whole elsewhere.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"Glyph \d+ .* missing from font", UserWarning)
            fig.tight_layout()
            if hasattr(path, "write"):
                fig.savefig(path, dpi=110, format=fmt)
            else:
                atomic_write(path, lambda f: fig.savefig(f, dpi=110, format=fmt))
    finally:
        plt.close(fig)
    return path


def _finish_curves(fig, ax, path, *, xlabel, ylabel, title, fmt="png"):
    """Label the axes and title of a curves plot, add the faint grid and the legend, and save
    ``fig`` with :func:`save_figure`; returns ``path``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return save_figure(fig, path, fmt)


def smooth(values, window):
    """Running mean over ``window`` points (shorter at the start), same length as ``values``."""
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_loss(history, path):
    """Training loss of every step (faint) and its running mean, against the step."""
    fig, ax = plt.subplots(figsize=(7, 4))
    steps, loss = history["step"], history["loss"]
    ax.plot(steps, loss, color="tab:blue", alpha=0.25, lw=0.8, label="loss of each minibatch")
    ax.plot(steps, smooth(loss, max(1, len(loss) // 50)), color="tab:blue", lw=2,
            label="running mean")
    return _finish_curves(fig, ax, path, xlabel="iteration",
                          ylabel="cross-entropy loss (without L2)", title="Training loss")


def plot_accuracy(history, path):
    """Train and validation accuracy at each evaluation, against the epoch.

    The validation curve is drawn over the training one, with that of the weights' moving
    average (``val_acc_ema``) where the history has one, and the best point (the
    parameters the run keeps, from either) is marked.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    epoch, train_acc, val_acc = (np.asarray(history[k], dtype=np.float64)
                                 for k in ("epoch", "train_acc", "val_acc"))
    ax.plot(epoch, train_acc, "o-", ms=3, color="tab:orange", lw=1.5, zorder=2,
            label="train (fixed subset)")
    if len(val_acc) and np.isfinite(val_acc).any():
        ax.plot(epoch, val_acc, "o-", ms=4, color="tab:green", lw=2.5, zorder=3, label="validation")
        ema = np.asarray(history.get("val_acc_ema", []), dtype=np.float64)
        has_ema = len(ema) == len(val_acc) and np.isfinite(ema).any()
        if has_ema:
            ax.plot(epoch, ema, "s--", ms=3, color="tab:purple", lw=1.5, zorder=3,
                    label="validation, EMA of the weights")
        else:
            ema = val_acc  # never better: the trained weights' curve alone
        from_ema = ema > val_acc  # (evals,) where the EMA was the better one
        kept = np.where(from_ema, ema, val_acc)  # what the run compared, as loop.record_evaluation
        best = int(np.nanargmax(kept))
        color, what = ("tab:purple", "EMA ") if from_ema[best] else ("tab:green", "")
        ax.plot(epoch[best], kept[best], "*", ms=14, color=color, mec="black", zorder=4,
                label=f"best validation {what}{kept[best]:.3f} (kept)")
    return _finish_curves(fig, ax, path, xlabel="epoch", ylabel="accuracy",
                          title="Classification accuracy")


MAX_CURVE_POINTS = 1000  # points of each run's loss curve drawn on a comparison


def plot_compared(histories, labels, kind, path, fmt="svg"):
    """Several runs' curves on one plot: ``kind`` "loss" (the running mean of each run's
    minibatch loss, against the step) or "val_acc" (validation accuracy at each
    evaluation, against the epoch). Run i's line has the id ``{kind}-{i}`` in an SVG."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (history, label) in enumerate(zip(histories, labels)):
        if kind == "loss":
            x, y = np.asarray(history["step"]), smooth(history["loss"],
                                                      max(1, len(history["loss"]) // 50))
            every = max(1, math.ceil(len(x) / MAX_CURVE_POINTS))
            x, y = x[::every], y[::every]
        else:
            x, y = history["epoch"], history["val_acc"]
        (line,) = ax.plot(x, y, "-" if kind == "loss" else "o-", ms=3, lw=1.8, label=label)
        line.set_gid(f"{kind}-{i}")
    if kind == "loss":
        return _finish_curves(fig, ax, path, xlabel="iteration", ylabel="cross-entropy loss "
                              "(running mean)", title="Training loss", fmt=fmt)
    return _finish_curves(fig, ax, path, xlabel="epoch", ylabel="validation accuracy",
                          title="Validation accuracy", fmt=fmt)


def plot_predictions(images, y_true, y_pred, class_names, path, cols=8,
                     title="Test images with the predicted label"):
    """A grid of images, each titled with its predicted label; mistakes in red with the true label.

    Args:
        images: (N, height, width, 3) uint8 images, e.g.
            ``dataset.to_images(X_test[:32], geometry)``.
        y_true, y_pred: (N,) integer labels.
        class_names: the C class names, in label order.
        cols: images per row.
    """
    images, y_true, y_pred = np.asarray(images), np.asarray(y_true), np.asarray(y_pred)
    n = len(images)
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.45 * cols, 1.65 * rows + 0.5), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ok = y_true[k] == y_pred[k]
        ax.imshow(images[k], interpolation="nearest")
        guess = class_names[y_pred[k]]
        label = guess if ok else f"{guess}\n({class_names[y_true[k]]})"
        ax.set_title(label, fontsize=8.5, color="darkgreen" if ok else "red",
                     fontweight="normal" if ok else "bold", pad=2, **AS_TEXT)
        if not ok:  # a red frame around each mistake
            height, width = images[k].shape[:2]
            ax.add_patch(plt.Rectangle((-0.5, -0.5), width, height, fill=False, ec="red", lw=3))
    wrong = int((y_true != y_pred).sum())
    fig.suptitle(f"{title}: {n - wrong} of {n} right; mistakes in red, (true label) below",
                 fontsize=11, **AS_TEXT)
    return save_figure(fig, path)


def weight_templates(W1, geometry):
    """The columns of W1 (D, H) as H images (H, height, width, 3) in [0, 1].

    Column ``j`` holds the weights of hidden unit ``j`` on the input laid out channel-first
    (channels, height, width), like an image row of ``geometry``; it is moved to (height,
    width, channels), grey repeated as RGB, and rescaled on its own to 0..1 (its minimum
    black, its maximum white), as in the course's picture.
    """
    W1, g = np.asarray(W1, dtype=np.float64), geometry
    if W1.ndim != 2 or W1.shape[0] != g.D:
        raise ValueError(f"W1 must have shape ({g.D}, H), got {W1.shape}")
    t = W1.T.reshape(-1, g.channels, g.height, g.width).transpose(0, 2, 3, 1)  # (H, h, w, c)
    if g.channels == 1:
        t = np.repeat(t, 3, axis=-1)
    lo = t.min(axis=(1, 2, 3), keepdims=True)
    hi = t.max(axis=(1, 2, 3), keepdims=True)
    return (t - lo) / np.maximum(hi - lo, 1e-12)


def plot_first_layer_weights(W1, path, W1_init=None, count=100, cols=10, *, geometry):
    """The first ``count`` hidden units' weights W1[:, j] as templates of the images' size.

    Args:
        W1: (D, H) first-layer weights, D = geometry.D (CIFAR-10: 3072).
        W1_init: (D, H) the same weights at initialisation, if known. Then the picture
            shows what training added: each unit's weights minus their projection onto
            its initial weights, ``W1[:, j] - c_j * W1_init[:, j]`` with
            ``c_j = <W1[:, j], W1_init[:, j]> / |W1_init[:, j]|^2``. The random He
            initialisation is several times larger than what training adds and would hide
            the templates under noise; L2 or weight decay shrinks it (c_j < 1) without
            removing it, so subtracting it whole (c_j = 1) would leave noise as well.
        count: how many units to show (the first ones; at most H).
        geometry: the Geometry of the images the network takes.
    """
    W1 = np.asarray(W1)
    H = W1.shape[1]
    count = min(count, H)
    shown = W1[:, :count].astype(np.float64)  # (D, count)
    if W1_init is not None:
        W0 = np.asarray(W1_init)[:, :count].astype(np.float64)  # (D, count)
        c = (shown * W0).sum(axis=0) / np.maximum((W0 * W0).sum(axis=0), 1e-30)  # (count,)
        shown -= c * W0
    t = weight_templates(shown, geometry)  # (count, height, width, 3)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(0.8 * cols, 0.8 * rows + 0.7), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < count:
            ax.imshow(t[k], interpolation="nearest")
    what = ("First-layer weights" if W1_init is None
            else "What the first layer learned (W1 less its initial weights)")
    kind = "colour" if geometry.channels == 3 else "grey"
    fig.suptitle(f"{what}:\n{count} of {H} hidden units as {geometry.height}x{geometry.width} "
                 f"{kind} templates", fontsize=10)
    return save_figure(fig, path)


def plot_confusion(cm, class_names, path, title="Confusion matrix (test set)"):
    """Row-normalised confusion matrix (true class per row) with counts in each cell.

    Each row is labelled with its class and that class's accuracy (the diagonal over the
    row's total); the title gives the overall accuracy.
    """
    cm = np.asarray(cm)
    C = len(class_names)
    # the fractions, and matplotlib's RGBA copy of them: 5 floats a cell
    check_fits(f"the picture of a {C}-class confusion matrix", 40 * C * C,
               "use a dataset with fewer classes, or evaluate with --no-pictures")
    totals = cm.sum(axis=1, keepdims=True)
    frac = cm / np.maximum(totals, 1)
    counted = C <= MAX_COUNTED_CLASSES  # beyond, counts and names would overlap: colours only
    side = 6 if counted else min(6 + C / 10, 16)
    fig, ax = plt.subplots(figsize=(side * 1.25, side))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    small = AS_TEXT if counted else {"fontsize": 4, **AS_TEXT}
    ax.set_xticks(range(C), class_names, rotation=45 if counted else 90, ha="right", **small)
    ax.set_yticks(range(C), [f"{name}  {frac[i, i]:.0%}" for i, name in enumerate(class_names)],
                  **small)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class  (its accuracy)")
    for i in range(C if counted else 0):
        for j in range(C):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if frac[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    overall = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"{title}: {overall:.1%} right", **AS_TEXT)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- a search

def log_ticks(low, high):
    """Tick positions and labels for a log axis over [low, high], 0 < low < high.

    Powers of ten (at most about seven), else 1, 2 and 5 times them, else 1..9 times,
    whichever first puts two ticks inside the range.
    Labels are plain numbers (0.05, 256, 1000) when every tick lies in 0.01..99999, else
    1e-3, 2e-4 (never 10^-2.5).
    """
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    powers = [10.0 ** k for k in range(first, last + 1)]
    inside = [low * (1 - 1e-9), high * (1 + 1e-9)]
    ticks = []
    for multiples in ((1,), (1, 2, 5), range(1, 10)):
        ticks = [m * p for p in powers for m in multiples if inside[0] <= m * p <= inside[1]]
        if len(ticks) >= 2:
            ticks = ticks[::max(1, math.ceil(len(ticks) / 7))]
            break
    ticks = ticks if len(ticks) >= 2 else [low, high]
    plain = all(0.01 <= t < 1e5 for t in ticks)
    return ticks, [f"{t:g}" if plain else _scientific(t) for t in ticks]


def _scientific(t):
    """2e-4, 1e-3, 1.5e6: the exponent without a sign padding or leading zeros."""
    e = math.floor(math.log10(t) + 1e-9)
    return f"{round(t / 10.0 ** e, 2):g}e{e}"


def _number_x_axis(ax, values, log):
    """Readable x ticks for numeric ``values``: :func:`log_ticks` on a log axis, whole
    numbers when every value is one."""
    low, high = min(values), max(values)
    if log and low < high:
        ax.set_xscale("log")
        ticks, labels = log_ticks(low, high)
        ax.set_xticks(ticks, labels)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        pad = (high / low) ** 0.05  # the ends inside the frame
        ax.set_xlim(low / pad, high * pad)
    elif log:
        ax.set_xscale("log")
    elif all(float(v).is_integer() for v in values):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def plot_search_history(numbers, values, pruned_numbers, pruned_values, path):
    """Validation accuracy of each trial and the best so far, against the trial number.

    Args:
        numbers, values: trial numbers and validation accuracies of the complete trials.
        pruned_numbers, pruned_values: of the pruned trials, their last reported accuracy.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    if pruned_numbers:
        ax.scatter(pruned_numbers, pruned_values, s=14, color="0.6",
                   label="pruned (last reported)")
    ax.scatter(numbers, values, s=22, color="tab:blue", label="complete")
    order = np.argsort(numbers)
    best = np.maximum.accumulate(np.asarray(values, dtype=float)[order]) if values else []
    ax.step(np.asarray(numbers)[order], best, where="post", color="tab:red", lw=2,
            label="best so far")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # trial numbers
    return _finish_curves(fig, ax, path, xlabel="trial", ylabel="validation accuracy",
                          title="Optimisation history")


def plot_search_params(params, values, pruned_values, path):
    """One panel per searched field: validation accuracy against the field's value.

    Args:
        params: ``{field: (values of the complete trials, of the pruned ones, log?)}``.
        values, pruned_values: the accuracies of those trials (pruned: last reported).
    """
    n = max(1, len(params))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, (name, (xs, pruned_xs, log)) in zip(axes.flat, params.items()):
        if pruned_xs:
            ax.scatter(pruned_xs, pruned_values, s=12, color="0.6", label="pruned")
        ax.scatter(xs, values, s=18, color="tab:blue", label="complete")
        shown = xs + pruned_xs
        if shown and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in shown):
            _number_x_axis(ax, shown, log)
        ax.set_xlabel(name)
        ax.set_ylabel("val accuracy")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(params):]:
        ax.axis("off")
    fig.suptitle("Validation accuracy against each hyperparameter")
    return save_figure(fig, path)


def plot_importances(importances, path):
    """Horizontal bars of parameter importances ``{field: share}``, largest on top."""
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * max(1, len(importances))))
    if importances:
        names = list(importances)[::-1]
        ax.barh(names, [importances[k] for k in names], color="tab:blue")
        ax.set_xlabel("importance (share of the variation in val accuracy)")
    else:
        ax.text(0.5, 0.5, "too few complete trials to estimate importances", ha="center",
                va="center")
        ax.axis("off")
    ax.set_title("Hyperparameter importances")
    return save_figure(fig, path)
