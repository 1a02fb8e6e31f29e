"""``numpy-mlp train --from-search SEARCH``: the best trial of a search, trained again from
its best.json with one command, flags on top; what it cannot use is one line."""

import json

import numpy as np
import pytest
from fixtures_cifar import write_cifar_dir

from numpy_mlp.cli.commands import main
from numpy_mlp.runs.writeup import write_json
from numpy_mlp.training.config import SEARCH_BEST_NAME, TrainConfig


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    folder = tmp_path_factory.mktemp("from_search") / "cifar"
    write_cifar_dir(folder, n_per_batch=20, n_test=20)
    return folder


def search_folder(path, config):
    """A finished search's folder as search/outputs.py writes it (best.json's fields)."""
    path.mkdir()
    write_json(path / SEARCH_BEST_NAME, {
        "study_name": "numpy-mlp", "best_trial": 3, "config": config.to_dict(),
        "params": {"hidden_dim": config.hidden_dim[0], "alpha": config.alpha},
        "val_accuracy": 0.3, "trial_val_accuracy": 0.3, "test_accuracy": 0.25,
        "train_accuracy": 0.4, "model": "reused", "trials": {"complete": 4, "total": 4},
        "search_seconds": 12.0})
    return path


BEST = TrainConfig(hidden_dim=(12,), alpha=3e-2, beta=0.8, batch_size=16, num_iters=6,
                   val_size=20, evals=2, reg=1e-3, seed=5)


def _train(cifar, out, *flags):
    return main(["train", "--data-dir", str(cifar), "--offline", "--out", str(out), "--quiet",
                 *flags])


def test_the_best_trial_trains_again_with_its_whole_config(tmp_path, cifar):
    search = search_folder(tmp_path / "search", BEST)
    assert _train(cifar, tmp_path / "again", "--from-search", str(search)) == 0
    assert TrainConfig.from_dict(json.loads((tmp_path / "again/config.json").read_text())) == BEST
    # the same run as its config's flags give: the trial itself, not a lookalike
    assert _train(cifar, tmp_path / "flags", "--hidden-dim", "12", "--alpha", "3e-2", "--beta",
                  "0.8", "--batch-size", "16", "--num-iters", "6", "--val-size", "20",
                  "--evals", "2", "--reg", "1e-3", "--seed", "5") == 0
    a, b = np.load(tmp_path / "again/model.npz"), np.load(tmp_path / "flags/model.npz")
    assert all(np.array_equal(a[k], b[k]) for k in ("W1", "b1", "W2", "b2"))
    # its best.json, named directly, and a flag on top of it
    assert _train(cifar, tmp_path / "seed", "--from-search", str(search / SEARCH_BEST_NAME),
                  "--seed", "6") == 0
    saved = TrainConfig.from_dict(json.loads((tmp_path / "seed/config.json").read_text()))
    assert saved == BEST.replace(seed=6)


def test_what_from_search_cannot_use_is_one_line(tmp_path, cifar, capsys):
    (tmp_path / "empty").mkdir()
    assert _train(cifar, tmp_path / "a", "--from-search", str(tmp_path / "empty")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "best.json" in err and "numpy-mlp search --out" in err
    search = search_folder(tmp_path / "s", BEST)
    best = json.loads((search / SEARCH_BEST_NAME).read_text())
    best["config"]["alpha"] = -1
    (search / SEARCH_BEST_NAME).write_text(json.dumps(best))
    assert _train(cifar, tmp_path / "b", "--from-search", str(search)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "best.json" in err and "alpha" in err
    with pytest.raises(SystemExit):  # a recipe or a search's best trial, not both
        _train(cifar, tmp_path / "c", "--from-search", str(search), "--preset", "wide")
    assert "not allowed with" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in "abc")
