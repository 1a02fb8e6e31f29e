"""The network: layers, the loss, the model, its optimizer and schedule, in NumPy alone.

Dimension letters: N images in a batch, D input values (3072 for CIFAR-10), H hidden
units, C classes. Nothing here imports anything of numpy-mlp but ``errors``: this room
can be read, and imported, without the trainer, the data or the command line above it.

- ``layers``: forward/backward pairs (affine, ReLU, GELU, dropout, LayerNorm, BatchNorm)
- ``losses``: ``cross_entropy_loss(scores, y) -> (loss, dscores)``, softmax
- ``architecture``: which parameters and buffers a network has, and their shapes
- ``model``: ``FullyConnectedNet``, parameters in a plain dict
- ``optim``: ``SGD`` with momentum, kept apart from the model
- ``schedules``: the learning rate as a pure function ``lr_at(step)``
- ``ema``: a moving average of the weights
- ``rules``: the values each argument takes, and the one message for a value refused
- ``gradient_check``: finite-difference gradients
"""

from .losses import cross_entropy_loss
from .model import FullyConnectedNet
from .optim import SGD

__all__ = ["FullyConnectedNet", "SGD", "cross_entropy_loss"]
