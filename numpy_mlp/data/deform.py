"""Deformations of uint8 training images: random affine maps and elastic distortions.

A run makes a bank of :data:`MAPS` random maps once, from its seed: each a rotation, shear
and zoom about the image's centre plus a smooth elastic displacement, rounded to the
nearest pixel and stored as the flat index of the source pixel of every output pixel,
with its mirror image beside it. Each image of a minibatch then draws a map, a mirror or
not, and a crop's shift, and the whole augmentation is one gather
(:meth:`Deformer.__call__`): output pixel ``q`` (row, column) reads

    image[round(c + A (q - c) + e(q)) + t]

where ``c`` is the centre, ``A`` the map's rotation . shear . zoom, ``e`` its elastic
field and ``t`` the crop's shift; pixels that fall outside the image read 0, as the
zero-padded crops do. With every strength 0 this is exactly the crop and the mirror.

Nearest-pixel sampling keeps the images uint8 (a pixel is copied, never blended), which is
what makes the gather cheap; at the small angles and displacements that help (a few
degrees, a pixel or two) bilinear interpolation would mostly blur. Drawing the maps per
image instead of from the bank costs five times the gather (the index arithmetic over
every pixel of the minibatch), and the elastic fields' smoothing more than a step.

The elastic fields are Simard et al.'s (2003): white noise smoothed by a Gaussian of
:data:`ELASTIC_SIGMA` times the image's side, here scaled to unit root mean square.

    N  batch size      D  channels x height x width      P  height x width
"""

from __future__ import annotations

import numpy as np

from ..nn.rules import check, real

ROTATE = real(0, 180, note="try 10")        # degrees: rotations drawn from [-R, R]
ZOOM = real(0, 0.5, open_high=True, note="try 0.1")  # scale drawn from [1-Z, 1+Z]
SHEAR = real(0, 45, note="try 5")           # degrees: shear angles drawn from [-S, S]
ELASTIC = real(0, 8, note="try 1")          # pixels: root mean square of the displacement
MAPS = 2048           # maps in a run's bank (each also mirrored), for 32 x 32 images
BANK_BYTES = 2**25     # fewer maps for larger images: the bank stays under 32 MiB
ELASTIC_SIGMA = 0.125  # the fields' smoothing, as a share of the image's side (4 px at 32)


def _blur_matrix(n, sigma):
    """(n, n) Gaussian smoothing along one axis, rows summing to 1 (edges renormalised)."""
    i = np.arange(n)
    G = np.exp(-0.5 * ((i[:, None] - i[None, :]) / sigma) ** 2)
    return G / G.sum(axis=1, keepdims=True)


def elastic_fields(count, height, width, rng):
    """``count`` smooth random displacement fields of unit root mean square.

    Args:
        count: how many.
        height, width: the images' size in pixels.
        rng: ``numpy.random.Generator``.
    Returns:
        (count, 2, P) float32: the row and column displacement of every pixel.
    """
    sigma = ELASTIC_SIGMA * max(height, width)
    noise = rng.uniform(-1.0, 1.0, size=(count, 2, height, width))
    smooth = _blur_matrix(height, sigma) @ noise @ _blur_matrix(width, sigma).T
    smooth /= np.sqrt(np.mean(smooth ** 2, axis=(1, 2, 3), keepdims=True))
    return smooth.reshape(count, 2, height * width).astype(np.float32)


