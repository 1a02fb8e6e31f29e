"""Pictures of a run, written as PNG files with matplotlib (no display needed).

Every function takes plain data (the history dict of ``train``, a confusion matrix,
class names) and a path, and returns the path it wrote.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; safe on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
    ax.plot(steps, smooth(loss, max(1, len(loss) // 50)), color="tab:blue", lw=2, label="running mean")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_accuracy(history, path):
    """Train and validation accuracy at each evaluation, against the epoch."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(history["epoch"], history["train_acc"], "o-", ms=3, color="tab:orange", label="train (subset)")
    ax.plot(history["epoch"], history["val_acc"], "o-", ms=3, color="tab:green", lw=2, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title("Classification accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_confusion(cm, class_names, path, title="Confusion matrix (test set)"):
    """Row-normalised confusion matrix (true class per row) with counts in each cell."""
    cm = np.asarray(cm)
    frac = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    C = len(class_names)
    ax.set_xticks(range(C), class_names, rotation=45, ha="right")
    ax.set_yticks(range(C), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for i in range(C):
        for j in range(C):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if frac[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    ax.set_title(title)
    return _save(fig, path)
