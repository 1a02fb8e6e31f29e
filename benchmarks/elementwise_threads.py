"""What a second core buys each part of a training step: BLAS products against NumPy's
element-wise work.

    .venv/bin/python benchmarks/elementwise_threads.py     # about 40 s on 2 idle cores

BLAS spreads a matrix product over its threads. NumPy's element-wise passes (the SGD
update, preprocessing) always run on the calling thread; the only way to put them on two
cores from NumPy is two Python threads, each doing half of the rows, which works because
NumPy releases the GIL inside each call. This script times each part on one core and on two,
as medians of ``--reps`` rounds run in blocks of 10 that alternate 1 and 2 BLAS threads:

- the first layer's product ``x @ W1``, (N, 3072) @ (3072, H): 1 and 2 BLAS threads;
- ``SGD.step`` on a (3072, H) weight (numpy_mlp.nn.optim, its 256 KB blocks): one thread,
  and two Python threads each stepping half of the rows;
- ``preprocess`` of N uint8 images, per image (numpy_mlp.data.preprocessing, its 1 MB blocks):
  likewise;
- one ``np.add`` of two (3072, H) arrays, a single call per thread.

Each element-wise part is timed twice: right after the product on 1 BLAS thread (the second
core is idle), and right after it on 2 BLAS threads, as in a training step that uses two.
OpenBLAS's worker thread keeps spinning on the second core for a while after a product
(its thread timeout), so in the second case a second Python thread has to share that core
with it. The product run before each element-wise part is not timed.

It backs the analysis of issue 3 in the README ("Speed"); nothing in the package uses two
Python threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from numpy_mlp.data.preprocessing import preprocess
from numpy_mlp.nn.optim import SGD

D = 3072
SPIN = 0.5  # s: longer than OpenBLAS's workers spin after a product (2**28 cycles by default)


def halves(n):
    return (0, n // 2), (n // 2, n)


def parts(N, H, pool, rng):
    """The product (a function of the BLAS thread count) and name -> (one-thread callable,
    two-thread callable) for the element-wise parts."""
    x = rng.standard_normal((N, D), dtype=np.float32)
    W = rng.standard_normal((D, H), dtype=np.float32)
    out = np.empty((N, H), np.float32)

    def product(threads):
        with threadpool_limits(threads, user_api="blas"):
            np.matmul(x, W, out=out)

    P = rng.standard_normal((D, H), dtype=np.float32)
    G = rng.standard_normal((D, H), dtype=np.float32)
    whole = SGD({"W": P}, alpha=1e-3, beta=0.9)
    halves_sgd = [SGD({"W": P[a:b]}, alpha=1e-3, beta=0.9) for a, b in halves(D)]
    halves_g = [{"W": G[a:b]} for a, b in halves(D)]

    def step(i, _):
        halves_sgd[i].step(halves_g[i])

    X = rng.integers(0, 256, (N, D), dtype=np.uint8)
    buf = np.empty((N, D), np.float32)

    def prep(a, b):
        preprocess(X[a:b], "per_image", out=buf[a:b])

    A, B, S = (rng.standard_normal((D, H), dtype=np.float32) for _ in range(3))

    def add(a, b):
        np.add(A[a:b], B[a:b], out=S[a:b])

    def two(f, n):
        (a0, b0), (a1, b1) = halves(n)
        future = pool.submit(f, a0, b0)
        f(a1, b1)
        future.result()

    return product, {
        f"SGD.step, ({D}, {H})": (lambda: whole.step({"W": G}), lambda: two(step, 2)),
        f"preprocess per_image, ({N}, {D})": (lambda: prep(0, N), lambda: two(prep, N)),
        f"one np.add per thread, ({D}, {H})": (lambda: add(0, D), lambda: two(add, D)),
    }


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=1024, help="N for the product and preprocessing")
    p.add_argument("--hidden", default="200,1000")
    p.add_argument("--reps", type=int, default=50, help="rounds; medians are reported")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    pool = ThreadPoolExecutor(1)  # the second thread; the caller is the first
    print("| part | 1 thread ms | 2 threads ms | speed-up | after a 2-thread product: 1 thread ms "
          "| 2 threads ms | speed-up |")
    print("|:-----|----:|----:|----:|----:|----:|----:|")
    for H in (int(h) for h in args.hidden.split(",")):
        product, elementwise = parts(args.batch, H, pool, rng)
        t = {}
        for _ in range(args.reps // 10):  # blocks of 10 rounds, alternating 1 and 2 BLAS threads
            for blas in (1, 2):
                time.sleep(SPIN)  # let a spinning BLAS worker of the previous block go to sleep
                for _ in range(10):
                    t.setdefault(("product", blas), []).append(timed(lambda: product(blas)))
                    for name, fs in elementwise.items():
                        for k, f in zip((1, 2), fs):
                            product(blas)  # leaves BLAS's worker spinning, or not; untimed
                            t.setdefault((name, blas, k), []).append(timed(f))
        med = {key: statistics.median(v) * 1e3 for key, v in t.items()}
        one, two = med[("product", 1)], med[("product", 2)]
        print(f"| x @ W1, ({args.batch}, {D}) @ ({D}, {H}), BLAS threads | {one:.3f} | {two:.3f} "
              f"| {one / two:.2f}x | | | |")
        for name in elementwise:
            row = [med[(name, blas, k)] for blas in (1, 2) for k in (1, 2)]
            print(f"| {name} | {row[0]:.3f} | {row[1]:.3f} | {row[0] / row[1]:.2f}x "
                  f"| {row[2]:.3f} | {row[3]:.3f} | {row[2] / row[3]:.2f}x |")
        sys.stdout.flush()
    pool.shutdown()


if __name__ == "__main__":
    main()
