"""numpy-mlp's FullyConnectedClassifier against scikit-learn's MLPClassifier on digits.

    .venv/bin/python benchmarks/sklearn_digits.py          # about 30 s, 1 BLAS thread

scikit-learn's ``load_digits`` (1,797 images of 8 x 8 pixels, D = 64, 10 classes), split
75/25 (stratified) once per seed (from FIRST_SEED on); every estimator is fitted on the same
split, the runs interleaved seed by seed. MLPClassifier runs with its defaults (100 hidden
units, Adam, 200 epochs) after a StandardScaler, as its documentation recommends (our
estimator standardises each feature itself); ours in float32 (its default is float64, about
1.8 times slower) with its other defaults and with a setting for small data (SMALL_DATA).
Prints a markdown table: mean test accuracy ± std over the seeds and median fit time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_torch import machine  # noqa: E402

from numpy_mlp.sklearn import FullyConnectedClassifier

# picked by a sweep of eight settings on the splits of seeds 0..4; measured here on others
SMALL_DATA = dict(hidden_dim=(256,), alpha=0.05, epochs=30, label_smoothing=0.1)
FIRST_SEED = 10
ESTIMATORS = {
    "scikit-learn MLPClassifier (StandardScaler, defaults)":
        lambda seed: make_pipeline(StandardScaler(), MLPClassifier(random_state=seed)),
    "numpy-mlp FullyConnectedClassifier, defaults but dtype=float32":
        lambda seed: FullyConnectedClassifier(seed=seed, threads=1, dtype="float32"),
    "numpy-mlp FullyConnectedClassifier, dtype=float32, "
    + ", ".join(f"{k}={v}" for k, v in SMALL_DATA.items()):
        lambda seed: FullyConnectedClassifier(seed=seed, threads=1, dtype="float32",
                                              **SMALL_DATA),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="number of splits and seeds")
    args = p.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    accs = {name: [] for name in ESTIMATORS}
    secs = {name: [] for name in ESTIMATORS}
    warnings.simplefilter("ignore", ConvergenceWarning)  # MLPClassifier's 200 epochs of Adam
    with threadpool_limits(1):  # both on one BLAS thread: the machine's load cannot favour one
        for seed in range(FIRST_SEED, FIRST_SEED + args.seeds):
            X_train, X_test, y_train, y_test = train_test_split(
                X, y, test_size=0.25, random_state=seed, stratify=y)
            for name, make in ESTIMATORS.items():
                est = make(seed)
                start = time.perf_counter()
                est.fit(X_train, y_train)
                secs[name].append(time.perf_counter() - start)
                accs[name].append(est.score(X_test, y_test))
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"load_digits, 1347 train / 450 test, {args.seeds} seeds from {FIRST_SEED}; {when}; "
          f"{machine()}\n")
    print("| estimator | test accuracy (mean ± std) | fit time (median) |")
    print("|---|---|---|")
    for name in ESTIMATORS:
        a = np.array(accs[name])
        t = statistics.median(secs[name])
        print(f"| {name} | {a.mean():.4f} ± {a.std():.4f} | {t:.2f} s |")


if __name__ == "__main__":
    main()
