"""The training loop: minibatch SGD with momentum on uint8 CIFAR-10, read top to bottom.

``train(config, data)`` returns a :class:`TrainResult` with the model (holding the best
parameters by validation accuracy) and a history of plain lists. It prints nothing
itself: progress goes to the ``log`` callable and the optional progress bar.

Everything that changes during a run and is needed to continue it (step, parameters,
momentum, random generators, the batch order, the best parameters, the history) lives
in the model, the optimizer and one :class:`LoopState`, so that a checkpoint can hold it.

    N  batch size      D  3072      C  10
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .augment import augment
from .data import Preprocessor, channel_stats
from .errors import ConfigError, DivergenceError
from .losses import cross_entropy_loss
from .metrics import accuracy, predict_uint8
from .model import FullyConnectedNet
from .optim import SGD
from .schedules import lr_at
from .threads import ThreadChooser

HISTORY_KEYS = ("step", "loss", "eval_step", "epoch", "train_loss", "train_acc", "val_acc", "alpha", "seconds")


@dataclass
class TrainResult:
    model: FullyConnectedNet   # holds the best parameters by validation accuracy
    history: dict              # lists, see train()
    best_step: int             # step whose parameters the model holds
    best_val_acc: float        # validation accuracy at that step (NaN without a val split)
    steps: int                 # steps run
    seconds: float             # wall time of the loop
    preprocessing: dict        # {"mode": ..., "stats": {...} or None}: to prepare new inputs
    stopped_early: bool = False  # early stopping ended the run before its last step


@dataclass
class LoopState:
    """The mutable state of the loop besides the model's and the optimizer's arrays."""
    order_rng: np.random.Generator   # draws the batch order
    aug_rng: np.random.Generator     # draws the augmentations
    perm: np.ndarray                 # (N_train,) the current epoch's order
    step: int = 0                    # steps done
    pos: int = 0                     # position in perm
    loss_sum: float = 0.0            # sum of losses since the last evaluation
    loss_count: int = 0
    best_val: float = -1.0
    best_step: int = 0
    best_params: dict | None = None
    evals_since_best: int = 0
    seconds: float = 0.0             # training time before this process (resumed runs)
    history: dict = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})


def make_preparer(mode, stats, dtype):
    """A :class:`~numpy_mlp.data.Preprocessor`: ``prepare(X_uint8, out=None) -> float (N, D)``."""
    return Preprocessor(mode, stats, dtype)


def total_steps(config, n_train):
    """Number of steps of the run and steps per epoch (full batches only)."""
    steps_per_epoch = n_train // config.batch_size
    return config.num_iters or max(1, math.ceil(config.epochs * steps_per_epoch)), steps_per_epoch


def build(config, data):
    """The model, optimizer, input preparation and fresh loop state for ``config``.

    One seed gives independent streams for the initial weights (and dropout masks), the
    batch order, the augmentations and the training subset used to report accuracy.
    """
    init_rng, order_rng, eval_rng, aug_rng = (np.random.default_rng(s)
                                              for s in np.random.SeedSequence(config.seed).spawn(4))
    model = FullyConnectedNet(data.X_train.shape[1], config.hidden_dim, len(data.class_names),
                              reg=config.reg, dropout=config.dropout, dtype=config.dtype, rng=init_rng)
    optimizer = SGD(model.params, alpha=config.alpha, beta=config.beta, nesterov=config.nesterov,
                    weight_decay=config.weight_decay)
    stats = channel_stats(data.X_train) if config.preprocessing == "per_channel" else None
    n = len(data.X_train)
    eval_idx = eval_rng.choice(n, size=min(config.eval_train_size, n), replace=False)
    state = LoopState(order_rng=order_rng, aug_rng=aug_rng, perm=order_rng.permutation(n))
    return model, optimizer, {"mode": config.preprocessing, "stats": stats}, eval_idx, state


def train(config, data, *, log=None, progress=False, on_eval=None, resume=None, on_step=None):
    """Train a FullyConnectedNet on ``data`` as ``config`` says.

    Args:
        config: a ``TrainConfig``.
        data: a ``CIFAR10`` (uint8 images, int labels, with a validation split).
        log: callable taking one line of text, called at every evaluation; None = silent.
        progress: show a tqdm progress bar (for terminals).
        on_eval: callable ``(step, history)`` after each evaluation, e.g. to report to a
            hyperparameter search (it may raise to stop the run).
        resume: ``(model, optimizer, preprocessing, eval_idx, state)`` as made by
            :func:`build` and restored from a checkpoint, to continue a run.
        on_step: callable ``(model, optimizer, state)`` after every step (checkpoints).
    Returns:
        TrainResult. ``history`` has, for every step, ``step`` and ``loss`` (the
        minibatch's cross-entropy, without the L2 term),
        and, for every evaluation, ``eval_step``, ``epoch``, ``train_loss`` (mean loss since
        the previous evaluation), ``train_acc`` (on a fixed training subset), ``val_acc``,
        ``alpha`` and ``seconds``.
    """
    from tqdm import tqdm  # a text bar: progress=True only comes from a terminal

    X_train, y_train = data.X_train, data.y_train
    N_train = len(X_train)
    if config.batch_size > N_train:
        raise ConfigError(f"batch_size={config.batch_size} is larger than the training set "
                          f"({N_train} images); use a smaller --batch-size")

    # --- model, optimizer, input preparation and loop state: new, or from a checkpoint ---
    model, optimizer, preprocessing, eval_idx, s = resume or build(config, data)
    prepare = make_preparer(preprocessing["mode"], preprocessing["stats"], model.dtype)
    total, steps_per_epoch = total_steps(config, N_train)
    eval_every = max(1, total // config.evals)
    X_eval, y_eval = X_train[eval_idx], y_train[eval_idx]
    has_val = len(data.y_val) > 0
    history = s.history
    batch = np.empty((config.batch_size, X_train.shape[1]), dtype=model.dtype)  # reused input buffer
    bar = tqdm(total=total, initial=s.step, disable=not progress, unit="step", dynamic_ncols=True, leave=False)
    say = (lambda line: bar.write(line)) if progress else log
    start = time.perf_counter() - s.seconds
    stopped_early = False
    threads = ThreadChooser(config.threads)  # BLAS threads per step: fixed, or timed choice
    # overflow warnings would only clutter what the non-finite-loss check below says clearly
    old_errors = np.seterr(over="ignore", invalid="ignore", divide="ignore")

    try:
        while s.step < total:
            step = s.step + 1
            threads.tick()
            # 1. the next minibatch, drawn without replacement; reshuffle after each epoch
            if s.pos + config.batch_size > N_train:
                s.perm, s.pos = s.order_rng.permutation(N_train), 0
            idx = s.perm[s.pos:s.pos + config.batch_size]
            s.pos += config.batch_size
            X_uint8 = augment(X_train[idx], s.aug_rng, flip=config.flip, crop_pad=config.crop_pad)
            X = prepare(X_uint8, out=batch)  # (N, D) float
            y = y_train[idx]  # (N,)

            # 2. forward, loss, backward
            scores, cache = model.forward(X, train=True)  # (N, C)
            # the loss recorded is the cross-entropy alone: with L2 on, its term
            # (0.5*reg*sum W^2, model.reg_loss()) would swamp the curve; its gradient is in backward
            loss, dscores = cross_entropy_loss(scores, y, label_smoothing=config.label_smoothing)
            if not math.isfinite(loss):
                raise DivergenceError(
                    f"training diverged at step {step}: the loss is {loss}; use a smaller learning rate "
                    f"(e.g. --alpha {config.alpha / 10:g}) or a smaller momentum")
            model.backward(dscores, cache)

            # 3. the update: m <- beta*m + g ; theta <- theta - alpha*m, alpha from the schedule
            alpha = lr_at(step, alpha=config.alpha, total=total, schedule=config.schedule, warmup=config.warmup)
            optimizer.step(model.grads, alpha=alpha)

            s.step = step
            history["step"].append(step)
            history["loss"].append(loss)
            s.loss_sum, s.loss_count = s.loss_sum + loss, s.loss_count + 1
            bar.update(1)

            # 4. every 1/evals of the run: accuracies, the best parameters so far, a log line
            if step % eval_every == 0 or step == total:
                train_acc = accuracy(y_eval, predict_uint8(model, X_eval, prepare))
                val_acc = accuracy(data.y_val, predict_uint8(model, data.X_val, prepare)) if has_val else float("nan")
                seconds = time.perf_counter() - start
                for k, v in (("eval_step", step), ("epoch", step / steps_per_epoch),
                             ("train_loss", s.loss_sum / s.loss_count), ("train_acc", train_acc),
                             ("val_acc", val_acc), ("alpha", alpha), ("seconds", seconds)):
                    history[k].append(v)
                s.loss_sum, s.loss_count = 0.0, 0
                if not has_val or val_acc > s.best_val:
                    s.best_val, s.best_step, s.best_params = val_acc, step, model.copy_params()
                    s.evals_since_best = 0
                else:
                    s.evals_since_best += 1
                if say:
                    say(f"step {step:>{len(str(total))}}/{total}  epoch {step / steps_per_epoch:5.2f}  "
                        f"loss {history['train_loss'][-1]:.4f}  train_acc {train_acc:.3f}  "
                        f"val_acc {val_acc:.3f}  alpha {alpha:.3g}  ({seconds:.1f}s)")
                bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}", val=f"{val_acc:.3f}")
                if on_eval is not None:
                    on_eval(step, history)
                if config.patience and s.evals_since_best >= config.patience:
                    stopped_early = True
                    if say:
                        say(f"early stop at step {step}: no better val_acc in {config.patience} evaluations; "
                            f"keeping step {s.best_step} (val_acc {s.best_val:.3f})")
                    break

            s.seconds = time.perf_counter() - start
            if on_step is not None:
                on_step(model, optimizer, s)
    finally:
        bar.close()
        threads.close()
        np.seterr(**old_errors)

    seconds = time.perf_counter() - start
    if s.best_params is not None:
        model.load_params(s.best_params)
    return TrainResult(model=model, history=history, best_step=s.best_step,
                       best_val_acc=s.best_val if has_val else float("nan"), steps=s.step,
                       seconds=seconds, preprocessing=preprocessing, stopped_early=stopped_early)
