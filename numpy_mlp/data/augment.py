"""Data augmentation on uint8 image rows: random for training, fixed views for testing.

A row is laid out channel-first: (D,) = channels x height x width, as its ``geometry``
(:class:`~numpy_mlp.data.dataset.Geometry`, the data's: ``data.geometry``) says.
Augmentation works on a copy of the minibatch, before preprocessing, so the training set
stays uint8 and untouched. :func:`tta_views` gives the fixed views that test-time
augmentation averages over.

    N  batch size      D  channels x height x width (CIFAR-10: 3072 = 3 x 32 x 32)
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _grid(X, g):
    """Rows X (N, D) as the images (N, channels, height, width) of geometry ``g``: a view."""
    return X.reshape(len(X), g.channels, g.height, g.width)


def random_flip(X, rng, geometry, which=None):
    """Mirror a random half of the images left-right, or the images ``which`` says.

    Args:
        X: (N, D) uint8 images; not modified.
        rng: ``numpy.random.Generator`` (not drawn from when ``which`` is given).
        geometry: the images' Geometry.
        which: (N,) bool, the images to mirror; None: each at even odds.
    Returns:
        (N, D) uint8, a new array.
    """
    out = X.copy()
    images = _grid(out, geometry)
    flip = rng.random(len(X)) < 0.5 if which is None else which  # (N,)
    images[flip] = images[flip, :, :, ::-1]
    return out


def random_crop(X, pad, rng, geometry):
    """Pad each image with ``pad`` zero pixels on every side, then cut a random window of
    the image's own size.

    Args:
        X: (N, D) uint8 images; not modified.
        pad: pixels of zero padding (0 returns a copy).
        rng: ``numpy.random.Generator``.
        geometry: the images' Geometry.
    Returns:
        (N, D) uint8, a new array.
    """
    N = len(X)
    if pad == 0:
        return X.copy()
    g = geometry
    images = _grid(X, g)  # (N, c, h, w)
    padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))  # (N, c, h+2p, w+2p)
    # (N, c, 2p+1, 2p+1, h, w)
    windows = sliding_window_view(padded, (g.height, g.width), axis=(2, 3))
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, N))  # (N,), (N,)
    crops = windows[np.arange(N), :, dy, dx]  # (N, c, h, w)
    return np.ascontiguousarray(crops).reshape(N, -1)


def first_flips(n, seed):
    """Which of ``n`` training images a run with alternating flips mirrors in its even
    epochs (0, 2, ...); the odd epochs mirror the others, so that every two epochs show
    each image both ways (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU").

    A random half, from a stream of its own: the seventh child of the run's seed (the
    first five are ``training.loop``'s generators, the sixth the Deformer's bank), so
    that a resumed run mirrors as the first did and the other streams stay as they were.

    Returns:
        (n,) bool.
    """
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(7)[6]).random(n) < 0.5


def augment(X, rng, flip=False, crop_pad=0, *, geometry, deformer=None):
    """Apply the chosen augmentations to a uint8 minibatch (N, D) of ``geometry``; returns X
    itself if none. ``flip``: False, True (mirror a random half) or (N,) bool (mirror
    these). A :class:`~numpy_mlp.data.deform.Deformer` takes the crops and flips into its
    own gather."""
    if deformer is not None:
        return deformer(X, rng, flip=flip, crop_pad=crop_pad)
    if crop_pad:
        X = random_crop(X, crop_pad, rng, geometry)
    if isinstance(flip, np.ndarray):
        X = random_flip(X, rng, geometry, which=flip)
    elif flip:
        X = random_flip(X, rng, geometry)
    return X


def shift(X, dy, dx, geometry):
    """Move every image ``dy`` pixels up and ``dx`` pixels left, filling the edge with zeros.

    Pixel (i, j) of the result is pixel (i + dy, j + dx) of the image, or 0 outside it:
    the image-sized window at offset (pad + dy, pad + dx) of the zero-padded image, as a
    training crop with ``|dy|, |dx| <= pad`` sees it. Negative values move the other way.

    Args:
        X: (N, D) uint8 images; not modified.
        dy, dx: integer shifts (within the image: below its height, width).
        geometry: the images' Geometry.
    Returns:
        (N, D) uint8, a new array.
    """
    out = np.zeros_like(X)
    src, dst = _grid(X, geometry), _grid(out, geometry)
    h, w = geometry.height, geometry.width
    rows_dst, rows_src = slice(max(-dy, 0), h - max(dy, 0)), slice(max(dy, 0), h - max(-dy, 0))
    cols_dst, cols_src = slice(max(-dx, 0), w - max(dx, 0)), slice(max(dx, 0), w - max(-dx, 0))
    dst[:, :, rows_dst, cols_dst] = src[:, :, rows_src, cols_src]
    return out


def mirror(X, geometry):
    """Every image (of ``geometry``) mirrored left-right: (N, D) uint8 -> (N, D) uint8, a
    new array."""
    return np.ascontiguousarray(_grid(X, geometry)[:, :, :, ::-1]).reshape(len(X), -1)


def tta_views(X, s, geometry):
    """The ten views of test-time augmentation: each image as it is and shifted ``s`` pixels
    diagonally (four ways), each of the five also mirrored -- the "ten-crop" of image
    classification, on images zero-padded as the training crops are.

    Args:
        X: (N, D) uint8 images; not modified.
        s: shift in pixels, >= 1 (about half the training crops' padding works well).
        geometry: the images' Geometry.
    Yields:
        10 arrays (N, D) uint8.
    """
    for dy, dx in ((0, 0), (s, s), (s, -s), (-s, s), (-s, -s)):
        view = shift(X, dy, dx, geometry) if dy else X
        yield view
        yield mirror(view, geometry)


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


def cutmix(X, y, alpha, rng, num_classes, dtype=np.float32, *, geometry):
    """CutMix (Yun et al. 2019): a box of each image replaced by the same box of another.

    ``lam ~ Beta(alpha, alpha)`` sets the box's area to about ``(1 - lam)`` of the image;
    its centre is uniform and it is clipped at the borders. The target weights each label
    by the area it really covers: ``lam' e_{y_i} + (1 - lam') e_{y_j}``.

    Args:
        X: (N, D) uint8 images of ``geometry``, channel-first; not modified.
        y: (N,) integer labels.
        alpha: > 0.
        rng: ``numpy.random.Generator``.
        num_classes: C.
        dtype: of the targets.
        geometry: the images' Geometry (the box is cut in their height x width).
    Returns:
        X_mixed: (N, D) uint8 new array, targets: (N, C) of ``dtype``.
    """
    N = len(X)
    lam = rng.beta(alpha, alpha)
    perm = rng.permutation(N)  # (N,)
    side = np.sqrt(1.0 - lam)  # the box's side as a fraction of the image's
    H, W = geometry.height, geometry.width
    h, w = int(round(H * side)), int(round(W * side))
    cy, cx = rng.integers(0, np.array([H, W]))  # as integers(0, 32, size=2) for square images
    y0, y1 = max(cy - h // 2, 0), min(cy - h // 2 + h, H)
    x0, x1 = max(cx - w // 2, 0), min(cx - w // 2 + w, W)
    out = X.copy()
    images, source = _grid(out, geometry), _grid(X, geometry)
    images[:, :, y0:y1, x0:x1] = source[perm, :, y0:y1, x0:x1]
    # the share of each image that is its own; a Python float, so that the targets keep dtype
    kept = 1.0 - int((y1 - y0) * (x1 - x0)) / geometry.plane
    T = one_hot(y, num_classes, dtype)  # (N, C)
    return out, kept * T + (1 - kept) * T[perm]
