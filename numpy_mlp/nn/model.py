"""A fully-connected network: a plain (affine -> [norm] -> act [-> dropout]) stack, or a
residual net of pre-norm inverted-bottleneck blocks (numpy_mlp/nn/architecture.py).

Dimension letters:
    N  batch size
    D  input size (3072 = 32 x 32 x 3 for CIFAR-10)
    H  hidden width (H1, H2, ... for several hidden layers)
    C  number of classes (10)

The parameters live in one plain dict, ``model.params = {"W1", "b1", ..., "WL", "bL"}``
(and ``gamma{k}``, ``beta{k}`` for norm k), with ``W_l`` of shape (H_{l-1}, H_l) and ``b_l``
of shape (H_l,). ``model.grads`` holds arrays of the same keys and shapes, filled by
:meth:`FullyConnectedNet.backward`. Batch norm's running statistics are not trained: they
are ``model.buffers`` (``running_mean{k}``, ``running_var{k}``), updated by training-mode
forward passes. The optimizer (``numpy_mlp.nn.optim``) is kept apart and updates
``model.params`` in place.

The call shapes are the course notebook's::

    scores, cache = model.forward(X)              # (N, D) -> (N, C)
    loss, dscores = cross_entropy_loss(scores, y)
    model.backward(dscores, cache)                # fills model.grads
"""

from __future__ import annotations

import math

import numpy as np

from .architecture import Architecture
from .layers import (
    REG,
    affine_backward,
    affine_forward,
    batchnorm_backward,
    batchnorm_forward,
    dropout_backward,
    dropout_forward,
    fold_batchnorm,
    fold_batchnorm_before,
    gelu_backward,
    gelu_forward,
    l2_backward,
    layernorm_backward,
    layernorm_forward,
    relu_backward,
    relu_forward,
)
from .rules import check, real

DROPOUT = real(0, 1, open_high=True)  # the probability of dropping a hidden unit


