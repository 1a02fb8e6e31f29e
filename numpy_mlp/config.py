"""The one configuration of a training run: a frozen dataclass, one comment per knob.

The CLI maps its flags onto these fields one to one; every run saves ``config.json``
beside its results, and :func:`TrainConfig.from_dict` reads it back.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .schedules import SCHEDULES

MAX_SHIFT = 16  # pixels: the largest crop_pad and tta_shift (half an image)


def is_tta_shift(value):
    """Whether ``value`` is a test-time shift: an integer (not a bool) in 0..MAX_SHIFT."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SHIFT


@dataclass(frozen=True)
class TrainConfig:
    # --- model ---
    hidden_dim: tuple = (1000,)      # hidden widths: (H,) is the notebook's two-layer net
    reg: float = 4e-3                # L2 strength lambda: loss += 0.5*lambda*sum(W**2)
    dropout: float = 0.0             # inverted-dropout probability after each hidden ReLU (0 = off)
    dtype: str = "float32"           # float32 (fast) or float64
    # --- optimizer: m <- beta*m + g ; theta <- theta - alpha*m ---
    alpha: float = 1e-2              # learning rate (peak, before the schedule)
    beta: float = 0.9                # momentum, in [0, 1)
    nesterov: bool = False           # Nesterov momentum: theta <- theta - alpha*(g + beta*m)
    weight_decay: float = 0.0        # decoupled weight decay: theta <- theta - alpha*wd*theta (W only)
    schedule: str = "cosine"         # learning-rate schedule: constant, cosine or step
    warmup: int = 0                  # steps of linear warm-up of the learning rate
    # --- data ---
    batch_size: int = 128            # minibatch size N
    num_iters: int | None = None     # train for this many steps (overrides epochs)...
    epochs: float = 15.0             # ...or this many passes over the training split
    val_size: int = 5000             # images carved from the 50k training set for validation
    preprocessing: str = "per_image" # per_image (notebook: x - mean(x), / std(x)) or per_channel
    flip: bool = True                # augmentation: mirror a random half of each batch left-right
    crop_pad: int = 0                # augmentation: random 32x32 crops of images padded by this many pixels
    label_smoothing: float = 0.0     # target (1-eps) on the true class plus eps/C everywhere
    tta_shift: int = 0               # final val/test accuracy also averaged over ten views: each image
                                     # and its diagonal shifts by this many pixels, each
                                     # mirrored (augment.tta_views; 0 = off)
    patience: int = 0                # early stopping: stop after this many evaluations without a
                                     # better val accuracy (0 = off); the best params are kept
    # --- bookkeeping ---
    seed: int = 0                    # seeds the data split, the init and the batch order
    evals: int = 20                  # evaluate (and log a line) this many times per run
    eval_train_size: int = 5000      # training images used for train accuracy at each eval
    checkpoint_every: int | None = None  # steps between checkpoints of `numpy-mlp train` (None = 20
                                         # per run, 0 = none); does not change the results
    threads: int | str = "auto"      # BLAS threads: a number, or "auto" = timed choice among 1..all
                                     # (numpy_mlp/threads.py); changes results only in
                                     # their last bits (fix it for bit-for-bit repeats)

    def __post_init__(self):
        object.__setattr__(self, "hidden_dim", parse_hidden_dims(self.hidden_dim))
        self.validate()

    def validate(self):
        """Raise ConfigError naming the first field that is out of range."""
        def need(ok, msg):
            if not ok:
                raise ConfigError(msg)

        need(_finite(self.alpha) and self.alpha > 0, f"alpha={self.alpha!r} must be a finite learning rate > 0 (try 1e-2)")
        need(_finite(self.beta) and 0 <= self.beta < 1,
             f"beta={self.beta!r} is outside [0, 1): " + ("momentum >= 1 never forgets past gradients and diverges"
                                                          if _finite(self.beta) and self.beta >= 1 else
                                                          "0 is plain SGD, less has no meaning") + " (try 0.9)")
        need(_finite(self.reg) and self.reg >= 0, f"reg={self.reg!r} must be a finite number >= 0")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1, f"batch_size={self.batch_size!r} must be a positive integer")
        if self.num_iters is not None:
            need(isinstance(self.num_iters, int) and self.num_iters >= 1, f"num_iters={self.num_iters!r} must be a positive integer")
        else:
            need(_finite(self.epochs) and self.epochs > 0, f"epochs={self.epochs!r} must be a number > 0")
        need(isinstance(self.val_size, int) and self.val_size >= 0, f"val_size={self.val_size!r} must be an integer >= 0")
        need(self.preprocessing in ("per_image", "per_channel"),
             f"preprocessing={self.preprocessing!r}: choose per_image or per_channel")
        need(_finite(self.dropout) and 0 <= self.dropout < 1, f"dropout={self.dropout!r} must be in [0, 1)")
        need(_finite(self.weight_decay) and self.weight_decay >= 0,
             f"weight_decay={self.weight_decay!r} must be a finite number >= 0")
        need(_finite(self.label_smoothing) and 0 <= self.label_smoothing < 1,
             f"label_smoothing={self.label_smoothing!r} must be in [0, 1)")
        need(isinstance(self.crop_pad, int) and 0 <= self.crop_pad <= MAX_SHIFT,
             f"crop_pad={self.crop_pad!r} must be an integer in 0..{MAX_SHIFT}")
        need(is_tta_shift(self.tta_shift),
             f"tta_shift={self.tta_shift!r} must be an integer in 0..{MAX_SHIFT} (pixels; 0 = off)")
        need(isinstance(self.patience, int) and self.patience >= 0, f"patience={self.patience!r} must be an integer >= 0")
        need(isinstance(self.flip, bool) and isinstance(self.nesterov, bool), "flip and nesterov must be true or false")
        need(self.schedule in SCHEDULES, f"schedule={self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        need(isinstance(self.warmup, int) and self.warmup >= 0, f"warmup={self.warmup!r} must be an integer >= 0")
        need(self.dtype in ("float32", "float64"), f"dtype={self.dtype!r}: choose float32 or float64")
        need(self.threads == "auto" or (isinstance(self.threads, int) and not isinstance(self.threads, bool)
                                        and self.threads >= 1),
             f"threads={self.threads!r}: give a number of BLAS threads >= 1, or 'auto'")
        need(isinstance(self.evals, int) and self.evals >= 1, f"evals={self.evals!r} must be a positive integer")
        need(isinstance(self.eval_train_size, int) and self.eval_train_size >= 1,
             f"eval_train_size={self.eval_train_size!r} must be a positive integer")
        need(isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0,
             f"seed={self.seed!r} must be a whole number >= 0")
        if self.checkpoint_every is not None:
            need(isinstance(self.checkpoint_every, int) and not isinstance(self.checkpoint_every, bool)
                 and self.checkpoint_every >= 0,
                 f"checkpoint_every={self.checkpoint_every!r} must be a whole number of steps >= 0 (0 = none)")

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["hidden_dim"] = list(self.hidden_dim)
        return d

    @classmethod
    def from_dict(cls, d):
        """Build from a dict such as a saved ``config.json``; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(names))}")
        return cls(**d)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def parse_hidden_dims(value):
    """The hidden widths as a tuple of positive ints, from any spelling a user writes.

    ``200``, ``(512, 256)``, ``[512, 256]`` and the text ``"512,256"`` (a flag, a TOML value
    or a searched category) all give the same tuple. ConfigError names what is wrong.
    """
    if isinstance(value, str):
        try:
            dims = tuple(int(t) for t in value.split(",") if t.strip())
        except ValueError:
            raise ConfigError(f"hidden_dim={value!r}: give widths as whole numbers, "
                              "e.g. 1000 or 512,256") from None
    elif isinstance(value, (list, tuple, np.ndarray)):
        dims = tuple(value)
    else:
        dims = (value,)
    if not dims:
        raise ConfigError("hidden_dim is empty: give at least one hidden width, e.g. 1000")
    out = []
    for h in dims:
        if isinstance(h, bool) or not isinstance(h, (int, np.integer, float, np.floating)) or h != int(h) or h < 1:
            raise ConfigError(f"hidden_dim: {h!r} is not a width; each must be a whole number, at least 1")
        out.append(int(h))
    return tuple(out)
