"""The training loop: minibatch SGD with momentum on uint8 CIFAR-10, read top to bottom.

``train(config, data)`` returns a :class:`TrainResult` with the model (holding the best
parameters by validation accuracy), and a history of plain lists. It prints nothing
itself: progress goes to the ``log`` callable and the optional progress bar.

    N  batch size      D  3072      C  10
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .data import channel_stats, preprocess
from .errors import ConfigError, DivergenceError
from .losses import cross_entropy_loss
from .metrics import accuracy, predict_uint8
from .model import FullyConnectedNet
from .optim import SGD
from .schedules import lr_at


@dataclass
class TrainResult:
    model: FullyConnectedNet   # holds the best parameters by validation accuracy
    history: dict              # lists, see train()
    best_step: int             # step whose parameters the model holds
    best_val_acc: float        # validation accuracy at that step (NaN without a val split)
    steps: int                 # steps run
    seconds: float             # wall time of the loop
    preprocessing: dict        # {"mode": ..., "stats": {...} or None}: to prepare new inputs


def make_preparer(mode, stats, dtype):
    """A function ``prepare(X_uint8, out=None) -> float (N, D)`` for the model's inputs."""
    def prepare(X, out=None):
        return preprocess(X, mode=mode, stats=stats, out=out, dtype=dtype)
    return prepare


def train(config, data, *, log=None, progress=False, on_eval=None):
    """Train a FullyConnectedNet on ``data`` as ``config`` says.

    Args:
        config: a ``TrainConfig``.
        data: a ``CIFAR10`` (uint8 images, int labels, with a validation split).
        log: callable taking one line of text, called at every evaluation; None = silent.
        progress: show a tqdm progress bar (for terminals).
        on_eval: callable ``(step, history)`` after each evaluation, e.g. to report to a
            hyperparameter search (it may raise to stop the run).
    Returns:
        TrainResult. ``history`` has, for every step, ``step`` and ``loss`` (data + L2),
        and, for every evaluation, ``eval_step``, ``epoch``, ``train_loss`` (mean loss since
        the previous evaluation), ``train_acc`` (on a fixed training subset), ``val_acc``,
        ``alpha`` and ``seconds``.
    """
    from tqdm.auto import tqdm

    dtype = np.dtype(config.dtype)
    X_train, y_train = data.X_train, data.y_train
    N_train = len(X_train)
    if config.batch_size > N_train:
        raise ConfigError(
            f"batch_size={config.batch_size} is larger than the training set ({N_train} images); use a smaller --batch-size")

    # --- randomness: one seed, independent streams for init, batch order and eval subset ---
    init_rng, order_rng, eval_rng = (np.random.default_rng(s)
                                     for s in np.random.SeedSequence(config.seed).spawn(3))

    # --- model, optimizer and input preparation ---
    model = FullyConnectedNet(X_train.shape[1], config.hidden_dim, len(data.class_names),
                              reg=config.reg, dtype=dtype, rng=init_rng)
    optimizer = SGD(model.params, alpha=config.alpha, beta=config.beta)
    stats = channel_stats(X_train) if config.preprocessing == "per_channel" else None
    prepare = make_preparer(config.preprocessing, stats, dtype)

    # --- schedule of the run ---
    steps_per_epoch = N_train // config.batch_size  # full batches only
    total = config.num_iters or max(1, math.ceil(config.epochs * steps_per_epoch))
    eval_every = max(1, total // config.evals)
    eval_idx = eval_rng.choice(N_train, size=min(config.eval_train_size, N_train), replace=False)
    X_eval, y_eval = X_train[eval_idx], y_train[eval_idx]
    has_val = len(data.y_val) > 0

    history = {k: [] for k in ("step", "loss", "eval_step", "epoch", "train_loss",
                               "train_acc", "val_acc", "alpha", "seconds")}
    best_val, best_step, best_params = -1.0, 0, None
    batch = np.empty((config.batch_size, X_train.shape[1]), dtype=dtype)  # reused input buffer
    perm, pos = order_rng.permutation(N_train), 0
    loss_sum, loss_count = 0.0, 0
    bar = tqdm(total=total, disable=not progress, unit="step", dynamic_ncols=True, leave=False)
    say = (lambda s: bar.write(s)) if progress else log
    start = time.perf_counter()

    for step in range(1, total + 1):
        # 1. the next minibatch, drawn without replacement; reshuffle after each epoch
        if pos + config.batch_size > N_train:
            perm, pos = order_rng.permutation(N_train), 0
        idx = perm[pos:pos + config.batch_size]
        pos += config.batch_size
        X = prepare(X_train[idx], out=batch)  # (N, D) float
        y = y_train[idx]  # (N,)

        # 2. forward, loss, backward
        scores, cache = model.forward(X)  # (N, C)
        loss, dscores = cross_entropy_loss(scores, y)
        loss += model.reg_loss()
        if not math.isfinite(loss):
            bar.close()
            raise DivergenceError(
                f"training diverged at step {step}: the loss is {loss}; use a smaller learning rate "
                f"(--alpha {config.alpha / 10:g}) or a smaller momentum")
        model.backward(dscores, cache)

        # 3. the update: m <- beta*m + g ; theta <- theta - alpha*m, alpha from the schedule
        alpha = lr_at(step, alpha=config.alpha, total=total, schedule=config.schedule, warmup=config.warmup)
        optimizer.step(model.grads, alpha=alpha)

        history["step"].append(step)
        history["loss"].append(loss)
        loss_sum, loss_count = loss_sum + loss, loss_count + 1
        bar.update(1)

        # 4. every 1/evals of the run: accuracies, the best parameters so far, a log line
        if step % eval_every == 0 or step == total:
            train_acc = accuracy(y_eval, predict_uint8(model, X_eval, prepare))
            val_acc = accuracy(data.y_val, predict_uint8(model, data.X_val, prepare)) if has_val else float("nan")
            seconds = time.perf_counter() - start
            for k, v in (("eval_step", step), ("epoch", step / steps_per_epoch),
                         ("train_loss", loss_sum / loss_count), ("train_acc", train_acc),
                         ("val_acc", val_acc), ("alpha", alpha), ("seconds", seconds)):
                history[k].append(v)
            loss_sum, loss_count = 0.0, 0
            if not has_val or val_acc > best_val:
                best_val, best_step, best_params = val_acc, step, model.copy_params()
            if say:
                say(f"step {step:>{len(str(total))}}/{total}  epoch {step / steps_per_epoch:5.2f}  "
                    f"loss {history['train_loss'][-1]:.4f}  train_acc {train_acc:.3f}  "
                    f"val_acc {val_acc:.3f}  ({seconds:.1f}s)")
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}", val=f"{val_acc:.3f}")
            if on_eval is not None:
                on_eval(step, history)

    bar.close()
    seconds = time.perf_counter() - start
    model.load_params(best_params)
    return TrainResult(model=model, history=history, best_step=best_step,
                       best_val_acc=best_val if has_val else float("nan"), steps=total,
                       seconds=seconds, preprocessing={"mode": config.preprocessing, "stats": stats})
