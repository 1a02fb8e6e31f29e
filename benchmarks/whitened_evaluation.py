"""A whitened model's evaluation: its first layer as one (D, H) product, or as the projection
(D, K) and then W1 (K, H), which ``Preprocessor.folded`` takes when it is fewer
multiplications (K*(D + H) < D*H).

    .venv/bin/python benchmarks/whitened_evaluation.py     # about 1 min on 2 idle cores

``predict_labels`` on the 10,000 CIFAR-10 test images, one view, 2 BLAS threads, for the
presets' shapes (random weights: the time does not depend on them), each way in turn,
``--reps`` rounds; prints the medians and whether both ways gave the same predictions.
Backs the table in docs/performance.md#full-set-evaluation.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from numpy_mlp.data.cifar10 import load_cifar10
from numpy_mlp.data.preprocessing import Preprocessor
from numpy_mlp.nn.model import FullyConnectedNet
from numpy_mlp.training.inference import predict_labels

# the CIFAR-10 copy beside the repository, whatever folder the script is run from
SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared/data/cifar-10-batches-py"
SHAPES = (("K = 512, 2048-1024-512 (fast)", 512, (2048, 1024, 512)),
          ("K = 1024, 2048-1024-512 (deep, hour)", 1024, (2048, 1024, 512)),
          ("K = 1024, 4096 (wide)", 1024, (4096,)))


class OneProduct(Preprocessor):
    """The whitening always folded into one (D, H) first layer, as before the choice."""

    def folded(self, W, b):
        W, b, plain = self.unwhitened(W, b)
        return plain.folded(W, b)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(SHARED_CIFAR),
                        help="CIFAR-10 folder (default: the copy beside the repository)")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    data = load_cifar10(args.data_dir, val_size=5000, seed=0)
    print("| model | one (D, H) product | projection, then W1 | faster |\n|---|---:|---:|---:|")
    for name, K, hidden in SHAPES:
        prep = Preprocessor.fit("whiten", data.X_train[:20000], np.float32, whiten_dim=K,
                                whiten_eps=3.0)
        ways = {"one": OneProduct(prep.mode, prep.stats, prep.dtype, prep.whitening), "two": prep}
        model = FullyConnectedNet(K, hidden, 10, seed=0)
        times, preds = {k: [] for k in ways}, {}
        with threadpool_limits(2):
            for _ in range(args.reps):
                for k, way in ways.items():
                    start = time.perf_counter()
                    preds[k] = predict_labels(model, way, data.X_test)
                    times[k].append(time.perf_counter() - start)
        one, two = (statistics.median(times[k]) for k in ways)
        same = "" if np.array_equal(preds["one"], preds["two"]) else " (predictions differ)"
        print(f"| {name} | {one * 1e3:.0f} ms | {two * 1e3:.0f} ms | {one / two:.2f}×{same} |")


if __name__ == "__main__":
    main()
