"""SGD with momentum, kept apart from the model.

The update rule, exactly the course notebook's, for every parameter ``theta`` with
gradient ``g``::

    m     <- beta * m + g
    theta <- theta - alpha * m

``m`` starts at zero. With ``beta = 0`` this is plain SGD.

Three options, all off by default:

- Nesterov momentum, in the same form (PyTorch's): ``m <- beta*m + g;
  theta <- theta - alpha*(g + beta*m)``: the step looks one momentum step ahead.
- Decoupled weight decay ``lambda`` (Loshchilov & Hutter): ``theta <- theta -
  alpha*lambda*theta`` beside the gradient step, applied to weight matrices only
  (names starting with ``W``), never through ``m``. Unlike L2 in the loss it does not
  grow the momentum.
- L2 ``lambda`` added to the gradient of each weight matrix here rather than in the
  model's backward pass: ``m <- beta*m + (g + lambda*W)``, the very update of a gradient
  that already holds the L2 term (``FullyConnectedNet.backward(..., add_l2=True)``), in the
  block loop below while each block of ``W`` is in the cache, instead of in a pass of its
  own over ``W`` and ``g``; ``grads`` holds the gradient with its L2 term afterwards, as
  it would have. The trainer uses it (docs/performance-recipes.md measures it).

Because the stored ``m`` is a
sum of raw gradients (not of gradients already scaled by the learning rate, as in the
``v <- mu * v - alpha * g`` form of cs231n, Keras and scikit-learn), changing ``alpha``
mid-run rescales the whole accumulated velocity at once.
"""

from __future__ import annotations

import numpy as np

from .layers import REG
from .rules import check, real

ALPHA = real(0, open_low=True, note="try 1e-2")  # the learning rate
BETA = real(0, 1, open_high=True, note=(
    "the momentum m <- beta*m + g keeps a fraction beta of the past, so beta >= 1 never "
    "forgets and the steps grow without bound (the notebook's 1 and 10 diverge); 0 is "
    "plain SGD; try 0.9"))
WEIGHT_DECAY = real(0, note="try 5e-4")


BLOCK = 65536  # elements updated together: 256 KB of float32, measured best of 16K..256K


def _blocks(*arrays):
    """Matching views of at most about BLOCK elements of equally shaped arrays, by rows."""
    arrays = [a.reshape(1) if a.ndim == 0 else a for a in arrays]  # views
    rows = max(1, BLOCK // max(1, arrays[0][0].size))
    for i in range(0, len(arrays[0]), rows):
        yield [a[i:i + rows] for a in arrays]


class SGD:
    """Stochastic gradient descent with momentum, updating ``params`` in place.

    ``m <- beta * m + g;  theta <- theta - alpha * m``

    Args:
        params: dict name -> array, e.g. ``model.params``; updated in place.
        alpha: learning rate, > 0.
        beta: momentum in [0, 1); 0 is plain SGD.
        nesterov: use Nesterov momentum (see the module docstring).
        weight_decay: decoupled weight decay ``lambda`` >= 0 on the ``W*`` parameters.
        l2: L2 strength >= 0 whose gradient ``l2 * W`` is added to each ``W*`` gradient
            (see the module docstring); pass the model's ``reg`` when its backward pass
            leaves the L2 term out.
    """

    def __init__(self, params, alpha=1e-2, beta=0.9, *, nesterov=False, weight_decay=0.0,
                 l2=0.0):
        check(ALPHA, "alpha", alpha)
        check(BETA, "beta", beta)
        check(WEIGHT_DECAY, "weight_decay", weight_decay)
        check(REG, "reg", l2)
        self.params = params
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)
        self.l2 = float(l2)
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self._buffers = {}  # dtype -> reused scratch array of at least BLOCK elements, see step()

    def __repr__(self):
        extra = (", nesterov=True" if self.nesterov else "") + \
                (f", weight_decay={self.weight_decay:g}" if self.weight_decay else "") + \
                (f", l2={self.l2:g}" if self.l2 else "")
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
            weight = k.startswith("W")
            decay = 1.0 - lr * self.weight_decay if self.weight_decay and weight else None
            l2 = self.l2 if weight else 0.0
            # Block by block, so that each block's theta, m, g and scratch stay in the cache
            # while the four passes below run over them (3x faster than whole-array passes
            # for a 3072 x 1000 matrix), and in place: no temporary of the parameter's size.
            for theta_b, m_b, g_b in _blocks(theta, self.m[k], grads[k]):
                tmp = self._scratch(theta_b)
                if l2:  # g += l2 * theta: afterwards grads holds the gradient with its L2 term
                    np.multiply(theta_b, l2, out=tmp)
                    g_b += tmp
                if decay is not None:
                    theta_b *= decay  # decoupled: never enters m
                m_b *= self.beta
                m_b += g_b
                if self.nesterov:  # theta -= lr * (g + beta * m)
                    np.multiply(m_b, self.beta, out=tmp)
                    tmp += g_b
                    tmp *= lr
                else:  # theta -= lr * m
                    np.multiply(m_b, lr, out=tmp)
                theta_b -= tmp

    def _scratch(self, like):
        """A reused buffer shaped and typed like the block ``like``."""
        buf = self._buffers.get(like.dtype)
        if buf is None or buf.size < like.size:  # a block is one row if a row exceeds BLOCK
            buf = self._buffers[like.dtype] = np.empty(max(BLOCK, like.size), dtype=like.dtype)
        return buf[:like.size].reshape(like.shape)

    def state_dict(self):
        """The momentum buffers, for checkpoints."""
        return {k: v.copy() for k, v in self.m.items()}

    def load_state_dict(self, state):
        """Restore momentum buffers saved by :meth:`state_dict`."""
        for k in self.m:
            self.m[k][...] = state[k]
