"""Shared pytest fixtures."""

from pathlib import Path

import pytest

# The real CIFAR-10 batches, beside the repository (read-only; see shared/data/README.md).
SHARED_CIFAR = Path(__file__).resolve().parents[1].parent / "shared/data/cifar-10-batches-py"


@pytest.fixture
def cifar_dir() -> Path:
    """The real CIFAR-10 folder; a test that needs it fails (never skips) if it is missing."""
    if not (SHARED_CIFAR / "data_batch_1").is_file():
        pytest.fail(f"real CIFAR-10 not found at {SHARED_CIFAR} (see shared/data/README.md)")
    return SHARED_CIFAR
