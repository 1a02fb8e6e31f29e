"""Checkpoints during training: when to write one, Ctrl-C, and continuing a run from one.

The file itself, ``checkpoint.npz``, both written and read, is
:mod:`numpy_mlp.training.checkpoint_file`. Here: :class:`Checkpointer`, the ``on_step``
callback of :func:`numpy_mlp.training.loop.train` that writes them every
:func:`checkpoint_interval` steps or ``checkpoint_minutes`` of training, whichever comes
first, and, used as a context manager, turns Ctrl-C or SIGTERM
into "finish this step, save a checkpoint, stop" (:class:`~numpy_mlp.errors.Interrupted`);
:func:`restore`, which rebuilds the :class:`~numpy_mlp.training.loop.RunState` exactly as
``train(..., state=...)`` takes it; and :func:`data_fingerprint`, the summary of the data
that a resumed run must find again.
"""

from __future__ import annotations

import math
import time
import zlib
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from ..data.preprocessing import Preprocessor
from ..errors import CheckpointError, Interrupted
from .checkpoint_file import LOOP_FIELDS, read_checkpoint, save_checkpoint
from .config import RESUMABLE_FIELDS, TrainConfig
from .loop import LoopState, RunState, build, total_steps
from .signals import catching_stop_signals, stop_now


def data_fingerprint(data):
    """A small summary of a ``Dataset`` that a resumed run must find again: the split sizes,
    CRC-32s of the labels and of every image's bytes (train, val and test, in order), and
    the class names. The images' CRC costs about 0.1 s for CIFAR-10's 184 MB."""
    images = 0
    for X in (data.X_train, data.X_val, data.X_test):
        images = zlib.crc32(np.ascontiguousarray(X), images)
    return {"n_train": int(len(data.y_train)), "n_val": int(len(data.y_val)),
            "train_labels_crc32": _crc32(data.y_train), "val_labels_crc32": _crc32(data.y_val),
            "test_labels_crc32": _crc32(data.y_test), "images_crc32": images,
            "class_names": list(data.class_names)}


def _crc32(labels):
    return zlib.crc32(np.ascontiguousarray(labels, dtype=np.int64).tobytes())


def _check_same_data(path, recorded, data):
    """Raise unless ``data`` is what the checkpoint at ``path`` recorded (``recorded``, its
    fingerprint): the same classes (one line naming both lists), then the same images and
    labels. A checkpoint from before images, test labels and class names were recorded is
    compared on what it holds: split sizes and training and validation labels."""
    hint = "resume with the --data-dir the run was trained on, or start a new run"
    if "class_names" in recorded:
        data.require_classes(recorded["class_names"], whose=f"the run of {path}", then=hint)
    now = data_fingerprint(data)
    differ = [k for k in recorded if recorded[k] != now.get(k)]
    if differ:
        what = ("other images, with the same labels" if differ == ["images_crc32"] else
                "other images or labels: another data folder, changed files, --val-size or "
                "split")
        raise CheckpointError(f"{path} was written on other data ({what}) than the data in "
                              f"{data.source}; {hint}")


def restore(path, config, data):
    """Rebuild the :class:`~numpy_mlp.training.loop.RunState` in the checkpoint at ``path``.

    ``config`` and ``data`` must be those of the run that wrote it (up to
    ``RESUMABLE_FIELDS``); the result goes to ``train(config, data, state=...)``.
    """
    meta, arrays = read_checkpoint(path)
    # through TrainConfig, so that fields added since (at their defaults) compare equal
    saved, now = TrainConfig.from_dict(meta["config"]).to_dict(), config.to_dict()
    for k in RESUMABLE_FIELDS:
        saved.pop(k, None)
        now.pop(k, None)
    if saved != now:
        diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        raise CheckpointError(f"{path} was written by a run with other settings "
                             f"({', '.join(diff)}) than its config.json; resume with the run "
                             "folder it came from")
    if meta.get("data") is not None:
        _check_same_data(path, meta["data"], data)

    try:  # the saved preprocessor, so that build() need not fit it on the images again
        whitening = {k.removeprefix("whiten/"): v for k, v in arrays.items()
                     if k.startswith("whiten/")}
        preprocessor = Preprocessor.from_dict(_preprocessor_dict(meta, arrays),
                                              np.dtype(config.dtype), whitening)
        if preprocessor.mode != config.preprocessing:
            raise ValueError("preprocessing mode")
    except (KeyError, ValueError, TypeError) as e:
        raise _damaged(path, e) from None
    run = build(config, data, preprocessor)
    model, optimizer = run.model, run.optimizer
    try:
        model.load_params({**{k: arrays[f"param/{k}"] for k in model.params},
                           **{k: arrays[f"buffer/{k}"] for k in model.buffers}})
        optimizer.load_state_dict({k: _same_shape(arrays[f"m/{k}"], v)
                                   for k, v in optimizer.m.items()})
        best = None
        if f"best/{next(iter(model.params))}" in arrays:
            best = {k: _same_shape(arrays[f"best/{k}"], v).astype(v.dtype)
                    for k, v in (*model.params.items(), *model.buffers.items())}
        loop = meta["loop"]
        model.rng.bit_generator.state = meta["rng"]["model"]
        s = LoopState(order_rng=np.random.default_rng(), aug_rng=np.random.default_rng(),
                      perm=arrays["perm"].astype(np.int64), best_params=best,
                      history={k: list(v) for k, v in meta["history"].items()},
                      mix_rng=run.loop.mix_rng, best_ema=loop.get("best_ema", False),
                      teacher_digest=loop.get("teacher_digest", ""),
                      **{k: loop[k] for k in LOOP_FIELDS})
        s.order_rng.bit_generator.state = meta["rng"]["order"]
        s.aug_rng.bit_generator.state = meta["rng"]["aug"]
        if "mix" in meta["rng"]:  # absent before mixing existed: that run never drew from it
            s.mix_rng.bit_generator.state = meta["rng"]["mix"]
        if run.ema is not None:
            run.ema.load_state_dict({k: arrays[f"ema/{k}"] for k in run.ema.averages})
        eval_idx = arrays["eval_idx"].astype(np.int64)
    except (KeyError, ValueError, TypeError) as e:
        raise _damaged(path, e) from None
    n_train = len(data.y_train)
    if (len(s.perm) != n_train or not 0 <= s.pos <= n_train
            or (eval_idx.size and eval_idx.max() >= n_train)):
        raise CheckpointError(f"{path} does not fit the training set of {n_train} images; resume "
                             "with the same --data-dir")
    return RunState(model, optimizer, preprocessor, eval_idx, s, run.ema)


