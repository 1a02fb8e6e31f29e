"""Finite-difference gradients, to check a backward pass against its forward pass.

Use float64 and tiny shapes: each entry costs two evaluations of ``f``.
"""

from __future__ import annotations

import numpy as np


def numerical_gradient(f, x, h=1e-5):
    """Centred difference ``(f(x + h e_i) - f(x - h e_i)) / 2h`` for every entry of ``x``.

    Args:
        f: function of no arguments returning a float; it must read ``x`` (which is
            perturbed in place and restored).
        x: array of any shape, float64.
    Returns:
        array shaped like ``x``.
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = f()
        x[i] = old - h
        minus = f()
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def rel_error(a, b):
    """Largest relative error ``|a - b| / max(|a| + |b|, 1e-8)`` over all entries."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))
