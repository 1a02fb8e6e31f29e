"""Predictions of a model on uint8 images: the one path that evaluate, predict, the trainer's
evaluations and search all take.

Images go through in batches; the input normalisation is folded into the first layer
(:meth:`~numpy_mlp.data.preprocessing.Preprocessor.folded`), so that a batch is only copied
to floats, and batch norm (a fixed affine map in evaluation) into the affine maps beside it
(:meth:`~numpy_mlp.nn.model.FullyConnectedNet.eval_params`);
with a test-time shift s > 0 each image is seen as the ten views of
:func:`~numpy_mlp.data.augment.tta_views` (itself and its diagonal shifts by s pixels, each
also mirrored) and its answer is their mean softmax probability: ten times the work, for a
model trained with flips and crops. The BLAS thread count is chosen batch by batch as in
training (:mod:`numpy_mlp.training.threads`), among 1 .. the count BLAS is allowed when
called (inside the trainer: its choice).

The views need the images' geometry (``geometry``: the data's or the saved model's); rows
that are not images (``geometry=None``) have no views.

The products are computed in the model's dtype unless ``dtype`` says otherwise. In float32
a row's scores depend on the rows it is batched with, by ~1e-7 relative: the BLAS blocks a
product by the batch's shape, and the blocking fixes the order of the float additions. In
float64 the same differences are ~1e-16, so a row's answer is its own whatever the batch
(what scikit-learn's estimator checks demand, to 1e-7), at 2-3 times the float32 time
(measured in docs/sklearn.md).

    N  number of images      D  channels x height x width (CIFAR-10: 3072)      C  classes
"""

from __future__ import annotations

import numpy as np

from ..data.augment import tta_views
from ..data.preprocessing import Preprocessor
from ..nn.losses import softmax
from .threads import ThreadChooser

BATCH_SIZE = 2000  # images per batch: one reused float buffer of this many rows


def predict_labels(model, preprocessor, X, *, tta_shift=0, batch_size=BATCH_SIZE,
                   geometry=None, dtype=None):
    """Predicted labels (N,) int64 of uint8 images X (N, D), computed in ``dtype`` (None:
    the model's).

    Without views the class of the highest score (the same as of the highest
    probability); with ``tta_shift`` > 0 the class of the highest mean probability over the
    views of the images of ``geometry`` (required then: ValueError without it).
    """
    pred = np.empty(len(X), dtype=np.int64)
    for start, out in _batches(model, preprocessor, X, tta_shift, batch_size, geometry, dtype,
                               probabilities=False):
        pred[start:start + len(out)] = out.argmax(axis=1)
    return pred


def probabilities(model, preprocessor, X, *, tta_shift=0, batch_size=BATCH_SIZE,
                  geometry=None, dtype=None):
    """Class probabilities (N, C) float64 of uint8 images X (N, D): the softmax of the
    scores, or with ``tta_shift`` > 0 the mean softmax over the ten views of the images of
    ``geometry`` (required then: ValueError without it), computed in ``dtype`` (None: the
    model's)."""
    probs = np.empty((len(X), model.num_classes), dtype=np.float64)
    for start, out in _batches(model, preprocessor, X, tta_shift, batch_size, geometry, dtype,
                               probabilities=True):
        probs[start:start + len(out)] = out
    return probs


def _batches(model, preprocessor, X, tta_shift, batch_size, geometry, dtype, *,
             probabilities):
    """Yield ``(start, out)`` for each batch of X: ``out`` (n, C) is the mean softmax over
    the views, or with one view its softmax if ``probabilities`` else its scores; computed
    in ``dtype`` (None: the model's)."""
    if tta_shift and geometry is None:
        raise ValueError("test-time views need the images' geometry")
    dtype = model.dtype if dtype is None else np.dtype(dtype)
    buf = np.empty((min(batch_size, max(len(X), 1)), X.shape[1]), dtype=dtype)  # (n, D)
    folded = model.eval_params()
    if dtype != model.dtype:  # the parameters and the normalisation folded in, in dtype
        params, norm = folded
        folded = {k: v.astype(dtype) for k, v in params.items()}, norm
        preprocessor = Preprocessor(preprocessor.mode, preprocessor.stats, dtype,
                                    preprocessor.whitening)
    first_layer = preprocessor.folded(folded[0]["W1"], folded[0]["b1"])

    def scores(V):  # (n, C) for uint8 views V (n, D)
        return model.forward_after_first(first_layer(V, buf[:len(V)]), folded)

    with ThreadChooser("auto") as threads:
        for start in range(0, len(X), batch_size):
            threads.tick()
            xb = X[start:start + batch_size]
            if tta_shift:
                out = np.zeros((len(xb), model.num_classes))  # (n, C) float64
                for n_views, v in enumerate(tta_views(xb, tta_shift, geometry), 1):
                    out += softmax(scores(v).astype(np.float64))
                out /= n_views
            elif probabilities:
                out = softmax(scores(xb).astype(np.float64))
            else:
                out = scores(xb)
            yield start, out
