"""numpy-mlp against PyTorch on the CPU: the two-layer net, same data, same batches, same threads.

    .venv/bin/pip install -e '.[bench]'            # torch==2.13.0 (CPU wheel), once
    .venv/bin/python benchmarks/bench_torch.py     # about 4 minutes on 2 idle cores

Both train 3072 -> H -> 10 (ReLU, softmax cross-entropy, SGD with momentum 0.9, float32) on
the uint8 CIFAR-10 training split, each step taking a minibatch by index from a permutation,
converting it to float32 and normalising each image (per_image), then forward, backward and
update; neither adds an L2 term or augments the images. numpy-mlp runs its real trainer,
``numpy_mlp.training.loop.train`` (one final evaluation on a single image, nothing else extra);
PyTorch runs the loop it is usually written with (``nn.Sequential``, ``F.cross_entropy``,
``torch.optim.SGD(momentum=0.9)``, ``loss.item()``).

For every case (batch N in 40, 256, 1024; H in 200, 1000; BLAS threads 1 and 2) the runs are
interleaved (ours, torch, ours, torch, ...) and the medians of ``--reps`` repetitions are
reported: samples/s for both, their ratio, and our GFLOP/s against the GFLOP/s of a large
float32 matrix product (2048^3, numpy's BLAS) timed in the same rounds with the same threads.
The last column is the ceiling: the GFLOP/s the step's five matrix products reach by
themselves at that shape, against the same large product.
``auto`` is numpy-mlp's default thread choice (numpy_mlp/training/threads.py), compared with
the better of its own 1- and 2-thread runs. A third table times full-set evaluation (50,000 images,
``inference.predict_labels``: uint8 batches of 2000, copied to float32 with the normalisation folded
into the first layer, forward, argmax) against its matrix products alone.

FLOPs counted per training step (multiply-add = 2): forward 2N(DH + HC), weight gradients
2N(DH + HC), input gradient of the second layer 2NHC (none for the first: its input is data).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from numpy_mlp import TrainConfig
from numpy_mlp.data.cifar10 import load_cifar10
from numpy_mlp.data.preprocessing import Preprocessor
from numpy_mlp.nn.model import FullyConnectedNet
from numpy_mlp.training.inference import predict_labels
from numpy_mlp.training.loop import train

D, C = 3072, 10
SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared/data/cifar-10-batches-py"


def train_flops(N, H):
    """FLOPs of one training step of 3072 -> H -> 10 (see the module docstring)."""
    return 4 * N * D * H + 6 * N * H * C


def ours(data, N, H, threads, steps):
    """Seconds numpy-mlp's trainer takes for ``steps`` steps (its own clock, after set-up)."""
    # the same work as the torch loop: no L2 term and no augmentation (the trainer's defaults
    # have both; they are not part of the model or the optimizer being compared)
    cfg = TrainConfig(hidden_dim=(H,), batch_size=N, num_iters=steps, evals=1, eval_train_size=1,
                      schedule="constant", alpha=1e-3, beta=0.9, reg=0.0, flip=False,
                      threads=threads)
    result = train(cfg, data)
    return result.history["seconds"][-1]


def torch_run(data, N, H, threads, steps):
    """Seconds PyTorch takes for the same ``steps`` steps, set-up excluded."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    X, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)
    model = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.ReLU(), torch.nn.Linear(H, C))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    n = len(y)
    perm, pos = torch.randperm(n), 0
    start = time.perf_counter()
    for _ in range(steps):
        if pos + N > n:
            perm, pos = torch.randperm(n), 0
        idx = perm[pos:pos + N]
        pos += N
        x = X[idx].float()  # (N, D)
        x -= x.mean(dim=1, keepdim=True)
        x /= x.std(dim=1, unbiased=False, keepdim=True).clamp_min(1e-8)
        loss = F.cross_entropy(model(x), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not np.isfinite(loss.item()):
            raise RuntimeError("torch diverged")
    return time.perf_counter() - start


def matmul_gflops(threads, n=2048, reps=3):
    """GFLOP/s of a large float32 product (n x n) @ (n x n) with numpy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    with threadpool_limits(threads, user_api="blas"):
        np.matmul(a, b, out=out)  # warm-up
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            np.matmul(a, b, out=out)
            times.append(time.perf_counter() - t)
    return 2 * n ** 3 / min(times) / 1e9


