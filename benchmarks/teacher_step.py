"""What a teacher adds to a training step: its forward pass on the student's whitened batch
(its first layer taken back into the student's K components, numpy_mlp/training/teacher.py)
or on the images themselves (its first layer as the model file holds it, one (D, H) product).

    .venv/bin/python benchmarks/teacher_step.py     # about 2 min on 2 idle cores

For a student and a teacher of the same shape (2048-1024-512, the presets' net) whitened to
K components: the median time of the student's own step (forward, loss, backward, update;
a batch of 256 augmented images) and of the teacher's soft targets for that batch each
way, 2 BLAS threads, ``--reps`` interleaved rounds of ``--steps`` steps (the student's step
counts the batch's augmentation and whitening; the teacher's time is its own alone).
Random weights: the time does not depend on them. Backs docs/ablations.md#distillation.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from numpy_mlp.data.augment import augment
from numpy_mlp.data.cifar10 import load_cifar10
from numpy_mlp.nn.losses import cross_entropy_loss, distillation_loss
from numpy_mlp.training import teacher as teacher_module
from numpy_mlp.training.config import TrainConfig
from numpy_mlp.training.loop import build
from numpy_mlp.training.model_file import write_model_file

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared/data/cifar-10-batches-py"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(SHARED_CIFAR),
                        help="CIFAR-10 folder (default: the copy beside the repository)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    data = load_cifar10(args.data_dir, val_size=5000, seed=0)
    print("| K | student's step | teacher on the whitened batch | teacher on the images | "
          "saved |\n|---:|---:|---:|---:|---:|")
    for K in (512, 1024):
        config = TrainConfig(hidden_dim=(2048, 1024, 512), batch_size=256, crop_pad=2,
                             preprocessing="whiten", whiten_dim=K, alpha=0.2, threads=2)
        student = build(config, data)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.npz"
            other = build(config.replace(seed=1), data, student.preprocessor)  # its own init
            write_model_file(path, other.model, student.preprocessor,
                             class_names=data.class_names, geometry=data.geometry,
                             config=config.to_dict())
            taught = config.replace(teacher=str(path))
            ways = {k: teacher_module.Teacher.of(taught, data) for k in ("whitened", "images")}
        ways["whitened"].bind(student.preprocessor)
        inside = teacher_module._in_whitened_space
        teacher_module._in_whitened_space = lambda *a: None  # as if it were another's
        try:
            ways["images"].bind(student.preprocessor)
        finally:
            teacher_module._in_whitened_space = inside
        rng = np.random.default_rng(0)
        times = {"batch": [], "student": [], **{k: [] for k in ways}}
        with threadpool_limits(2):
            for _ in range(args.reps):
                start = time.perf_counter()
                batches = []  # the steps' augmented images and the student's inputs
                for _ in range(args.steps):
                    idx = rng.choice(len(data.y_train), 256, replace=False)
                    X_uint8 = augment(data.X_train[idx], rng, flip=True, crop_pad=2,
                                      geometry=data.geometry)
                    batches.append((X_uint8, student.preprocessor(X_uint8), data.y_train[idx]))
                times["batch"].append((time.perf_counter() - start) / args.steps)
                for what in list(times)[1:]:
                    start = time.perf_counter()
                    for X_uint8, X, y in batches:
                        if what == "student":
                            scores, cache = student.model.forward(X, train=True)
                            _, d = cross_entropy_loss(scores, y)
                            student.model.backward(d, cache, add_l2=False)
                            student.optimizer.step(student.model.grads, alpha=1e-4)
                        else:
                            soft = ways[what].targets(X_uint8, X)
                            distillation_loss(np.zeros_like(soft), soft, 4.0)
                    times[what].append((time.perf_counter() - start) / args.steps)
        batch_, core, inside_, outside = (statistics.median(times[k]) * 1e3 for k in times)
        own = batch_ + core
        print(f"| {K} | {own:.1f} ms | {inside_:.1f} ms ({inside_ / own:.2f}×) | "
              f"{outside:.1f} ms ({outside / own:.2f}×) | {outside / inside_:.2f}× |")

if __name__ == "__main__":
    main()
