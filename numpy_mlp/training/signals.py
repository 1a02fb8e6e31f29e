"""The stop signals: SIGINT (Ctrl-C) and SIGTERM (``kill``, ``timeout``, a job scheduler's
notice before it kills), which ask a run to stop at a safe point.

:func:`catching_stop_signals` is the one place that installs a handler for them and puts
the previous ones back. What a handler does is its user's: the training loop's
:class:`~numpy_mlp.training.checkpointing.Checkpointer` finishes the step and saves a
checkpoint first; the write-up (:meth:`~numpy_mlp.runs.folder.RunFolder.writing_up`)
stops at once, every file being whole or absent. Either way the run ends with
:class:`~numpy_mlp.errors.Interrupted`, whose ``signum`` gives the exit status
(130 for SIGINT, 143 for SIGTERM). Outside those phases (reading the data, a download,
an evaluation) a command stops at once, SIGTERM as Ctrl-C does: :func:`stop_now`.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

# SIGTERM exists on POSIX only
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM")
                     if hasattr(signal, name))


@contextmanager
def catching_stop_signals(handler):
    """Within the block, ``handler(signum, frame)`` handles SIGINT and SIGTERM; after it, the
    handlers that were there before it.

    Only the main thread can set signal handlers (and Python runs them there), so in any
    other thread the block runs with the handlers as they are.
    """
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def stop_now(signum, frame):
    """A handler that stops at once, as Python's own Ctrl-C does, for either signal: a
    ``KeyboardInterrupt`` whose ``signum`` gives the exit status. (Python's default for
    SIGTERM ends the process without a word and without ``finally`` blocks, so a
    download's partial file would stay.)"""
    stop = KeyboardInterrupt()
    stop.signum = signum
    raise stop
