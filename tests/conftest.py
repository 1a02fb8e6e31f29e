"""Shared pytest fixtures."""

import os
from pathlib import Path

import pytest

# The real CIFAR-10 batches, beside the repository (read-only; see shared/data/README.md).
SHARED_CIFAR = Path(__file__).resolve().parents[1].parent / "shared/data/cifar-10-batches-py"


def _real_cifar_folder():
    """../shared's batch folder, else the batch folder in $NUMPY_MLP_DATA (a clone elsewhere)."""
    candidates = [SHARED_CIFAR]
    if os.environ.get("NUMPY_MLP_DATA"):
        env = Path(os.environ["NUMPY_MLP_DATA"]).expanduser()
        candidates += [env, env / "cifar-10-batches-py"]
    return next((c for c in candidates if (c / "data_batch_1").is_file()), None)


@pytest.fixture
def cifar_dir() -> Path:
    """The real CIFAR-10 folder; a test that needs it fails (never skips) if it is missing."""
    folder = _real_cifar_folder()
    if folder is None:
        pytest.fail(f"real CIFAR-10 not found at {SHARED_CIFAR} nor in $NUMPY_MLP_DATA "
                    f"(see shared/data/README.md)")
    return folder
