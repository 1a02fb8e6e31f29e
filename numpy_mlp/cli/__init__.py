"""The command line, ``numpy-mlp``: the only place that parses arguments.

- ``commands``: the subcommands and ``main``
- ``flags``: flags, ``--help`` and ``--config`` files derived from the settings' declarations
"""

from .commands import main

__all__ = ["main"]
