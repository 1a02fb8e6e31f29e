"""An exponential moving average (EMA) of the parameters, kept beside the trained ones.

After each optimizer step ``t`` (1 at the first), for every parameter ``theta``::

    d_t   = min(decay, (1 + t) / (10 + t))
    avg  <- d_t * avg + (1 - d_t) * theta

``avg`` starts as a copy of the initial parameters. The warm-up of ``d_t`` (TensorFlow's
``ExponentialMovingAverage(num_updates=...)`` form) matters because with a fixed decay
of 0.999 the average would still hold ``0.999**t`` of the random initial weights after
``t`` steps (37% after 1000 steps), so early evaluations would rate a blur of the
initialisation; with the warm-up, step 1 keeps 2/11 of it and the share of any one
step's weights decays like ``1/t`` until ``d_t`` reaches ``decay``.

The averages have the parameters' dtype (float32 keeps a 0.999 average to about 1e-4
of the weights' scale; much longer averages would want float64). The trained
parameters are never changed: :meth:`EMA.swapped_into` lends the averages to a model for
an evaluation and puts its own parameters back.

    D  input      H  hidden width      C  classes
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .optim import _blocks
from .rules import check, real

DECAY = real(0, 1, open_high=True, note="try 0.999")  # 0 = the average is the parameters


def decay_at(decay, step):
    """``d_t = min(decay, (1 + t) / (10 + t))`` for the update after step ``t`` >= 1."""
    return min(decay, (1.0 + step) / (10.0 + step))


class EMA:
    """The moving average ``averages`` of a params dict, updated in place.

    Args:
        params: dict name -> array, e.g. ``model.params`` (``{"W1": (D, H), "b1": (H,),
            ...}``); copied as the starting averages, never modified.
        decay: the long-run decay in [0, 1); 0 makes the average the parameters.
    """

    def __init__(self, params, decay):
        self.decay = check(DECAY, "ema", decay)
        self.averages = {k: v.copy() for k, v in params.items()}  # same keys, shapes, dtypes
        self._scratch = {}  # dtype -> a reused block-sized buffer, see update()

    def __repr__(self):
        size = sum(v.size for v in self.averages.values())
        return f"EMA(decay={self.decay:g}, params={len(self.averages)}, values={size})"

    def update(self, params, step):
        """``avg <- d*avg + (1-d)*theta`` for every parameter, ``d = decay_at(decay, step)``.

        Written as ``avg -= (1-d)*(avg - theta)``, block by block through one small scratch
        buffer: no temporary of a weight's size.

        Args:
            params: the current parameters, the keys and shapes of ``averages``.
            step: the optimizer steps done, >= 1 (this update follows step ``step``).
        """
        weight = 1.0 - decay_at(self.decay, step)
        for k, avg in self.averages.items():
            for avg_b, theta_b in _blocks(avg, params[k]):
                tmp = self._buffer(avg_b)
                np.subtract(avg_b, theta_b, out=tmp)
                tmp *= weight
                avg_b -= tmp

    def _buffer(self, like):
        buf = self._scratch.get(like.dtype)
        if buf is None or buf.size < like.size:
            buf = self._scratch[like.dtype] = np.empty(like.size, dtype=like.dtype)
        return buf[:like.size].reshape(like.shape)

    @contextmanager
    def swapped_into(self, model):
        """Within the block, ``model.params`` holds the averages (the same arrays, not
        copies); afterwards the model's own arrays are back. Other model state (e.g.
        normalisation buffers) is left as it is."""
        own = dict(model.params)
        try:
            model.params.update(self.averages)
            yield model
        finally:
            model.params.update(own)

    def state_dict(self):
        """The averages, for checkpoints."""
        return {k: v.copy() for k, v in self.averages.items()}

    def load_state_dict(self, state):
        """Restore averages saved by :meth:`state_dict` (same keys and shapes)."""
        for k, v in self.averages.items():
            if state[k].shape != v.shape:
                raise ValueError(f"ema/{k}: shape {state[k].shape}, expected {v.shape}")
            v[...] = state[k]
