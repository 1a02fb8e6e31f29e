"""Learning-rate schedules as pure functions of the step (nanoGPT's ``lr_at(step)``).

``step`` counts from 1 to ``total``. Every schedule may start with a linear warm-up over
``warmup`` steps from ``alpha / warmup`` up to ``alpha``.

Note on the momentum form ``m <- beta*m + g; theta <- theta - alpha*m``: ``m`` stores raw
gradients, so a new ``alpha`` applies at once to the whole stored velocity. A schedule
that halves ``alpha`` halves the very next step, unlike the ``v <- mu*v - alpha*g`` form
where old velocity keeps the old rate and fades out over ~1/(1-mu) steps.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine", "step")


def lr_at(step, *, alpha, total, schedule="constant", warmup=0, step_every=None, gamma=0.1,
          min_alpha=0.0):
    """Learning rate for ``step`` (1-based) of a ``total``-step run.

    Args:
        alpha: the peak (base) learning rate.
        schedule: ``constant``; ``cosine`` (from ``alpha`` down to ``min_alpha`` at the
            last step, after the warm-up); or ``step`` (multiply by ``gamma`` every
            ``step_every`` steps; default a third of the run).
        warmup: steps of linear warm-up at the start (0 = none).
    Returns:
        float.
    """
    if warmup and step <= warmup:
        return alpha * step / warmup
    if schedule == "constant":
        return alpha
    if schedule == "cosine":
        span = max(total - warmup, 1)
        progress = min(max(step - warmup, 0) / span, 1.0)
        return min_alpha + 0.5 * (alpha - min_alpha) * (1 + math.cos(math.pi * progress))
    if schedule == "step":
        every = step_every or max(total // 3, 1)
        return alpha * gamma ** ((step - 1) // every)
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
