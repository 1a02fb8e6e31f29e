"""One docstring convention in the package: Google style (``Args:`` / ``Returns:`` / ``Raises:``).

A numpy-style section header (a title line directly followed by a line of dashes) is a second
convention; the one exception is the scikit-learn estimator's class docstring, which follows
scikit-learn's own numpydoc convention (``Parameters`` / ``Attributes``).
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "numpy_mlp"
MODULES = sorted(PACKAGE.rglob("*.py"))
# (module path relative to the package, qualified name): scikit-learn's numpydoc for estimators
NUMPYDOC_ALLOWED = {("sklearn.py", "FullyConnectedClassifier")}
# any title, not only Parameters/Returns/Raises/Attributes/Examples/Yields: "Modes" counts too
TITLE = re.compile(r"[A-Za-z][A-Za-z ]*")
DASHES = re.compile(r"-{3,}")


def numpy_headers(docstring):
    """The titles in ``docstring`` underlined by a line of dashes (numpy-style section headers)."""
    lines = [line.strip() for line in docstring.splitlines()]
    return [title for title, under in zip(lines, lines[1:])
            if TITLE.fullmatch(title) and DASHES.fullmatch(under)]


def docstrings(tree):
    """(qualified name, docstring) of the module and of every function and class in ``tree``."""
    found = [("<module>", ast.get_docstring(tree, clean=False))]

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                found.append((name, ast.get_docstring(child, clean=False)))
                walk(child, name + ".")
            else:
                walk(child, prefix)

    walk(tree, "")
    return [(name, doc) for name, doc in found if doc]


def test_the_finder_tells_the_two_conventions_apart():
    numpy_style = "Load it.\n\n    Parameters\n    ----------\n    x : int\n"
    google = "Load it.\n\n    Args:\n        x: int\n\n    Returns:\n        y.\n"
    table = "Sizes:\n\n    | name | size |\n    | --- | --- |\n    | a | 1 |\n"
    assert numpy_headers(numpy_style) == ["Parameters"]
    assert numpy_headers("Modes\n-----\nper_image") == ["Modes"]
    assert numpy_headers(google) == []
    assert numpy_headers(table) == []


def test_the_allowed_numpydoc_docstring_still_exists():
    # if the estimator's docstring moves or changes convention, the exception goes with it
    for module, name in NUMPYDOC_ALLOWED:
        tree = ast.parse((PACKAGE / module).read_text())
        assert numpy_headers(dict(docstrings(tree))[name]), f"{module}:{name}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_docstrings_are_google_style(path):
    module = path.relative_to(PACKAGE).as_posix()
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = [f"{name}: {', '.join(headers)}" for name, doc in docstrings(tree)
           if (module, name) not in NUMPYDOC_ALLOWED and (headers := numpy_headers(doc))]
    assert not bad, (f"{module} has numpy-style section headers (use Google style "
                     f"'Args:' / 'Returns:' / 'Raises:'): {'; '.join(bad)}")
