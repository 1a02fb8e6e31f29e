"""A small learnable stand-in for CIFAR-10, for tests of the trainer."""

import numpy as np

from numpy_mlp.data.cifar10 import CIFAR10_GEOMETRY, CLASS_NAMES
from numpy_mlp.data.dataset import Dataset


def synthetic(n_train=300, n_val=100, seed=0):
    """A learnable uint8 problem: each class has its own mean image plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(40, 216, size=(10, 3072))

    def make(n):
        y = rng.integers(0, 10, n)
        X = np.clip(centres[y] + rng.normal(0, 40, (n, 3072)), 0, 255).astype(np.uint8)
        return X, y

    (Xtr, ytr), (Xva, yva), (Xte, yte) = make(n_train), make(n_val), make(n_val)
    return Dataset(Xtr, ytr, Xva, yva, Xte, yte, CLASS_NAMES, "synthetic",
                   geometry=CIFAR10_GEOMETRY)