class FullyConnectedNet:
    """MLP with He initialisation, optional L2, inverted dropout, norms and residual blocks.

    Args:
        input_dim: D, the size of one flattened input.
        hidden_dim: H, an int for the notebook's two-layer net, or a list of widths
            ``[H1, H2, ...]`` for a deeper one (one width with ``blocks``).
        num_classes: C.
        reg: L2 strength ``lambda``; the loss gains ``0.5 * lambda * sum(W**2)`` over
            all weight matrices (not biases, not gamma/beta), and each ``dW`` gains ``lambda * W``.
        dropout: drop probability after each hidden activation (0 = off), used only when
            ``forward(..., train=True)``.
        norm: "none", "layer" or "batch": before each hidden activation (plain), before
            each block's W_in and before the head (residual).
        activation: "relu" or "gelu".
        blocks: 0 = plain stack; B >= 1 = residual net of B blocks (architecture.py).
        expansion: e, a block's inner width e * H.
        dtype: float32 (default) or float64 (gradient checks).
        seed: seed for a new ``numpy.random.Generator``, if ``rng`` is not given.
        rng: the generator that draws the initial weights and the dropout masks.

    Weights are ``randn(fan_in, fan_out) / sqrt(fan_in / 2)`` (He), biases and betas zero,
    gammas one; a block's W_out is ``randn / sqrt(fan_in * B)`` (see :meth:`_init_scale`).
    """

    def __init__(self, input_dim=3072, hidden_dim=200, num_classes=10, *, reg=0.0,
                 dropout=0.0, norm="none", activation="relu", blocks=0, expansion=4,
                 dtype=np.float32, seed=None, rng=None):
        check(DROPOUT, "dropout", dropout)
        check(REG, "reg", reg)
        self.arch = Architecture(input_dim, hidden_dim, num_classes, norm, activation, blocks,
                                 expansion)
        self.input_dim, self.num_classes = self.arch.input_dim, self.arch.num_classes
        self.hidden_dims = self.arch.hidden_dims
        self.norm, self.activation = self.arch.norm, self.arch.activation
        self.blocks, self.expansion = self.arch.blocks, self.arch.expansion
        self.reg = float(reg)
        self.dropout = float(dropout)
        self.dtype = np.dtype(dtype)
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self.num_layers = self.arch.num_affine  # L affine maps W1 .. WL
        self.params = {}
        for k, shape in self.arch.param_shapes().items():  # the W drawn in order W1, W2, ...
            if k[0] == "W":
                W = self.rng.standard_normal(shape) / self._init_scale(int(k[1:]), shape[0])
                self.params[k] = W.astype(self.dtype)
            else:
                fill = np.ones if k.startswith("gamma") else np.zeros
                self.params[k] = fill(shape, dtype=self.dtype)
        self.buffers = {}
        self.reset_buffers()
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _init_scale(self, i, fan_in):
        """The divisor of ``randn`` for ``W{i}``: He's ``sqrt(fan_in / 2)``, except for a
        block's W_out (odd i in 3 .. 2B+1): ``sqrt(fan_in * B)``.

        Each block adds its branch to the residual stream h. With W_out of variance
        1 / (fan_in * B), a branch whose input (a normalised h through W_in and the
        activation) has unit second moment adds a variance of about 1 / B, so h's variance
        grows by about 1 over all B blocks whatever B is, instead of by B."""
        if self.arch.residual and i % 2 == 1 and 3 <= i <= 2 * self.blocks + 1:
            return np.sqrt(fan_in * self.blocks)
        return np.sqrt(fan_in / 2.0)

    def reset_buffers(self):
        """Batch norm's running statistics to their start: mean 0, variance 1."""
        for k, shape in self.arch.buffer_shapes().items():
            fill = np.zeros if k.startswith("running_mean") else np.ones
            self.buffers[k] = fill(shape, dtype=self.dtype)

    def __repr__(self):
        return self.describe()

    def describe(self, arch=None, inputs=None):
        """``FullyConnectedNet(3072 -> 1000 -> 10, reg=..., dropout=..., dtype=..., params=...)``:
        the model as the architecture ``arch`` (default its own) with the first layer reading
        ``inputs`` (text; default D). A whitened model's file describes the net it trained
        (training/model_file.py: describe_model); params counts ``arch``'s parameters."""
        arch = self.arch if arch is None else arch
        params = sum(math.prod(shape) for shape in arch.param_shapes().values())
        return (f"FullyConnectedNet({arch.describe(inputs)}, reg={self.reg:g}, "
                f"dropout={self.dropout:g}, dtype={self.dtype.name}, params={params:,})")

    def num_params(self):
        """Total number of scalars in ``params``."""
        return sum(v.size for v in self.params.values())

    # ------------------------------------------------------------------ layers by index

    def _running(self, k, buffers=None):
        b = self.buffers if buffers is None else buffers
        return {"mean": b[f"running_mean{k}"], "var": b[f"running_var{k}"]}

    def _norm(self, k, h, train, params=None, norm=None):
        """Norm k of h (N, H): ``(out, cache)``; ``out`` is ``h`` itself without norm."""
        p, norm = (params or self.params), (norm or self.norm)
        if norm == "none":
            return h, None
        if norm == "layer":
            return layernorm_forward(h, p[f"gamma{k}"], p[f"beta{k}"])
        return batchnorm_forward(h, p[f"gamma{k}"], p[f"beta{k}"], self._running(k),
                                 train=train)

    def _norm_backward(self, k, dout, cache):
        """dx of norm k (a new array); dgamma, dbeta written into ``grads``."""
        backward = layernorm_backward if self.norm == "layer" else batchnorm_backward
        dx, dgamma, dbeta = backward(dout, cache)
        self.grads[f"gamma{k}"][...] = dgamma
        self.grads[f"beta{k}"][...] = dbeta
        return dx

    def _act(self, h):
        """The activation of h (N, H): ReLU in place on h, GELU a new array."""
        return relu_forward(h) if self.activation == "relu" else gelu_forward(h)

    def _act_backward(self, dout, cache):
        """ReLU overwrites ``dout``; GELU returns a new array."""
        return relu_backward(dout, cache) if self.activation == "relu" else gelu_backward(dout,
                                                                                          cache)

    def _drop(self, h, train):
        if train and self.dropout > 0:
            return dropout_forward(h, self.dropout, self.rng)
        return h, None

    def _affine(self, i, h, params=None):
        p = params or self.params
        return affine_forward(h, p[f"W{i}"], p[f"b{i}"])

    def _affine_backward(self, i, dout, cache, l2, need_dx=True):
        dW = self.grads[f"W{i}"]
        dx, _, _ = affine_backward(dout, cache, dW=dW, db=self.grads[f"b{i}"], need_dx=need_dx)
        if self.reg and l2:
            l2_backward(dW, self.params[f"W{i}"], self.reg)  # dW += reg * W
        return dx

    # ------------------------------------------------------------------ forward, backward

    def forward(self, X, train=True):
        """Class scores for a batch.

        Args:
            X: (N, D) preprocessed inputs; cast to the model's dtype if needed.
            train: apply dropout (if any) and normalise with the batch's statistics
                (updating the running ones). Pass False to evaluate.
        Returns:
            scores: (N, C).
            cache: what :meth:`backward` needs (one entry per layer or block).
        """
        h = np.asarray(X, dtype=self.dtype)  # (N, D)
        h, first = self._affine(1, h)  # (N, H1)
        return self._rest(h, train, [first])

    def _rest(self, h, train, cache):
        """Everything after the first affine map, from its output h (N, H1)."""
        if self.arch.residual:
            for k in range(1, self.blocks + 1):
                u, norm_cache = self._norm(k, h, train)  # (N, H)
                a, in_cache = self._affine(2 * k, u)  # (N, e*H)
                a, act_cache = self._act(a)
                a, drop_cache = self._drop(a, train)
                r, out_cache = self._affine(2 * k + 1, a)  # (N, H), a fresh array
                r += h  # the residual stream; h itself is kept (the caches may hold it)
                h = r
                cache.append((norm_cache, in_cache, act_cache, drop_cache, out_cache))
            u, norm_cache = self._norm(self.blocks + 1, h, train)
            scores, head_cache = self._affine(self.num_layers, u)  # (N, C)
            cache.append((norm_cache, head_cache))
            return scores, cache
        for i in range(2, self.num_layers + 1):  # layer i-1's norm and activation, affine i
            h, norm_cache = self._norm(i - 1, h, train)
            h, act_cache = self._act(h)  # (N, H_{i-1})
            h, drop_cache = self._drop(h, train)
            h, affine_cache = self._affine(i, h)
            cache.append((norm_cache, act_cache, drop_cache, affine_cache))
        return h, cache

    def backward(self, dscores, cache, add_l2=True):
        """Backpropagate ``dscores`` (N, C); fill and return ``self.grads``.

        The L2 term ``lambda * W`` is added to every ``dW``, unless ``add_l2=False``: then
        the optimizer adds it (``SGD(..., l2=model.reg)``, as the trainer does, in the pass
        over the weights it makes anyway). ``dscores`` is not modified.
        """
        dh = dscores
        if self.arch.residual:
            norm_cache, head_cache = cache[-1]
            dh = self._affine_backward(self.num_layers, dh, head_cache, add_l2)  # (N, H)
            if norm_cache is not None:
                dh = self._norm_backward(self.blocks + 1, dh, norm_cache)
            for k in range(self.blocks, 0, -1):
                norm_cache, in_cache, act_cache, drop_cache, out_cache = cache[k]
                da = self._affine_backward(2 * k + 1, dh, out_cache, add_l2)  # (N, e*H), fresh
                if drop_cache is not None:
                    da = dropout_backward(da, drop_cache)
                da = self._act_backward(da, act_cache)
                du = self._affine_backward(2 * k, da, in_cache, add_l2)  # (N, H), fresh
                if norm_cache is not None:
                    du = self._norm_backward(k, du, norm_cache)
                du += dh  # the stream's gradient passes the block unchanged, plus the branch's
                dh = du
        else:
            for i in range(self.num_layers, 1, -1):
                norm_cache, act_cache, drop_cache, affine_cache = cache[i - 1]
                dh = self._affine_backward(i, dh, affine_cache, add_l2)  # (N, H_{i-1}), fresh
                if drop_cache is not None:
                    dh = dropout_backward(dh, drop_cache)
                dh = self._act_backward(dh, act_cache)
                if norm_cache is not None:
                    dh = self._norm_backward(i - 1, dh, norm_cache)
        # the first layer's input is the data: no gradient w.r.t. it is needed
        self._affine_backward(1, dh, cache[0], add_l2, need_dx=False)
        return self.grads

    # ------------------------------------------------------------------ evaluation

    def eval_params(self):
        """``(params, norm)`` for evaluation: with batch norm, each normalisation folded into
        the affine map beside it (exact: in evaluation it is a fixed affine map), norm "none"
        (new arrays where folded); otherwise the model's own params and norm."""
        if self.norm != "batch":
            return self.params, self.norm
        p = {k: v for k, v in self.params.items() if not k.startswith(("gamma", "beta"))}
        for k in range(1, self.arch.num_norms + 1):
            gamma, beta, running = self.params[f"gamma{k}"], self.params[f"beta{k}"], \
                self._running(k)
            if self.arch.residual:  # norm k comes before W{i}
                i = self.arch.norm_before(k)
                p[f"W{i}"], p[f"b{i}"] = fold_batchnorm_before(p[f"W{i}"], p[f"b{i}"], gamma,
                                                               beta, running)
            else:  # norm k comes after W{k}
                p[f"W{k}"], p[f"b{k}"] = fold_batchnorm(p[f"W{k}"], p[f"b{k}"], gamma, beta,
                                                        running)
        return p, "none"

    def forward_after_first(self, a1, folded=None):
        """Scores (N, C) from the first affine map's output ``a1`` (N, H1), for evaluation.

        The rest of ``forward(X, train=False)`` (no dropout, no cache): evaluation computes
        ``a1`` itself with the input normalisation folded in (``Preprocessor.folded``).
        ``folded``: ``eval_params()``, whose W1, b1 then made ``a1``; default the model's
        own params (batch norm with its running statistics). ``a1`` may be overwritten.
        """
        params, norm = folded if folded is not None else (self.params, self.norm)
        h = a1
        if self.arch.residual:
            for k in range(1, self.blocks + 1):
                u, _ = self._norm(k, h, False, params, norm)
                a, _ = self._affine(2 * k, u, params)
                a, _ = self._act(a)
                r, _ = self._affine(2 * k + 1, a, params)
                r += h
                h = r
            u, _ = self._norm(self.blocks + 1, h, False, params, norm)
            return self._affine(self.num_layers, u, params)[0]
        for i in range(2, self.num_layers + 1):
            h, _ = self._norm(i - 1, h, False, params, norm)
            h, _ = self._act(h)  # (N, H_{i-1})
            h, _ = self._affine(i, h, params)
        return h

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
        """Scores (N, C) for many inputs, in batches, in evaluation mode."""
        out = np.empty((len(X), self.num_classes), dtype=self.dtype)
        for i in range(0, len(X), batch_size):
            out[i:i + batch_size], _ = self.forward(X[i:i + batch_size], train=False)
        return out

    def predict(self, X, batch_size=2000):
        """Predicted labels (N,) for preprocessed inputs X (N, D)."""
        return self.scores(X, batch_size).argmax(axis=1)

    def copy_params(self):
        """A deep copy of ``params`` and ``buffers``, one dict (to keep the best model seen so
        far: batch norm's running statistics belong to its parameters)."""
        return {k: v.copy() for k, v in (*self.params.items(), *self.buffers.items())}

    def load_params(self, params):
        """Copy ``params`` (same keys and shapes) into the model's arrays, in place.

        The buffers come from ``params`` too if it has them (:meth:`copy_params`); a dict of
        parameters alone (a new run's, ``loop.initial_params``) resets them to their start.
        """
        for k, v in self.params.items():
            if params[k].shape != v.shape:
                raise ValueError(f"{k}: shape {params[k].shape} does not match {v.shape}")
        buffers = [k for k in self.buffers if k in params]
        if buffers and len(buffers) != len(self.buffers):
            raise ValueError(f"buffers {sorted(set(self.buffers) - set(buffers))} are missing")
        for k in buffers:
            if params[k].shape != self.buffers[k].shape:
                raise ValueError(f"{k}: shape {params[k].shape} does not match "
                                 f"{self.buffers[k].shape}")
        for k, v in self.params.items():
            v[...] = params[k]
        if not buffers:
            self.reset_buffers()
        for k in buffers:
            self.buffers[k][...] = params[k]
