"""The shape of a network: which parameter and buffer arrays it has, and of what shapes.

One place derives the arrays from the architecture's settings, for the model that
allocates them and for the readers of model files and checkpoints that check them before
anything is allocated (training/model_file.py, training/checkpoint_file.py).

Plain stack (``blocks = 0``), widths ``(D, H1, ..., C)`` and L = len(widths) - 1 affine maps::

    affine W_l b_l -> [norm gamma_l beta_l] -> activation [-> dropout]     l = 1 .. L-1
    affine W_L b_L                                                          scores (N, C)

Residual net (``blocks = B >= 1``, one width H, expansion e; Bachmann et al. 2023)::

    h = affine W1 b1 (D -> H)                                               the stem
    h <- h + W_{2k+1}^T act(W_{2k}^T norm_k(h) + b_{2k}) + b_{2k+1}          k = 1 .. B
         (H -> e*H -> H; dropout after act)
    scores = affine W_{2B+2} b_{2B+2} (norm_{B+1}(h))                       H -> C

Norm k has ``gamma{k}``, ``beta{k}`` (H_k,) among the parameters; batch norm also has
``running_mean{k}``, ``running_var{k}`` (H_k,) among the buffers (not trained).

    N  batch size      D  input size      H  hidden width      C  classes
"""

from __future__ import annotations

from dataclasses import dataclass

from .layers import ACTIVATIONS, NORMS
from .rules import check, check_blocks, choice, parse_hidden_dims, whole

NORM = choice(*NORMS)
ACTIVATION = choice(*ACTIVATIONS)
BLOCKS = whole(0, 64)
EXPANSION = whole(1, 16)
_RULES = {"norm": NORM, "activation": ACTIVATION, "blocks": BLOCKS, "expansion": EXPANSION}


@dataclass(frozen=True)
class Architecture:
    """The settings that decide a network's arrays; checked and normalised when built."""

    input_dim: int
    hidden_dims: tuple
    num_classes: int
    norm: str = "none"
    activation: str = "relu"
    blocks: int = 0
    expansion: int = 4

    def __post_init__(self):
        for name, rule in _RULES.items():
            object.__setattr__(self, name, check(rule, name, getattr(self, name)))
        hidden = parse_hidden_dims(self.hidden_dims)
        object.__setattr__(self, "hidden_dims", hidden)
        object.__setattr__(self, "input_dim", int(self.input_dim))
        object.__setattr__(self, "num_classes", int(self.num_classes))
        check_blocks(hidden, self.blocks)

    @classmethod
    def of(cls, input_dim, hidden_dims, num_classes, settings):
        """From a dict holding (some of) norm, activation, blocks, expansion: a model file's
        meta or a config dict; absent ones (files from before these options) are defaults."""
        keys = ("norm", "activation", "blocks", "expansion")
        return cls(input_dim, hidden_dims, num_classes,
                   **{k: settings[k] for k in keys if k in settings})

    def to_dict(self):
        """The settings besides the widths, as a model file's meta records them."""
        return {"norm": self.norm, "activation": self.activation, "blocks": self.blocks,
                "expansion": self.expansion}

    @property
    def residual(self):
        return self.blocks > 0

    @property
    def num_affine(self):
        """L, the number of affine maps ``W1 .. WL``."""
        return 2 * self.blocks + 2 if self.residual else len(self.hidden_dims) + 1

    @property
    def num_norms(self):
        """The number of normalisations ``gamma1 ..`` (0 without norm)."""
        if self.norm == "none":
            return 0
        return self.blocks + 1 if self.residual else len(self.hidden_dims)

    def affine_dims(self):
        """[(fan_in, fan_out)] of ``W1 .. WL``, in order."""
        if not self.residual:
            dims = (self.input_dim, *self.hidden_dims, self.num_classes)
            return list(zip(dims[:-1], dims[1:]))
        H, E = self.hidden_dims[0], self.expansion * self.hidden_dims[0]
        return [(self.input_dim, H), *[(H, E), (E, H)] * self.blocks, (H, self.num_classes)]

    def norm_width(self, k):
        """The width of normalisation ``k`` (1-based)."""
        return self.hidden_dims[0] if self.residual else self.hidden_dims[k - 1]

    def norm_before(self, k):
        """The index i of the affine map ``W{i}`` that reads norm k's output in a residual net
        (block k's W_in, or the head for k = B + 1)."""
        return 2 * k if k <= self.blocks else self.num_affine

    def param_shapes(self):
        """``{"W1": (D, H1), "b1": (H1,), "gamma1": (H1,), "beta1": (H1,), ...}``, in the
        order the model allocates (and draws) them."""
        shapes = {}
        for i, (fan_in, fan_out) in enumerate(self.affine_dims(), 1):
            shapes[f"W{i}"], shapes[f"b{i}"] = (fan_in, fan_out), (fan_out,)
        for k in range(1, self.num_norms + 1):
            shapes[f"gamma{k}"] = shapes[f"beta{k}"] = (self.norm_width(k),)
        return shapes

    def buffer_shapes(self):
        """``{"running_mean1": (H1,), "running_var1": (H1,), ...}`` (batch norm only)."""
        if self.norm != "batch":
            return {}
        shapes = {}
        for k in range(1, self.num_norms + 1):
            shapes[f"running_mean{k}"] = shapes[f"running_var{k}"] = (self.norm_width(k),)
        return shapes

    def describe(self, inputs=None):
        """A short text of the layers, for ``repr``: ``3072 -> 1000 -> 10`` or
        ``3072 -> 256 x 2 blocks (e=4) -> 10``, with the norm and the activation. ``inputs``
        is the text of what the first layer reads (default: its input_dim D)."""
        inputs = str(self.input_dim) if inputs is None else inputs
        if self.residual:
            body = (f"{inputs} -> {self.hidden_dims[0]} x {self.blocks} blocks "
                    f"(e={self.expansion}) -> {self.num_classes}")
        else:
            body = " -> ".join(map(str, (inputs, *self.hidden_dims, self.num_classes)))
        extra = "" if self.norm == "none" else f", {self.norm} norm"
        return f"{body}{extra}" + ("" if self.activation == "relu" else f", {self.activation}")
