"""Normalisation of a model's inputs: uint8 images (or numeric features) to floats.

:func:`preprocess` turns a batch (N, D) into zero-mean, unit-std floats, per image (the
course notebook's way), per channel or per feature (with training statistics); the
:class:`Preprocessor` binds a mode and its statistics to a model, saves and loads itself,
and folds the normalisation into the first layer for evaluation.

Mode ``whiten`` goes one step further: after per_channel, the images are projected on the
K leading principal components of the training images, each scaled by 1 / sqrt(its
variance + a floor) (:func:`whitening`). That is ZCA whitening up to a rotation, which the
He initialisation, L2 and SGD cannot see (each is the same in any rotated basis), keeping
K of the D components; the net's input is K wide, not D, which also makes its first layer
cheaper. A model file holds it folded into the first layer (:meth:`Preprocessor.unwhitened`).

    N  images      D  values per image (3072 for CIFAR-10) or features      H  hidden width
    K  whitened components (``whiten_dim``)
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from ..memory import available_bytes, check_fits
from ..nn.rules import setting

PREPROCESSING_MODES = ("per_image", "per_channel", "per_feature", "whiten")
EPS = 1e-8  # guards a division by the std of a constant image / channel
# values preprocessed together, see preprocess(): 1 MB of float32 rows (85 images) plus their
# uint8 source fit a core's L2 cache; 7-15% faster than 256 KB blocks for batches of 40-2000
# (the optimizer's update, with four arrays per block, is fastest at 256 KB: optim.BLOCK)
_BLOCK = 262144


def channel_stats(X_train: np.ndarray, chunk: int = 1024, channels: int = 3
                  ) -> dict[str, np.ndarray]:
    """Per-channel mean and std (float64, shape (channels,)) of X_train (N, D) uint8, whose
    rows are ``channels`` planes of D // channels values each.

    Computed from exact integer-valued sums in float64, ``chunk`` rows at a time, so it
    never makes a float copy of the whole training set.
    """
    n = len(X_train)
    if n == 0:
        raise ValueError("channel_stats needs at least one image")
    plane = X_train.shape[1] // channels
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for start in range(0, n, chunk):
        # (chunk, channels, plane): integer-valued float64, so the sums below are exact
        block = X_train[start:start + chunk].reshape(-1, channels, plane).astype(np.float64)
        total += block.sum(axis=(0, 2))
        total_sq += np.einsum("ncd,ncd->c", block, block)
    count = n * plane
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return {"mean": mean, "std": std}


def _check_feature_range(X_train, dtype):
    """ConfigError when features X_train (N, D) hold values beyond ``dtype``'s range (or
    whose squares overflow float64, for the std): the run would diverge at its first step
    whatever its learning rate, so the message names the inputs, not the rate."""
    largest = float(np.max(np.abs(X_train), initial=0.0))
    limit = min(float(np.finfo(dtype).max), 1e150)  # the std squares them in float64
    if not largest < limit:
        scale = 10.0 ** math.ceil(math.log10(largest / 1e3)) if math.isfinite(largest) else None
        how = f"divide them by {scale:.0e}" if scale else "replace the infinite ones"
        raise ConfigError(f"the inputs hold values up to |x| = {largest:.3g}, too large to "
                          f"standardise in {dtype.name} (limit {limit:.3g}); scale them first: "
                          f"{how}, or standardise them (e.g. scikit-learn's StandardScaler)")


def feature_stats(X_train: np.ndarray) -> dict[str, np.ndarray]:
    """Mean and std (float64, shape (D,)) of each column of numeric features X_train (N, D)."""
    return {"mean": np.mean(X_train, axis=0, dtype=np.float64),
            "std": np.std(X_train, axis=0, dtype=np.float64)}


def whitening(X_train, stats, k, eps, chunk=2048):
    """PCA whitening of per_channel images: ``(center (D,), proj (D, K))`` float64 such that
    ``(preprocess(X, "per_channel", stats) - center) @ proj`` has, over ``X_train`` (N, D)
    uint8, mean 0 and covariance ``diag(lam_i / (lam_i + eps))``: the K largest
    eigenvalues ``lam_i`` of the per_channel images' covariance, and ``eps`` times their
    mean (1 for per_channel images) added to each: the leading components come out at about
    unit variance, the many small ones (fine detail, pixel noise, JPEG artefacts) damped
    rather than blown up to it.

    The covariance comes from sums of integer products below 2**53, exact in float64 in any
    order, ``chunk`` images at a time: the same bits however BLAS splits the work.

    Raises:
        ConfigError: K is more than the D values of an image.
    """
    n, D = X_train.shape
    if not 1 <= k <= D:
        raise ConfigError(f"whiten_dim={k} is more than the {D} values of an image; use "
                          f"{setting('whiten_dim', D)} or fewer")
    check_whitening_fits(D, len(stats["mean"]))
    sums, products = np.zeros(D), np.zeros((D, D))  # (D,), (D, D)
    for start in range(0, n, chunk):
        x = X_train[start:start + chunk].astype(np.float64)  # (chunk, D) integers
        products += x.T @ x
        sums += x.sum(axis=0)
    mean = sums / n
    m, r = _channel_scale(stats, D)  # (D,), (D,): per_channel's shift and scale
    cov = products  # in place: (D, D) float64 is 75 MB for CIFAR-10
    cov /= n
    cov -= np.outer(mean, mean)
    cov *= np.outer(r, r)  # the covariance of the per_channel images
    lam, U = np.linalg.eigh(cov)  # ascending
    lam, U = np.maximum(lam[::-1][:k], 0.0), U[:, ::-1][:, :k]  # (K,), (D, K)
    floor = eps * max(np.trace(cov) / D, EPS)
    return (mean - m) * r, U / np.sqrt(lam + floor)


def whitening_bytes(D):
    """Memory :func:`whitening` takes for images of D values: the (D, D) float64 covariance,
    and eigh's copy of it and its (D, D) eigenvectors."""
    return 3 * 8 * D * D


