"""numpy-mlp: fully-connected networks in NumPy, trained with SGD with momentum on CIFAR-10.

The course notebook's names and call shapes::

    from numpy_mlp import FullyConnectedNet, SGD, cross_entropy_loss, load_cifar10

    model = FullyConnectedNet(hidden_dim=200)        # input_dim=3072, num_classes=10
    scores, cache = model.forward(x_batch)           # (N, 3072) -> (N, 10)
    loss, dscores = cross_entropy_loss(scores, y_batch)
    model.backward(dscores, cache)                   # fills model.grads
    optimizer = SGD(model.params, alpha=1e-2, beta=0.9)
    optimizer.step(model.grads)                      # m = beta*m + g; theta -= alpha*m

    result = train(TrainConfig(hidden_dim=(200,)), data)  # the whole loop
    save_model(result, "model.npz")                  # as numpy-mlp train writes a run's
    load_model("runs/first").predict(data.X_test)    # (N,) labels of uint8 images (N, D)

The package is a house of rooms, the network at the bottom (docs/development.md):
``nn`` (NumPy only), ``files``, ``data``, ``training``, ``runs``, ``search``, ``cli``. The
names below are looked up in their rooms when first used (PEP 562), so that
``import numpy_mlp.nn`` loads the network alone.
"""

import importlib

from .version import __version__  # noqa: F401  (the package face shows it)

_HOMES = {
    "CLASS_NAMES": "data.cifar10",
    "load_cifar10": "data.cifar10",
    "preprocess": "data.preprocessing",
    "UserError": "errors",
    "cross_entropy_loss": "nn.losses",
    "FullyConnectedNet": "nn.model",
    "SGD": "nn.optim",
    "TrainConfig": "training.config",
    "train": "training.loop",
    "save_model": "training.model_file",
    "load_model": "training.model_file",
}
__all__ = sorted(_HOMES)


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module 'numpy_mlp' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOMES))
