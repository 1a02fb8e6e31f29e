"""benchmarks/recipes.py's own pieces, without PyTorch and without timing anything: the
recipes it derives from the presets, its FLOP count, the normalisation it hands to its
runs, the refusal of what the PyTorch side does not implement, the time-to-accuracy
outputs and its command line."""

import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numpy_mlp import TrainConfig
from numpy_mlp.data.preprocessing import Preprocessor
from numpy_mlp.training.loop import total_steps
from numpy_mlp.training.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks/recipes.py"


@pytest.fixture(scope="module")
def recipes():
    spec = importlib.util.spec_from_file_location("bench_recipes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_presets_run_as_they_are(recipes):
    assert list(recipes.DEFAULT_RECIPES) == ["default", *PRESETS]
    assert recipes.RECIPES["default"][1] == TrainConfig()
    for name, values in PRESETS.items():
        preset = recipes.with_validation(TrainConfig(**values))
        assert recipes.RECIPES[name][1] == preset
        per_channel = recipes.RECIPES[f"{name}-per-channel"][1]
        assert per_channel.preprocessing == "per_channel"
        assert per_channel.replace(preprocessing=values["preprocessing"],
                                   alpha=values["alpha"]) == preset


def test_a_preset_without_a_validation_split_is_timed_with_one_at_its_own_steps(recipes):
    """--preset fast trains on all 50,000 images; the benchmark holds 5,000 out for its
    curve and runs the preset's own steps: 63 epochs of 50,000 at batch 256 = 63 * 195."""
    config = TrainConfig(hidden_dim=(64,), batch_size=256, epochs=63.0, val_size=0)
    held = recipes.with_validation(config)
    assert held.val_size == 5000 and held.num_iters == 63 * 195
    assert held.replace(val_size=0, num_iters=None) == config
    assert recipes.with_validation(held) == held


def test_a_new_preset_is_benchmarked_without_a_change(recipes, monkeypatch):
    monkeypatch.setitem(PRESETS, "fast", dict(hidden_dim=(512,), rotate=10.0, epochs=3.0))
    default, extra = recipes._recipes()
    assert default["fast"][1] == TrainConfig(hidden_dim=(512,), rotate=10.0, epochs=3.0)
    assert "--rotate 10" in default["fast"][0]
    assert "fast-per-channel" in extra


def test_the_batch_size_levers_scale_the_rate_with_the_batch(recipes):
    """deep-128 and hour-512 are their presets at half and twice the batch, the rate scaled
    with it, evaluating after as many images (the same share of a step)."""
    for name, base, factor in (("deep-128", "deep", 0.5), ("hour-512", "hour", 2)):
        preset, lever = recipes.RECIPES[base][1], recipes.RECIPES[name][1]
        assert lever.batch_size == preset.batch_size * factor
        assert lever.alpha == pytest.approx(preset.alpha * factor)
        assert lever.replace(batch_size=preset.batch_size, alpha=preset.alpha) == preset
        images = [recipes.eval_interval(c, 45_000) * c.batch_size for c in (preset, lever)]
        assert images[1] == pytest.approx(images[0], rel=0.01)
    assert "hour-512" not in recipes.DEFAULT_RECIPES


def test_step_flops_by_hand(recipes):
    # N=10, one hidden layer of 100, C=10. Per channel, input D=3072: forward
    # 2*10*(3072*100 + 100*10) = 6,164,000; the weight gradients the same; the input
    # gradient of the second layer only, 2*10*100*10 = 20,000.
    plain = TrainConfig(hidden_dim=(100,), batch_size=10, preprocessing="per_channel")
    assert recipes.step_flops(plain) == 2 * 6_164_000 + 20_000
    # Whitened to K=50: the first layer is 50 wide, 2*10*(50*100 + 100*10) = 120,000
    # forward, and the projection adds 2*10*3072*50 = 3,072,000.
    white = plain.replace(preprocessing="whiten", whiten_dim=50)
    assert recipes.step_flops(white) == 2 * 120_000 + 20_000 + 3_072_000


def test_eval_interval_is_the_trainers(recipes):
    config = TrainConfig(epochs=2.0, batch_size=100, evals=3)
    assert total_steps(config, 1000)[0] == 20
    assert recipes.eval_interval(config, 1000) == 6  # 20 // 3


@pytest.mark.parametrize("mode", ["per_image", "per_channel", "whiten"])
def test_the_runs_read_the_fitted_normalisation(recipes, tmp_path, mode):
    rng = np.random.default_rng(0)
    X_train = rng.integers(0, 256, size=(300, 48), dtype=np.uint8)  # 3 planes of 4 x 4
    X = rng.integers(0, 256, size=(7, 48), dtype=np.uint8)
    extra = dict(whiten_dim=16, whiten_eps=3.0) if mode == "whiten" else {}
    prep = Preprocessor.fit(mode, X_train, np.float32, **extra)
    recipes.save_preprocessor(prep, tmp_path / "p.npz")
    again = recipes.load_preprocessor(tmp_path / "p.npz")
    assert again.mode == mode
    assert np.array_equal(again(X), prep(X))


def test_what_torch_does_not_implement_is_named(recipes):
    assert recipes.torch_gaps(TrainConfig()) == []
    gaps = recipes.torch_gaps(TrainConfig(ema=0.999, mixup=0.2, norm="layer"))
    assert gaps == ["ema=0.999", "mixup=0.2", "norm='layer'"]


def test_first_reach_and_curves(recipes, tmp_path):
    ours = {"curve": {"eval_step": [10, 20, 30], "seconds": [5.0, 11.0, 16.0],
                      "val_acc": [0.5, 0.71, 0.69]}}
    theirs = {"curve": {"eval_step": [10, 20], "seconds": [6.0, 12.5],
                        "val_acc": [0.4, 0.6]}}
    assert recipes.first_reach(ours["curve"], 0.70) == (11.0, 20)
    assert recipes.first_reach(theirs["curve"], 0.70) == (None, None)
    assert recipes.reach_text(theirs, 0.70) == "not reached (best 0.6000)"
    recipes.write_curves(tmp_path, {"numpy-mlp": ours, "PyTorch": theirs}, 0.70, "test")
    with open(tmp_path / "curves.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["side", "eval_step", "seconds", "val_acc"]
    assert rows[1:] == [["numpy-mlp", "10", "5.0", "0.5"], ["numpy-mlp", "20", "11.0", "0.71"],
                        ["numpy-mlp", "30", "16.0", "0.69"], ["PyTorch", "10", "6.0", "0.4"],
                        ["PyTorch", "20", "12.5", "0.6"]]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _run(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_help_lists_the_recipes_and_modes():
    done = _run("--help")
    assert done.returncode == 0, done.stderr
    for name in PRESETS:
        assert name in done.stdout
    assert "--time-to-accuracy" in done.stdout


def test_an_unknown_recipe_is_one_line():
    done = _run("--recipes", "deep,nope", "--no-torch")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
        "recipes.py: error: --recipes: unknown nope; choose from default, ")


def test_time_to_accuracy_refuses_the_step_benchmarks_flags():
    done = _run("--time-to-accuracy", "default", "--steps", "5", "--no-torch")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "recipes.py: error: --time-to-accuracy runs the recipe's full run once on each side: "
        "leave out --steps")
