"""A fully-connected ReLU network: (linear -> ReLU [-> dropout]) x L-1 -> linear.

Dimension letters:
    N  batch size
    D  input size (3072 = 32 x 32 x 3 for CIFAR-10)
    H  hidden width (H1, H2, ... for several hidden layers)
    C  number of classes (10)

The parameters live in one plain dict, ``model.params = {"W1", "b1", ..., "WL", "bL"}``,
with ``W_l`` of shape (H_{l-1}, H_l) and ``b_l`` of shape (H_l,). ``model.grads`` holds
arrays of the same keys and shapes, filled by :meth:`FullyConnectedNet.backward`. The
optimizer (``numpy_mlp.optim``) is kept apart and updates ``model.params`` in place.

The call shapes are the course notebook's::

    scores, cache = model.forward(X)              # (N, D) -> (N, C)
    loss, dscores = cross_entropy_loss(scores, y)
    model.backward(dscores, cache)                # fills model.grads
"""

from __future__ import annotations

import numpy as np

from .config import check, parse_hidden_dims
from .layers import (
    affine_backward,
    affine_forward,
    dropout_backward,
    dropout_forward,
    l2_backward,
    relu_backward,
    relu_forward,
)


class FullyConnectedNet:
    """ReLU MLP with He initialisation, optional L2 and inverted dropout.

    Args:
        input_dim: D, the size of one flattened input.
        hidden_dim: H, an int for the notebook's two-layer net, or a list of widths
            ``[H1, H2, ...]`` for a deeper one.
        num_classes: C.
        reg: L2 strength ``lambda``; the loss gains ``0.5 * lambda * sum(W**2)`` over
            all weight matrices (not biases), and each ``dW`` gains ``lambda * W``.
        dropout: drop probability after each hidden ReLU (0 = off), used only when
            ``forward(..., train=True)``.
        dtype: float32 (default) or float64 (gradient checks).
        seed: seed for a new ``numpy.random.Generator``, if ``rng`` is not given.
        rng: the generator that draws the initial weights and the dropout masks.

    Weights are ``randn(fan_in, fan_out) / sqrt(fan_in / 2)`` (He), biases zero.
    """

    def __init__(self, input_dim=3072, hidden_dim=200, num_classes=10, *, reg=0.0,
                 dropout=0.0, dtype=np.float32, seed=None, rng=None):
        check("dropout", dropout)
        check("reg", reg)
        self.input_dim = int(input_dim)
        self.hidden_dims = parse_hidden_dims(hidden_dim)
        self.num_classes = int(num_classes)
        self.reg = float(reg)
        self.dropout = float(dropout)
        self.dtype = np.dtype(dtype)
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        dims = (self.input_dim, *self.hidden_dims, self.num_classes)
        self.num_layers = len(dims) - 1
        self.params = {}
        for i in range(1, self.num_layers + 1):
            fan_in, fan_out = dims[i - 1], dims[i]
            W = self.rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in / 2.0)
            self.params[f"W{i}"] = W.astype(self.dtype)
            self.params[f"b{i}"] = np.zeros(fan_out, dtype=self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def __repr__(self):
        dims = " -> ".join(str(d) for d in (self.input_dim, *self.hidden_dims, self.num_classes))
        return (f"FullyConnectedNet({dims}, reg={self.reg:g}, dropout={self.dropout:g}, "
                f"dtype={self.dtype.name}, params={self.num_params():,})")

    def num_params(self):
        """Total number of scalars in ``params``."""
        return sum(v.size for v in self.params.values())

    def forward(self, X, train=True):
        """Class scores for a batch.

        Args:
            X: (N, D) preprocessed inputs; cast to the model's dtype if needed.
            train: apply dropout (if any). Pass False to evaluate.
        Returns:
            scores: (N, C).
            cache: what :meth:`backward` needs (one entry per layer).
        """
        h = np.asarray(X, dtype=self.dtype)  # (N, D)
        cache = []
        L = self.num_layers
        for i in range(1, L + 1):
            h, affine_cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            if i == L:  # the last layer gives the scores, (N, C)
                cache.append((affine_cache, None, None))
                break
            h, relu_cache = relu_forward(h)  # (N, H_l)
            drop_cache = None
            if train and self.dropout > 0:
                h, drop_cache = dropout_forward(h, self.dropout, self.rng)
            cache.append((affine_cache, relu_cache, drop_cache))
        return h, cache

    def forward_after_first(self, a1):
        """Scores (N, C) from the first layer's affine output ``a1`` (N, H1), for evaluation.

        The rest of ``forward(X, train=False)`` (no dropout, no cache): evaluation computes
        ``a1`` itself with the input normalisation folded in (``Preprocessor.folded``).
        ``a1`` is overwritten.
        """
        h = a1
        for i in range(2, self.num_layers + 1):
            h, _ = relu_forward(h)  # (N, H_{l-1})
            h, _ = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
        return h

    def backward(self, dscores, cache):
        """Backpropagate ``dscores`` (N, C); fill and return ``self.grads``.

        The L2 term ``lambda * W`` is added to every ``dW``. ``dscores`` is not modified.
        """
        dh = dscores
        for i in range(self.num_layers, 0, -1):
            affine_cache, relu_cache, drop_cache = cache[i - 1]
            dW, db = self.grads[f"W{i}"], self.grads[f"b{i}"]
            # the first layer's input is the data: no gradient w.r.t. it is needed
            dh, _, _ = affine_backward(dh, affine_cache, dW=dW, db=db, need_dx=i > 1)
            if self.reg:
                l2_backward(dW, self.params[f"W{i}"], self.reg)  # dW += reg * W
            if i > 1:  # dh is (N, H_{l-1}), a fresh array we may overwrite
                prev_affine, prev_relu, prev_drop = cache[i - 2]
                if prev_drop is not None:
                    dh = dropout_backward(dh, prev_drop)
                dh = relu_backward(dh, prev_relu)
        return self.grads

    def reg_loss(self):
        """The L2 part of the loss, ``0.5 * reg * sum ||W_l||^2``."""
        if not self.reg:
            return 0.0
        return 0.5 * self.reg * sum(float(np.vdot(self.params[f"W{i}"], self.params[f"W{i}"]))
                                    for i in range(1, self.num_layers + 1))

    def loss(self, X, y, label_smoothing=0.0, train=True):
        """Total loss (data + L2) and gradients for one batch.

        Args:
            X: (N, D) inputs. y: (N,) labels.
        Returns:
            loss: float. grads: dict like ``params`` (``self.grads``).
        """
        from .losses import cross_entropy_loss

        scores, cache = self.forward(X, train=train)
        data_loss, dscores = cross_entropy_loss(scores, y, label_smoothing=label_smoothing)
        grads = self.backward(dscores, cache)
        return data_loss + self.reg_loss(), grads

    def scores(self, X, batch_size=2000):
        """Scores (N, C) for many inputs, in batches, without dropout."""
        out = np.empty((len(X), self.num_classes), dtype=self.dtype)
        for i in range(0, len(X), batch_size):
            out[i:i + batch_size], _ = self.forward(X[i:i + batch_size], train=False)
        return out

    def predict(self, X, batch_size=2000):
        """Predicted labels (N,) for preprocessed inputs X (N, D)."""
        return self.scores(X, batch_size).argmax(axis=1)

    def copy_params(self):
        """A deep copy of ``params`` (to keep the best model seen so far)."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_params(self, params):
        """Copy ``params`` (same keys and shapes) into the model's arrays, in place."""
        for k, v in self.params.items():
            if params[k].shape != v.shape:
                raise ValueError(f"{k}: shape {params[k].shape} does not match {v.shape}")
            v[...] = params[k]
