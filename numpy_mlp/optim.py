"""SGD with momentum, kept apart from the model.

The update rule, exactly the course notebook's, for every parameter ``theta`` with
gradient ``g``::

    m     <- beta * m + g
    theta <- theta - alpha * m

``m`` starts at zero. With ``beta = 0`` this is plain SGD.

Two options, both off by default:

- Nesterov momentum, in the same form (PyTorch's): ``m <- beta*m + g;
  theta <- theta - alpha*(g + beta*m)``: the step looks one momentum step ahead.
- Decoupled weight decay ``lambda`` (Loshchilov & Hutter): ``theta <- theta -
  alpha*lambda*theta`` beside the gradient step, applied to weight matrices only
  (names starting with ``W``), never through ``m``. Unlike L2 in the loss it does not
  grow the momentum. Because the stored ``m`` is a
sum of raw gradients (not of gradients already scaled by the learning rate, as in the
``v <- mu * v - alpha * g`` form of cs231n, Keras and scikit-learn), changing ``alpha``
mid-run rescales the whole accumulated velocity at once.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ConfigError


def check_alpha(alpha):
    """Raise ConfigError unless ``alpha`` is a finite positive number."""
    if not (isinstance(alpha, (int, float, np.floating)) and math.isfinite(alpha) and alpha > 0):
        raise ConfigError(f"alpha={alpha!r} must be a finite learning rate > 0 (try 1e-2)")


def check_beta(beta):
    """Raise ConfigError unless ``beta`` is in [0, 1)."""
    if not (isinstance(beta, (int, float, np.floating)) and 0.0 <= beta < 1.0):
        raise ConfigError(
            f"beta={beta!r} is outside [0, 1): the momentum m <- beta*m + g keeps a "
            f"fraction beta of the past each step, so beta >= 1 never forgets and the "
            f"steps grow without bound (the notebook's 1 and 10 diverge); use e.g. 0.9")


class SGD:
    """Stochastic gradient descent with momentum, updating ``params`` in place.

    ``m <- beta * m + g;  theta <- theta - alpha * m``

    Args:
        params: dict name -> array, e.g. ``model.params``; updated in place.
        alpha: learning rate, > 0.
        beta: momentum in [0, 1); 0 is plain SGD.
        nesterov: use Nesterov momentum (see the module docstring).
        weight_decay: decoupled weight decay ``lambda`` >= 0 on the ``W*`` parameters.
    """

    def __init__(self, params, alpha=1e-2, beta=0.9, *, nesterov=False, weight_decay=0.0):
        check_alpha(alpha)
        check_beta(beta)
        if not (isinstance(weight_decay, (int, float, np.floating)) and math.isfinite(weight_decay)
                and weight_decay >= 0):
            raise ConfigError(f"weight_decay={weight_decay!r} must be a finite number >= 0 (try 5e-4)")
        self.params = params
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)
        self.m = {k: np.zeros_like(v) for k, v in params.items()}

    def __repr__(self):
        extra = (", nesterov=True" if self.nesterov else "") + \
                (f", weight_decay={self.weight_decay:g}" if self.weight_decay else "")
        return f"SGD(alpha={self.alpha:g}, beta={self.beta:g}{extra}, params={len(self.params)})"

    def step(self, grads, alpha=None):
        """Apply one update from ``grads`` (same keys and shapes as ``params``).

        Args:
            grads: dict name -> gradient array.
            alpha: learning rate for this step (a schedule's value); default ``self.alpha``.
        """
        lr = self.alpha if alpha is None else alpha
        for k, theta in self.params.items():
            if k not in grads:
                raise KeyError(f"no gradient for parameter {k!r}; grads has {sorted(grads)}")
            g, m = grads[k], self.m[k]
            if self.weight_decay and k.startswith("W"):
                theta *= 1.0 - lr * self.weight_decay  # decoupled: never enters m
            m *= self.beta
            m += g
            if self.nesterov:
                theta -= lr * (g + self.beta * m)
            else:
                theta -= lr * m

    def state_dict(self):
        """The momentum buffers, for checkpoints."""
        return {k: v.copy() for k, v in self.m.items()}

    def load_state_dict(self, state):
        """Restore momentum buffers saved by :meth:`state_dict`."""
        for k in self.m:
            self.m[k][...] = state[k]
