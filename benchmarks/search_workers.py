"""How much faster two search workers finish the same trials than one, on real CIFAR-10.

    .venv/bin/python benchmarks/search_workers.py [--data-dir D] [--trials 8] [--repeats 3]

Every trial costs the same (fixed H, batch size and length; only alpha, beta and reg are
searched; no pruning), so both settings do the same work. Runs alternate 1, 2, 1, 2, ...
workers so that a change in the machine's load hits both alike; prints each run and the
medians: the whole command (data loading, spawning, the final test and plots included)
and the workers' phase alone (``search_seconds`` in best.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared/data/cifar-10-batches-py"


def run(workers, trials, data_dir, out):
    cmd = [sys.executable, "-m", "numpy_mlp", "search", "--data-dir", str(data_dir), "--offline",
           "--out", str(out), "--n-trials", str(trials), "--workers", str(workers),
           "--pruner", "none", "--quiet",
           "--set", "hidden_dim=1024", "--set", "batch_size=128", "--set", "epochs=1",
           "--set", "evals=2", "--set", "eval_train_size=1000",
           "--space", "alpha=1e-3:3e-2:log", "--space", "beta=0.5:0.95",
           "--space", "reg=1e-5:1e-2:log"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    total = time.perf_counter() - t0
    best = json.loads((Path(out) / "best.json").read_text())
    assert best["trials"]["complete"] == trials, best["trials"]
    return total, best["search_seconds"]


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(DEFAULT_DATA))
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} (1 min), cores: {os.cpu_count()}")
    times = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for k in (1, 2):
                total, phase = run(k, args.trials, args.data_dir, Path(tmp) / f"{k}-{r}")
                times[k].append((total, phase))
                print(f"repeat {r}: {k} worker(s): {args.trials} trials in {total:.1f}s "
                      f"(workers' phase {phase:.1f}s); load {os.getloadavg()[0]:.2f}", flush=True)
    med = {k: (statistics.median(t for t, _ in v), statistics.median(p for _, p in v))
           for k, v in times.items()}
    print(f"median, 1 worker: {med[1][0]:.1f}s (phase {med[1][1]:.1f}s); "
          f"2 workers: {med[2][0]:.1f}s (phase {med[2][1]:.1f}s)")
    print(f"speed-up of 2 workers: {med[1][0] / med[2][0]:.2f}x for the whole command, "
          f"{med[1][1] / med[2][1]:.2f}x for the workers' phase")


if __name__ == "__main__":
    main()
