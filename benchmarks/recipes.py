"""Whole recipes end to end: numpy-mlp's trainer against PyTorch doing the same recipe.

    .venv/bin/pip install -e '.[bench]'          # once: torch==2.13.0, the CPU wheel on disk
    .venv/bin/python benchmarks/recipes.py       # about 45 min on 2 idle cores

    .venv/bin/python benchmarks/recipes.py --steps 5 --repeats 1   # smoke test, ~1 min;
                                                                   # its figures mean nothing

Four recipes (``RECIPES``): the default ``numpy-mlp train`` (``TrainConfig()``), the
README's deep recipe (2048-1024-512, dropout 0.1, 170 epochs of batch 256) and its best
two-layer recipe (H = 4096, 150 epochs of batch 256), both on per-channel images rather than
the presets' whitened ones, and the deep recipe at batch 128,
to set the batch-size lever against (``--recipes deep,deep-128 --no-torch``). For each, a fixed
number of real steps runs end to end in a fresh process, first
``numpy_mlp.training.loop.train(config, data)`` and then PyTorch doing the same recipe, A B A B
for ``--repeats`` repeats, and medians are reported:

- PyTorch's loop is the one it is usually written with: the batch taken from a permutation
  of the uint8 training tensor, random crops with zero padding and left-right flips on the
  uint8 images, conversion to float32 and the recipe's normalisation (per-channel with the
  same training-set statistics, or per-image), ``nn.Linear``/``nn.ReLU``/``nn.Dropout``,
  ``nn.CrossEntropyLoss(label_smoothing=)``, ``torch.optim.SGD(lr, momentum, dampening=0,
  weight_decay=reg)`` with the decay on the weights only (a second parameter group holds
  the biases): numpy-mlp's L2, ``loss += 0.5*reg*sum(W**2)``, adds ``reg*W`` to each weight
  gradient, which is what ``weight_decay`` does, and its momentum ``m <- beta*m + g;
  theta <- theta - alpha*m`` is PyTorch's with ``dampening=0``. Both follow the same
  learning-rate schedule (``numpy_mlp.nn.schedules.lr_at``), start from the same kind of
  weights (He normal, zero biases) and read the loss every step; the progress lines on
  stderr give each run's mean training loss, which should agree to the spread of seeds.
- Evaluations run at the full run's cadence: the measured steps are one evaluation interval
  of the full run (default ``--steps``), ending in one evaluation, so evaluation takes the
  same share of each step as in the full run (``--steps N`` runs ``round(N / interval)``
  evaluations, at least one, and marks the row when N is no whole number of intervals).
  An evaluation scores the recipe's
  ``eval_train_size`` training images and the ``val_size`` validation images (5,000 each)
  and copies the parameters (the best so far), on both sides.
- The same batch size and thread count: ``--threads`` (default: the count BLAS is allowed,
  2 on the 2-core machine), given to numpy-mlp as ``threads=T`` and threadpoolctl, and to
  PyTorch as ``torch.set_num_threads(T)``. numpy-mlp's own default, ``threads="auto"``,
  picks all of them on an idle machine at these sizes; the count is passed explicitly so
  that both sides surely use the same, and so that no probing of counts enters the figures.
- ms per step is the loop's wall time (the trainer's ``TrainResult.seconds``; PyTorch's
  loop timed the same way), set-up and data loading excluded, divided by the steps.
  GFLOP/s counts each step's products: forward ``2N sum(d_in d_out)``, weight gradients the
  same, input gradients of every layer but the first (its input is data). It is set against
  a 2048^3 float32 product with numpy's BLAS, timed in this process right after each pair
  of runs, on the same threads. Ratios (speed, % of the product) are medians of the ratios
  of each repeat's runs.
- Peak resident memory is each run's process's own high-water mark (VmHWM of
  /proc/self/status, read at its end: ``ru_maxrss`` of a child started from Python also
  counts the parent's memory, which Linux carries over the exec).
- The breakdown of our step replays it in another fresh process, the same calls in the
  trainer's order, each phase timed by its own clock (median over ``PHASE_STEPS`` steps),
  and one evaluation timed and spread over its interval; the sum is printed beside the
  trainer's measured step (the rest is the loop's bookkeeping).

Not timed (but in the peak memory): reading the data and building the model. Not run at
all: checkpoints (the CLI writes 20 per run by default; ``train()`` writes none) and the
final test evaluation. ``--recipes``, ``--steps``, ``--repeats``, ``--threads`` and
``--no-torch`` narrow the run (``--help``); the markdown on stdout goes into
docs/performance-recipes.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from numpy_mlp import TrainConfig, UserError, load_cifar10, train
from numpy_mlp.cli.flags import as_flags

# --- numpy-mlp's internals: the pieces of a training step, for the breakdown by phase and
# for PyTorch's schedule and statistics. Adapt these lines if a name moves.
from numpy_mlp.data.augment import augment
from numpy_mlp.data.preprocessing import channel_stats
from numpy_mlp.nn.losses import cross_entropy_loss
from numpy_mlp.nn.schedules import lr_at
from numpy_mlp.training.inference import predict_labels
from numpy_mlp.training.loop import build
from numpy_mlp.training.metrics import accuracy
from numpy_mlp.training.presets import PRESETS
from numpy_mlp.training.threads import machine_cpu_seconds

D, C = 3072, 10
IDLE_CORES = 0.1  # other processes' average use of the cores below which a run counts as idle
ROOT = Path(__file__).resolve().parents[1]
SHARED_CIFAR = ROOT.parent / "shared/data/cifar-10-batches-py"

DEEP_128 = {"batch_size": 128, "alpha": 0.01}  # the deep recipe as its three seeds ran


def flags_of(config, fields=None):
    """The flags that set ``config``'s ``fields`` (default: those off TrainConfig's defaults)."""
    if fields is None:
        base = TrainConfig()
        fields = [k for k in config.to_dict()
                  if getattr(config, k) != getattr(base, k) and k != "threads"]
    return "`" + as_flags({k: getattr(config, k) for k in fields}) + "`"


_DEFAULT = TrainConfig()
# both presets on per-channel images at their rate for them, as docs/performance-recipes.md
# measured them: the PyTorch side normalises per image or per channel only
PER_CHANNEL = {"preprocessing": "per_channel", "alpha": 0.02}
_DEEP = TrainConfig(**PRESETS["deep"]).replace(**PER_CHANNEL)
_WIDE = TrainConfig(**PRESETS["wide"]).replace(**PER_CHANNEL)
_DEEP_128 = _DEEP.replace(**DEEP_128)
RECIPES = {  # name -> (description, the full run's config); descriptions read the configs
    "default": ("default `numpy-mlp train`, whose values include " + flags_of(
        _DEFAULT, ("hidden_dim", "preprocessing", "flip", "reg", "epochs")), _DEFAULT),
    "deep": ("deep, `--preset deep` on per-channel images: " + flags_of(_DEEP), _DEEP),
    "two-layer": ("two-layer, `--preset wide` on per-channel images: " + flags_of(_WIDE),
                  _WIDE),
    "deep-128": ("the per-channel deep recipe as its three seeds ran, with "
                 + flags_of(_DEEP_128, DEEP_128), _DEEP_128),
}
PHASES = ("batch + augmentation", "normalisation", "forward", "loss", "backward", "update",
          "evaluation per step")
PHASE_STEPS = 50  # steps timed phase by phase, after PHASE_WARMUP untimed ones
PHASE_WARMUP = 3
MATMUL = 2048  # side of the large float32 product


# --------------------------------------------------------------------------- the plan


def eval_interval(config, n_train):
    """Steps between evaluations in the full run of ``config``, as ``train()`` counts them."""
    total = config.num_iters or max(1, math.ceil(config.epochs * (n_train // config.batch_size)))
    return max(1, total // config.evals)


def measured_config(name, steps, evals, threads):
    """The recipe's config for ``steps`` steps with ``evals`` evaluations on ``threads``."""
    return RECIPES[name][1].replace(num_iters=steps, evals=evals, threads=threads)


