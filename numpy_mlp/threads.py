"""How many BLAS threads the matrix products use: chosen on purpose, by measurement.

On an idle 2-core machine, two BLAS threads make the products of a large batch (N >= 256,
H = 1000) up to ~1.8x faster than one. On a machine whose cores are shared with other jobs
(another training run, a test suite) the second thread has to wait for a busy core, and
two threads are then often 2-10x *slower* than one (measured: benchmarks/README.md). Which
is better depends on the load of the moment, which no rule of problem size can know, so:

``"auto"`` (the default) times real training steps. At the start, and again whenever
``recheck`` seconds have passed, the next steps alternate between the candidate counts
(1, 2, ... up to the count BLAS is allowed now, so an outer ``threadpool_limits(1)``, as in
a search worker, is respected), ``probes`` steps each; the count with the lower median step
time is kept until the next check (at once, if after one round one count is more than
1.5x faster: on a busy machine a probe with two threads can take 10x longer). The probes
are ordinary training steps, nothing is thrown away: the cost is a few steps at the slower
setting, every ``recheck`` seconds.

An integer fixes the count. Products of OpenBLAS split the output between threads and never
the sum over the inner dimension, so results are bitwise the same for any count
(tests/test_threads.py): the choice changes speed, never the numbers.
"""

from __future__ import annotations

import statistics
import time

from .errors import ConfigError


def check_threads(threads):
    """Raise ConfigError unless ``threads`` is "auto" or a positive int."""
    if threads == "auto":
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads={threads!r}: give a number of BLAS threads >= 1, or 'auto'")


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


CLEAR = 1.5  # a count this much faster after one round of probes wins at once


class ThreadChooser:
    """Set the BLAS thread count step by step; with ``"auto"``, choose it by timing steps.

    Call :meth:`tick` once at the top of every step: it charges the time since the previous
    tick to the count that step used, then sets the count for the next step. :meth:`close`
    (or leaving a ``with`` block) restores the count BLAS had before.

    Args:
        threads: "auto" or a fixed number of threads.
        probes: steps timed per candidate at each check (their median decides).
        recheck: seconds between checks, so that a change of load is noticed.
        clock: a function returning seconds (tests pass a fake one).

    ``chosen`` lists ``(step, count)`` for every decision, for logs and benchmarks.
    """

    def __init__(self, threads="auto", *, probes=3, recheck=30.0, clock=time.perf_counter):
        check_threads(threads)
        self.libraries = blas_libraries()
        self.before = max((lib.num_threads for lib in self.libraries), default=1)
        auto = threads == "auto"
        self.candidates = tuple(range(1, self.before + 1)) if auto else (threads,)
        self.probes, self.recheck, self.clock = probes, recheck, clock
        self.current = self.candidates[0]
        self.chosen = [] if len(self.candidates) > 1 else [(1, self.current)]
        self.step = 0  # ticks so far
        self._plan = []  # thread counts of the coming probe steps
        self._probe = None  # the count of the running step, if it is timed
        self._times = {}  # count -> step times of the running check
        self._last = None  # clock() at the previous tick
        self._next_check = None  # clock() after which the next check starts (None: now)

    def __repr__(self):
        return f"ThreadChooser(candidates={self.candidates}, current={self.current})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def tick(self):
        """Start a step: time the previous one and set the thread count for this one."""
        now = self.clock()
        if self._probe is not None:
            self._times.setdefault(self._probe, []).append(now - self._last)
        self._last = now
        self.step += 1
        if len(self.candidates) > 1:
            if self._plan and self._clear_winner():
                self._plan = []  # one round already tells: skip the remaining probes
            if not self._plan and self._times:  # a check has just ended: keep the fastest
                medians = {n: statistics.median(t) for n, t in self._times.items()}
                self.current = min(medians, key=medians.get)
                self.chosen.append((self.step, self.current))
                self._times, self._next_check = {}, now + self.recheck
            due = self._next_check is None or now >= self._next_check
            if not self._plan and due and self.step > 1:  # step 1 (first-touch costs) is not timed
                self._plan = [n for _ in range(self.probes) for n in self.candidates]  # 1 2 1 2 ..
            self._probe = self._plan.pop(0) if self._plan else None
            if self._probe is not None:
                self.current = self._probe
        set_blas_threads(self.current, self.libraries)
        return self.current

    def _clear_winner(self):
        """After a full round of probes, is one count more than CLEAR times faster than the rest?"""
        if len(self._times) < len(self.candidates) or len(self._plan) % len(self.candidates):
            return False
        fastest = {n: min(t) for n, t in self._times.items()}
        ranked = sorted(fastest.values())
        return ranked[1] > CLEAR * ranked[0]

    def close(self):
        """Give BLAS back the thread count it had before."""
        set_blas_threads(self.before, self.libraries)
