"""Named recipes, ``numpy-mlp train --preset NAME``: sets of TrainConfig field values.

Flags and ``--config`` files override a preset's values (config.layered); config.json
records the merged config in full. Each is checked against TrainConfig's rules in
tests/test_config.py.
"""

from __future__ import annotations

# Results on the full test set, one view, from the README's results table. Both recipes
# take batches of 256 at twice the rate of 128 (linear scaling): 1.32-1.36x the images per
# second, since the update's passes over the weights come half as often. The deep one keeps
# its test accuracy at the same epochs; the wide one spends the time saved on 150 epochs
# instead of 60 (docs/ablations.md#batch-size, docs/performance-recipes.md). Both train on
# whitened images, at the ten times larger rate they need: 2 (wide) and 6 (deep) points
# more than on per_channel images, in about half the time (docs/ablations.md#whitening,
# docs/results.md).
PRESETS = {
    "deep": dict(hidden_dim=(2048, 1024, 512), dropout=0.1, crop_pad=4, reg=5e-4,
                 batch_size=256, alpha=0.2,
                 label_smoothing=0.1, warmup=500, epochs=170.0, preprocessing="whiten",
                 evals=34, tta_shift=2),
    "wide": dict(hidden_dim=(4096,), crop_pad=2, reg=1e-3, batch_size=256, alpha=0.2,
                 label_smoothing=0.1, warmup=200, epochs=150.0, preprocessing="whiten",
                 evals=30, tta_shift=2),
}
PRESET_HELP = {
    "deep": "2048-1024-512 with dropout, on whitened images, batch 256: 0.705 ± 0.003 test, "
            "one view, in 32-33 min on 2 cores (2048³ product 175-204 GFLOP/s)",
    "wide": "the notebook's two-layer net, 4096 wide, on whitened images, batch 256: 0.657 ± "
            "0.002 test, one view, in 22 min on 2 cores (2048³ product 200 GFLOP/s)",
}