def layer_dims(config):
    """(D, H1, ..., C): the widths of the network's layers."""
    return (D, *config.hidden_dim, C)


def step_flops(config):
    """FLOPs of one training step's matrix products (see the module docstring)."""
    dims = layer_dims(config)
    sizes = [d_in * d_out for d_in, d_out in zip(dims[:-1], dims[1:])]  # of each W
    forward = 2 * config.batch_size * sum(sizes)
    input_grads = 2 * config.batch_size * sum(sizes[1:])  # none for the first layer's data
    return forward + forward + input_grads  # forward, weight gradients, input gradients


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


def run_ours(config, data):
    """Our trainer for the configured steps: its loop's seconds, steps and evaluations."""
    with threadpool_limits(config.threads, user_api="blas"):
        result = train(config, data)
    return {"seconds": result.seconds, "steps": len(result.history["step"]),
            "evals": len(result.history["eval_step"]),
            "mean_loss": statistics.fmean(result.history["loss"])}


def run_torch(config, data):
    """PyTorch doing the same recipe for the same steps (see the module docstring)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    if config.preprocessing not in ("per_image", "per_channel"):
        raise SystemExit(f"the PyTorch side normalises per image or per channel only, not "
                         f"{config.preprocessing}; extend run_torch for this recipe")
    if config.weight_decay or config.schedule != "cosine":
        raise SystemExit("the PyTorch side implements L2 as weight_decay and the cosine "
                         "schedule only; extend run_torch for this recipe")
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    N, pad, total = config.batch_size, config.crop_pad, config.num_iters
    eval_every = max(1, total // config.evals)
    X, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)  # (n, D) uint8, (n,)
    n = len(y)
    eval_idx = torch.randperm(n, generator=gen)[:config.eval_train_size]
    X_eval, y_eval = X[eval_idx], y[eval_idx]
    X_val, y_val = torch.from_numpy(data.X_val), torch.from_numpy(data.y_val)
    if config.preprocessing == "per_channel":
        stats = channel_stats(data.X_train)
        mean = torch.tensor(stats["mean"], dtype=torch.float32).view(1, 3, 1)
        inv_std = torch.tensor(1.0 / np.maximum(stats["std"], 1e-8),
                               dtype=torch.float32).view(1, 3, 1)

    def normalise(xb):  # (m, D) uint8 -> (m, D) float32
        x = xb.float()
        if config.preprocessing == "per_channel":
            x.view(-1, 3, 1024).sub_(mean).mul_(inv_std)
        else:
            x.sub_(x.mean(dim=1, keepdim=True))
            x.div_(x.std(dim=1, correction=0, keepdim=True).clamp_min(1e-8))
        return x

    span = torch.arange(32)

    def augment_uint8(xb):  # (N, D) uint8, a copy, -> (N, D) uint8
        img = xb.view(N, 3, 32, 32)
        if pad:
            padded = F.pad(img, (pad, pad, pad, pad))  # zeros, (N, 3, 32+2p, 32+2p)
            dy, dx = torch.randint(0, 2 * pad + 1, (2, N), generator=gen)
            img = padded[torch.arange(N).view(N, 1, 1, 1), torch.arange(3).view(1, 3, 1, 1),
                         (dy[:, None] + span).view(N, 1, 32, 1),
                         (dx[:, None] + span).view(N, 1, 1, 32)]  # (N, 3, 32, 32)
        if config.flip:
            flip = torch.rand(N, generator=gen) < 0.5
            img[flip] = img[flip].flip(3)
        return img.reshape(N, D)

    layers, d_in = [], D
    for h in config.hidden_dim:
        layers += [nn.Linear(d_in, h), nn.ReLU()] + ([nn.Dropout(config.dropout)]
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

    perm, pos, losses, evals = torch.randperm(n, generator=gen), 0, [], 0
    best = {"val": -1.0, "params": None}  # the best parameters so far, as the trainer keeps
    start = time.perf_counter()
    for step in range(1, total + 1):
        if pos + N > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos:pos + N]
        pos += N
        loss = loss_fn(model(normalise(augment_uint8(X[idx]))), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        lr = lr_at(step, alpha=config.alpha, total=total, schedule=config.schedule,
                   warmup=config.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            raise SystemExit(f"PyTorch diverged at step {step}")
        if step % eval_every == 0 or step == total:
            accuracy_t(X_eval, y_eval)
            val = accuracy_t(X_val, y_val)
            evals += 1
            if not val <= best["val"]:  # also when there is no validation split (NaN)
                best["val"] = val
                best["params"] = {k: v.clone() for k, v in model.state_dict().items()}
    seconds = time.perf_counter() - start
    blas = "MKL" if torch.backends.mkl.is_available() else "no MKL"
    return {"seconds": seconds, "steps": total, "evals": evals,
            "mean_loss": statistics.fmean(losses),
            "version": f"PyTorch {torch.__version__} ({blas})"}


def time_products(config, steps):
    """Median ms of one step's matrix products alone, at the recipe's shapes and in the
    model's own calls (numpy_mlp.nn.layers: ``x @ W``, ``np.matmul(x.T, dout, out=dW)``,
    ``dout @ W.T`` for every layer but the first): the floor under any step of the recipe
    that computes these products with numpy's BLAS, whatever the work around them costs."""
    rng = np.random.default_rng(0)
    N, dims = config.batch_size, layer_dims(config)
    layers = [(rng.standard_normal((N, d_in), dtype=np.float32),
               rng.standard_normal((d_in, d_out), dtype=np.float32),
               rng.standard_normal((N, d_out), dtype=np.float32),
               np.empty((d_in, d_out), dtype=np.float32))
              for d_in, d_out in zip(dims[:-1], dims[1:])]
    times = []
    with threadpool_limits(config.threads, user_api="blas"):
        for rep in range(PHASE_WARMUP + steps):
            start = time.perf_counter()
            for x, W, _, _ in layers:
                x @ W
            for i, (x, W, dout, dW) in reversed(list(enumerate(layers))):
                np.matmul(x.T, dout, out=dW)
                if i:
                    dout @ W.T
            if rep >= PHASE_WARMUP:
                times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def run_phases(config, data):
    """Our step replayed phase by phase: median ms of each phase, evaluation spread per step."""
    N = config.batch_size
    run = build(config, data)  # the trainer's own model, optimizer, normalisation and streams
    model, optimizer, prepare = run.model, run.optimizer, run.preprocessor
    order_rng, aug_rng = run.loop.order_rng, run.loop.aug_rng
    X_train, y_train, n = data.X_train, data.y_train, len(data.y_train)
    X_eval, y_eval = X_train[run.eval_idx], y_train[run.eval_idx]
    batch = np.empty((N, D), dtype=model.dtype)  # reused input buffer, as in the trainer
    perm, pos = run.loop.perm, 0
    times = {phase: [] for phase in PHASES[:-1]}
    steps = min(PHASE_STEPS, config.num_iters)
    with threadpool_limits(config.threads, user_api="blas"):
        for step in range(1, PHASE_WARMUP + steps + 1):
            if pos + N > n:
                perm, pos = order_rng.permutation(n), 0
            idx = perm[pos:pos + N]
            pos += N
            t = [time.perf_counter()]
            X_uint8 = augment(X_train[idx], aug_rng, flip=config.flip, crop_pad=config.crop_pad,
                              geometry=data.geometry)
            t.append(time.perf_counter())
            X = prepare(X_uint8, out=batch)  # (N, D)
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


