"""Whole recipes end to end: numpy-mlp's trainer against PyTorch doing the same recipe.

    .venv/bin/pip install -e '.[bench]'          # once: torch==2.13.0, the CPU wheel on disk
    .venv/bin/python benchmarks/recipes.py       # the step benchmark: every preset and default
    .venv/bin/python benchmarks/recipes.py --time-to-accuracy fast   # full runs, both sides
                                                                     # (any recipe)

    .venv/bin/python benchmarks/recipes.py --steps 5 --repeats 1   # smoke test, a few min
                                                                   # (the whitening's fit);
                                                                   # its figures mean nothing

The recipes (``RECIPES``) are the presets of numpy_mlp/training/presets.py **as they are**
(whitened, with their augmentations; a new preset appears here by itself) and the default
``numpy-mlp train`` (``TrainConfig()``), all run by default. Beside them, run only when
named: each preset on per-channel images (``NAME-per-channel``, what the tables of
2026-12-02 measured as "deep" and "two-layer") and the deep preset at batch 128
(``deep-128``), to set the batch-size lever against (``--recipes deep,deep-128 --no-torch``),
and the hour preset at twice its batch (``hour-512``: what growing the batch could save).

**The step benchmark** (the default mode). For each recipe, a fixed number of real steps
runs end to end in a fresh process, first numpy-mlp's trainer (``build`` and ``train``) and
then PyTorch doing the same recipe, A B A B for ``--repeats`` repeats, and medians are
reported:

- PyTorch's loop is the one it is usually written with: the batch taken from a permutation
  of the uint8 training tensor and augmented as uint8 (random crops with zero padding and
  left-right flips (with ``flip_mode="alternate"`` the same images mirrored in the same
  epochs as numpy-mlp's, from :func:`~numpy_mlp.data.augment.first_flips`); with
  ``rotate``/``zoom``/``shear``/``elastic``, the same deformations as
  numpy-mlp's :class:`~numpy_mlp.data.deform.Deformer`: the bank of index maps that the run's
  seed makes, as a tensor, each image drawing a map, a mirror and a crop's shift from
  PyTorch's generator, and one ``torch.take`` through the zero canvas), conversion to
  float32 and the recipe's normalisation: per image, per channel with the same
  training-set statistics, or for ``whiten`` the same fixed linear map, numpy-mlp's fitted
  :class:`~numpy_mlp.data.preprocessing.Preprocessor` (per channel, then ``x @ proj -
  center @ proj``, (D, K) float32, no gradient) applied as one ``torch.addmm``. Then
  ``nn.Linear``/``nn.ReLU``/``nn.Dropout``, ``nn.CrossEntropyLoss(label_smoothing=)``,
  ``torch.optim.SGD(lr, momentum, dampening=0, nesterov, weight_decay=reg)`` with the decay
  on the weights only (a second parameter group holds the biases): numpy-mlp's L2, ``loss
  += 0.5*reg*sum(W**2)``, adds ``reg*W`` to each weight gradient, which is what
  ``weight_decay`` does, and its momentum ``m <- beta*m + g; theta <- theta - alpha*m`` is
  PyTorch's with ``dampening=0``. Both follow the same learning-rate schedule and warm-up
  (``numpy_mlp.nn.schedules.lr_at``), start from the same kind of weights (He normal, zero
  biases) and read the loss every step; the progress lines on stderr give each run's mean
  training loss, which should agree to the spread of seeds. What the PyTorch side does not
  implement (``TORCH_MATCHES``: MixUp, CutMix, an EMA, norms, blocks, decoupled weight
  decay) is refused in one line, before anything runs.
- Evaluations run at the full run's cadence: the measured steps are one evaluation interval
  of the full run (default ``--steps``), ending in one evaluation, so evaluation takes the
  same share of each step as in the full run (``--steps N`` runs ``round(N / interval)``
  evaluations, at least one, and marks the row when N is no whole number of intervals).
  An evaluation scores the recipe's ``eval_train_size`` training images and the
  ``val_size`` validation images (5,000 each) and copies the parameters (the best so far),
  on both sides.
- The same batch size and thread count: ``--threads`` (default: the count BLAS is allowed,
  2 on the 2-core machine), given to numpy-mlp as ``threads=T`` and threadpoolctl, and to
  PyTorch as ``torch.set_num_threads(T)``. numpy-mlp's own default, ``threads="auto"``,
  picks all of them on an idle machine at these sizes; the count is passed explicitly so
  that both sides surely use the same, and so that no probing of counts enters the figures.
- ms per step is the loop's wall time (the trainer's ``TrainResult.seconds``; PyTorch's
  loop timed the same way), set-up and data loading excluded, divided by the steps.
  GFLOP/s counts each step's products: forward ``2N sum(d_in d_out)``, weight gradients the
  same, input gradients of every layer but the first (its input is data), and for
  ``whiten`` the projection ``2N D K``. It is set against a 2048^3 float32 product with
  numpy's BLAS, timed in this process right after each pair of runs, on the same threads.
  Ratios (speed, % of the product) are medians of the ratios of each repeat's runs.
- Peak resident memory is each run's process's own high-water mark (VmHWM of
  /proc/self/status, read at its end: ``ru_maxrss`` of a child started from Python also
  counts the parent's memory, which Linux carries over the exec).
- The breakdown of our step replays it in another fresh process, the same calls in the
  trainer's order, each phase timed by its own clock (median over ``PHASE_STEPS`` steps),
  and one evaluation timed and spread over its interval; the sum is printed beside the
  trainer's measured step (the rest is the loop's bookkeeping). The same process times
  one step's matrix products alone (the projection included): the floor under any step
  of the recipe on numpy's BLAS.
- The targets (``TARGETS``) are checked in the report: a step at least 1.3x PyTorch's
  speed doing the same recipe, and at most 1.2x the step's own products alone.

Not timed (but in the peak memory): reading the data and building the model. The
normalisation (for ``whiten`` its 20 s eigendecomposition) is fitted once by this process
and read by the children, so that its working memory is not in their peaks. Not run at
all: checkpoints (the CLI writes 20 per run by default; ``train()`` writes none) and the
final test evaluation.

**Time to accuracy** (``--time-to-accuracy RECIPE``). The recipe's full run, in numpy-mlp
and then in PyTorch, each in a fresh process on the same threads, each fitting the same
normalisation with numpy-mlp's ``Preprocessor.fit`` and evaluating the same 5,000
validation images at the recipe's cadence. The clock starts at the first step and runs
through the evaluations; the one-off set-up (reading the data, fitting the
normalisation) is reported beside it. Printed: a markdown table of validation accuracy
against wall time for both sides, and when each first reached ``--target`` (0.70);
written to ``--out``: ``curves.csv``, ``summary.json`` and ``curves.png``.

``--recipes``, ``--steps``, ``--repeats``, ``--threads`` and ``--no-torch`` narrow the
step benchmark (``--help``); the markdown on stdout goes into docs/performance-recipes.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from numpy_mlp import TrainConfig, UserError, load_cifar10
from numpy_mlp.cli.flags import as_flags

# --- numpy-mlp's internals: the pieces of a training step, for the breakdown by phase and
# for PyTorch's schedule, normalisation and deformations. Adapt these lines if a name moves.
from numpy_mlp.data.augment import augment
from numpy_mlp.data.deform import Deformer
from numpy_mlp.data.preprocessing import EPS, Preprocessor
from numpy_mlp.nn.losses import cross_entropy_loss
from numpy_mlp.nn.schedules import lr_at
from numpy_mlp.training.inference import predict_labels
from numpy_mlp.training.loop import alternate_flips, build, flips_of, total_steps, train
from numpy_mlp.training.metrics import accuracy
from numpy_mlp.training.presets import PRESETS
from numpy_mlp.training.threads import machine_cpu_seconds

D, C = 3072, 10
IDLE_CORES = 0.1  # other processes' average use of the cores below which a run counts as idle
ROOT = Path(__file__).resolve().parents[1]
SHARED_CIFAR = ROOT.parent / "shared/data/cifar-10-batches-py"
TARGETS = {"speed": 1.3,      # our step at least this many times PyTorch's speed (issue #27)
           "products": 1.2}   # and at most this many times its own products alone
TARGET_ACCURACY = 0.70  # --target's default: the fast preset's validation accuracy to reach


def flags_of(config, fields=None):
    """The flags that set ``config``'s ``fields`` (default: those off TrainConfig's defaults)."""
    if fields is None:
        base = TrainConfig()
        fields = [k for k in config.to_dict()
                  if getattr(config, k) != getattr(base, k) and k != "threads"]
    return "`" + as_flags({k: getattr(config, k) for k in fields}) + "`"


CIFAR10_TRAIN = 50_000  # the images of CIFAR-10's five training batches


def with_validation(config):
    """``config`` as the benchmark runs it. A preset that trains on every training image
    (``val_size`` 0, as ``--preset fast``) holds out the benchmark's 5,000 validation images
    for the evaluations and the time to accuracy, at the preset's own number of steps."""
    if config.val_size:
        return config
    return config.replace(val_size=TrainConfig().val_size,
                          num_iters=total_steps(config, CIFAR10_TRAIN)[0])