def step_products_gflops(N, H, threads, seconds=0.3):
    """GFLOP/s of one training step's five matrix products alone, at this shape and thread count.

    x @ W1, h @ W2, h.T @ dscores, dscores @ W2.T, x.T @ dh: the ceiling for the step, which
    also normalises the batch, applies ReLU, the loss and the update. Median over the
    repetitions that fit in ``seconds``.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D), dtype=np.float32)
    W1 = rng.standard_normal((D, H), dtype=np.float32)
    W2 = rng.standard_normal((H, C), dtype=np.float32)
    h, s, dh = (np.empty((N, H), np.float32), np.empty((N, C), np.float32),
                np.empty((N, H), np.float32))
    dW1, dW2 = np.empty_like(W1), np.empty_like(W2)

    def products():
        np.matmul(x, W1, out=h)
        np.matmul(h, W2, out=s)
        np.matmul(h.T, s, out=dW2)
        np.matmul(s, W2.T, out=dh)
        np.matmul(x.T, dh, out=dW1)

    with threadpool_limits(threads, user_api="blas"):
        products()  # warm-up
        times, end = [], time.perf_counter() + seconds
        while time.perf_counter() < end or len(times) < 5:
            t = time.perf_counter()
            products()
            times.append(time.perf_counter() - t)
    return train_flops(N, H) / statistics.median(times) / 1e9


def eval_case(data, H, threads, reps):
    """(seconds of inference.predict_labels on 50,000 images, seconds of its matrix products alone).

    With ``threads`` > 1 inference.predict_labels chooses among 1..threads itself, and the products
    alone are timed with the better of 1 and ``threads``.
    """
    X = np.concatenate([data.X_train, data.X_val])[:50000]  # (50000, D) uint8
    model = FullyConnectedNet(D, H, C, seed=0)
    prepare = Preprocessor("per_image", None, np.float32)
    W1, W2 = model.params["W1"], model.params["W2"]
    B = 2000  # inference.predict_labels's batch size
    xb = prepare(X[:B])  # (B, D) float32
    h, s = np.empty((B, H), np.float32), np.empty((B, C), np.float32)
    full, products = [], {n: [] for n in range(1, threads + 1)}
    for _ in range(reps):
        with threadpool_limits(threads, user_api="blas"):
            t = time.perf_counter()
            predict_labels(model, prepare, X, batch_size=B)
            full.append(time.perf_counter() - t)
        for n in products:
            with threadpool_limits(n, user_api="blas"):
                t = time.perf_counter()
                for _ in range(0, len(X), B):
                    np.matmul(xb, W1, out=h)
                    np.matmul(h, W2, out=s)
                products[n].append(time.perf_counter() - t)
    return statistics.median(full), min(statistics.median(t) for t in products.values())


def machine():
    try:
        model = next(line.split(":", 1)[1].strip() for line in
                     subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                     if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    import os
    try:
        load = " , load average %.1f %.1f %.1f" % os.getloadavg()
    except OSError:
        load = ""
    return f"{model}, {os.cpu_count()} cores{load}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=str(SHARED_CIFAR) if SHARED_CIFAR.is_dir() else None,
                   help="CIFAR-10 folder (default ../shared/data/cifar-10-batches-py, "
                        "else ~/.cache/numpy-mlp)")
    p.add_argument("--reps", type=int, default=3, help="repetitions per case; medians are reported")
    p.add_argument("--seconds", type=float, default=3.0,
                   help="rough length of one timed run at 60 GFLOP/s "
                        "(auto needs runs of a second or more: "
                        "its first measured check comes after 0.25 s)")
    p.add_argument("--batches", default="40,256,1024")
    p.add_argument("--hidden", default="200,1000")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation table")
    args = p.parse_args(argv)

    import torch

    data = load_cifar10(args.data_dir, download=False, progress=False)
    # no val evaluation
    data = dataclasses.replace(data, X_val=data.X_val[:0], y_val=data.y_val[:0])
    batches = [int(b) for b in args.batches.split(",")]
    hidden = [int(h) for h in args.hidden.split(",")]
    print(f"# numpy-mlp vs PyTorch {torch.__version__}, numpy {np.__version__}, {date.today()}")
    print(f"# {machine()}")
    print(f"# {len(data.y_train)} training images, "
          f"medians of {args.reps} interleaved repetitions\n")
    print("|   N |    H | threads | numpy-mlp samples/s | torch samples/s | ratio | our GFLOP/s "
          "| matmul GFLOP/s | % of matmul | step's products alone: % of matmul |")
    print("|----:|-----:|--------:|--------------------:|----------------:|------:|------------:|---------------:"
          "|------------:|------------:|")
    auto_rows = []
    for N in batches:
        for H in hidden:
            # about args.seconds per run at ~60 GFLOP/s, at least 20 steps
            steps = max(20, int(args.seconds * 60e9 / train_flops(N, H)))
            times = {}
            for _ in range(args.reps):
                for threads in (1, 2):
                    times.setdefault(("ours", threads), []).append(ours(data, N, H, threads, steps))
                    times.setdefault(("torch", threads), []).append(
                        torch_run(data, N, H, threads, steps))
                    times.setdefault(("mm", threads), []).append(matmul_gflops(threads))
                    times.setdefault(("products", threads), []).append(
                        step_products_gflops(N, H, threads))
                times.setdefault(("ours", "auto"), []).append(ours(data, N, H, "auto", steps))
            med = {k: statistics.median(v) for k, v in times.items()}
            for threads in (1, 2):
                t_ours, t_torch = med[("ours", threads)], med[("torch", threads)]
                peak = med[("mm", threads)]
                gf = train_flops(N, H) * steps / t_ours / 1e9
                print(f"| {N:>4} | {H:>4} | {threads:>7} | {N * steps / t_ours:>19,.0f} "
                      f"| {N * steps / t_torch:>15,.0f} "
                      f"| {t_torch / t_ours:>5.2f} | {gf:>11.1f} | {peak:>14.1f} "
                      f"| {100 * gf / peak:>10.0f}% "
                      f"| {100 * med[('products', threads)] / peak:>10.0f}% |")
            best = min(med[("ours", 1)], med[("ours", 2)])
            t_auto = med[("ours", "auto")]
            auto_rows.append((N, H, N * steps / t_auto, N * steps / best, t_auto / best))
            sys.stdout.flush()

    print("\n| N | H | auto samples/s | best of 1 and 2 threads | auto time / best time |")
    print("|--:|--:|---------------:|------------------------:|---------------------:|")
    for N, H, auto, best, ratio in auto_rows:
        print(f"| {N} | {H} | {auto:,.0f} | {best:,.0f} | {ratio:.2f} |")

    if not args.no_eval:
        print("\n| H | threads | full-set evaluation (50,000 images) s "
              "| its matrix products alone s | ratio |")
        print("|--:|--------:|--------------------------------------:|----------------------------:|------:|")
        for H in hidden:
            for threads, label in ((1, "1"), (2, "auto (1-2)")):
                full, products = eval_case(data, H, threads, args.reps)
                print(f"| {H} | {label} | {full:.3f} | {products:.3f} | {full / products:.2f} |")


if __name__ == "__main__":
    main()
