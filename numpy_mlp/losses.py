"""Softmax cross-entropy, the loss of the course notebook, and the softmax itself.

    N  batch size
    C  number of classes
"""

from __future__ import annotations

import numpy as np


def cross_entropy_loss(scores, y, label_smoothing=0.0):
    """Mean softmax cross-entropy over a batch, and its gradient w.r.t. ``scores``.

    Numerically stable per row (the row maximum is subtracted before ``exp``), and
    ``scores`` is never modified.

    Args:
        scores: (N, C) unnormalised class scores (logits).
        y: (N,) integer labels in ``[0, C)``.
        label_smoothing: ``eps`` in [0, 1): the target is ``(1 - eps)`` on the true
            class plus ``eps / C`` spread over all classes. 0 gives the plain loss.
    Returns:
        loss: np.float64, the mean over the batch: a NumPy scalar, so the notebook's
            ``loss.item()`` works, and a ``float`` subclass, so it prints, formats and
            serialises like one.
        dscores: (N, C) gradient of ``loss`` w.r.t. ``scores``, same dtype as ``scores``.
    """
    N, C = scores.shape
    rows = np.arange(N)
    shifted = scores - scores.max(axis=1, keepdims=True)  # (N, C), a new array
    exp = np.exp(shifted)  # (N, C)
    sum_exp = exp.sum(axis=1, keepdims=True)  # (N, 1)
    log_sum = np.log(sum_exp)  # (N, 1)
    if label_smoothing:
        log_probs = shifted - log_sum  # (N, C)
        true = log_probs[rows, y]  # (N,)
        loss = -((1 - label_smoothing) * true + label_smoothing * log_probs.mean(axis=1)).mean()
    else:
        loss = -(shifted[rows, y] - log_sum[:, 0]).mean()
    dscores = exp  # reuse: softmax probabilities, (N, C)
    dscores /= sum_exp
    if label_smoothing:
        dscores -= label_smoothing / C
        dscores[rows, y] -= 1 - label_smoothing
    else:
        dscores[rows, y] -= 1
    dscores /= N
    return np.float64(loss), dscores


def softmax(scores):
    """Row-wise softmax of (N, C) scores: (N, C) probabilities, each row summing to 1."""
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
