"""The teacher of a distilled run (``config.teacher``): trained nets whose softened
probabilities on each training batch the student learns beside the labels.

The teacher sees the batch exactly as the student does, crops, flips and deformations
included (a consistent teacher: Beyer et al. 2022, "Knowledge distillation: a good
teacher is patient and consistent"); several model files are an ensemble, whose
probabilities at the temperature are averaged. Its forward passes are part of every step's
cost, and so of the run's wall time.

A model file holds a whitened net as the per_channel net it equals, its first layer
``W1'`` (D, H1) = ``proj @ W1`` (model_file._image_model). When the student is whitened
with the same projection (same split, K and floor), that first layer lies in the span of
the student's ``proj`` (D, K) and is taken back to ``W1`` (K, H1) by least squares: the
teacher then reads the student's whitened batch (N, K) instead of the images (N, D),
K*H1 multiplications per image instead of D*H1 (3x fewer at K = 1024).

A teacher trained on another split has seen images of the student's validation split, and
would carry their labels into it: refused, as a teacher of other classes or image sizes.

    N  batch size      D  values of an image      K  whitening components
    H1 the teacher's first hidden width      C  classes
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..data.registry import DATA_FIELDS
from ..errors import ConfigError
from ..nn.losses import softmax
from ..nn.rules import setting
from .config import data_config
from .model_file import load_model

# the largest relative residual of a first layer taken back into the student's whitened
# space: float32 rounding of proj @ W1 leaves ~1e-6; a first layer of another whitening, ~1
SPAN_TOLERANCE = 1e-3


class Teacher:
    """Trained nets that give soft targets: ``teacher.targets(X_uint8, X)`` (N, C)."""

    def __init__(self, saved, temperature, digest):
        self.saved = saved              # the SavedModel of each model file, in order
        self.temperature = temperature  # T of the softmax
        self.digest = digest            # sha256 of the model files' bytes, in order
        self.nets = None                # [(model, folded params, first layer)]: bind()

    def __repr__(self):
        return f"Teacher(nets={len(self.saved)}, temperature={self.temperature:g})"

    @classmethod
    def of(cls, config, data):
        """The teacher ``config.teacher`` names for a student on ``data``, read and checked,
        or None (no teacher, or ``config.distill`` = 0). Cheap beside the data: a run
        checks it before it fits its whitening, so that a wrong path fails at once.

        Raises:
            ModelFileError: a model file that cannot be read (one line, from load_model).
            ConfigError: a teacher of other classes, images or split than the student's, or
            with MixUp or CutMix.
        """
        if config.teacher is None or config.distill == 0:
            return None
        if config.mixup or config.cutmix:
            raise ConfigError(f"a teacher does not combine with MixUp or CutMix (it answers for "
                              f"images, not blends of two): use {setting('mixup', 0)} and "
                              f"{setting('cutmix', 0)}, or no teacher")
        paths = [p.strip() for p in config.teacher.split(",")]
        if not all(paths):
            raise ConfigError(f"{setting('teacher', config.teacher)}: an empty path; give model "
                              f"files or run folders separated by commas")
        saved, digest = [], hashlib.sha256()
        for path in paths:
            saved.append(load_model(path))
            _check_fits(saved[-1], path, config, data)
            digest.update(_file_digest(saved[-1].path))  # the model.npz read, of a folder too
        return cls(saved, config.distill_temperature, digest.hexdigest())

    def bind(self, preprocessor):
        """Ready to answer for a student whose inputs ``preprocessor`` makes (on its whitened
        batch where it can, see the module's docstring); returns itself."""
        self.nets = [_net(saved, preprocessor) for saved in self.saved]
        return self

    def targets(self, X_uint8, X):
        """(N, C) the mean over the nets of ``softmax(scores / T)`` for the batch: uint8
        images ``X_uint8`` (N, D) and the student's input ``X`` (N, K or D) made of them."""
        out = None
        for model, params, first in self.nets:
            scores = model.forward_after_first(first(X_uint8, X), params)  # (N, C)
            probs = softmax(scores / self.temperature)  # (N, C)
            out = probs if out is None else out + probs
        if len(self.nets) > 1:
            out /= len(self.nets)
        return out


def _check_fits(saved, path, config, data):
    """ConfigError unless the teacher read from ``path`` answers in the data's classes, on
    its images, and never saw the student's validation split."""
    if tuple(saved.class_names) != tuple(data.class_names):
        raise ConfigError(f"{setting('teacher', path)}: its {len(saved.class_names)} classes "
                          f"are not this run's {len(data.class_names)} "
                          f"({', '.join(data.class_names[:3])}, ...); give a teacher trained "
                          f"on the same data set")
    if saved.geometry.D != data.geometry.D:
        raise ConfigError(f"{setting('teacher', path)}: it takes images of {saved.geometry}, "
                          f"this run's are {data.geometry}; give a teacher trained on the "
                          f"same images")
    if not len(data.y_val):
        return  # no validation split to leak into: any training images will do
    if saved.config is None:
        raise ConfigError(f"{setting('teacher', path)}: its file does not say which split it "
                          f"was trained on; use a model.npz written by 'numpy-mlp train', or "
                          f"{setting('val_size', 0)}")
    try:
        theirs = data_config(saved.config)
    except ConfigError:
        theirs = None
    differ = [k for k in DATA_FIELDS
              if theirs is None or getattr(theirs, k) != getattr(config, k)]
    if differ:
        shown = ", ".join(f"{k} {getattr(theirs, k) if theirs else '?'}" for k in differ)
        same = " ".join(setting(k, getattr(theirs, k)) for k in differ) if theirs else ""
        raise ConfigError(f"{setting('teacher', path)}: it was trained on another split "
                          f"({shown}), so it has seen images of this run's validation "
                          f"split; give a teacher trained on this run's split"
                          + (f", or train this run on the teacher's: {same}" if same else ""))


def _net(saved, preprocessor):
    """``(model, folded params, first)`` of a read model file: ``first(X_uint8, X)`` (N, H1)
    is its first affine map, on the student's whitened batch X when it can be."""
    model = saved.model
    params, norm = model.eval_params()
    W1, b1 = params["W1"], params["b1"]  # (D, H1), (H1,) on the per_channel images
    inside = _in_whitened_space(W1, b1, saved.preprocessor, preprocessor)
    if inside is not None:
        W, b = inside

        def first(X_uint8, X):
            out = X @ W  # (N, H1)
            out += b
            return out
    else:
        layer = saved.preprocessor.folded(W1, b1)
        bufs = {}

        def first(X_uint8, X):
            n = len(X_uint8)
            if n not in bufs:  # (N, D) float: one per batch size (the last batch may be short)
                bufs[n] = np.empty((n, X_uint8.shape[1]), dtype=model.dtype)
            return layer(X_uint8, bufs[n])
    return model, (params, norm), first


def _in_whitened_space(W1, b1, theirs, ours):
    """``(W, b)`` (K, H1), (H1,) with ``ours(X) @ W + b == theirs(X) @ W1 + b1`` for the
    student's whitening ``ours``, if the teacher's per_channel first layer ``W1`` (D, H1)
    lies in the span of its projection with the same channel statistics; else None."""
    if ours.whitening is None or theirs.mode != "per_channel" or theirs.stats is None:
        return None
    if not all(np.allclose(theirs.stats[k], ours.stats[k], rtol=1e-6, atol=0)
               for k in ("mean", "std")):
        return None
    proj = ours.whitening["proj"].astype(np.float64)  # (D, K)
    W1_64 = W1.astype(np.float64)
    W = np.linalg.solve(proj.T @ proj, proj.T @ W1_64)  # (K, H1), least squares
    residual = np.linalg.norm(proj @ W - W1_64) / max(np.linalg.norm(W1_64), 1e-30)
    if not residual < SPAN_TOLERANCE:
        return None
    # (K,): ours(X) = per_channel(X) @ proj - shift
    shift = ours.whitening["center"].astype(np.float64) @ proj
    b = b1.astype(np.float64) + shift @ W
    return W.astype(W1.dtype), b.astype(W1.dtype)


def _file_digest(path, chunk=1 << 20):
    """The sha256 of the bytes of the file ``path``."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.digest()