def _recipes():
    """name -> (description, the full run's config): the default, each preset as it is,
    then the recipes run only when named (``EXTRA_RECIPES``)."""
    default = TrainConfig()
    recipes = {"default": ("default `numpy-mlp train`, whose values include " + flags_of(
        default, ("hidden_dim", "preprocessing", "flip", "reg", "epochs")), default)}
    for name, values in PRESETS.items():
        config = with_validation(TrainConfig(**values))
        held = ("" if config == TrainConfig(**values) else
                f" (trained on all {CIFAR10_TRAIN:,} images; here {config.val_size:,} are held "
                f"out for validation, at the preset's {config.num_iters:,} steps)")
        recipes[name] = (f"`--preset {name}` as it is{held}: "
                         + flags_of(TrainConfig(**values)), config)
    extra = {}
    for name, values in PRESETS.items():
        # at the rate per-channel images take at batch 256 (docs/ablations.md#whitening)
        config = with_validation(TrainConfig(**values)).replace(preprocessing="per_channel",
                                                                 alpha=0.02)
        extra[f"{name}-per-channel"] = (f"`--preset {name}` on per-channel images, "
                                        + flags_of(config, ("preprocessing", "alpha")), config)
    if "deep" in PRESETS:  # the other side of the batch-size lever: half the batch, half the rate
        deep = TrainConfig(**PRESETS["deep"])
        config = deep.replace(batch_size=deep.batch_size // 2, alpha=deep.alpha / 2)
        extra["deep-128"] = ("`--preset deep` at half its batch and rate, "
                             + flags_of(config, ("batch_size", "alpha")), config)
    if "hour" in PRESETS:  # what a batch grown to 512 could save: twice the batch and rate
        hour = with_validation(TrainConfig(**PRESETS["hour"]))
        config = hour.replace(batch_size=hour.batch_size * 2, alpha=hour.alpha * 2)
        extra["hour-512"] = ("`--preset hour` at twice its batch and rate, "
                             + flags_of(config, ("batch_size", "alpha")), config)
    return recipes, extra


DEFAULT_RECIPES, EXTRA_RECIPES = _recipes()
RECIPES = {**DEFAULT_RECIPES, **EXTRA_RECIPES}
PHASES = ("batch + augmentation", "normalisation", "forward", "loss", "backward", "update",
          "evaluation per step")
PHASE_STEPS = 50  # steps timed phase by phase, after PHASE_WARMUP untimed ones
PHASE_WARMUP = 3
MATMUL = 2048  # side of the large float32 product
# The settings the PyTorch side does as numpy-mlp does only at these values: a recipe with
# another is refused rather than timed against a different recipe.
TORCH_MATCHES = {"weight_decay": 0.0, "ema": 0.0, "mixup": 0.0, "cutmix": 0.0, "norm": "none",
                 "blocks": 0, "dtype": "float32"}
TORCH_ACTIVATIONS = ("relu", "gelu")
TORCH_PREPROCESSING = ("per_image", "per_channel", "whiten")


def torch_gaps(config):
    """The settings of ``config`` that the PyTorch side does not implement, as ``field=value``."""
    gaps = [f"{k}={getattr(config, k)!r}" for k, v in TORCH_MATCHES.items()
            if getattr(config, k) != v]
    if config.activation not in TORCH_ACTIVATIONS:
        gaps.append(f"activation={config.activation!r}")
    if config.preprocessing not in TORCH_PREPROCESSING:
        gaps.append(f"preprocessing={config.preprocessing!r}")
    return gaps


# --------------------------------------------------------------------------- the plan


def eval_interval(config, n_train):
    """Steps between evaluations in the full run of ``config``, as ``train()`` counts them."""
    return max(1, total_steps(config, n_train)[0] // config.evals)


def measured_config(name, steps, evals, threads):
    """The recipe's config for ``steps`` steps with ``evals`` evaluations on ``threads``."""
    return RECIPES[name][1].replace(num_iters=steps, evals=evals, threads=threads)


def input_dim(config):
    """The width of the network's input: K for whiten, else D."""
    return config.whiten_dim if config.preprocessing == "whiten" else D


def layer_dims(config):
    """(D or K, H1, ..., C): the widths of the network's layers."""
    return (input_dim(config), *config.hidden_dim, C)


def step_flops(config):
    """FLOPs of one training step's matrix products (see the module docstring)."""
    dims = layer_dims(config)
    sizes = [d_in * d_out for d_in, d_out in zip(dims[:-1], dims[1:])]  # of each W
    forward = 2 * config.batch_size * sum(sizes)
    input_grads = 2 * config.batch_size * sum(sizes[1:])  # none for the first layer's data
    projection = 2 * config.batch_size * D * dims[0] if config.preprocessing == "whiten" else 0
    return forward + forward + input_grads + projection


# --------------------------------------------------------------------------- the normalisation


def fit_preprocessor(config, data):
    """numpy-mlp's normalisation for a run of ``config`` on ``data``, as ``build`` fits it."""
    return Preprocessor.fit(config.preprocessing, data.X_train, np.dtype(config.dtype),
                            channels=data.geometry.channels, whiten_dim=config.whiten_dim,
                            whiten_eps=config.whiten_eps)


def save_preprocessor(prep, path):
    """Write ``prep`` to the .npz ``path`` for :func:`load_preprocessor` in a child."""
    stats = prep.stats or {}
    np.savez(path, mode=np.array(prep.mode), **{k: np.asarray(v) for k, v in stats.items()},
             **prep.arrays())


def load_preprocessor(path):
    """The Preprocessor :func:`save_preprocessor` wrote."""
    with np.load(path) as f:
        stats = {k: f[k] for k in ("mean", "std")} if "mean" in f else None
        arrays = {k: f[k] for k in ("center", "proj")} if "proj" in f else None
        return Preprocessor.from_dict({"mode": str(f["mode"]), "stats": stats}, arrays=arrays)


# --------------------------------------------------------------------------- the children


def peak_rss_mb():
    """This process's peak resident memory in MB (its own, not inherited over exec)."""
    try:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


def curve(history):
    """``{"eval_step", "seconds", "val_acc"}``: the evaluations of a run, as lists."""
    return {k: list(map(float if k != "eval_step" else int, history[k]))
            for k in ("eval_step", "seconds", "val_acc")}


def run_ours(config, data, prep):
    """Our trainer for the config's steps: its loop's seconds, steps, evaluations, curve."""
    with threadpool_limits(config.threads, user_api="blas"):
        run = build(config, data, preprocessor=prep)
        result = train(config, data, state=run)
    return {"seconds": result.seconds, "steps": len(result.history["step"]),
            "evals": len(result.history["eval_step"]),
            "mean_loss": statistics.fmean(result.history["loss"]),
            "curve": curve(result.history)}


def torch_normaliser(prep, geometry):
    """numpy-mlp's normalisation ``prep`` in PyTorch: uint8 (m, D) -> float32 (m, D or K).

    Per image as :func:`~numpy_mlp.data.preprocessing.preprocess` does it; per channel with
    ``prep``'s training-set statistics; whiten as per channel, then ``prep``'s projection,
    a fixed linear map (D, K) without gradient: ``x @ proj - center @ proj``."""
    import torch

    if prep.mode == "per_image":
        def normalise(xb):
            x = xb.float()
            x.sub_(x.mean(dim=1, keepdim=True))
            x.div_(x.std(dim=1, correction=0, keepdim=True).clamp_min(EPS))
            return x
        return normalise
    c = geometry.channels
    mean = torch.tensor(prep.stats["mean"], dtype=torch.float32).view(1, c, 1)
    inv_std = torch.tensor(1.0 / np.maximum(prep.stats["std"], EPS),
                           dtype=torch.float32).view(1, c, 1)
    proj = shift = None
    if prep.whitening is not None:
        proj = torch.from_numpy(prep.whitening["proj"])  # (D, K) float32, no gradient
        shift = torch.from_numpy(prep.whitening["center"]) @ proj  # (K,)
        shift.neg_()

    def normalise(xb):
        x = xb.float()
        x.view(len(x), c, -1).sub_(mean).mul_(inv_std)
        return x if proj is None else torch.addmm(shift, x, proj)  # (m, K)
    return normalise


def torch_augmenter(config, geometry, gen):
    """The recipe's augmentation of uint8 (N, D) tensors in PyTorch, drawing from ``gen``:
    crops with zero padding and flips, or, with deformations, numpy-mlp's
    :class:`~numpy_mlp.data.deform.Deformer` algorithm on the same bank of maps. It is
    called as ``augment(xb, which)``: ``which`` (N,) bool tensor, the images to mirror
    (alternating flips), or None to mirror a random half (with ``config.flip``)."""
    import torch
    from torch.nn import functional as F

    c, h, w = geometry.channels, geometry.height, geometry.width
    pad, flip = config.crop_pad, config.flip
    deformer = Deformer.of(config, geometry)  # the bank the run's seed makes, as ours
    if deformer is not None:
        bank = torch.from_numpy(deformer._bank)  # (2 * maps, P) int32 canvas indices
        m, side = deformer._margin, deformer._side  # the canvas's margin and row length
        maps = len(bank) // 2

        def deform(xb, which=None):  # (N, D) uint8 -> (N, D) uint8, a new tensor
            N = len(xb)
            pick = 2 * torch.randint(0, maps, (N,), generator=gen)  # a map each ...
            if which is not None:
                pick += which  # ... or its mirror
            elif flip:
                pick += torch.rand(N, generator=gen) < 0.5
            index = bank[pick]  # (N, P)
            if pad:
                dy, dx = torch.randint(-pad, pad + 1, (2, N), generator=gen)
                index = index + (dy * side + dx).to(torch.int32)[:, None]
            canvas = xb.new_zeros((N, c, h + 2 * m, side))
            canvas[:, :, m:m + h, m:m + w] = xb.view(N, c, h, w)
            base = torch.arange(N * c).view(N, c, 1) * canvas[0, 0].numel()  # (N, c, 1)
            return canvas.take(base + index[:, None, :]).reshape(N, -1)
        return deform

    def crop_flip(xb, which=None):  # (N, D) uint8, a copy, -> (N, D) uint8
        N = len(xb)
        img = xb.view(N, c, h, w)
        if pad:
            padded = F.pad(img, (pad, pad, pad, pad))  # zeros, (N, c, h+2p, w+2p)
            dy, dx = torch.randint(0, 2 * pad + 1, (2, N), generator=gen)
            img = padded[torch.arange(N).view(N, 1, 1, 1), torch.arange(c).view(1, c, 1, 1),
                         (dy[:, None] + torch.arange(h)).view(N, 1, h, 1),
                         (dx[:, None] + torch.arange(w)).view(N, 1, 1, w)]  # (N, c, h, w)
        if which is not None or flip:
            mirrored = torch.rand(N, generator=gen) < 0.5 if which is None else which
            img[mirrored] = img[mirrored].flip(3)
        return img.reshape(N, -1)
    return crop_flip


def run_torch(config, data, prep):
    """PyTorch doing the same recipe for the config's steps (see the module docstring)."""
    import torch
    from torch import nn

    gaps = torch_gaps(config)
    if gaps:
        raise SystemExit(f"recipes.py: the PyTorch side does not implement {', '.join(gaps)}; "
                         "extend run_torch for this recipe, or pass --no-torch")
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    N = config.batch_size
    X, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)  # (n, D) uint8, (n,)
    n = len(y)
    total, _ = total_steps(config, n)
    eval_every = max(1, total // config.evals)
    eval_idx = torch.randperm(n, generator=gen)[:config.eval_train_size]
    X_eval, y_eval = X[eval_idx], y[eval_idx]
    X_val, y_val = torch.from_numpy(data.X_val), torch.from_numpy(data.y_val)
    normalise = torch_normaliser(prep, data.geometry)

    layers, d_in = [], prep.output_dim(X.shape[1])
    activation = {"relu": nn.ReLU, "gelu": lambda: nn.GELU(approximate="tanh")}[config.activation]
    for h in config.hidden_dim:
        layers += [nn.Linear(d_in, h), activation()] + ([nn.Dropout(config.dropout)]
                                                        if config.dropout else [])
        d_in = h
    model = nn.Sequential(*layers, nn.Linear(d_in, C))
    named = list(model.named_parameters())
    with torch.no_grad():  # numpy-mlp's initialisation (He normal, zero biases): same losses
        for k, p in named:
            nn.init.normal_(p, std=math.sqrt(2.0 / p.shape[1])) if k.endswith("weight") \
                else nn.init.zeros_(p)
    opt = torch.optim.SGD(
        [{"params": [p for k, p in named if k.endswith("weight")], "weight_decay": config.reg},
         {"params": [p for k, p in named if k.endswith("bias")], "weight_decay": 0.0}],
        lr=config.alpha, momentum=config.beta, dampening=0, nesterov=config.nesterov)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    def accuracy_t(Xs, ys):  # fraction right, in batches of 2000 as inference.predict_labels
        if len(ys) == 0:
            return float("nan")
        model.eval()
        with torch.no_grad():
            right = sum((model(normalise(Xs[i:i + 2000])).argmax(1) == ys[i:i + 2000]).sum().item()
                        for i in range(0, len(ys), 2000))
        model.train()
        return right / len(ys)

    perm, pos, losses = torch.randperm(n, generator=gen), 0, []
    history = {"eval_step": [], "seconds": [], "val_acc": []}
    best = {"val": -1.0, "params": None, "evals_since": 0}  # as the trainer keeps them
    start = time.perf_counter()  # as the trainer's clock: the deformations' bank inside it
    augment_uint8 = torch_augmenter(config, data.geometry, gen)
    first = alternate_flips(config, n)
    first = None if first is None else torch.from_numpy(first)  # (n,) bool
    steps_per_epoch = n // N
    for step in range(1, total + 1):
        if pos + N > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos:pos + N]
        pos += N
        which = None if first is None else flips_of(first, idx, step, steps_per_epoch)
        loss = loss_fn(model(normalise(augment_uint8(X[idx], which))), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        lr = lr_at(step, alpha=config.alpha, total=total, schedule=config.schedule,
                   warmup=config.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            raise SystemExit(f"recipes.py: PyTorch diverged at step {step}")
        if step % eval_every == 0 or step == total:
            accuracy_t(X_eval, y_eval)
            val = accuracy_t(X_val, y_val)
            for k, v in (("eval_step", step), ("val_acc", val),
                         ("seconds", time.perf_counter() - start)):
                history[k].append(v)
            if not val <= best["val"]:  # also when there is no validation split (NaN)
                best.update(val=val, evals_since=0,
                            params={k: v.clone() for k, v in model.state_dict().items()})
            else:
                best["evals_since"] += 1
            if config.patience and best["evals_since"] >= config.patience:
                break  # early stopping, as the trainer's
    seconds = time.perf_counter() - start
    blas = "MKL" if torch.backends.mkl.is_available() else "no MKL"
    return {"seconds": seconds, "steps": len(losses), "evals": len(history["eval_step"]),
            "mean_loss": statistics.fmean(losses), "curve": history,
            "version": f"PyTorch {torch.__version__} ({blas})"}


def time_products(config, steps):
    """Median ms of one step's matrix products alone, at the recipe's shapes and in the
    model's own calls (numpy_mlp.nn.layers: ``x @ W``, ``np.matmul(x.T, dout, out=dW)``,
    ``dout @ W.T`` for every layer but the first; for whiten first the projection
    ``np.matmul(x, proj, out=)`` of the Preprocessor): the floor under any step of the
    recipe that computes these products with numpy's BLAS, whatever the work around them
    costs."""
    rng = np.random.default_rng(0)
    N, dims = config.batch_size, layer_dims(config)
    layers = [(rng.standard_normal((N, d_in), dtype=np.float32),
               rng.standard_normal((d_in, d_out), dtype=np.float32),
               rng.standard_normal((N, d_out), dtype=np.float32),
               np.empty((d_in, d_out), dtype=np.float32))
              for d_in, d_out in zip(dims[:-1], dims[1:])]
    projection = None
    if config.preprocessing == "whiten":
        projection = (rng.standard_normal((N, D), dtype=np.float32),
                      rng.standard_normal((D, dims[0]), dtype=np.float32), layers[0][0])
    times = []
    with threadpool_limits(config.threads, user_api="blas"):
        for rep in range(PHASE_WARMUP + steps):
            start = time.perf_counter()
            if projection is not None:
                np.matmul(*projection[:2], out=projection[2])
            for x, W, _, _ in layers:
                x @ W
            for i, (x, W, dout, dW) in reversed(list(enumerate(layers))):
                np.matmul(x.T, dout, out=dW)
                if i:
                    dout @ W.T
            if rep >= PHASE_WARMUP:
                times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def run_phases(config, data, prep):
    """Our step replayed phase by phase: median ms of each phase, evaluation spread per step."""
    N = config.batch_size
    # the trainer's own model, optimizer, normalisation, streams and deformations
    run = build(config, data, preprocessor=prep)
    deformer = Deformer.of(config, data.geometry)
    model, optimizer, prepare = run.model, run.optimizer, run.preprocessor
    order_rng, aug_rng = run.loop.order_rng, run.loop.aug_rng
    X_train, y_train, n = data.X_train, data.y_train, len(data.y_train)
    X_eval, y_eval = X_train[run.eval_idx], y_train[run.eval_idx]
    batch = np.empty((N, model.input_dim), dtype=model.dtype)  # reused input, as the trainer's
    perm, pos = run.loop.perm, 0
    first, steps_per_epoch = alternate_flips(config, n), n // N
    times = {phase: [] for phase in PHASES[:-1]}
    steps = min(PHASE_STEPS, config.num_iters)
    with threadpool_limits(config.threads, user_api="blas"):
        for step in range(1, PHASE_WARMUP + steps + 1):
            if pos + N > n:
                perm, pos = order_rng.permutation(n), 0
            idx = perm[pos:pos + N]
            pos += N
            t = [time.perf_counter()]
            flip = config.flip if first is None else flips_of(first, idx, step, steps_per_epoch)
            X_uint8 = augment(X_train[idx], aug_rng, flip=flip, crop_pad=config.crop_pad,
                              geometry=data.geometry, deformer=deformer)
            t.append(time.perf_counter())
            X = prepare(X_uint8, out=batch)  # (N, D or K)
            t.append(time.perf_counter())
            scores, cache = model.forward(X, train=True)  # (N, C)
            t.append(time.perf_counter())
            _, dscores = cross_entropy_loss(scores, y_train[idx],
                                            label_smoothing=config.label_smoothing)
            t.append(time.perf_counter())
            model.backward(dscores, cache, add_l2=False)  # as the trainer: SGD adds reg * W
            t.append(time.perf_counter())
            alpha = lr_at(step, alpha=config.alpha, total=config.num_iters,
                          schedule=config.schedule, warmup=config.warmup)
            optimizer.step(model.grads, alpha=alpha)
            t.append(time.perf_counter())
            if step > PHASE_WARMUP:
                for phase, start, end in zip(times, t, t[1:]):
                    times[phase].append(end - start)
        start = time.perf_counter()
        accuracy(y_eval, predict_labels(model, prepare, X_eval))
        accuracy(data.y_val, predict_labels(model, prepare, data.X_val))
        model.copy_params()
        evaluation = time.perf_counter() - start
    ms = {phase: 1e3 * statistics.median(v) for phase, v in times.items()}
    ms[PHASES[-1]] = 1e3 * evaluation * config.evals / config.num_iters
    return {"ms": ms, "steps": steps, "products_ms": time_products(config, steps)}


CHILDREN = {"ours": run_ours, "torch": run_torch, "phases": run_phases}


def child_main(args):
    """One run in this fresh process; prints its result as one JSON line. With --full, the
    recipe's full run, its set-up (reading the data, fitting the normalisation) timed."""
    if args.full:
        config = RECIPES[args.recipe][1].replace(threads=args.threads)
    else:
        config = measured_config(args.recipe, args.steps, args.evals, args.threads)
    start = time.perf_counter()
    data = load_cifar10(args.data_dir, download=False, progress=False)
    loaded = time.perf_counter()
    if args.preprocessor:
        prep = load_preprocessor(args.preprocessor)
    else:
        with threadpool_limits(config.threads, user_api="blas"):
            prep = fit_preprocessor(config, data)
    fitted = time.perf_counter()
    out = CHILDREN[args.child](config, data, prep)
    out["setup"] = {"data": loaded - start, "normalisation": fitted - loaded}
    out["peak_mb"] = peak_rss_mb()
    print(json.dumps(out))


def child(side, name, threads, data_dir, *, steps=None, evals=None, preprocessor=None):
    """Run ``side`` of recipe ``name`` in a fresh Python process; its JSON result. Without
    ``steps``, the recipe's full run."""
    cmd = [sys.executable, __file__, "--child", side, "--recipe", name, "--threads", str(threads)]
    cmd += ["--steps", str(steps), "--evals", str(evals)] if steps else ["--full"]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    if preprocessor:
        cmd += ["--preprocessor", str(preprocessor)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr passes through
    if proc.returncode:
        raise SystemExit(f"recipes.py: the {side} run of recipe {name!r} failed (exit "
                         f"{proc.returncode}); its message is above")
    return json.loads(proc.stdout.strip().splitlines()[-1])
# --------------------------------------------------------------------------- the parent


def matmul_gflops(threads, reps=3):
    """GFLOP/s of a (MATMUL, MATMUL) @ (MATMUL, MATMUL) float32 product, best of ``reps``."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((MATMUL, MATMUL), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    with threadpool_limits(threads, user_api="blas"):
        np.matmul(a, b, out=out)  # warm-up
        best = math.inf
        for _ in range(reps):
            start = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - start)
    return 2 * MATMUL ** 3 / best / 1e9


def machine():
    """The CPU model, core count and memory, and numpy's BLAS, as one line each."""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/meminfo") as f:
            mem = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
        mem = f", {mem / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        mem = ""
    blas = "; ".join(f"{lib['internal_api']} {lib['version']} ({lib.get('architecture', '?')} "
                     f"kernels, {lib.get('threading_layer', '?')})"
                     for lib in threadpool_info() if lib["user_api"] == "blas")
    return f"{cpu}, {os.cpu_count()} cores{mem}", f"numpy {np.__version__} with {blas}"


def cpu_seconds():
    """(busy core-seconds of the whole machine since boot, CPU seconds of this process and its
    finished children): two readings give what other processes took in between. The load
    average cannot: at the end of a run it counts the run's own threads."""
    reading = machine_cpu_seconds()
    if reading is None:
        raise SystemExit("recipes.py: cannot read the machine's CPU time (/proc/stat), which "
                         "tells whether the run was idle: run it on Linux")
    total, idle = reading
    t = os.times()
    return total - idle, t.user + t.system + t.children_user + t.children_system


def other_cores(start, end, seconds):
    """Cores kept busy by other processes on average between two :func:`cpu_seconds`."""
    return max(0.0, (end[0] - start[0]) - (end[1] - start[1])) / seconds


def blas_default_threads():
    """The count BLAS is allowed now: what ``threads="auto"`` picks on an idle machine."""
    return max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"),
               default=1)


def ms_per_step(runs):
    """Each run's loop time per step in ms, for runs as :func:`child` returns them."""
    return [1e3 * x["seconds"] / x["steps"] for x in runs]


def spread(values, fmt, unit=""):
    """``median (min-max)`` of ``values``, each formatted with ``fmt`` and followed by ``unit``."""
    med = format(statistics.median(values), fmt) + unit
    return med if len(values) == 1 else \
        f"{med} ({min(values):{fmt}}{unit}–{max(values):{fmt}}{unit})"


def report(args, plans, results, started, load_start, others, versions):
    """The markdown ready for docs/performance-recipes.md."""
    cpu, blas = machine()
    torch_version = versions or "PyTorch not run (--no-torch)"
    command = " ".join(["python benchmarks/recipes.py", *args.argv])
    lines = [f"Measured {started:%Y-%m-%d %H:%M} UTC: `{command}`",
             f"- machine: {cpu}",
             f"- {blas}; {torch_version}",
             f"- threads: {args.threads} for both sides (numpy-mlp's default `auto` picks all "
             f"{blas_default_threads()} on an idle machine; here passed as `threads="
             f"{args.threads}`)",
             "- load average (1, 5, 15 min) at the start "
             + " ".join(f"{x:.2f}" for x in load_start)
             + f"; other processes kept {others:.2f} cores busy on average during the run"
             # Only the CPU time of others judges: the load average at the start still
             # holds a job that ended a minute before, and decays for a quarter hour.
             + ("" if others < IDLE_CORES else " — **not idle: these figures mean little**"),
             f"- medians of {args.repeats} interleaved repeat{'s' * (args.repeats > 1)} "
             "(ours, PyTorch, ours, ...), "
             "ranges in brackets; ratios are medians of each repeat's ratios",
             ""]
    lines += ["| recipe | steps (evals) | numpy-mlp ms/step | PyTorch ms/step | numpy-mlp "
              "samples/s | PyTorch samples/s | speed ours/torch | GFLOP/step | our GFLOP/s "
              f"| {MATMUL}³ matmul GFLOP/s | % of matmul | peak RSS numpy-mlp MB "
              "| peak RSS PyTorch MB |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, (steps, evals, interval) in plans.items():
        r, config = results[name], measured_config(name, steps, evals, args.threads)
        N, gflop = config.batch_size, step_flops(config) / 1e9
        ours = ms_per_step(r["ours"])
        mm = r["matmul"]
        ours_gf = [gflop / (t / 1e3) for t in ours]
        row = [name, f"{steps} ({evals})" + ("" if steps == evals * interval else " ¹"),
               spread(ours, ".1f")]
        if r["torch"]:
            theirs = ms_per_step(r["torch"])
            row += [spread(theirs, ".1f"), spread([N / t * 1e3 for t in ours], ",.0f"),
                    spread([N / t * 1e3 for t in theirs], ",.0f"),
                    spread([b / a for a, b in zip(ours, theirs)], ".2f", "×")]
        else:
            row += ["–", spread([N / t * 1e3 for t in ours], ",.0f"), "–", "–"]
        row += [f"{gflop:.2f}", spread(ours_gf, ".0f"), spread(mm, ".0f"),
                spread([100 * g / m for g, m in zip(ours_gf, mm)], ".0f", "%"),
                spread([x["peak_mb"] for x in r["ours"]], ".0f"),
                spread([x["peak_mb"] for x in r["torch"]], ".0f") if r["torch"] else "–"]
        lines.append("| " + " | ".join(row) + " |")
    if any(steps != evals * interval for steps, evals, interval in plans.values()):
        lines.append("\n¹ not a whole number of the full run's evaluation intervals ("
                     + ", ".join(f"{name}: {interval}" for name, (_, _, interval) in plans.items())
                     + " steps): evaluation's share of a step differs from the full run's.")
    phase_steps = min(x["steps"] for r in results.values() for x in r["phases"])
    lines += ["", "Our step by phase, ms (each phase timed by its own clock in a replay of the "
              f"trainer's step, median over {phase_steps} steps; one evaluation spread over "
              "its interval):", "",
              "| recipe | " + " | ".join(PHASES) + " | sum | trainer's step | sum / step |",
              "|---|" + "---:|" * (len(PHASES) + 3)]
    for name in plans:
        r = results[name]
        ms = {p: statistics.median(x["ms"][p] for x in r["phases"]) for p in PHASES}
        step = statistics.median(ms_per_step(r["ours"]))
        total = sum(ms.values())
        lines.append(f"| {name} | " + " | ".join(f"{ms[p]:.2f}" for p in PHASES)
                     + f" | {total:.2f} | {step:.2f} | {total / step:.2f} |")
    lines += ["", "The products alone: one step's matrix products at the recipe's shapes, in the "
              "model's own calls and nothing else (median over "
              f"{phase_steps} steps, in the same process as the phases). No step of the recipe "
              "on numpy's BLAS can take less, so their share of the matmul's rate and PyTorch's "
              "step over them are the most any work around the products can reach:", "",
              "| recipe | products alone ms/step | their GFLOP/s | % of matmul | trainer's step "
              "/ products | PyTorch ms/step / products |", "|---|---:|---:|---:|---:|---:|"]
    for name, (steps, evals, _) in plans.items():
        r, config = results[name], measured_config(name, steps, evals, args.threads)
        gflop = step_flops(config) / 1e9
        prod = [x["products_ms"] for x in r["phases"]]
        ours = ms_per_step(r["ours"])
        row = [name, spread(prod, ".1f"), spread([gflop / (t / 1e3) for t in prod], ".0f"),
               spread([100 * gflop / (t / 1e3) / m for t, m in zip(prod, r["matmul"])],
                      ".0f", "%"),
               spread([a / b for a, b in zip(ours, prod)], ".2f", "×")]
        theirs = ms_per_step(r["torch"])
        row.append(spread([a / b for a, b in zip(theirs, prod)], ".2f", "×") if theirs else "–")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", targets_table(plans, results)]
    lines += ["", "Recipes:"] + [f"- {name}: {RECIPES[name][0]}; batch "
                                 f"{RECIPES[name][1].batch_size}; one evaluation every "
                                 f"{interval} steps in the full run"
                                 for name, (_, _, interval) in plans.items()]
    return "\n".join(lines)


def verdict(values, ok):
    """``median`` with a mark: met by the median of ``values`` (``ok(median)``) or not."""
    med = statistics.median(values)
    return f"{med:.2f}× " + ("met" if ok(med) else "**not met**")


def targets_table(plans, results):
    """The targets of ``TARGETS``, recipe by recipe: met or not, by the medians."""
    lines = [f"Targets: each recipe's step at least {TARGETS['speed']}× PyTorch's speed doing "
             f"the same recipe, and at most {TARGETS['products']}× its own products alone "
             "(medians of each repeat's ratios):", "",
             "| recipe | speed ours/torch | target | trainer's step / products | target |",
             "|---|---:|---|---:|---|"]
    for name in plans:
        r = results[name]
        ours, prod = ms_per_step(r["ours"]), [x["products_ms"] for x in r["phases"]]
        speed = (verdict([b / a for a, b in zip(ours, ms_per_step(r["torch"]))],
                         lambda v: v >= TARGETS["speed"]) if r["torch"] else "– –")
        own = verdict([a / b for a, b in zip(ours, prod)], lambda v: v <= TARGETS["products"])
        lines.append(f"| {name} | " + " | ".join(speed.split(" ", 1) + own.split(" ", 1)) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- time to accuracy


def first_reach(curve_, target):
    """``(seconds, step)`` of the first evaluation of ``curve_`` at or above ``target``, or
    ``(None, None)``."""
    for step, seconds, acc in zip(curve_["eval_step"], curve_["seconds"], curve_["val_acc"]):
        if acc >= target:
            return seconds, step
    return None, None


def reach_text(run, target):
    """When a run first reached ``target``, or its best, in words."""
    seconds, step = first_reach(run["curve"], target)
    if seconds is not None:
        return f"{seconds / 60:.1f} min (step {step:,})"
    best = max(run["curve"]["val_acc"], default=float("nan"))
    return f"not reached (best {best:.4f})"


def write_curves(out, sides, target, title):
    """``out/curves.csv`` (side, eval_step, seconds, val_acc) and ``out/curves.png``: validation
    accuracy against wall time for each side, the target as a dashed line."""
    with open(out / "curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("side", "eval_step", "seconds", "val_acc"))
        for side, run in sides.items():
            c = run["curve"]
            w.writerows((side, *row) for row in zip(c["eval_step"], c["seconds"], c["val_acc"]))
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for side, run in sides.items():
        c = run["curve"]
        ax.plot(np.array(c["seconds"]) / 60, c["val_acc"], marker="o", markersize=3, label=side)
        seconds, _ = first_reach(c, target)
        if seconds is not None:
            ax.axvline(seconds / 60, color=ax.lines[-1].get_color(), linestyle=":", linewidth=1)
    ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set(xlabel="wall time from the first step (min)", ylabel="validation accuracy",
           title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "curves.png")
    plt.close(fig)


def tta_report(args, name, sides, started):
    """The markdown of a time-to-accuracy run: set-up, reach times, the curves side by side."""
    cpu, blas = machine()
    command = " ".join(["python benchmarks/recipes.py", *args.argv])
    labels = list(sides)
    lines = [f"Measured {started:%Y-%m-%d %H:%M} UTC: `{command}`",
             f"- machine: {cpu}", f"- {blas}" + "".join(
                 f"; {r['version']}" for r in sides.values() if "version" in r),
             f"- recipe {name}: {RECIPES[name][0]}",
             f"- threads: {args.threads} for both sides; one side after the other, each in a "
             "fresh process; the clock starts at the first step and runs through the "
             "evaluations",
             "", f"| | {' | '.join(labels)} |", "|---|" + "---:|" * len(labels)]
    rows = [("set-up: reading the data, s", lambda r: f"{r['setup']['data']:.1f}"),
            ("set-up: fitting the normalisation, s",
             lambda r: f"{r['setup']['normalisation']:.1f}"),
            (f"first at {args.target:g} validation accuracy", lambda r: reach_text(r, args.target)),
            ("best validation accuracy", lambda r: f"{max(r['curve']['val_acc']):.4f}"),
            ("steps", lambda r: f"{r['steps']:,}"),
            ("training, min", lambda r: f"{r['seconds'] / 60:.1f}"),
            ("ms per step, evaluations included",
             lambda r: f"{1e3 * r['seconds'] / r['steps']:.1f}"),
            ("peak RSS, MB", lambda r: f"{r['peak_mb']:.0f}")]
    lines += [f"| {label} | " + " | ".join(f(r) for r in sides.values()) + " |"
              for label, f in rows]
    lines += ["", "Validation accuracy against wall time (minutes from the first step):", "",
              "| step | " + " | ".join(f"{s} min | {s} val acc" for s in labels) + " |",
              "|---:|" + "---:|---:|" * len(labels)]
    curves = [r["curve"] for r in sides.values()]
    for i in range(max(len(c["eval_step"]) for c in curves)):
        step = next(c["eval_step"][i] for c in curves if i < len(c["eval_step"]))
        cells = [f"{c['seconds'][i] / 60:.2f} | {c['val_acc'][i]:.4f}" if i < len(c["eval_step"])
                 else "– | –" for c in curves]
        lines.append(f"| {step:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def time_to_accuracy(args, name):
    """The full run of recipe ``name`` on both sides (see the module docstring)."""
    out = Path(args.out or f"time-to-accuracy-{name}")
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    sides = {"numpy-mlp": child("ours", name, args.threads, args.data_dir)}
    print(f"{name}, numpy-mlp: {sides['numpy-mlp']['seconds'] / 60:.1f} min, first at "
          f"{args.target:g}: {reach_text(sides['numpy-mlp'], args.target)}",
          file=sys.stderr, flush=True)
    if not args.no_torch:
        sides["PyTorch"] = child("torch", name, args.threads, args.data_dir)
    text = tta_report(args, name, sides, started)
    summary = {"recipe": name, "config": RECIPES[name][1].replace(threads=args.threads).to_dict(),
               "threads": args.threads, "target": args.target,
               "started": started.isoformat(timespec="seconds"),
               "sides": {side: {**{k: v for k, v in r.items() if k != "curve"},
                                "first_at_target_seconds": first_reach(r["curve"], args.target)[0],
                                "curve": r["curve"]} for side, r in sides.items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    write_curves(out, sides, args.target, f"{name}: validation accuracy against wall time, "
                 f"{args.threads} threads")
    print(text)
    print(f"\nwritten: {out / 'curves.csv'}, {out / 'summary.json'}, {out / 'curves.png'}",
          file=sys.stderr)


# --------------------------------------------------------------------------- the command


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number >= 1")
    return value


def fraction(text):
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not an accuracy in (0, 1]")
    return value


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipes", default=",".join(DEFAULT_RECIPES),
                   help=f"comma-separated, from {', '.join(RECIPES)} (default: "
                        f"{','.join(DEFAULT_RECIPES)})")
    p.add_argument("--steps", type=positive, default=None,
                   help="steps per run (default: one evaluation interval of each full run)")
    p.add_argument("--repeats", type=positive, default=3, help="runs of each side (3)")
    p.add_argument("--threads", type=positive, default=None,
                   help="BLAS / PyTorch threads (default: the count BLAS is allowed, "
                        f"{blas_default_threads()} here)")
    p.add_argument("--data-dir", default=str(SHARED_CIFAR) if SHARED_CIFAR.is_dir() else None,
                   help="CIFAR-10 folder (default ../shared/data/cifar-10-batches-py, "
                        "else numpy-mlp's default)")
    p.add_argument("--no-torch", action="store_true", help="time numpy-mlp only")
    tta = p.add_argument_group("time to accuracy")
    tta.add_argument("--time-to-accuracy", metavar="RECIPE", choices=tuple(RECIPES),
                     help="instead of the step benchmark: RECIPE's full run in numpy-mlp, "
                          "then in PyTorch, validation accuracy against wall time "
                          f"(one of {', '.join(RECIPES)})")
    tta.add_argument("--target", type=fraction, default=TARGET_ACCURACY,
                     help=f"the validation accuracy whose first reach is timed ({TARGET_ACCURACY})")
    tta.add_argument("--out", metavar="DIR", default=None,
                     help="folder for curves.csv, summary.json and curves.png "
                          "(default: ./time-to-accuracy-RECIPE)")
    p.add_argument("--child", choices=tuple(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--recipe", choices=tuple(RECIPES), help=argparse.SUPPRESS)
    p.add_argument("--evals", type=positive, help=argparse.SUPPRESS)
    p.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--preprocessor", help=argparse.SUPPRESS)
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = parser()
    args = p.parse_args(argv)
    if args.child:
        return child_main(args)

    args.argv = argv
    args.threads = args.threads or blas_default_threads()
    if args.time_to_accuracy:
        narrowed = [f"--{k}" for k in ("recipes", "steps", "repeats")
                    if getattr(args, k) != p.get_default(k)]
        if narrowed:
            p.error(f"--time-to-accuracy runs the recipe's full run once on each side: leave "
                    f"out {', '.join(narrowed)}")
    names = [args.time_to_accuracy] if args.time_to_accuracy else \
        [s.strip() for s in args.recipes.split(",") if s.strip()]
    unknown = [s for s in names if s not in RECIPES]
    if unknown or not names:
        p.error(f"--recipes: unknown {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(RECIPES)}")
    if not args.no_torch:
        if importlib.util.find_spec("torch") is None:
            raise SystemExit("recipes.py: PyTorch is not installed: run .venv/bin/pip install "
                             "-e '.[bench]' (torch==2.13.0, CPU wheel), or pass --no-torch")
        for name in names:
            if gaps := torch_gaps(RECIPES[name][1]):
                raise SystemExit(f"recipes.py: recipe {name!r} has {', '.join(gaps)}, which the "
                                 "PyTorch side does not implement; pass --no-torch or leave "
                                 "it out of --recipes")
    data = load_cifar10(args.data_dir, download=False, progress=False)  # to count and fail early
    if args.time_to_accuracy:
        del data  # the children read it themselves
        return time_to_accuracy(args, args.time_to_accuracy)
    n_train = len(data.y_train)
    plans = {}  # name -> (steps, evals, the full run's evaluation interval)
    for name in names:
        interval = eval_interval(RECIPES[name][1], n_train)
        steps = args.steps or interval
        plans[name] = (steps, max(1, round(steps / interval)), interval)

    with tempfile.TemporaryDirectory(prefix="recipes-") as tmp:
        # each normalisation fitted once (whiten: a 20 s eigendecomposition), read by the children
        preps, fitted = {}, {}
        with threadpool_limits(args.threads, user_api="blas"):
            for name in names:
                config = RECIPES[name][1]
                key = (config.preprocessing, config.whiten_dim, config.whiten_eps, config.dtype)
                if key not in fitted:
                    fitted[key] = Path(tmp) / f"preprocessor-{len(fitted)}.npz"
                    save_preprocessor(fit_preprocessor(config, data), fitted[key])
                preps[name] = fitted[key]
        del data  # the children read it themselves

        started, load_start = datetime.datetime.now(datetime.timezone.utc), os.getloadavg()
        cpu_start, wall_start = cpu_seconds(), time.perf_counter()
        results = {name: {"ours": [], "torch": [], "phases": [], "matmul": []} for name in plans}
        versions = None
        for rep in range(args.repeats):
            for name, (steps, evals, _) in plans.items():
                r, run = results[name], dict(steps=steps, evals=evals, preprocessor=preps[name])
                r["ours"].append(child("ours", name, args.threads, args.data_dir, **run))
                msg = f"repeat {rep + 1}/{args.repeats}, {name}: numpy-mlp " \
                      f"{1e3 * r['ours'][-1]['seconds'] / steps:.1f} ms/step " \
                      f"(mean loss {r['ours'][-1]['mean_loss']:.3f})"
                if not args.no_torch:
                    r["torch"].append(child("torch", name, args.threads, args.data_dir, **run))
                    versions = r["torch"][-1]["version"]
                    msg += f", PyTorch {1e3 * r['torch'][-1]['seconds'] / steps:.1f} ms/step " \
                           f"(mean loss {r['torch'][-1]['mean_loss']:.3f})"
                r["matmul"].append(matmul_gflops(args.threads))
                r["phases"].append(child("phases", name, args.threads, args.data_dir, **run))
                print(msg + f", matmul {r['matmul'][-1]:.0f} GFLOP/s", file=sys.stderr,
                      flush=True)
        others = other_cores(cpu_start, cpu_seconds(), time.perf_counter() - wall_start)
    print(report(args, plans, results, started, load_start, others, versions))


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:  # e.g. no data where --data-dir points: one line, no traceback
        raise SystemExit(f"recipes.py: {exc}") from None
