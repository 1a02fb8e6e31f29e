"""Time per epoch of numpy-mlp's trainer against hidden size and batch size, beside the FLOPs.

    .venv/bin/python benchmarks/cost_growth.py            # about 4 minutes, 1 BLAS thread

For the two-layer net 3072 -> H -> 10 on the 45,000-image training split, every (H, N) runs
the real trainer (``numpy_mlp.training.loop.train``) for a short stretch, ``--reps`` times
interleaved, and reports the median time per epoch (45000 // N steps), the achieved GFLOP/s,
the time per epoch divided by the FLOPs per epoch relative to the largest case (1.00 = cost
grows exactly as the FLOP count does), and the share of the time spent in the SGD update,
timed on its own for the same parameters. That update reads and writes every parameter
once per *step* whatever N is, so its cost per epoch grows as H / N while the products grow
as H only. The products are also timed alone, on ready float32 arrays, to show how much of
the knee at small batches is the BLAS itself (a 40-row product cannot use the cores as
well as a 1024-row one) and how much is everything around it.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_torch import SHARED_CIFAR, machine, ours, train_flops  # noqa: E402

from numpy_mlp.data.cifar10 import load_cifar10
from numpy_mlp.nn.model import FullyConnectedNet
from numpy_mlp.nn.optim import SGD


def update_seconds(H, threads, reps=5):
    """Median seconds of one ``SGD.step`` on the parameters of 3072 -> H -> 10."""
    model = FullyConnectedNet(3072, H, 10, seed=0)
    opt = SGD(model.params, alpha=1e-3, beta=0.9)
    grads = {k: np.full_like(v, 1e-3) for k, v in model.params.items()}
    opt.step(grads)  # warm-up: touch the buffers
    times = []
    with threadpool_limits(threads, user_api="blas"):
        for _ in range(reps):
            t = time.perf_counter()
            opt.step(grads)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def products_seconds(N, H, threads, reps=5):
    """Median seconds of one step's matrix products alone, on ready float32 arrays.

    Forward X @ W1 and h @ W2; backward X.T @ dh, h.T @ ds and ds @ W2.T (as the trainer).
    """
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, 3072), dtype=np.float32)
    W1 = rng.standard_normal((3072, H), dtype=np.float32)
    W2 = rng.standard_normal((H, 10), dtype=np.float32)
    ds = rng.standard_normal((N, 10), dtype=np.float32)
    h, dW1 = np.empty((N, H), np.float32), np.empty((3072, H), np.float32)
    times = []
    with threadpool_limits(threads, user_api="blas"):
        for _ in range(reps + 1):
            t = time.perf_counter()
            np.matmul(X, W1, out=h)
            s = h @ W2
            dh = ds @ W2.T
            np.matmul(X.T, dh, out=dW1)
            h.T @ ds
            times.append(time.perf_counter() - t)
    del s
    return statistics.median(times[1:])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=str(SHARED_CIFAR) if SHARED_CIFAR.is_dir() else None)
    p.add_argument("--hidden", default="100,200,500,1000,2000,4096")
    p.add_argument("--batches", default="40,256,1024")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (fixed, for a clean comparison)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=float, default=0.6, help="rough length of one timed run")
    args = p.parse_args(argv)

    data = load_cifar10(args.data_dir, download=False, progress=False)
    data = dataclasses.replace(data, X_val=data.X_val[:0], y_val=data.y_val[:0])
    hidden = [int(h) for h in args.hidden.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    cases = [(H, N, max(10, int(args.seconds * 60e9 / train_flops(N, H))))
             for H in hidden for N in batches]
    times = {}
    for _ in range(args.reps):
        for H, N, steps in cases:
            times.setdefault((H, N), []).append(ours(data, N, H, args.threads, steps) / steps)
    update = {H: update_seconds(H, args.threads) for H in hidden}
    products = {(H, N): products_seconds(N, H, args.threads) for H, N, _ in cases}

    n = len(data.y_train)
    per_epoch = {(H, N): statistics.median(times[(H, N)]) * (n // N) for H, N, _ in cases}
    flops_epoch = {(H, N): train_flops(N, H) * (n // N) for H, N, _ in cases}
    ref = max(cases, key=lambda c: (c[0], c[1]))[:2]
    ref_cost = per_epoch[ref] / flops_epoch[ref]
    print(f"# time per epoch ({n} images), {args.threads} BLAS thread(s), medians of {args.reps}")
    print(f"# {machine()}\n")
    print("|    H |    N | s / epoch | GFLOP / epoch | GFLOP/s | s per FLOP vs H=%d,N=%d "
          "| products alone GFLOP/s | products share | SGD update share |" % ref)
    print("|-----:|-----:|----------:|--------------:|--------:|------------------------:|-----------------------:"
          "|---------------:|-----------------:|")
    for H, N, _ in cases:
        t, f = per_epoch[(H, N)], flops_epoch[(H, N)]
        t_products = products[(H, N)] * (n // N)
        print(f"| {H:>4} | {N:>4} | {t:>9.2f} | {f / 1e9:>13.0f} | {f / t / 1e9:>7.1f} | "
              f"{t / f / ref_cost:>23.2f} | {f / t_products / 1e9:>22.1f} "
              f"| {100 * t_products / t:>13.0f}% "
              f"| {100 * update[H] * (n // N) / t:>15.0f}% |")


if __name__ == "__main__":
    main()
