"""numpy-mlp: fully-connected networks in NumPy, trained with SGD with momentum on CIFAR-10.

The course notebook's names and call shapes::

    from numpy_mlp import FullyConnectedNet, SGD, cross_entropy_loss, load_cifar10

    model = FullyConnectedNet(hidden_dim=200)        # input_dim=3072, num_classes=10
    scores, cache = model.forward(x_batch)           # (N, 3072) -> (N, 10)
    loss, dscores = cross_entropy_loss(scores, y_batch)
    model.backward(dscores, cache)                   # fills model.grads
    optimizer = SGD(model.params, alpha=1e-2, beta=0.9)
    optimizer.step(model.grads)                      # m = beta*m + g; theta -= alpha*m
"""

from .config import TrainConfig
from .data import CLASS_NAMES, load_cifar10, preprocess
from .errors import UserError
from .losses import cross_entropy_loss
from .model import FullyConnectedNet
from .optim import SGD
from .train import train

__all__ = ["CLASS_NAMES", "FullyConnectedNet", "SGD", "TrainConfig", "UserError",
           "cross_entropy_loss", "load_cifar10", "preprocess", "train"]
__version__ = "0.1.0"
