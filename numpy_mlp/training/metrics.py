"""Accuracy, confusion matrices and per-class accuracy of predicted labels (predictions
themselves come from :mod:`numpy_mlp.training.inference`).

    N  number of images
    C  number of classes
"""

from __future__ import annotations

import numpy as np

from ..memory import check_fits


def accuracy(y_true, y_pred, weights=None):
    """Fraction of equal labels, each row counted with its weight (N,) if given; NaN for
    empty input or weights summing to 0."""
    if len(y_true) == 0 or (weights is not None and not np.sum(weights) > 0):
        return float("nan")
    return float(np.average(np.asarray(y_true) == np.asarray(y_pred), weights=weights))


def confusion_matrix(y_true, y_pred, num_classes=10):
    """(C, C) counts: row = true class, column = predicted class."""
    check_fits(f"a {num_classes} x {num_classes} confusion matrix", 8 * num_classes**2,
               "use a dataset with fewer classes")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def per_class_accuracy(cm):
    """(C,) accuracy of each true class from a confusion matrix (NaN where a class is absent)."""
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / np.maximum(totals, 1), np.nan)
