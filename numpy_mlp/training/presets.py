"""Named recipes, ``numpy-mlp train --preset NAME``: sets of TrainConfig field values.

Flags and ``--config`` files override a preset's values (config.layered); config.json
records the merged config in full. Each is checked against TrainConfig's rules in
tests/test_config.py.
"""

from __future__ import annotations

from ..errors import ConfigError
from .config import SETTINGS, TrainConfig
from .loop import total_steps

# Results on the full test set, one view, from the README's results table. All three
# take batches of 256 at twice the rate of 128 (linear scaling): 1.32-1.36x the images per
# second, since the update's passes over the weights come half as often. The deep one keeps
# its test accuracy at the same epochs; the wide one spends the time saved on 150 epochs
# instead of 60 (docs/ablations.md#batch-size, docs/performance-recipes.md). All three
# train on whitened images, at the ten times larger rate they need: 2 (wide) and 6 (deep)
# points more than on per_channel images, in about half the time
# (docs/ablations.md#whitening, docs/results.md).
# The fast one is the deep net in ten minutes (docs/ablations.md#ten-minutes): whitened to
# 512 components (as accurate as 1024 at 40 epochs, with a cheaper first layer and
# projection); no dropout and crops of 2, since in a short run the deep preset's
# regularisation leaves the net underfitting. Small rotations and zooms (--rotate 6 --zoom
# 0.06) cost next to nothing here but gave the same validation accuracy over three seeds,
# so the preset goes without them; alternating flips (--flip-mode alternate), the same.
# Its recipe was chosen on the 45,000/5,000 split; the preset then trains on all 50,000
# training images (val_size 0, the last step's weights kept) for the same number of steps
# (63 epochs of 50,000, 70 of 45,000), as a search's best setting is refitted on all its
# data: a tenth fewer images at equal steps cost 0.4 points of validation accuracy. Its
# warm-up is the deep preset's share of its run.
# The hour one is the deep one whitened to 512 components (a projection and first layer half
# as costly) for the 400 epochs that then fit in an hour at a 2048³ product of 190 GFLOP/s:
# over three seeds 0.4 points more on validation than the deep one for 320 epochs with
# 1024 components, every seed at least level, in 6% less time (docs/ablations.md#an-hour).
# Rotations and zooms did not help the 320-epoch run, on one seed, nor at 640 epochs;
# nor did layers 1.5x wider for the 220 epochs that fit, an EMA of the weights, or GELU
# (2.1 points under ReLU), one seed each; nor all 50,000 training images at the same
# steps, as the fast one trains (two seeds), so it keeps its validation split; nor a
# teacher, the 640-epoch run, whose student gained 0.3 points and no longer fit the hour
# (docs/ablations.md#distillation).
_DEEP = dict(hidden_dim=(2048, 1024, 512), dropout=0.1, crop_pad=4, reg=5e-4, batch_size=256,
             alpha=0.2, label_smoothing=0.1, warmup=500, epochs=170.0, preprocessing="whiten",
             evals=34, tta_shift=2)
PRESETS = {
    "fast": dict(hidden_dim=(2048, 1024, 512), crop_pad=2, reg=5e-4, batch_size=256,
                 alpha=0.2, label_smoothing=0.1, warmup=206, epochs=63.0, val_size=0,
                 preprocessing="whiten", whiten_dim=512, evals=14, tta_shift=2),
    "deep": _DEEP,
    "hour": {**_DEEP, "whiten_dim": 512, "epochs": 400.0, "evals": 40},
    "wide": dict(hidden_dim=(4096,), crop_pad=2, reg=1e-3, batch_size=256, alpha=0.2,
                 label_smoothing=0.1, warmup=200, epochs=150.0, preprocessing="whiten",
                 evals=30, tta_shift=2),
}
PRESET_HELP = {
    "fast": "2048-1024-512 without dropout on whitened images (512 components), batch "
            "256, trained on all 50,000 training images (no validation split): 0.707 ± 0.004 "
            "test, one view, in 7.2-7.6 min on 2 cores (2048³ product 220-252 GFLOP/s; "
            "9.0-9.4 min at 190)",
    "deep": "2048-1024-512 with dropout, on whitened images, batch 256: 0.705 ± 0.003 test, "
            "one view, in 32-33 min on 2 cores (2048³ product 175-204 GFLOP/s)",
    "hour": "the deep recipe whitened to 512 components, for 400 epochs: 0.729 ± 0.002 "
            "test, one view, in 38-43 min on 2 cores (2048³ product 221-263 GFLOP/s; 49-52 "
            "min at 190)",
    "wide": "the notebook's two-layer net, 4096 wide, on whitened images, batch 256: 0.657 ± "
            "0.002 test, one view, in 22 min on 2 cores (2048³ product 200 GFLOP/s)",
}


def fit_to_run(config, n_train, n_eval, *, given=None, preset=None):
    """``config`` with its settings counted in steps or evaluations fitted to the length of
    its run on ``n_train`` training images, and the one line that says what changed (None
    if nothing did).

    What the user gave (the names in ``given``; None: every field, as the Python API's
    callers do) is kept; a warm-up given that is not shorter than the run is refused, and
    one that is more than half of it said to be so.
    A warm-up from the ``preset`` keeps the share of its run the preset gives it
    (``--preset wide --epochs 1``: 1 step of 175, not 200). The preset's evaluations, when
    not given, are capped at one per ``n_eval`` images trained, as many as an evaluation
    reads (the training subset and the validation split), so that they never take most of
    the time. The default's 20 are left as they are: the notebook's log line every 1/20 of
    the run.

    Raises:
        ConfigError: a warm-up given that is as long as the run, naming the fix.
    """
    given = set(SETTINGS) if given is None else set(given)
    total = total_steps(config, n_train)[0]
    changes, why = {}, []
    if "warmup" in given and config.warmup >= total:
        raise ConfigError(f"--warmup {config.warmup} is not shorter than the run ({total} "
                          f"steps): give --warmup {total // 10} (a tenth of the run) or a "
                          f"longer run (--epochs or --num-iters)")
    if "warmup" not in given and preset is not None and PRESETS[preset].get("warmup"):
        tuned = TrainConfig(**PRESETS[preset])
        share = tuned.warmup / total_steps(tuned, n_train)[0]
        changes["warmup"] = min(round(share * total), total - 1)
        why.append("the share of its run the preset gives it")
    if "evals" not in given and preset is not None and "evals" in PRESETS[preset]:
        changes["evals"] = min(config.evals, max(1, total * config.batch_size // n_eval))
        why.append(f"one per {n_eval} images trained, as many as an evaluation reads")
    changed = {k: v for k, v in changes.items() if v != getattr(config, k)}
    notes = []
    if changed:
        said = ", ".join(f"{SETTINGS[k].flag} {getattr(config, k)} -> {v} ({w})"
                         for (k, v), w in zip(changes.items(), why) if k in changed)
        notes.append(f"fitted to this run of {total} steps: {said}; give "
                     f"{' or '.join(SETTINGS[k].flag for k in changed)} to choose")
    if "warmup" in given and config.warmup > total // 2:
        notes.append(f"note: --warmup {config.warmup} is most of this run of {total} steps: "
                     f"the rate reaches its peak only at step {config.warmup}")
    return config.replace(**changed), "; ".join(notes) or None
