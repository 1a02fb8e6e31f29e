"""Does the automatic BLAS thread choice pay: ``threads="auto"`` against fixed counts.

    .venv/bin/python benchmarks/thread_choice.py     # about 24 min; run it on an idle machine

``--threads auto`` follows ``numpy_mlp.training.threads.load_rule``: all threads if other processes
leave 1.5 cores free, else one, checked every 30 s. This script runs the real training loop
(``numpy_mlp.training.loop``, on random uint8 images, so no data set is needed) with each of

- ``auto``: ``threads="auto"``;
- ``1`` and ``2``: ``threads=1`` and ``threads=2``;

for two steps, the default recipe's (``TrainConfig()``: H = 1000, batch 128, float32, its L2
and flips) and the notebook's (H = 200, batch 40, no L2, no flips), and in two conditions:
the other cores idle, and ``--busy`` cores (1) kept busy by a busy-loop process that this
script starts and stops itself. Each run lasts ``--seconds`` of wall time and starts as a
fresh process would (no count remembered from an earlier chooser); the runs are interleaved
(every repeat runs every policy, in an order rotated from repeat to repeat) and the table
gives the median milliseconds per step over ``--repeats`` repeats, each policy's time
against the best fixed count, and the share of steps ``auto`` ran on more than one thread.
``--seconds`` should exceed the chooser's 30 s recheck, so that the cost of re-checking is
in the figures. The markdown table it prints goes into docs/threads.md.

    .venv/bin/python benchmarks/thread_choice.py --seconds 1 --repeats 1   # a smoke test, ~15 s
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

import numpy_mlp.training.threads as threads_module
from numpy_mlp import TrainConfig, train
from numpy_mlp.data.cifar10 import CIFAR10_GEOMETRY, CLASS_NAMES
from numpy_mlp.data.dataset import Dataset
from numpy_mlp.training.threads import blas_libraries, blas_threads, set_blas_threads

POLICIES = {"auto": "auto", "1": 1, "2": 2}  # name -> TrainConfig.threads
RECIPES = {  # name -> TrainConfig fields beside the defaults
    "default (H=1000, N=128)": {},
    "notebook (H=200, N=40)": {"hidden_dim": (200,), "batch_size": 40, "reg": 0.0,
                               "flip": False},
}
BUSY_LOOP = "while True: pass"


class TimeUp(Exception):
    """Ends a run after its seconds (raised from the trainer's on_step callback)."""


def random_data(n_train=2000, n_small=50, seed=0):
    """Random uint8 images (N, 3072) and labels: the step costs what it costs on CIFAR-10."""
    rng = np.random.default_rng(seed)

    def split(n):
        return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n)

    (Xtr, ytr), (Xva, yva), (Xte, yte) = split(n_train), split(n_small), split(n_small)
    return Dataset(Xtr, ytr, Xva, yva, Xte, yte, CLASS_NAMES, "random",
                   geometry=CIFAR10_GEOMETRY)


def run(policy, recipe, data, seconds):
    """Train for ``seconds`` under ``policy``: (seconds per step, share of steps on > 1 thread)."""
    threads_module._last_choice = None  # as a fresh process starts
    config = TrainConfig(threads=POLICIES[policy], num_iters=10**9, evals=1, eval_train_size=50,
                         checkpoint_every=0, **RECIPES[recipe])
    counts, ends = [], []  # per step: the count the chooser set, the time it ended

    def on_step(*_):
        counts.append(blas_threads())
        ends.append(time.perf_counter())
        if ends[-1] - ends[0] > seconds:
            raise TimeUp

    try:
        train(config, data, on_step=on_step)
    except TimeUp:
        pass
    # timed from the end of the first step: building the model is not a step
    per_step = (ends[-1] - ends[0]) / (len(ends) - 1)
    return per_step, sum(c > 1 for c in counts[1:]) / (len(counts) - 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=40.0, help="wall seconds per run (40)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each case (3)")
    p.add_argument("--busy", type=int, default=1, help="cores kept busy in the busy case (1)")
    args = p.parse_args(argv)

    cores = os.cpu_count() or 1
    set_blas_threads(cores)  # fixed 2 and the automatic rules may use every core
    libs = ", ".join(f"{lib.internal_api} {lib.version}" for lib in blas_libraries())
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{platform.processor() or platform.machine()}, {cores} cores, BLAS {libs}, "
          f"load average {os.getloadavg()[0]:.2f}; {args.seconds:g} s per run, "
          f"{args.repeats} repeats", flush=True)

    data = random_data()
    conditions = {"idle": 0, f"{args.busy} busy": args.busy}
    times = {}  # (condition, recipe, policy) -> [seconds per step]
    shares = {}  # (condition, recipe, policy) -> [share of steps on > 1 thread]
    order = list(POLICIES)
    for rep in range(args.repeats):
        for condition, n_busy in conditions.items():
            loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(n_busy)]
            try:
                time.sleep(1.0 if n_busy else 0.0)  # the loops are running
                for recipe in RECIPES:
                    rotated = order[rep % len(order):] + order[:rep % len(order)]
                    for policy in rotated:
                        per_step, share = run(policy, recipe, data, args.seconds)
                        times.setdefault((condition, recipe, policy), []).append(per_step)
                        shares.setdefault((condition, recipe, policy), []).append(share)
                        print(f"  repeat {rep + 1}, {condition}, {recipe}, {policy}: "
                              f"{per_step * 1e3:.2f} ms/step, {share:.0%} of steps on "
                              f"> 1 thread", file=sys.stderr, flush=True)
            finally:
                for loop in loops:
                    loop.terminate()
                    loop.wait()

    print()
    print("| step | other cores | auto ms | 1 thread ms | 2 threads ms | auto / best fixed "
          "| steps on > 1 thread: auto |")
    print("|---|---|---|---|---|---|---|")
    for condition in conditions:
        for recipe in RECIPES:
            med = {pol: statistics.median(times[condition, recipe, pol]) for pol in POLICIES}
            best = min(med["1"], med["2"])
            share = statistics.median(shares[condition, recipe, "auto"])
            print(f"| {recipe} | {condition} | {med['auto'] * 1e3:.2f} | {med['1'] * 1e3:.2f} "
                  f"| {med['2'] * 1e3:.2f} | {med['auto'] / best:.2f}x | {share:.0%} |")

if __name__ == "__main__":
    main()
