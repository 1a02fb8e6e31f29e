#!/usr/bin/env bash
# Set up a virtual environment with the test dependencies and run the whole test suite.
# Used by the README's test command and by CI (.ci/run). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# headless Chromium opens the HTML report of a run in tests/test_report.py (Debian's package)
command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# a throw-away PostgreSQL server is started by tests/test_search.py (Debian's package: the
# versioned binaries live in /usr/lib/postgresql/<version>/bin, not on PATH)
command -v /usr/lib/postgresql/*/bin/initdb >/dev/null ||
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql)

# a throw-away Redis server is started by tests/test_search.py (Debian's package)
command -v redis-server >/dev/null ||
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server)

python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'

# lint first: pyproject.toml configures it (line length 100)
.venv/bin/ruff check numpy_mlp tests benchmarks notebooks/make_notebook.py
.venv/bin/python -m pytest "$@"