def _damaged(path, e):
    """The error for a checkpoint whose contents do not fit the run (``e`` says what)."""
    return CheckpointError(f"{path} does not fit the run's model or data ({type(e).__name__}: "
                           f"{e}); it is damaged: delete it to start the run again from step 0")


def _preprocessor_dict(meta, arrays):
    """``Preprocessor.to_dict()`` as saved: in the JSON part, or (format 1) a mode there and
    the statistics as arrays."""
    if "preprocessor" in meta:
        return meta["preprocessor"]
    stats = {k: arrays[f"stats/{k}"] for k in ("mean", "std")} if "stats/mean" in arrays else None
    return {"mode": meta["preprocessing_mode"], "stats": stats}


def checkpoint_interval(config, n_train):
    """Steps between checkpoints: ``config.checkpoint_every``, or 20 per run if it is None."""
    if config.checkpoint_every is not None:
        return config.checkpoint_every
    total, _ = total_steps(config, n_train)
    return max(1, math.ceil(total / 20))


class Checkpointer:
    """``on_step`` callback for ``train``: a checkpoint every ``every`` steps, once
    ``config.checkpoint_minutes`` have passed since the last one (or since training began),
    at the last step (the early stop's included), and when Ctrl-C was pressed or SIGTERM came.
    A checkpoint holds the whole state whatever the step, so when they come never changes
    the results.

    Used as a context manager (in the main thread), the first Ctrl-C (SIGINT) or SIGTERM
    (``kill``, ``timeout``, a job scheduler's notice before it kills) only sets a flag: the
    current step finishes, a checkpoint is written and :class:`Interrupted` is raised with
    the command that continues the run. A second signal stops at once (the last checkpoint
    stays). ``every=0`` writes no periodic checkpoints.

    Args:
        path: the checkpoint file.
        config: the run's config.
        total: the run's number of steps.
        resume_hint: the command line that continues the run, for the message.
        fingerprint, data_dir: stored in every checkpoint (see
            :func:`~numpy_mlp.training.checkpoint_file.save_checkpoint`).
        folder: the :class:`~numpy_mlp.runs.folder.RunFolder` that writes ``path`` (its
            file name), so that a failed write is one line; None: written directly.
        clock: seconds, for the minutes between checkpoints (default ``time.monotonic``).
    """

    def __init__(self, path, config, *, every, total, resume_hint, fingerprint=None, data_dir=None,
                 folder=None, clock=None):
        self.path, self.folder = Path(path), folder
        self.config = config
        self.every, self.total = every, total
        self.resume_hint = resume_hint
        self.fingerprint, self.data_dir = fingerprint, data_dir
        self.interrupted = 0  # the number of the signal that asked to stop, 0 = none
        self.saved_step = None  # step of the last checkpoint written by this process
        self._signals = ExitStack()
        self._clock = clock or time.monotonic
        self._last = self._clock()  # when the last checkpoint was written, or training began

    def __repr__(self):
        return f"Checkpointer({str(self.path)!r}, every={self.every}, saved_step={self.saved_step})"

    def save(self, run):
        def write(target):
            save_checkpoint(target, self.config, run, fingerprint=self.fingerprint,
                            data_dir=self.data_dir)

        if self.folder is None:
            write(self.path)
        else:
            self.folder.write(self.path.name, write)
        self.saved_step = run.loop.step
        self._last = self._clock()

    def __call__(self, run):
        step, patience = run.loop.step, self.config.patience
        stops = patience and run.loop.evals_since_best >= patience  # early stopping ends the run
        periodic = self.every and step % self.every == 0
        minutes = self.config.checkpoint_minutes
        overdue = minutes and self._clock() - self._last >= 60 * minutes
        if periodic or overdue or step == self.total or self.interrupted or stops:
            self.save(run)
        if self.interrupted:
            raise Interrupted(f"stopped at step {step} of {self.total}; checkpoint saved to "
                              f"{self.path}; continue with: {self.resume_hint}",
                              signum=self.interrupted)

    def _on_signal(self, signum, frame):
        if self.interrupted:  # the second signal: stop now
            stop_now(signum, frame)
        self.interrupted = signum

    def __enter__(self):
        self._signals.enter_context(catching_stop_signals(self._on_signal))
        return self

    def __exit__(self, *exc):
        self._signals.close()  # the handlers from before
        return False


def _same_shape(a, like):
    if a.shape != like.shape:
        raise ValueError(f"shape {a.shape}, expected {like.shape}")
    return a

