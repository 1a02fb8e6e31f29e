"""MixUp and CutMix as the training loop applies them: which minibatches, which of the two.

:class:`Mixer` takes a minibatch after it is prepared and returns it mixed with soft
targets (N, C), or as it was with its integer labels (N,); the loss
(:func:`~numpy_mlp.nn.losses.cross_entropy_loss`) takes either. The mixing itself is
:func:`~numpy_mlp.data.augment.mixup` (on the normalised floats) and
:func:`~numpy_mlp.data.augment.cutmix` (on the uint8 images, so that a pasted box is
normalised with the image it lands in). All draws come from one generator of their own,
so a run without mixing draws the same batches, augmentations and weights as before.

Per minibatch: mixed at all with probability ``prob``; with both methods on, MixUp or
CutMix at even odds (timm's ``Mixup(switch_prob=0.5)``).

    N  batch size      D  channels x height x width      C  classes
"""

from __future__ import annotations

from ..nn.rules import check, real
from .augment import cutmix, mixup

MIXUP = real(0, note="try 0.2")  # Beta(A, A) of MixUp's lam; 0 = off
CUTMIX = real(0, note="try 1.0")  # Beta(A, A) of CutMix's lam; 0 = off
MIX_PROB = real(0, 1)  # the share of minibatches mixed


class Mixer:
    """The mixing of a run.

    Args:
        mixup: MixUp's Beta parameter, > 0 on, 0 off.
        cutmix: CutMix's Beta parameter, > 0 on, 0 off.
        prob: the share of minibatches mixed, in [0, 1].
        num_classes: C.
        geometry: the images' :class:`~numpy_mlp.data.dataset.Geometry` (CutMix's boxes).
    """

    def __init__(self, mixup=0.0, cutmix=0.0, prob=1.0, *, num_classes, geometry):
        self.mixup = check(MIXUP, "mixup", mixup)
        self.cutmix = check(CUTMIX, "cutmix", cutmix)
        self.prob = check(MIX_PROB, "mix_prob", prob)
        self.num_classes, self.geometry = int(num_classes), geometry

    @classmethod
    def of(cls, config, num_classes, geometry):
        """The Mixer of a TrainConfig, or None when it mixes nothing."""
        if not (config.mixup or config.cutmix) or not config.mix_prob:
            return None
        return cls(config.mixup, config.cutmix, config.mix_prob, num_classes=num_classes,
                   geometry=geometry)

    def __repr__(self):
        return f"Mixer(mixup={self.mixup:g}, cutmix={self.cutmix:g}, prob={self.prob:g})"

    def __call__(self, X_uint8, X, y, rng, prepare):
        """One minibatch, mixed or not.

        Args:
            X_uint8: (N, D) uint8 the augmented images ``X`` was prepared from.
            X: (N, D) float, ``prepare(X_uint8)``.
            y: (N,) integer labels.
            rng: the run's mixing ``numpy.random.Generator``.
            prepare: uint8 (N, D) -> float (N, D), the run's preprocessing (for CutMix).
        Returns:
            (X, targets): (N, D) float and (N, C) soft targets of X's dtype; or ``(X, y)``
            unchanged for a batch left unmixed.
        """
        if self.prob < 1 and rng.random() >= self.prob:
            return X, y
        use_cutmix = bool(self.cutmix) and (not self.mixup or rng.random() < 0.5)
        if use_cutmix:
            mixed, targets = cutmix(X_uint8, y, self.cutmix, rng, self.num_classes,
                                    dtype=X.dtype, geometry=self.geometry)
            return prepare(mixed), targets
        return mixup(X, y, self.mixup, rng, self.num_classes)
