"""``python -m numpy_mlp`` runs the same command line as ``numpy-mlp``."""

import sys

from .cli.commands import main

sys.exit(main())
