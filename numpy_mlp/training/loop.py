"""The training loop: minibatch SGD with momentum on uint8 CIFAR-10, read top to bottom.

``train(config, data)`` returns a :class:`TrainResult` with the model (holding the best
parameters by validation accuracy) and a history of plain lists. It prints nothing: the
caller's ``on_step`` and ``on_eval`` callbacks draw progress bars, write log lines (see
:mod:`numpy_mlp.runs.display`), save checkpoints or prune a search trial.

Everything a run is made of and changes while it trains (parameters, momentum, the
input normalisation, random generators, the batch order, the best parameters, the
history) is one :class:`RunState`, so that a checkpoint can hold it and ``train`` can go
on from it.

    N  batch size      D  3072      H  hidden width      C  10
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..data.augment import augment, first_flips
from ..data.dataset import Geometry
from ..data.deform import Deformer
from ..data.mixing import Mixer
from ..data.preprocessing import Preprocessor
from ..errors import ConfigError, DivergenceError
from ..memory import available_bytes, check_fits
from ..nn.architecture import Architecture
from ..nn.ema import EMA
from ..nn.losses import cross_entropy_loss, distillation_loss
from ..nn.model import FullyConnectedNet
from ..nn.optim import SGD
from ..nn.rules import setting
from ..nn.schedules import lr_at
from .config import TrainConfig
from .inference import predict_labels
from .metrics import accuracy
from .teacher import Teacher
from .threads import ThreadChooser

HISTORY_KEYS = ("step", "loss", "eval_step", "epoch", "train_loss", "train_acc", "val_acc", "alpha",
                "seconds")
EMA_HISTORY_KEYS = ("val_acc_ema",)  # only in the history of a run with an EMA (config.ema > 0)


@dataclass
class TrainResult:
    model: FullyConnectedNet   # holds the best parameters by validation accuracy
    history: dict              # lists, see train()
    best_step: int             # step whose parameters the model holds
    best_val_acc: float        # validation accuracy at that step (NaN without a val split)
    steps: int                 # steps run
    seconds: float             # wall time of the loop
    preprocessor: Preprocessor  # prepares new inputs as the model was trained on them
    stopped_early: bool = False  # early stopping ended the run before its last step
    best_source: str = "raw"     # the model's parameters: "raw" (trained) or "ema" (averaged)
    # what its model file records (numpy_mlp.save_model): the run's config and its data's
    config: TrainConfig | None = None  # the config it was trained with
    class_names: tuple = ()            # the C class names, in label order
    geometry: Geometry | None = None   # the Geometry of its input rows (D = geometry.D)


@dataclass(frozen=True)
class RowWeights:
    """Weights of the rows of a run's data (the scikit-learn estimator's sample_weight and
    class_weight): a training row's loss counts ``train[i]`` times, a validation row's
    answer ``val[j]`` times in the validation accuracy. A weight of 2 counts as the row
    given twice (:func:`~numpy_mlp.nn.losses.cross_entropy_loss`)."""
    train: np.ndarray  # (N_train,) non-negative, mean 1 (so that the loss keeps its scale)
    val: np.ndarray    # (N_val,) non-negative


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
    mix_rng: np.random.Generator | None = None  # draws MixUp/CutMix (None: a run without)
    best_ema: bool = False           # best_params are the EMA's averages, not trained weights
    teacher_digest: str = ""         # sha256 of the teacher's model files ("": no teacher)


@dataclass
class RunState:
    """One training run at some step: what :func:`build` makes, a checkpoint holds and
    ``train(config, data, state=...)`` continues."""
    model: FullyConnectedNet     # the current parameters; its generator draws the dropout masks
    optimizer: SGD               # the momentum
    preprocessor: Preprocessor   # the inputs' normalisation (training-set statistics)
    eval_idx: np.ndarray         # (n_eval,) the training images the train accuracy is measured on
    loop: LoopState              # step, batch order, generators, best so far, history
    ema: EMA | None = None       # the weights' moving average (None: config.ema == 0)


def total_steps(config, n_train):
    """Number of steps of the run and steps per epoch (full batches only)."""
    steps_per_epoch = n_train // config.batch_size
    return config.num_iters or max(1, math.ceil(config.epochs * steps_per_epoch)), steps_per_epoch


def _generators(seed):
    """Independent generators from one seed: the initial weights (then the dropout masks),
    the batch order, the training subset that train accuracy uses, the augmentations, the
    mixing. Children of one SeedSequence: adding a child leaves the others' streams as
    they were, so runs without mixing are unchanged by its generator."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)]


