"""The package's layout: rooms by layer, nothing importing upward or in a circle.

The rooms, from the ground up (docs/development.md draws them)::

    errors                       the UserError family, importing nothing
    nn, files, memory            the network (NumPy only); bounded readers, atomic writes;
                                 the memory estimate of a big array, before it is made
    data                         datasets, their files, download, preprocessing, augmentation
    training                     config, the loop, inference, threads, checkpoint and model files
    runs                         the run folder, train/resume, evaluate, write-up, report, predict
    search, sklearn, onnx_export Optuna search; the scikit-learn estimator; the ONNX export
    cli                          the only place that parses arguments

A module may import from its own room and from rooms below it, never from a room above or
beside it; within a room, no two modules import each other in a circle.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "numpy_mlp"
LAYERS = {"errors": 0, "version": 0, "nn": 1, "files": 1, "memory": 1, "data": 2, "training": 3,
          "runs": 4, "search": 5, "sklearn": 5, "onnx_export": 5, "cli": 6}
FACES = {"numpy_mlp", "numpy_mlp.__main__"}  # the package's face sits above every room
# what the network must not load: the downloader, progress bars, images, plots, search, BLAS control
MACHINERY = ["urllib.request", "tqdm", "PIL", "matplotlib", "optuna", "threadpoolctl"]


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path):
    """The numpy_mlp modules ``path`` imports, at the top or inside a function, as
    (module, line) pairs; ``from numpy_mlp.x import name`` counts ``numpy_mlp.x.name`` when
    that is a module itself."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                as_module = f"{target}.{alias.name}"
                found.append((as_module if as_module in MODULES else target, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
    return [(m, line) for m, line in found if m == "numpy_mlp" or m.startswith("numpy_mlp.")]


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def room(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "numpy_mlp"


def layer(module):
    return LAYERS.get(room(module), 99) if module not in FACES else 100


def test_every_room_has_a_layer():
    rooms = {room(m) for m in MODULES if m not in FACES}
    assert rooms <= set(LAYERS), f"rooms without a layer: {sorted(rooms - set(LAYERS))}"


def climbs(graph):
    """The (module, target) pairs of ``graph`` (module -> imported modules) where the target
    stands in another room on the same layer or above."""
    return [(m, t) for m, targets in graph.items() for t in targets
            if room(t) != room(m) and layer(t) >= layer(m)]


def cycles(graph):
    """Every circle of ``graph`` (module -> imported modules), as 'a -> b -> a'."""
    state, found = {}, []

    def visit(m, stack):
        state[m] = "open"
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                found.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return found


def test_no_module_imports_from_a_room_above_or_beside_it():
    lines = {(m, t): line for m, p in MODULES.items() for t, line in imports(p)}
    graph = {m: [t for t, _ in imports(p)] for m, p in MODULES.items()}
    bad = [f"{MODULES[m].relative_to(PACKAGE.parent)}:{lines[m, t]} imports {t}"
           for m, t in climbs(graph)]
    assert not bad, "imports that climb a layer:\n" + "\n".join(bad)


def test_no_import_cycles():
    graph = {m: {t for t, _ in imports(p) if t in MODULES and t != m} for m, p in MODULES.items()}
    # a package's face (__init__) is left out: importing a submodule runs it first anyway
    graph = {m: {t for t in ts if MODULES[t].name != "__init__.py"}
             for m, ts in graph.items() if MODULES[m].name != "__init__.py"}
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(found)


def test_the_checks_catch_a_climb_and_a_circle():
    """The checks above can fail: the network importing the trainer, data importing a run,
    files importing the network beside it, and two modules importing each other."""
    graph = {"numpy_mlp.nn.model": ["numpy_mlp.training.loop", "numpy_mlp.nn.layers"],
             "numpy_mlp.data.augment": ["numpy_mlp.runs.plots", "numpy_mlp.errors"],
             "numpy_mlp.files.npzfile": ["numpy_mlp.nn.rules"],
             "numpy_mlp.cli.commands": ["numpy_mlp.runs.train", "numpy_mlp.nn.model"]}
    assert climbs(graph) == [("numpy_mlp.nn.model", "numpy_mlp.training.loop"),
                             ("numpy_mlp.data.augment", "numpy_mlp.runs.plots"),
                             ("numpy_mlp.files.npzfile", "numpy_mlp.nn.rules")]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("room_name", ["numpy_mlp.nn"])
def test_the_network_loads_no_machinery(room_name):
    """``import numpy_mlp.nn`` loads NumPy and the network alone: no downloader, no image
    reader, no plotting, no search, no BLAS control."""
    code = (f"import sys, {room_name}; "
            f"print(','.join(m for m in {MACHINERY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "", f"import {room_name} loaded {out}"
    nn_modules = [m for m in MODULES if room(m) == "nn"]
    for m in nn_modules:
        outside = {t for t, _ in imports(MODULES[m])
                   if room(t) not in ("nn", "errors") and t != "numpy_mlp"}
        assert not outside, f"{m} imports {sorted(outside)}"


def test_every_room_is_a_package_that_setuptools_finds():
    """A folder without ``__init__.py`` would import (as a namespace package) from a checkout
    and yet be left out of the wheel that ``pip install .`` builds."""
    from setuptools import find_packages

    folders = {p.parent for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    missing = sorted(str(f.relative_to(PACKAGE.parent)) for f in folders
                     if not (f / "__init__.py").is_file())
    assert not missing, f"rooms without __init__.py: {missing}"
    found = set(find_packages(str(PACKAGE.parent), include=["numpy_mlp*"]))
    assert {module_name(f / "__init__.py") for f in folders} <= found


def test_the_face_hands_on_its_names_and_loads_each_room_only_when_asked():
    """``from numpy_mlp import ...`` gives the notebook's names as before; the network's
    names load the network alone, the trainer's the machinery it needs."""
    code = ("import sys\n"
            "import numpy_mlp\n"
            "print(sorted(m for m in sys.modules if m.startswith('numpy_mlp.')))\n"
            "from numpy_mlp import FullyConnectedNet, SGD, cross_entropy_loss\n"
            f"print([m for m in {MACHINERY!r} if m in sys.modules])\n"
            "from numpy_mlp import (TrainConfig, UserError, load_cifar10, preprocess, train,\n"
            "                       CLASS_NAMES)\n"
            "import numpy_mlp.nn.model, numpy_mlp.training.loop, numpy_mlp.data.cifar10\n"
            "assert FullyConnectedNet is numpy_mlp.nn.model.FullyConnectedNet\n"
            "assert train is numpy_mlp.training.loop.train\n"
            "assert load_cifar10 is numpy_mlp.data.cifar10.load_cifar10\n"
            "assert set(numpy_mlp.__all__) <= set(dir(numpy_mlp))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "['numpy_mlp.version']"
    assert out[1] == "[]"
    import numpy_mlp

    assert set(numpy_mlp.__all__) == {"CLASS_NAMES", "FullyConnectedNet", "SGD", "TrainConfig",
                                      "UserError", "cross_entropy_loss", "load_cifar10",
                                      "load_model", "preprocess", "save_model", "train"}
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        numpy_mlp.nope  # noqa: B018
