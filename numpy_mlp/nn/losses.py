"""Softmax cross-entropy, the loss of the course notebook; the distillation term that pulls
toward a teacher's probabilities; and the softmax itself.

    N  batch size
    C  number of classes
"""

from __future__ import annotations

import numpy as np


def cross_entropy_loss(scores, y, label_smoothing=0.0, weights=None):
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
        weights: (N,) non-negative row weights ``w``, or None (all 1): the loss is
            ``mean_i w_i l_i`` over the rows' losses ``l_i``, still divided by N, so that
            weights of mean 1 keep the loss's scale, and a row of weight 2 counts as that
            row twice. Each row's gradient is scaled by its weight.
    Returns:
        loss: np.float64, the mean over the batch: a NumPy scalar, so the notebook's
            ``loss.item()`` works, and a ``float`` subclass, so it prints, formats and
            serialises like one.
        dscores: (N, C) gradient of ``loss`` w.r.t. ``scores``, same dtype as ``scores``.
    """
    N, C = scores.shape
    if weights is not None:
        weights = np.asarray(weights)
        if weights.shape != (N,):
            raise ValueError(f"weights of shape {weights.shape} for {N} rows of scores")
    if np.ndim(y) == 2:
        return _soft_target_loss(scores, y, label_smoothing, weights)
    rows = np.arange(N)
    shifted = scores - scores.max(axis=1, keepdims=True)  # (N, C), a new array
    exp = np.exp(shifted)  # (N, C)
    sum_exp = exp.sum(axis=1, keepdims=True)  # (N, 1)
    log_sum = np.log(sum_exp)  # (N, 1)
    if label_smoothing:
        log_probs = shifted - log_sum  # (N, C)
        true = log_probs[rows, y]  # (N,)
        row_loss = -((1 - label_smoothing) * true + label_smoothing * log_probs.mean(axis=1))
    else:
        row_loss = -(shifted[rows, y] - log_sum[:, 0])  # (N,)
    loss = row_loss.mean() if weights is None else _weighted(row_loss, weights).mean()
    dscores = exp  # reuse: softmax probabilities, (N, C)
    dscores /= sum_exp
    if label_smoothing:
        dscores -= label_smoothing / C
        dscores[rows, y] -= 1 - label_smoothing
    else:
        dscores[rows, y] -= 1
    _scale_rows(dscores, weights)
    return np.float64(loss), dscores


def _weighted(row_loss, weights):
    """(N,) row losses times their weights, in the losses' dtype (as the mean is taken)."""
    return row_loss * weights.astype(row_loss.dtype, copy=False)


def _scale_rows(dscores, weights):
    """``dscores`` (N, C) divided by N, and each row times its weight (N,) if given; in
    place, in dscores's dtype."""
    if weights is not None:
        dscores *= weights.astype(dscores.dtype, copy=False)[:, None]
    dscores /= len(dscores)


def _soft_target_loss(scores, T, label_smoothing, weights):
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
    row_loss = -(T * log_probs).sum(axis=1)  # (N,)
    loss = row_loss.mean() if weights is None else _weighted(row_loss, weights).mean()
    dscores = exp  # reuse: softmax probabilities, (N, C)
    dscores /= sum_exp
    dscores -= T  # d/ds of -sum_c T_c log p_c is p - T, as the rows of T sum to 1
    _scale_rows(dscores, weights)
    return np.float64(loss), dscores


def distillation_loss(scores, targets, temperature=1.0, weights=None):
    """Hinton's distillation term: how far the softened probabilities of ``scores`` are from
    a teacher's, and its gradient w.r.t. ``scores``.

    With ``p = softmax(scores / T)`` the loss is ``T**2 * mean_i KL(q_i || p_i)``, zero when
    the student's softened probabilities equal the teacher's ``q``. The factor T**2 keeps
    the gradient, ``T * (p - q) / N``, at the scale of the plain cross-entropy's whatever
    the temperature (Hinton, Vinyals and Dean 2015), so that the two terms can be mixed.

    Args:
        scores: (N, C) the student's logits; never modified.
        targets: (N, C) the teacher's probabilities at temperature T, rows summing to 1.
        temperature: T > 0; above 1 it brings out the teacher's small probabilities.
        weights: (N,) non-negative row weights, or None, as in :func:`cross_entropy_loss`.
    Returns:
        loss: np.float64, the mean over the batch.
        dscores: (N, C) gradient of ``loss`` w.r.t. ``scores``, same dtype as ``scores``.
    """
    # KL(q || p) is the soft-target cross-entropy of scores / T plus sum_c q log q, which
    # the student does not move; d(scores / T)/d(scores) = 1 / T, times T**2 gives T
    T = float(temperature)
    q = np.asarray(targets, dtype=scores.dtype)
    # (N, C) targets: the soft-target loss, with the checks of q's and the weights' shapes
    cross, dscores = cross_entropy_loss(scores / T, q, weights=weights)
    # (N,) sum_c q log q, with 0 log 0 = 0
    q_log_q = np.where(q > 0, q * np.log(np.where(q > 0, q, 1)), 0).sum(axis=1)
    own = q_log_q.mean() if weights is None else _weighted(q_log_q, np.asarray(weights)).mean()
    dscores *= T
    return np.float64(T * T * (cross + own)), dscores


def softmax(scores):
    """Row-wise softmax of (N, C) scores: (N, C) probabilities, each row summing to 1."""
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
