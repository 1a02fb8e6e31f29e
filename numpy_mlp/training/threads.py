"""How many BLAS threads the matrix products use: chosen on purpose, from the load.

On an idle 2-core machine, two BLAS threads make the products of a large batch (N >= 256,
H = 1000) up to ~1.8x faster than one. On a machine whose cores are shared with other jobs
(another training run, a test suite) the second thread has to wait for a busy core, and
two threads are then 2-15x *slower* than one. Which is better depends on the load of the
moment, which no rule of problem size can know, so ``"auto"`` (the default) looks at it
every ``recheck`` seconds and follows one rule (:func:`load_rule`): all the threads BLAS is
allowed if other processes left at least ``FREE`` (1.5) cores free since the last check
(from ``/proc/stat`` minus this process's own CPU time, :class:`OtherLoad`), else one.
Timing probe steps on each count as well was measured not to pay (docs/threads.md).

The first check waits until ``warmup`` seconds have passed; until then the
count is a guess: the last count an earlier chooser of this process settled on (evaluation
after training, the next run of a benchmark), else :func:`load_rule` applied to the load
average of the last minute. The largest candidate is the count BLAS is allowed when the
chooser starts, so an outer ``threadpool_limits(1)``, as in a search worker, is respected.

An integer fixes the count. The count changes speed, and the numbers only in their last
bits: OpenBLAS splits most products by their output, which keeps them bitwise the same,
but for some shapes (a (128, 1000) @ (1000, 10) product, say) it splits the inner sum, so 1
and 2 threads round differently (by ~1e-7 relative; tests/test_threads.py). For a run that
must repeat bit for bit, fix the count (``--threads 1``).
"""

from __future__ import annotations

import os
import time

from ..nn.rules import check, whole

THREADS = whole(1, 1024, words=("auto",))  # BLAS threads: a count, or auto


def check_threads(threads):
    """Raise ConfigError unless ``threads`` is "auto" or a count TrainConfig takes."""
    check(THREADS, "threads", threads)


def blas_libraries():
    """threadpoolctl's controllers of the BLAS libraries loaded (each has ``set_num_threads``)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas").lib_controllers


def blas_threads():
    """The number of threads BLAS may use now (the largest over the loaded BLAS libraries)."""
    return max((lib.num_threads for lib in blas_libraries()), default=1)


def set_blas_threads(n, libraries=None):
    """Let BLAS use ``n`` threads (a direct call into each library: about 2 us)."""
    for lib in libraries if libraries is not None else blas_libraries():
        lib.set_num_threads(n)


_last_choice = None  # the count the last automatic choice in this process settled on
FREE = 1.5  # more than one thread only if other processes left at least this many cores


def load_rule(most, busy, cores=None):
    """The rule of ``"auto"``: ``most`` threads if other processes leave ``FREE`` cores, else 1.

    Args:
        most: the largest count allowed.
        busy: how many cores other processes kept busy lately (:class:`OtherLoad`, or a load
            average), or None if unknown (then 1: two threads on a busy pair of cores cost
            far more than one thread on an idle pair).
        cores: the number of cores (default ``os.cpu_count()``).
    """
    cores = cores or os.cpu_count() or 1
    return most if busy is not None and cores - busy >= FREE else 1


def _load_average():
    """The 1-minute load average, or None where the system has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def machine_cpu_seconds():
    """(all, idle) core-seconds of every core since boot, from Linux ``/proc/stat``, or None
    where it cannot be read. Idle counts iowait; busy (all - idle) counts steal."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]  # user .. steal, all cores
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return sum(fields) / hz, (fields[3] + fields[4]) / hz


class OtherLoad:
    """Cores kept busy by other processes between calls (Linux ``/proc/stat``; else None)."""

    def __init__(self):
        self.last = self._read()

    @staticmethod
    def _read():
        machine = machine_cpu_seconds()
        return None if machine is None else (*machine, time.process_time())  # + own CPU s

    def __call__(self):
        now, last = self._read(), self.last
        self.last = now
        if now is None or last is None or now[0] - last[0] <= 0:
            return None
        total, idle = now[0] - last[0], now[1] - last[1]  # core-seconds
        cores = os.cpu_count() or 1
        elapsed = total / cores
        return max(0.0, (total - idle - (now[2] - last[2])) / elapsed)


class ThreadChooser:
    """Set the BLAS thread count step by step; with ``"auto"``, choose it from the load.

    Call :meth:`tick` once at the top of every step: it sets the count for that step, and
    with ``"auto"`` applies :func:`load_rule` to the load of other processes every
    ``recheck`` seconds. :meth:`close` (or leaving a ``with`` block) restores the count BLAS
    had before.

    Args:
        threads: "auto" or a fixed number of threads.
        recheck: seconds between checks, so that a change of load is noticed.
        warmup: seconds before the first check (the guess meanwhile).
        clock: a function returning seconds; ``other_load`` a function returning the cores
            other processes kept busy since its previous call, or None if unknown;
            ``load_average`` a function returning the 1-minute load average or None (tests
            pass fakes of all three).

    ``chosen`` lists ``(step, count)`` for every decision, for logs and benchmarks.
    """

    def __init__(self, threads="auto", *, recheck=30.0, warmup=0.25, clock=time.perf_counter,
                 other_load=None, load_average=None):
        check_threads(threads)
        self.libraries = blas_libraries()
        self.before = max((lib.num_threads for lib in self.libraries), default=1)
        auto = threads == "auto"
        self.candidates = tuple(range(1, self.before + 1)) if auto else (threads,)
        self.recheck, self.clock = recheck, clock
        self.other_load = other_load if other_load is not None else OtherLoad()
        self.current = (self._guess(load_average or _load_average) if auto
                        else self.candidates[0])
        self.chosen = [] if len(self.candidates) > 1 else [(1, self.current)]
        self.step = 0  # ticks so far
        self._next_check = clock() + warmup  # clock() after which the next check starts

    def __repr__(self):
        return f"ThreadChooser(candidates={self.candidates}, current={self.current})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def tick(self):
        """Start a step: set the thread count for it (after a check of the load, if one is due)."""
        now = self.clock()
        self.step += 1
        if len(self.candidates) > 1 and now >= self._next_check:
            busy = self.other_load()  # None: the load of others is unknown, keep the count
            self._decide(self.current if busy is None else load_rule(self.candidates[-1], busy),
                         now)
        set_blas_threads(self.current, self.libraries)
        return self.current

    def _guess(self, load_average):
        """The count until the first check: the last one settled on in this process, else
        :func:`load_rule` applied to the load average."""
        if _last_choice is not None:
            return max(n for n in self.candidates if n <= _last_choice)
        return load_rule(self.candidates[-1], load_average())

    def _decide(self, count, now):
        global _last_choice
        _last_choice = count
        self.current = count
        self.chosen.append((self.step, count))
        self._next_check = now + self.recheck

    def close(self):
        """Give BLAS back the thread count it had before."""
        set_blas_threads(self.before, self.libraries)
