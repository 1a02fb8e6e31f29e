"""Runs: a training run's folder from start to write-up, and what reads it afterwards.

- ``folder``: the one owner (a lock) and writer of a run folder
- ``train``: train or resume a run and complete its folder
- ``display``: the progress lines and bar of a run
- ``rescue``: the best parameters so far, saved when a run diverges
- ``writeup``: metrics, history (history.csv, written and read back) and pictures after training
- ``evaluate``: the ``evaluate`` command, on a saved model
- ``plots``: the pictures; ``report``: ``report.html``
- ``compare``: ``compare.html``, one page comparing several runs
- ``predict``: the top classes of the user's own images
"""
