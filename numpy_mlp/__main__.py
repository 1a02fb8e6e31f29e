"""``python -m numpy_mlp`` runs the same command line as ``numpy-mlp``."""

import sys

from .cli import main

sys.exit(main())
