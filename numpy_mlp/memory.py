"""The memory a big array would take, checked against what the machine has before it is made.

NumPy's MemoryError names only a shape ("Unable to allocate 18.0 GiB for an array with shape
(49152, 49152)"), or nothing at all; and where Linux overcommits, a large allocation may
succeed and the process be killed later. The few arrays whose size grows with a setting are
estimated first with :func:`check_fits`, which refuses with the real cause and a fix:

- whitening's D x D covariance (data/preprocessing.py): 24 D^2 bytes;
- the network's weights, gradients, momentum (and average), and a batch's activations
  (training/loop.py);
- a C x C confusion matrix and its picture (training/metrics.py, runs/plots.py);
- the points of a grid search, which Optuna lists all at once (search/space.py).

What the machine has is :func:`available_bytes`: ``MemAvailable`` of ``/proc/meminfo``
(physical memory where that is missing), at most the process's address-space limit
(``ulimit -v``), at most ``$NUMPY_MLP_MEMORY_LIMIT`` bytes when that is set (a cap, e.g.
for a machine shared with other jobs).
"""

from __future__ import annotations

import os

from .errors import ConfigError

LIMIT_VARIABLE = "NUMPY_MLP_MEMORY_LIMIT"  # bytes; caps what available_bytes reports


def available_bytes():
    """Bytes this process may still allocate, as far as can be told; None if unknown."""
    found = [_meminfo_available(), _address_space_limit(), _cap()]
    found = [b for b in found if b is not None]
    if not found:
        try:
            found = [os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
        except (ValueError, OSError, AttributeError):
            return None
    return min(found)


def check_fits(what, nbytes, fix):
    """Raise ConfigError ``{what} needs about X GiB of memory ...; {fix}`` when ``nbytes``
    is more than :func:`available_bytes`."""
    have = available_bytes()
    if have is not None and nbytes > have:
        raise ConfigError(f"{what} needs about {size_text(nbytes)} of memory, and this machine "
                          f"has {size_text(have)} available; {fix}")


def size_text(nbytes):
    """``18.0 GiB``, ``75 MiB``, ``512 KiB``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}" if unit == "GiB" else f"{nbytes / scale:.0f} MiB"
    return f"{max(1, round(nbytes / 1024))} KiB"


def _meminfo_available():
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024  # in kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_limit():
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:  # less what the process has mapped already
        with open("/proc/self/statm", "rb") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        used = 0
    return max(0, soft - used)


def _cap():
    text = os.environ.get(LIMIT_VARIABLE, "").strip()
    try:
        return int(float(text)) if text else None
    except ValueError:
        raise ConfigError(f"${LIMIT_VARIABLE}={text!r}: give a number of bytes, e.g. "
                          f"{LIMIT_VARIABLE}=8e9") from None
