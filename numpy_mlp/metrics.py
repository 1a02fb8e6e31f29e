"""Accuracy and confusion matrices, computed in batches from uint8 images.

    N  number of images
    D  3072
    C  number of classes
"""

from __future__ import annotations

import numpy as np

from .augment import tta_views
from .losses import softmax
from .threads import ThreadChooser


def predict_uint8(model, X, prepare, batch_size=2000, tta_shift=0):
    """Predicted labels (N,) for uint8 images X (N, D).

    With ``tta_shift`` = s > 0 (test-time augmentation) each prediction is the class with
    the highest softmax probability averaged over the ten views of
    :func:`~numpy_mlp.augment.tta_views` (the image and its diagonal shifts by s pixels,
    each also mirrored): ten times the work, for a model trained with flips and crops.

    ``prepare(X_batch, out)`` turns a uint8 batch into the model's float input, writing
    into ``out``; one float buffer of ``batch_size`` rows is reused for all batches. If
    ``prepare`` is a :class:`~numpy_mlp.data.Preprocessor` (as ``make_preparer`` gives),
    its normalisation is folded into the first layer instead (``Preprocessor.folded``):
    the images are only copied to floats. The BLAS thread count is chosen batch by batch
    as in training (:mod:`numpy_mlp.threads`), among 1 .. the count BLAS is allowed when
    called (inside the trainer: its choice).
    """
    pred = np.empty(len(X), dtype=np.int64)
    buf = np.empty((min(batch_size, max(len(X), 1)), X.shape[1]), dtype=model.dtype)
    first_layer = prepare.folded(model.params["W1"], model.params["b1"]) if hasattr(prepare, "folded") else None
    with ThreadChooser("auto") as threads:
        for i in range(0, len(X), batch_size):
            threads.tick()
            xb = X[i:i + batch_size]
            if tta_shift:  # (N, C) summed probabilities
                votes = sum(softmax(_scores(model, v, prepare, first_layer, buf)) for v in tta_views(xb, tta_shift))
            else:  # (N, C) scores: the same argmax as their probabilities
                votes = _scores(model, xb, prepare, first_layer, buf)
            pred[i:i + len(xb)] = votes.argmax(axis=1)
    return pred


def _scores(model, X, prepare, first_layer, buf):
    """Scores (N, C) for uint8 X (N, D), through ``first_layer`` (folded) if given, else
    ``prepare`` into ``buf`` and the whole network."""
    if first_layer is not None:
        return model.forward_after_first(first_layer(X, buf[:len(X)]))
    return model.forward(prepare(X, out=buf[:len(X)]), train=False)[0]


def accuracy(y_true, y_pred):
    """Fraction of equal labels; NaN for empty input."""
    if len(y_true) == 0:
        return float("nan")
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def confusion_matrix(y_true, y_pred, num_classes=10):
    """(C, C) counts: row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def per_class_accuracy(cm):
    """(C,) accuracy of each true class from a confusion matrix (NaN where a class is absent)."""
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / np.maximum(totals, 1), np.nan)
