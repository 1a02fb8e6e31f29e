"""Data augmentation on uint8 CIFAR-10 rows, drawn from an explicit generator.

A row is laid out channel-first: (3072,) = 3 x 32 x 32. Augmentation works on a copy of
the minibatch, before preprocessing, so the training set stays uint8 and untouched.

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