class Deformer:
    """The deformations of a run: a bank of maps made from its seed, and one gather per
    minibatch that applies them with the crops and the mirror.

    Args:
        rotate: largest rotation in degrees (0 = none).
        zoom: largest relative change of scale (0 = none).
        shear: largest shear angle in degrees (0 = none).
        elastic: root mean square of the elastic displacement in pixels (0 = none).
        geometry: the images' :class:`~numpy_mlp.data.dataset.Geometry`.
        crop_pad: the largest crop shift the calls will ask for (the canvas's margin).
        seed: the run's seed; the bank is made from it, so that a resumed run draws from
            the same maps.
    """

    def __init__(self, rotate=0.0, zoom=0.0, shear=0.0, elastic=0.0, *, geometry, crop_pad=0,
                 seed=0):
        self.rotate = check(ROTATE, "rotate", rotate)
        self.zoom = check(ZOOM, "zoom", zoom)
        self.shear = check(SHEAR, "shear", shear)
        self.elastic = check(ELASTIC, "elastic", elastic)
        self.geometry = g = geometry
        self.crop_pad = int(crop_pad)
        # Every image sits in a zero canvas. A map's sources are clipped to `reach` pixels
        # beyond the image, more than a crop moves them, so that a clipped source stays
        # outside the image after the crop's shift and reads a zero of the margin.
        reach = self.crop_pad + 1
        self._margin = reach + self.crop_pad
        self._side = g.width + 2 * self._margin  # the canvas's row length
        P = g.height * g.width
        count = max(16, min(MAPS, BANK_BYTES // (2 * P * 4)))
        # a stream of its own, apart from the five of training.loop._generators
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(6)[5])
        self._bank = self._make_bank(count, rng, reach)  # (2 * count, P) int32

    @classmethod
    def of(cls, config, geometry):
        """The Deformer of a TrainConfig, or None when it deforms nothing."""
        if not (config.rotate or config.zoom or config.shear or config.elastic):
            return None
        return cls(config.rotate, config.zoom, config.shear, config.elastic,
                   geometry=geometry, crop_pad=config.crop_pad, seed=config.seed)

    def __repr__(self):
        return (f"Deformer(rotate={self.rotate:g}, zoom={self.zoom:g}, shear={self.shear:g}, "
                f"elastic={self.elastic:g}, maps={len(self._bank) // 2})")

    def _make_bank(self, count, rng, reach):
        """``count`` maps and their mirrors: (2 * count, P) int32 canvas indices, map k at
        row 2k and its mirror at 2k + 1."""
        g = self.geometry
        h, w = g.height, g.width
        cy, cx = (h - 1) / 2, (w - 1) / 2
        rows, cols = np.divmod(np.arange(h * w), w)  # (P,), (P,)
        y, x = rows - cy, cols - cx
        turn = np.radians(rng.uniform(-self.rotate, self.rotate, count))  # (count,)
        slant = np.tan(np.radians(rng.uniform(-self.shear, self.shear, count)))
        size = rng.uniform(1 - self.zoom, 1 + self.zoom, count)
        cos, sin = np.cos(turn) / size, np.sin(turn) / size
        # A = rotation . shear . zoom, about the centre: (count, 1) each entry
        a = [v[:, None] for v in (cos, cos * slant - sin, sin, sin * slant + cos)]
        src_y = a[0] * y + a[1] * x + cy  # (count, P)
        src_x = a[2] * y + a[3] * x + cx
        if self.elastic:
            fields = elastic_fields(count, h, w, rng) * self.elastic  # (count, 2, P)
            src_y, src_x = src_y + fields[:, 0], src_x + fields[:, 1]
        iy = np.clip(np.rint(src_y), -reach, h - 1 + reach).astype(np.int32)
        ix = np.clip(np.rint(src_x), -reach, w - 1 + reach).astype(np.int32)
        index = (iy + self._margin) * self._side + (ix + self._margin)  # (count, P)
        mirrored = index.reshape(count, h, w)[:, :, ::-1].reshape(count, h * w)
        return np.stack([index, mirrored], axis=1).reshape(2 * count, h * w)

    def __call__(self, X, rng, *, flip=False, crop_pad=0):
        """A deformed, cropped and mirrored copy of the uint8 images.

        Args:
            X: (N, D) uint8 images of the geometry; not modified.
            rng: ``numpy.random.Generator`` (the run's augmentation generator).
            flip: False, True (mirror a random half of the images left-right) or (N,) bool
                (mirror these).
            crop_pad: crops shifted by up to this many pixels each way, zero-filled; at
                most the ``crop_pad`` the Deformer was made for.
        Returns:
            (N, D) uint8, a new array.
        """
        if crop_pad > self.crop_pad:
            raise ValueError(f"crop_pad={crop_pad} is beyond the {self.crop_pad} this "
                             "Deformer was made for")
        g, m = self.geometry, self._margin
        N, c = len(X), g.channels
        pick = 2 * rng.integers(0, len(self._bank) // 2, size=N)  # (N,) a map each ...
        if isinstance(flip, np.ndarray):
            pick += flip  # ... or its mirror
        elif flip:
            pick += rng.random(N) < 0.5
        index = self._bank[pick]  # (N, P)
        if crop_pad:
            dy, dx = rng.integers(-crop_pad, crop_pad + 1, size=(2, N))  # (N,), (N,)
            index = index + (dy * self._side + dx)[:, None].astype(np.int32)
        canvas = np.zeros((N, c, g.height + 2 * m, self._side), dtype=X.dtype)
        canvas[:, :, m:m + g.height, m:m + g.width] = X.reshape(N, c, g.height, g.width)
        stride = canvas[0, 0].size
        base = np.arange(N * c, dtype=np.intp).reshape(N, c, 1) * stride  # (N, c, 1)
        return canvas.ravel().take(base + index[:, None, :]).reshape(N, -1)
