"""What each ingredient buys: one recipe with each method switched on or off, on validation.

    .venv/bin/python benchmarks/ablations.py                       # 2 seeds, ~35 min on 2 cores
    .venv/bin/python benchmarks/ablations.py --rows base,ema --seeds 0,1,2
    .venv/bin/python benchmarks/ablations.py --epochs 0.2 --seeds 0   # a smoke test, ~1 min

Each row is the base recipe (``BASE``, a short two-layer recipe: H = 1024, crops of pad 2,
flips, label smoothing 0.1, L2 1e-3, per-channel, a cosine schedule with warm-up) with the
changes ``ROWS`` gives, trained by ``numpy_mlp.training.loop`` for ``--epochs`` epochs on 45,000
images and scored on the 5,000 validation images (the same split for every seed: the split
is drawn with seed 0, the training seed varies). The test set is never read. The markdown
on stdout goes into docs/ablations.md: per row the best validation accuracy (mean and
range over the seeds, then its difference from the base row), the final training
accuracy (on the fixed 5,000-image subset), which weights were kept (trained or EMA) and
the minutes of training, with the 2048^3 float32 product's GFLOP/s on the same threads
timed before and after, so that wall times of different days can be compared.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys

from recipes import SHARED_CIFAR, machine, matmul_gflops

from numpy_mlp import TrainConfig, load_cifar10, train

BASE = dict(hidden_dim=(1024,), crop_pad=2, flip=True, label_smoothing=0.1, reg=1e-3,
            warmup=200, preprocessing="per_channel", evals=10)
TIME_256 = 1.35  # a batch of 256 runs this many times the samples/s of 128 at the base's shapes
ROWS = {  # name -> (what changes, TrainConfig fields beside BASE[, factor on --epochs])
    "base": ("the base recipe", {}),
    "ema": ("EMA of the weights, decay 0.999", {"ema": 0.999}),
    "batchnorm": ("batch norm before the ReLU", {"norm": "batch"}),
    "layernorm": ("layer norm before the ReLU", {"norm": "layer"}),
    "gelu": ("GELU instead of ReLU", {"activation": "gelu"}),
    "mixup": ("MixUp, alpha 0.2, every batch", {"mixup": 0.2}),
    "cutmix": ("CutMix, alpha 1, every batch", {"cutmix": 1.0}),
    "dropout": ("dropout 0.1 after the hidden layer", {"dropout": 0.1}),
    "residual": ("residual: stem 512, one pre-norm block x4 (3.7M weights, base 3.2M), "
                 "layer norm", {"hidden_dim": (512,), "blocks": 1, "norm": "layer"}),
    "alpha-2x": ("learning rate 0.02 (base 0.01)", {"alpha": 0.02}),
    "gelu+batchnorm": ("GELU and batch norm", {"activation": "gelu", "norm": "batch"}),
    "gelu+alpha-2x": ("GELU and learning rate 0.02", {"activation": "gelu", "alpha": 0.02}),
    "alpha-4x": ("learning rate 0.04", {"alpha": 0.04}),
    "alpha-10x": ("learning rate 0.1", {"alpha": 0.1}),
    "whiten": ("whitening to 1024 components, floor 3 (the defaults), learning rate 0.1",
               {"preprocessing": "whiten", "alpha": 0.1}),
    **{f"whiten-e{eps:g}-a{alpha:g}": (f"whitening to 1024 components, floor {eps:g}, "
                                       f"learning rate {alpha:g}",
                                       {"preprocessing": "whiten", "whiten_eps": eps,
                                        "alpha": alpha})
       for eps, alpha in ((0.01, 0.01), (0.1, 0.01), (1, 0.01), (10, 0.01), (0.1, 0.04),
                          (0.1, 0.1), (0.1, 0.2), (0.3, 0.1), (1, 0.05), (1, 0.1), (1, 0.2),
                          (10, 0.1))},
    **{f"whiten-{k}-e0.1": (f"whitening to {k} components, floor 0.1, learning rate 0.01",
                            {"preprocessing": "whiten", "whiten_dim": k, "whiten_eps": 0.1})
       for k in (256, 3072)},
    **{f"whiten-batch-256-a{alpha:g}": (f"whitening (defaults), batch 256, learning rate "
                                        f"{alpha:g}", {"preprocessing": "whiten",
                                                       "batch_size": 256, "alpha": alpha})
       for alpha in (0.1, 0.2)},
    "batch-256": ("batch 256 and learning rate 0.02 (linear scaling), the same epochs",
                  {"batch_size": 256, "alpha": 0.02}),
    "batch-256-time": (f"batch 256, learning rate 0.02, {TIME_256}x the epochs (equal wall time)",
                       {"batch_size": 256, "alpha": 0.02}, TIME_256),
    "batch-256-alpha-1x": (f"batch 256, learning rate 0.01, {TIME_256}x the epochs",
                           {"batch_size": 256}, TIME_256),
}


def run_row(data, name, epochs, seed, threads):
    _, changes, *factor = ROWS[name]
    epochs *= factor[0] if factor else 1.0
    config = TrainConfig(**{**BASE, **changes, "epochs": epochs, "seed": seed,
                            "threads": threads})
    result = train(config, data)
    h = result.history
    return {"val": result.best_val_acc, "train": h["train_acc"][-1],
            "minutes": result.seconds / 60, "source": result.best_source}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default=",".join(ROWS), help="rows to run (default: all)")
    p.add_argument("--seeds", default="0,1", help="training seeds (0,1)")
    p.add_argument("--epochs", type=float, default=10.0, help="epochs per run (10)")
    p.add_argument("--threads", type=int, default=2, help="BLAS threads (2)")
    p.add_argument("--data-dir", default=str(SHARED_CIFAR))
    args = p.parse_args(argv)
    rows = args.rows.split(",")
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        p.error(f"unknown row(s) {', '.join(unknown)}; rows: {', '.join(ROWS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    data = load_cifar10(args.data_dir, download=False, progress=False)
    before = matmul_gflops(args.threads)
    load_start = os.getloadavg()
    results = {r: [] for r in rows}
    for seed in seeds:  # every row once per seed, so that a slow spell hits all rows alike
        for r in rows:
            results[r].append(run_row(data, r, args.epochs, seed, args.threads))
            got = results[r][-1]
            print(f"seed {seed} {r}: val {got['val']:.4f} train {got['train']:.4f} "
                  f"{got['minutes']:.1f} min ({got['source']})", file=sys.stderr, flush=True)
    after = matmul_gflops(args.threads)
    base = statistics.mean(x["val"] for x in results["base"]) if "base" in results else None
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    print(f"Measured {now} UTC: `python benchmarks/ablations.py --rows {args.rows} "
          f"--seeds {args.seeds} --epochs {args.epochs:g}`")
    for line in machine():
        print(f"- {line}")
    print(f"- {args.threads} BLAS threads; 2048^3 float32 product {before:.0f} GFLOP/s before, "
          f"{after:.0f} after; load average {load_start[0]:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end")
    print(f"- base: {', '.join(f'{k}={v}' for k, v in BASE.items())}, {args.epochs:g} epochs\n")
    print("| row | change | val acc (mean, range) | vs base | final train acc | kept | min |")
    print("|---|---|---:|---:|---:|---|---:|")
    for r in rows:
        vals = [x["val"] for x in results[r]]
        mean = statistics.mean(vals)
        delta = f"{100 * (mean - base):+.1f} pt" if base is not None and r != "base" else ""
        kept = "/".join(sorted({x["source"] for x in results[r]}))
        print(f"| {r} | {ROWS[r][0]} | {mean:.4f} ({min(vals):.4f}-{max(vals):.4f}) | {delta} | "
              f"{statistics.mean(x['train'] for x in results[r]):.4f} | {kept} | "
              f"{statistics.mean(x['minutes'] for x in results[r]):.1f} |")


if __name__ == "__main__":
    main()