def _new_model(config, input_dim, num_classes, rng):
    return FullyConnectedNet(input_dim, config.hidden_dim, num_classes, reg=config.reg,
                             dropout=config.dropout, norm=config.norm,
                             activation=config.activation, blocks=config.blocks,
                             expansion=config.expansion, dtype=config.dtype, rng=rng)


def network_bytes(config, input_dim, num_classes):
    """Memory a run of ``config`` takes for its network: each weight with its gradient and
    momentum (and its average, with ``ema``), and a minibatch's activations, forward and
    backward, at every layer."""
    arch = Architecture(input_dim, config.hidden_dim, num_classes, norm=config.norm,
                        blocks=config.blocks, expansion=config.expansion)
    weights = sum(math.prod(shape) for shape in arch.param_shapes().values())
    widths = sum(fan_out for _, fan_out in arch.affine_dims())
    copies = 4 if config.ema else 3
    return np.dtype(config.dtype).itemsize * (copies * weights + 4 * config.batch_size * widths)


def check_network_fits(config, input_dim, num_classes):
    """ConfigError naming the network and narrower widths that fit, before any of it is made
    (memory.check_fits)."""
    need = network_bytes(config, input_dim, num_classes)
    have = available_bytes()
    if have is None or need <= have:
        return
    widths = config.hidden_dim
    for _ in range(40):  # halve the widths until the network fits (or they are all 1)
        widths = tuple(max(1, h // 2) for h in widths)
        if network_bytes(config.replace(hidden_dim=widths), input_dim, num_classes) <= have:
            break
    check_fits(f"the network (input {input_dim}, hidden {','.join(map(str, config.hidden_dim))}, "
               f"{num_classes} classes, batch {config.batch_size}) with its gradients and "
               f"momentum", need, f"use narrower layers, e.g. {setting('hidden_dim', widths)}")


def initial_params(config, input_dim, num_classes):
    """The parameters a run of ``config`` starts from, ``{"W1": (D, H), "b1": (H,), ...}``,
    without building the rest of the run (no data needed); ``input_dim`` is the model's
    (K for whiten)."""
    return _new_model(config, input_dim, num_classes, _generators(config.seed)[0]).params


def build(config, data, preprocessor=None):
    """The :class:`RunState` of a new run of ``config`` on ``data``, at step 0.

    ``preprocessor``: the run's own, if known (a checkpoint's), instead of fitting it on the
    training images again (for whiten a 20 s eigendecomposition)."""
    init_rng, order_rng, eval_rng, aug_rng, mix_rng = _generators(config.seed)
    n, D = data.X_train.shape
    input_dim = (preprocessor.output_dim(D) if preprocessor is not None
                 else min(config.whiten_dim, D) if config.preprocessing == "whiten" else D)
    check_network_fits(config, input_dim, len(data.class_names))
    if preprocessor is None:
        preprocessor = Preprocessor.fit(
            config.preprocessing, data.X_train, np.dtype(config.dtype),
            channels=data.geometry.channels, whiten_dim=config.whiten_dim,
            whiten_eps=config.whiten_eps)
    model = _new_model(config, preprocessor.output_dim(D), len(data.class_names), init_rng)
    # the optimizer adds the L2 gradient (backward(..., add_l2=False) below leaves it out)
    optimizer = SGD(model.params, alpha=config.alpha, beta=config.beta, nesterov=config.nesterov,
                    weight_decay=config.weight_decay, l2=model.reg)
    eval_idx = eval_rng.choice(n, size=min(config.eval_train_size, n), replace=False)
    loop = LoopState(order_rng=order_rng, aug_rng=aug_rng, perm=order_rng.permutation(n),
                     mix_rng=mix_rng)
    ema = None
    if config.ema:
        ema = EMA(model.params, config.ema)
        loop.history.update({k: [] for k in EMA_HISTORY_KEYS})
    return RunState(model, optimizer, preprocessor, eval_idx, loop, ema)


def alternate_flips(config, n_train):
    """(n_train,) bool, the training images a run with alternating flips mirrors in its even
    epochs (from 0); its odd epochs mirror the others. None for a run without them."""
    if config.flip and config.flip_mode == "alternate":
        return first_flips(n_train, config.seed)
    return None


def flips_of(first, idx, step, steps_per_epoch):
    """(N,) bool, which images of the batch ``idx`` (N,) step ``step`` mirrors with
    alternating flips: those of ``first`` (:func:`alternate_flips`) in the run's even
    epochs, the others in its odd ones; an epoch is ``steps_per_epoch`` steps, a full pass
    between reshuffles. NumPy arrays or, for the benchmark's PyTorch side, tensors."""
    return first[idx] ^ bool((step - 1) // steps_per_epoch % 2)


def _smaller_batch(n):
    """A batch size that fits ``n`` training images: the largest power of two up to n."""
    return 1 << (max(1, n).bit_length() - 1)


def train(config, data, *, state=None, on_step=None, on_eval=None, weights=None, teacher=None):
    """Train a FullyConnectedNet on ``data`` as ``config`` says.

    Args:
        config: a ``TrainConfig``.
        data: a :class:`~numpy_mlp.data.dataset.Dataset` (uint8 images of its geometry, int
            labels, with a validation split), or numeric features (N, D) in one with
            ``preprocessing="per_feature"`` and no augmentation
            (``numpy_mlp.sklearn.feature_data``).
        state: a :class:`RunState` to continue (restored from a checkpoint); default: a new
            run, :func:`build`. It is updated in place, step by step.
        on_step: callable ``(state)`` after every step (checkpoints, a progress bar).
        on_eval: callable ``(step, history)`` after each evaluation, whose figures are the
            last entries of the history's evaluation lists (log lines; a search's pruner,
            which may raise to stop the run).
        weights: :class:`RowWeights` of the data's training and validation rows, or None
            (every row weighs 1). Not with MixUp or CutMix: a mixed row has two weights.
        teacher: the :class:`~numpy_mlp.training.teacher.Teacher` of ``config.teacher``
            already read (a caller that checked it before building the run), or None to
            read it here.
    Returns:
        TrainResult. ``history`` has, for every step, ``step`` and ``loss`` (the
        minibatch's cross-entropy, weighted with ``weights``, without the L2 term; with a
        teacher, mixed with the distillation term as the loss that is minimised), and,
        for every evaluation, ``eval_step``, ``epoch``, ``train_loss`` (mean loss since the
        previous evaluation), ``train_acc`` (on a fixed training subset), ``val_acc``,
        ``alpha`` and ``seconds``; with an EMA (``config.ema``) also ``val_acc_ema``, the
        average's validation accuracy.
    """
    X_train, y_train = data.X_train, data.y_train
    geometry = data.geometry
    if config.batch_size > len(X_train):
        raise ConfigError(f"batch_size={config.batch_size} is larger than the training set "
                          f"({len(X_train)} images); use a smaller batch, e.g. "
                          f"{setting('batch_size', _smaller_batch(len(X_train)))}")
    if teacher is None:  # still None without distillation; read before the whitening's fit
        teacher = Teacher.of(config, data)
    run = state or build(config, data)
    model, s = run.model, run.loop
    total, steps_per_epoch = total_steps(config, len(X_train))
    eval_every = max(1, total // config.evals)
    batch = np.empty((config.batch_size, model.input_dim), dtype=model.dtype)  # reused input
    start = time.perf_counter() - s.seconds
    stopped_early = False
    threads = ThreadChooser(config.threads)  # BLAS threads per step: fixed, or from the load
    mixer = Mixer.of(config, len(data.class_names), geometry)  # None: no MixUp/CutMix
    deformer = Deformer.of(config, geometry)  # None: no rotations, zoom, shear, elastic
    first = alternate_flips(config, len(X_train))  # None: random flips, or none
    if weights is not None and mixer is not None:
        raise ConfigError("row weights do not combine with MixUp or CutMix (a mixed row has "
                          "two weights): use mixup=0 and cutmix=0, or no weights")
    if teacher is not None:
        if s.teacher_digest and s.teacher_digest != teacher.digest:
            raise ConfigError(f"the teacher's model files ({config.teacher}) changed since "
                              f"this run began, so it cannot go on as it would have; put them "
                              f"back, or start a new run")
        s.teacher_digest = teacher.digest
        teacher.bind(run.preprocessor)
    # overflow warnings would only clutter what the non-finite-loss check below says clearly
    old_errors = np.seterr(over="ignore", invalid="ignore", divide="ignore")
    try:
        while s.step < total:
            step = s.step + 1
            threads.tick()
            # 1. the next minibatch, drawn without replacement; reshuffle after each epoch
            if s.pos + config.batch_size > len(X_train):
                s.perm, s.pos = s.order_rng.permutation(len(X_train)), 0
            idx = s.perm[s.pos:s.pos + config.batch_size]
            s.pos += config.batch_size
            flip = config.flip if first is None else flips_of(first, idx, step, steps_per_epoch)
            X_uint8 = augment(X_train[idx], s.aug_rng, flip=flip, crop_pad=config.crop_pad,
                              geometry=geometry, deformer=deformer)
            X, y = run.preprocessor(X_uint8, out=batch), y_train[idx]  # (N, D or K) float, (N,)
            if mixer is not None:  # MixUp/CutMix: y becomes (N, C) soft targets
                X, y = mixer(X_uint8, X, y, s.mix_rng, lambda U: run.preprocessor(U, out=batch))
            if teacher is not None:  # (N, C) its softened probabilities of the same images
                soft = teacher.targets(X_uint8, X)

            # 2. forward, loss, backward. The loss recorded is the cross-entropy alone: with
            # L2 on, its term (model.reg_loss()) would swamp the curve (the optimizer adds its
            # gradient)
            scores, cache = model.forward(X, train=True)  # (N, C)
            w = None if weights is None else weights.train[idx]  # (N,) the rows' weights
            loss, dscores = cross_entropy_loss(scores, y, label_smoothing=config.label_smoothing,
                                               weights=w)
            if teacher is not None:  # distillation: (1 - W) * the labels' + W * the teacher's
                kd, dkd = distillation_loss(scores, soft, config.distill_temperature, weights=w)
                loss = (1 - config.distill) * loss + config.distill * kd
                dscores *= 1 - config.distill
                dkd *= config.distill
                dscores += dkd
            if not math.isfinite(loss):
                raise DivergenceError(
                    f"training diverged at step {step}: the loss is {loss}; use a smaller learning "
                    f"rate (e.g. {setting('alpha', config.alpha / 10)}) or a smaller "
                    f"momentum")
            model.backward(dscores, cache, add_l2=False)  # the optimizer adds reg * W

            # 3. the update: m <- beta*m + g ; theta <- theta - alpha*m, alpha from the schedule
            alpha = lr_at(step, alpha=config.alpha, total=total, schedule=config.schedule,
                          warmup=config.warmup)
            run.optimizer.step(model.grads, alpha=alpha)
            if run.ema is not None:
                run.ema.update(model.params, step)
            s.step = step
            s.history["step"].append(step)
            s.history["loss"].append(loss)
            s.loss_sum, s.loss_count = s.loss_sum + loss, s.loss_count + 1

            # 4. every 1/evals of the run: accuracies, the best parameters so far
            if step % eval_every == 0 or step == total:
                record_evaluation(run, data, epoch=step / steps_per_epoch, alpha=alpha,
                                  seconds=time.perf_counter() - start,
                                  val_weights=None if weights is None else weights.val)
                if on_eval is not None:
                    on_eval(step, s.history)
                stopped_early = bool(config.patience) and s.evals_since_best >= config.patience
            s.seconds = time.perf_counter() - start
            if on_step is not None:
                on_step(run)
            if stopped_early:  # after on_step, so that the early stop's step is checkpointed
                break
    finally:
        threads.close()
        np.seterr(**old_errors)

    return result_of(run, config, data, seconds=time.perf_counter() - start,
                     stopped_early=stopped_early)


def result_of(run, config, data, *, seconds, stopped_early):
    """The :class:`TrainResult` of the :class:`RunState` ``run`` as it stands (the end of
    ``train``, or a finished run restored from its last checkpoint): its model is given
    the best parameters so far."""
    s = run.loop
    if s.best_params is not None:
        run.model.load_params(s.best_params)
    has_val = len(data.y_val) > 0
    return TrainResult(model=run.model, history=s.history, best_step=s.best_step,
                       best_val_acc=s.best_val if has_val else float("nan"), steps=s.step,
                       seconds=seconds, preprocessor=run.preprocessor, stopped_early=stopped_early,
                       best_source="ema" if s.best_ema else "raw", config=config,
                       class_names=tuple(data.class_names), geometry=data.geometry)


def record_evaluation(run, data, *, epoch, alpha, seconds, val_weights=None):
    """One evaluation of ``run`` at its current step, appended to its history: accuracy on
    its training subset and on the validation split; the parameters are kept as the best
    so far if their validation accuracy is higher (always, without a validation split).
    ``val_weights`` (N_val,): the validation rows' weights in that accuracy (None: all 1).

    With an EMA, its averages are rated on the validation split too (``val_acc_ema``) and
    kept instead if they beat both the trained weights (a tie goes to the trained ones)
    and the best so far; the train accuracy stays the trained weights'."""
    model, s = run.model, run.loop
    train_pred = predict_labels(model, run.preprocessor, data.X_train[run.eval_idx])
    train_acc = accuracy(data.y_train[run.eval_idx], train_pred)
    val_pred = predict_labels(model, run.preprocessor, data.X_val)
    val_acc = accuracy(data.y_val, val_pred, val_weights)  # NaN without a validation split
    for k, v in (("eval_step", s.step), ("epoch", epoch),
                 ("train_loss", s.loss_sum / s.loss_count), ("train_acc", train_acc),
                 ("val_acc", val_acc), ("alpha", alpha), ("seconds", seconds)):
        s.history[k].append(v)
    s.loss_sum, s.loss_count = 0.0, 0
    candidate, from_ema = val_acc, False
    if run.ema is not None:
        with run.ema.swapped_into(model):
            val_acc_ema = accuracy(data.y_val, predict_labels(model, run.preprocessor, data.X_val),
                                   val_weights)
        s.history["val_acc_ema"].append(val_acc_ema)
        from_ema = val_acc_ema > val_acc  # NaN (no split) compares False: the trained weights
        candidate = val_acc_ema if from_ema else val_acc
    if not len(data.y_val) or candidate > s.best_val:
        s.best_val, s.best_step, s.best_ema = candidate, s.step, from_ema
        if from_ema:  # the averages, with the model's buffers (batch norm's) as they are
            with run.ema.swapped_into(model):
                s.best_params = model.copy_params()
        else:
            s.best_params = model.copy_params()
        s.evals_since_best = 0
    else:
        s.evals_since_best += 1
