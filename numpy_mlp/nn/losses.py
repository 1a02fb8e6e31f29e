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
        y: (N,) integer labels in ``[0, C)``, or (N, C) soft targets ``T`` whose rows
            sum to 1 (MixUp, CutMix): the loss is ``-mean_i sum_c T_ic log p_ic``.
        label_smoothing: ``eps`` in [0, 1): the target is ``(1 - eps)`` on the true
            class plus ``eps / C`` spread over all classes; with soft targets
            ``T <- (1 - eps) T + eps / C``. 0 gives the plain loss.
    Returns:
        loss: np.float64, the mean over the batch: a NumPy scalar, so the notebook's
            ``loss.item()`` works, and a ``float`` subclass, so it prints, formats and
            serialises like one.
        dscores: (N, C) gradient of ``loss`` w.r.t. ``scores``, same dtype as ``scores``.
    """
    N, C = scores.shape
    if np.ndim(y) == 2:
        return _soft_target_loss(scores, y, label_smoothing)
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


def _soft_target_loss(scores, T, label_smoothing):
    """:func:`cross_entropy_loss` for (N, C) soft targets ``T``; same return contract."""
    N, C = scores.shape
    if T.shape != scores.shape:
        raise ValueError(f"soft targets of shape {T.shape} for scores of shape {scores.shape}")
    if label_smoothing:
        T = (1 - label_smoothing) * T + label_smoothing / C  # (N, C), a new array
    shifted = scores - scores.max(axis=1, keepdims=True)  # (N, C)
    exp = np.exp(shifted)  # (N, C)
    sum_exp = exp.sum(axis=1, keepdims=True)  # (N, 1)
    log_probs = shifted - np.log(sum_exp)  # (N, C)
    loss = -(T * log_probs).sum(axis=1).mean()
    dscores = exp  # reuse: softmax probabilities, (N, C)
    dscores /= sum_exp
    dscores -= T  # d/ds of -sum_c T_c log p_c is p - T, as the rows of T sum to 1
    dscores /= N
    return np.float64(loss), dscores


def softmax(scores):
    """Row-wise softmax of (N, C) scores: (N, C) probabilities, each row summing to 1."""
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