def check_whitening_fits(D, channels):
    """ConfigError naming the covariance and a fix when whitening images of D values (square,
    of ``channels`` planes) would not fit in memory (memory.check_fits)."""
    side = math.isqrt(D // channels)
    fix = f"use {setting('preprocessing', 'per_channel')}"
    if side > 32:  # only a folder's images come larger than CIFAR-10's; they can be smaller
        fits = next((s for s in (64, 48, 32, 24, 16, 8) if s < side
                     and whitening_bytes(channels * s * s) <= (available_bytes() or 0)), None)
        if fits:
            fix += f", or smaller images ({setting('image_size', fits)})"
    check_fits(f"whitening {side}x{side}x{channels} images (a D x D covariance, D = {D})",
               whitening_bytes(D), fix)


def _channel_scale(stats, D):
    """per_channel's ``(mean, 1 / std)`` (D,) float64: each channel's, for each of its values."""
    plane = D // len(stats["mean"])
    return (np.repeat(np.asarray(stats["mean"], np.float64), plane),
            np.repeat(1.0 / np.maximum(np.asarray(stats["std"], np.float64), EPS), plane))


def _feature_scale(stats):
    """per_feature's ``(mean, 1 / std)`` (D,) float64: 1 for a column constant in training."""
    mean, std = (np.asarray(stats[k], dtype=np.float64) for k in ("mean", "std"))
    return mean, 1.0 / np.where(std > EPS, std, 1.0)


def preprocess(
    X: np.ndarray,
    mode: str = "per_image",
    stats: dict[str, np.ndarray] | None = None,
    out: np.ndarray | None = None,
    dtype=np.float32,
) -> np.ndarray:
    """Turn uint8 images X (N, D) into zero-mean, unit-std floats (N, D) of ``dtype``.

    Args:
        mode: one of
            ``"per_image"`` (the course notebook's): each row minus its own mean, divided by
            its own (population) std.
            ``"per_channel"``: each channel (one per entry of ``stats["mean"]``, the rows
            channel-first) minus ``stats["mean"][c]``, divided by ``stats["std"][c]``, where
            ``stats = channel_stats(X_train)`` comes from the *training* set, also when
            normalising validation or test images.
            ``"per_feature"``: X any numeric (N, D), each column d minus
            ``stats["mean"][d]``, over ``stats["std"][d]`` (:func:`feature_stats`); a column
            constant in training is only centred, so that another value later stays finite
            (StandardScaler's rule).
        out: if given, a C-contiguous (N, D) array of ``dtype`` that is overwritten and
            returned (the training loop reuses one buffer per batch size). X is never
            modified.
    """
    dtype = np.dtype(dtype)
    if X.ndim != 2 or X.shape[1] < 1:
        raise ValueError(f"X must have shape (N, D), got {X.shape}")
    D = X.shape[1]
    if mode == "per_feature":
        if stats is None:
            raise ValueError("mode='per_feature' needs stats=feature_stats(X_train)")
        mean, inv_std = (v.astype(dtype) for v in _feature_scale(stats))  # (D,), (D,)
        if len(mean) != D:
            raise ValueError(f"X must have shape (N, {len(mean)}), got {X.shape}")
    if out is None:
        out = np.empty(X.shape, dtype=dtype)
    elif out.shape != X.shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be a C-contiguous {dtype} array of shape {X.shape}, "
            f"got {out.dtype} {out.shape}"
        )
    if mode == "per_channel":
        if stats is None:
            raise ValueError("mode='per_channel' needs stats=channel_stats(X_train)")
        channels = len(stats["mean"])
        if D % channels:
            raise ValueError(f"X has {D} values per row, not {channels} equal channels")
        mean = np.asarray(stats["mean"], dtype=np.float64).reshape(channels, 1)
        inv_std = (1.0 / np.maximum(np.asarray(stats["std"], dtype=np.float64), EPS)).reshape(
            channels, 1)
        mean, inv_std = mean.astype(dtype), inv_std.astype(dtype)
    elif mode == "whiten":
        raise ValueError("mode='whiten' projects the images: use Preprocessor.fit('whiten', "
                         "X_train) and call it")
    elif mode not in PREPROCESSING_MODES:
        raise ValueError(f"unknown preprocess mode {mode!r}; use one of {PREPROCESSING_MODES}")
    # Row block by row block, so that the passes below find their block in the cache: the
    # uint8 rows are read and the float rows written once (2-3x faster than whole-batch
    # passes for a batch of 2000); each row gets the same operations either way.
    rows = max(1, _BLOCK // D)
    ones = np.ones(D, dtype=dtype)  # (D,)
    for start in range(0, len(X), rows):
        x, o = X[start:start + rows], out[start:start + rows]  # (n, D) views
        np.copyto(o, x, casting="unsafe")  # exact uint8 -> float
        if mode == "per_feature":
            o -= mean
            o *= inv_std
        elif mode == "per_image":
            # Row sums and sums of squares as BLAS products (3-4x faster than o.sum and
            # einsum). The row sums are exact in any order: integers below 255*3072 < 2**24.
            mean = (o @ ones)[:, None]  # (n, 1)
            mean /= D
            o -= mean
            var = np.linalg.vecdot(o, o) / D  # (n,)
            o *= (1.0 / np.maximum(np.sqrt(var), EPS))[:, None]
        else:
            o3 = o.reshape(len(o), channels, -1)  # (n, channels, plane) view
            o3 -= mean
            o3 *= inv_std
    return out


class Preprocessor:
    """:func:`preprocess` with its mode and training statistics bound, for a model's inputs.

    ``prep(X, out=None)`` is ``preprocess(X, mode, stats, out, dtype)``: uint8 (per_feature:
    numeric) (N, D) -> float (N, D); for ``whiten``, per_channel then ``(x - center) @ proj``
    -> (N, K). :meth:`folded` gives the same first layer for evaluation without normalising
    the images at all. :meth:`fit` makes one from the training images; :meth:`to_dict` (and
    for whiten :meth:`arrays`) and :meth:`from_dict` are how model files and checkpoints
    store it.
    """

    def __init__(self, mode="per_image", stats=None, dtype=np.float32, whitening=None):
        """``whitening``: for mode ``whiten``, ``{"center": (D,), "proj": (D, K)}`` as
        :func:`whitening` gives them; held in ``dtype``."""
        self.mode, self.stats, self.dtype = mode, stats, np.dtype(dtype)
        # one value per channel, or one per feature: the smallest row the statistics fit
        width = len(stats["mean"]) if stats is not None else 1
        elementwise = "per_channel" if mode == "whiten" else mode  # whiten starts with it
        preprocess(np.zeros((1, width), np.uint8), elementwise, stats,
                   dtype=self.dtype)  # checked now
        self.whitening, self._scratch = None, None
        if mode == "whiten":
            if whitening is None:
                raise ValueError("mode='whiten' needs whitening={'center', 'proj'} "
                                 "(Preprocessor.fit)")
            center, proj = (np.asarray(whitening[k], dtype=self.dtype) for k in ("center", "proj"))
            if (center.ndim != 1 or proj.ndim != 2 or proj.shape[0] != len(center)
                    or not 1 <= proj.shape[1] <= len(center)
                    or not (np.isfinite(center).all() and np.isfinite(proj).all())):
                raise ValueError(f"whitening: expected a finite center (D,) and proj (D, K <= D), "
                                 f"got {center.shape} and {proj.shape}")
            self.whitening = {"center": center, "proj": proj}
            self._shift = center @ proj  # (K,): (x - center) @ proj = x @ proj - shift

    @classmethod
    def fit(cls, mode, X_train, dtype=np.float32, channels=3, whiten_dim=None,
            whiten_eps=None):
        """The preprocessor of ``mode`` for a model trained on ``X_train`` (N, D): per_channel
        takes its statistics from these images of ``channels`` planes (:func:`channel_stats`),
        per_feature from these features (:func:`feature_stats`), whiten both the statistics
        and ``whiten_dim`` components with the floor ``whiten_eps`` (:func:`whitening`)."""
        if mode in ("per_channel", "whiten"):
            stats = channel_stats(X_train, channels=channels)
            if mode == "per_channel":
                return cls(mode, stats, dtype)
            center, proj = whitening(X_train, stats, whiten_dim, whiten_eps)
            return cls(mode, stats, dtype, {"center": center, "proj": proj})
        if mode == "per_feature":
            _check_feature_range(X_train, np.dtype(dtype))
        return cls(mode, feature_stats(X_train) if mode == "per_feature" else None, dtype)

    def output_dim(self, D):
        """The width of what it makes of inputs of D values: the model's input_dim."""
        return D if self.whitening is None else self.whitening["proj"].shape[1]

    def arrays(self):
        """The arrays a checkpoint stores beside :meth:`to_dict`: ``{"center", "proj"}`` for
        whiten, else none."""
        return dict(self.whitening or {})

    def to_dict(self):
        """``{"mode": str, "stats": {"mean": [floats], "std": [floats]} or None}``, for JSON:
        a float per channel for per_channel and whiten (whose projection is in
        :meth:`arrays`), D for per_feature.

        The floats are the float64 statistics themselves: JSON writes them exactly, so
        :meth:`from_dict` gives back the same preprocessing bit for bit.
        """
        stats = None if self.stats is None else {k: np.asarray(self.stats[k], np.float64).tolist()
                                                 for k in ("mean", "std")}
        return {"mode": self.mode, "stats": stats}

    @classmethod
    def from_dict(cls, d, dtype=np.float32, arrays=None):
        """The preprocessor :meth:`to_dict` described, for inputs of ``dtype``; ``arrays``
        are those :meth:`arrays` gave (whiten).

        Raises:
            ValueError: ``d`` does not describe one (unknown mode, statistics missing,
            not a finite number per channel (per_feature: per feature) each, or a std below
            0); the caller names the file.
        """
        if not isinstance(d, dict) or d.get("mode") not in PREPROCESSING_MODES:
            modes = ", ".join(PREPROCESSING_MODES)
            raise ValueError(f"preprocessing {d!r}: expected a mode in {modes}")
        stats = d.get("stats")
        if stats is not None:
            try:
                stats = {k: np.asarray(stats[k], dtype=np.float64) for k in ("mean", "std")}
            except (KeyError, TypeError, ValueError):
                raise ValueError("preprocessing stats: expected 'mean' and 'std', a number per "
                                 "channel (per_feature: per feature) each") from None
            shapes = None if d["mode"] == "per_feature" else ((1,), (3,))
            if any(v.ndim != 1 or v.shape != stats["mean"].shape or not np.isfinite(v).all()
                   or (shapes is not None and v.shape not in shapes) for v in stats.values()) \
                    or (stats["std"] < 0).any():
                raise ValueError("preprocessing stats: 'mean' and 'std' must be a finite number "
                                 "per channel (1 or 3 each; per_feature: D), std >= 0")
        return cls(d["mode"], stats, dtype, arrays if d["mode"] == "whiten" else None)

    def __repr__(self):
        return f"Preprocessor(mode={self.mode!r}, dtype={self.dtype.name})"

    def __call__(self, X, out=None):
        if self.whitening is None:
            return preprocess(X, self.mode, self.stats, out=out, dtype=self.dtype)
        n, D = X.shape
        if self._scratch is None or self._scratch.shape[0] < n or self._scratch.shape[1] != D:
            self._scratch = np.empty((n, D), dtype=self.dtype)  # reused: the batch's size
        x = preprocess(X, "per_channel", self.stats, out=self._scratch[:n], dtype=self.dtype)
        if out is None:
            out = np.empty((n, self.output_dim(D)), dtype=self.dtype)
        np.matmul(x, self.whitening["proj"], out=out)  # (N, K)
        out -= self._shift
        return out

    def input_weights(self, W):
        """First-layer weights (K or D, H) as weights on the per_channel images (D, H): for
        whiten ``proj @ W``, else W itself (for pictures of what the first layer learned)."""
        return W if self.whitening is None else self.whitening["proj"] @ W

    def unwhitened(self, W, b):
        """For whiten, ``(W', b')`` (D, H), (H,) and the per_channel preprocessor such that
        ``per_channel(X) @ W' + b' == self(X) @ W + b`` up to float rounding:
        ``W' = proj @ W``, ``b' = b - (center @ proj) @ W``. How a model file holds a
        whitened model: as a per_channel one."""
        return (self.input_weights(W), b - self._shift @ W,
                Preprocessor("per_channel", self.stats, self.dtype))

    def folded(self, W, b):
        """``f(X, buf) = self(X) @ W + b`` (N, H) for uint8 X (N, D), the normalisation folded in.

        Evaluation spends most of its time outside the products on normalising 3072 values
        per image; folding it into the first layer leaves one uint8 -> float copy into
        ``buf`` (a C-contiguous (N, D) array of the dtype, overwritten):

        - per_channel and per_feature, ``x' = (x - m) * r`` with fixed m, r (D,):
          ``x' @ W + b = x @ (r * W) + (b - (m * r) @ W)``, weights computed once here;
        - per_image, ``x' = (x - mu_n) * r_n`` for each row n: ``x' @ W + b =
          r_n * (x @ W - mu_n * colsum(W)) + b``. The row sums are exact; rows whose std is
          below a tenth of their mean (where the subtraction would lose digits) and constant
          rows go through the plain path;
        - whiten, W (K, H): of two ways, the one with fewer multiplications per image.
          Folded, :meth:`unwhitened` then per_channel's folding: one (D, H) product,
          D*H. In two, per_channel's folding into the projection, then W: a (D, K) and a
          (K, H) product, K*(D + H). Two is less work when K < D*H / (D + H): 1,229 for
          CIFAR-10 at H = 2048, so for every preset (in the first layer 2.4x fewer
          multiplications at K = 512, 1.2x at K = 1024; 1.7x at K = 1024, H = 4096).

        Results equal the plain path's up to float rounding (~1e-6 relative; tested).
        """
        W, b = np.asarray(W), np.asarray(b)
        if self.whitening is not None:
            (D, K), H = self.whitening["proj"].shape, W.shape[1]
            if K * (D + H) >= D * H:  # one (D, H) product is no more work
                W, b, plain = self.unwhitened(W, b)
                return plain.folded(W, b)
            plain = Preprocessor("per_channel", self.stats, self.dtype)
            whiten = plain.folded(self.whitening["proj"], -self._shift)  # X -> self(X) (N, K)

            def first_layer(X, buf):
                out = whiten(X, buf) @ W  # (N, H)
                out += b
                return out
            return first_layer
        D = len(W)
        if self.mode == "per_feature":
            m, r = _feature_scale(self.stats)  # (D,), (D,)
        elif self.mode == "per_channel":
            m, r = _channel_scale(self.stats, D)  # (D,), (D,)
        if self.mode != "per_image":
            # in the model's dtype: a float64 copy of W would be 100 MB at H = 4096
            W_fold = W * r.astype(self.dtype)[:, None]  # (D, H)
            b_fold = b - (m * r).astype(self.dtype) @ W  # (H,)

            def first_layer(X, buf):
                np.copyto(buf, X, casting="unsafe")
                out = buf @ W_fold  # (N, H)
                out += b_fold
                return out
            return first_layer

        colsum = W.sum(axis=0, dtype=np.float64).astype(self.dtype)  # (H,)
        ones = np.ones(D, dtype=self.dtype)

        def first_layer(X, buf):
            sums, squares = np.empty(len(X), self.dtype), np.empty(len(X), self.dtype)  # (N,), (N,)
            rows = max(1, _BLOCK // D)
            for i in range(0, len(X), rows):  # by cache-sized row blocks, as in preprocess()
                x = buf[i:i + rows]
                np.copyto(x, X[i:i + rows], casting="unsafe")  # exact uint8 -> float
                np.matmul(x, ones, out=sums[i:i + rows])  # exact: integers below 2**24
                squares[i:i + rows] = np.linalg.vecdot(x, x)
            mean = sums.astype(np.float64) / D  # (N,)
            var = squares.astype(np.float64) / D - mean**2  # (N,)
            out = buf @ W  # (N, H)
            out -= mean.astype(self.dtype)[:, None] * colsum
            out *= (1.0 / np.sqrt(np.maximum(var, EPS**2))).astype(self.dtype)[:, None]
            out += b
            plain = var < 0.01 * mean**2  # low contrast or constant: (N,)
            if plain.any():
                out[plain] = self(X[plain]) @ W + b
            return out
        return first_layer