def child_main(args):
    """One run in this fresh process; prints its result as one JSON line."""
    config = measured_config(args.recipe, args.steps, args.evals, args.threads)
    data = load_cifar10(args.data_dir, download=False, progress=False)
    run = {"ours": run_ours, "torch": run_torch, "phases": run_phases}[args.child]
    out = run(config, data)
    out["peak_mb"] = peak_rss_mb()
    print(json.dumps(out))


def child(side, name, steps, evals, threads, data_dir):
    """Run ``side`` of recipe ``name`` in a fresh Python process; its JSON result."""
    cmd = [sys.executable, __file__, "--child", side, "--recipe", name, "--steps", str(steps),
           "--evals", str(evals), "--threads", str(threads)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
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
    lines += ["", "Recipes:"] + [f"- {name}: {RECIPES[name][0]}; batch "
                                 f"{RECIPES[name][1].batch_size}; one evaluation every "
                                 f"{interval} steps in the full run"
                                 for name, (_, _, interval) in plans.items()]
    return "\n".join(lines)


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number >= 1")
    return value


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipes", default=",".join(RECIPES),
                   help=f"comma-separated, from {', '.join(RECIPES)} (default: all)")
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
    p.add_argument("--child", choices=("ours", "torch", "phases"), help=argparse.SUPPRESS)
    p.add_argument("--recipe", choices=tuple(RECIPES), help=argparse.SUPPRESS)
    p.add_argument("--evals", type=positive, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args)

    args.argv = argv
    args.threads = args.threads or blas_default_threads()
    names = [s.strip() for s in args.recipes.split(",") if s.strip()]
    unknown = [s for s in names if s not in RECIPES]
    if unknown or not names:
        p.error(f"--recipes: unknown {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(RECIPES)}")
    if not args.no_torch and importlib.util.find_spec("torch") is None:
        raise SystemExit("recipes.py: PyTorch is not installed: run .venv/bin/pip install -e "
                         "'.[bench]' (torch==2.13.0, CPU wheel), or pass --no-torch")
    data = load_cifar10(args.data_dir, download=False, progress=False)  # to count and fail early
    n_train = len(data.y_train)
    del data  # the children read it themselves
    plans = {}  # name -> (steps, evals, the full run's evaluation interval)
    for name in names:
        interval = eval_interval(RECIPES[name][1], n_train)
        steps = args.steps or interval
        plans[name] = (steps, max(1, round(steps / interval)), interval)

    started, load_start = datetime.datetime.now(datetime.timezone.utc), os.getloadavg()
    cpu_start, wall_start = cpu_seconds(), time.perf_counter()
    results = {name: {"ours": [], "torch": [], "phases": [], "matmul": []} for name in plans}
    versions = None
    for rep in range(args.repeats):
        for name, (steps, evals, _) in plans.items():
            r = results[name]
            r["ours"].append(child("ours", name, steps, evals, args.threads, args.data_dir))
            msg = f"repeat {rep + 1}/{args.repeats}, {name}: numpy-mlp " \
                  f"{1e3 * r['ours'][-1]['seconds'] / steps:.1f} ms/step " \
                  f"(mean loss {r['ours'][-1]['mean_loss']:.3f})"
            if not args.no_torch:
                r["torch"].append(child("torch", name, steps, evals, args.threads, args.data_dir))
                versions = r["torch"][-1]["version"]
                msg += f", PyTorch {1e3 * r['torch'][-1]['seconds'] / steps:.1f} ms/step " \
                       f"(mean loss {r['torch'][-1]['mean_loss']:.3f})"
            r["matmul"].append(matmul_gflops(args.threads))
            r["phases"].append(child("phases", name, steps, evals, args.threads, args.data_dir))
            print(msg + f", matmul {r['matmul'][-1]:.0f} GFLOP/s", file=sys.stderr, flush=True)
    others = other_cores(cpu_start, cpu_seconds(), time.perf_counter() - wall_start)
    print(report(args, plans, results, started, load_start, others, versions))


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:  # e.g. no data where --data-dir points: one line, no traceback
        raise SystemExit(f"recipes.py: {exc}") from None
