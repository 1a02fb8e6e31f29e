"""Data augmentation on uint8 CIFAR-10 rows: random for training, fixed views for testing.

A row is laid out channel-first: (3072,) = 3 x 32 x 32. Augmentation works on a copy of
the minibatch, before preprocessing, so the training set stays uint8 and untouched.
:func:`tta_views` gives the fixed views that test-time augmentation averages over.

    N  batch size      D  3072 = 3 x 32 x 32
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def random_flip(X, rng):
    """Mirror a random half of the images left-right.

    Args:
        X: (N, D) uint8 images; not modified.
        rng: ``numpy.random.Generator``.
    Returns:
        (N, D) uint8, a new array.
    """
    out = X.copy()
    images = out.reshape(len(X), 3, 32, 32)
    flip = rng.random(len(X)) < 0.5  # (N,)
    images[flip] = images[flip, :, :, ::-1]
    return out


def random_crop(X, pad, rng):
    """Pad each image with ``pad`` zero pixels on every side, then cut a random 32 x 32 window.

    Args:
        X: (N, D) uint8 images; not modified.
        pad: pixels of zero padding (0 returns a copy).
        rng: ``numpy.random.Generator``.
    Returns:
        (N, D) uint8, a new array.
    """
    N = len(X)
    if pad == 0:
        return X.copy()
    images = X.reshape(N, 3, 32, 32)
    padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))  # (N, 3, 32+2p, 32+2p)
    windows = sliding_window_view(padded, (32, 32), axis=(2, 3))  # (N, 3, 2p+1, 2p+1, 32, 32)
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, N))  # (N,), (N,)
    crops = windows[np.arange(N), :, dy, dx]  # (N, 3, 32, 32)
    return np.ascontiguousarray(crops).reshape(N, -1)


def augment(X, rng, flip=False, crop_pad=0):
    """Apply the chosen augmentations to a uint8 minibatch (N, D); returns X itself if none."""
    if crop_pad:
        X = random_crop(X, crop_pad, rng)
    if flip:
        X = random_flip(X, rng)
    return X


def shift(X, dy, dx):
    """Move every image ``dy`` pixels up and ``dx`` pixels left, filling the edge with zeros.

    Pixel (i, j) of the result is pixel (i + dy, j + dx) of the image, or 0 outside it:
    the 32 x 32 window at offset (pad + dy, pad + dx) of the zero-padded image, as a
    training crop with ``|dy|, |dx| <= pad`` sees it. Negative values move the other way.

    Args:
        X: (N, D) uint8 images; not modified.
        dy, dx: integer shifts in -31..31.
    Returns:
        (N, D) uint8, a new array.
    """
    out = np.zeros_like(X)
    src, dst = X.reshape(len(X), 3, 32, 32), out.reshape(len(X), 3, 32, 32)
    rows_dst, rows_src = slice(max(-dy, 0), 32 - max(dy, 0)), slice(max(dy, 0), 32 - max(-dy, 0))
    cols_dst, cols_src = slice(max(-dx, 0), 32 - max(dx, 0)), slice(max(dx, 0), 32 - max(-dx, 0))
    dst[:, :, rows_dst, cols_dst] = src[:, :, rows_src, cols_src]
    return out


def mirror(X):
    """Every image mirrored left-right: (N, D) uint8 -> (N, D) uint8, a new array."""
    return np.ascontiguousarray(X.reshape(len(X), 3, 32, 32)[:, :, :, ::-1]).reshape(len(X), -1)


def tta_views(X, s):
    """The ten views of test-time augmentation: each image as it is and shifted ``s`` pixels
    diagonally (four ways), each of the five also mirrored -- the "ten-crop" of image
    classification, on images zero-padded as the training crops are.

    Args:
        X: (N, D) uint8 images; not modified.
        s: shift in pixels, >= 1 (about half the training crops' padding works well).
    Yields:
        10 arrays (N, D) uint8.
    """
    for dy, dx in ((0, 0), (s, s), (s, -s), (-s, s), (-s, -s)):
        view = shift(X, dy, dx) if dy else X
        yield view
        yield mirror(view)


def one_hot(y, num_classes, dtype=np.float32):
    """Integer labels (N,) as rows of a (N, C) identity: the targets that mixing averages."""
    out = np.zeros((len(y), num_classes), dtype=dtype)
    out[np.arange(len(y)), y] = 1
    return out


def mixup(X, y, alpha, rng, num_classes):
    """MixUp (Zhang et al. 2018): each image blended with another of the batch.

    One ``lam ~ Beta(alpha, alpha)`` for the batch and a random pairing ``j = perm[i]``:
    ``x_i <- lam x_i + (1 - lam) x_j`` and the target ``lam e_{y_i} + (1 - lam) e_{y_j}``.

    Args:
        X: (N, D) float inputs (already normalised); not modified.
        y: (N,) integer labels.
        alpha: > 0, the Beta distribution's parameter (small alpha: lam near 0 or 1).
        rng: ``numpy.random.Generator``.
        num_classes: C.
    Returns:
        X_mixed: (N, D) new array, targets: (N, C) soft targets (rows sum to 1).
    """
    lam = rng.beta(alpha, alpha)
    perm = rng.permutation(len(X))  # (N,)
    T = one_hot(y, num_classes, X.dtype)  # (N, C)
    return lam * X + (1 - lam) * X[perm], lam * T + (1 - lam) * T[perm]


def cutmix(X, y, alpha, rng, num_classes, dtype=np.float32):
    """CutMix (Yun et al. 2019): a box of each image replaced by the same box of another.

    ``lam ~ Beta(alpha, alpha)`` sets the box's area to about ``(1 - lam)`` of the image;
    its centre is uniform and it is clipped at the borders. The target weights each label
    by the area it really covers: ``lam' e_{y_i} + (1 - lam') e_{y_j}``.

    Args:
        X: (N, D) uint8 images, D = 3 x 32 x 32 channel-first; not modified.
        y: (N,) integer labels.
        alpha: > 0.
        rng: ``numpy.random.Generator``.
        num_classes: C.
    Returns:
        X_mixed: (N, D) uint8 new array, targets: (N, C) of ``dtype``.
    """
    N = len(X)
    lam = rng.beta(alpha, alpha)
    perm = rng.permutation(N)  # (N,)
    side = np.sqrt(1.0 - lam)  # the box's side as a fraction of the image's
    h = w = int(round(32 * side))
    cy, cx = rng.integers(0, 32, size=2)
    y0, y1 = max(cy - h // 2, 0), min(cy - h // 2 + h, 32)
    x0, x1 = max(cx - w // 2, 0), min(cx - w // 2 + w, 32)
    out = X.copy()
    images, source = out.reshape(N, 3, 32, 32), X.reshape(N, 3, 32, 32)
    images[:, :, y0:y1, x0:x1] = source[perm, :, y0:y1, x0:x1]
    kept = 1.0 - (y1 - y0) * (x1 - x0) / 1024.0  # the share of each image that is its own
    T = one_hot(y, num_classes, dtype)  # (N, C)
    return out, kept * T + (1 - kept) * T[perm]
