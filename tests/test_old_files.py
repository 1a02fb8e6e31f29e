"""Files written before the package was laid out in rooms load after it, and mean the same.

``tests/fixtures/numpy-mlp-0.1.0/`` holds a model.npz and a checkpoint.npz written by
numpy-mlp at commit 9c08312 (the flat package), from the fixture data below: the config
``CONFIG``, trained 40 steps (``model.npz``, the best parameters) and stopped at step 20
(``checkpoint.npz``, written by that version's ``save_checkpoint``). Today's code must read
both, and continue the checkpoint to where an uninterrupted run of today's code ends.

Float64 and one thread keep the comparison to rounding: a run is bit-for-bit only on one
BLAS kernel, and the files may have been written on another one.
"""

from pathlib import Path

import numpy as np
import pytest
from fixtures_cifar import write_cifar_dir

from numpy_mlp import TrainConfig, load_cifar10, train
from numpy_mlp.training.checkpointing import restore
from numpy_mlp.training.inference import predict_labels
from numpy_mlp.training.loop import build
from numpy_mlp.training.model_file import load_model

OLD = Path(__file__).resolve().parent / "fixtures" / "numpy-mlp-0.1.0"
CONFIG = TrainConfig(hidden_dim=(4,), num_iters=40, batch_size=10, val_size=20, evals=4,
                     eval_train_size=50, dtype="float64", threads=1, seed=3, ema=0.9,
                     dropout=0.1, preprocessing="per_channel", crop_pad=2, mixup=0.2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    write_cifar_dir(folder, "py3", n_per_batch=20)
    return load_cifar10(folder, val_size=20, seed=3, download=False)


@pytest.fixture(scope="module")
def today(data):
    """Today's uninterrupted run: its result, and its state at the last step."""
    run = build(CONFIG, data)
    return train(CONFIG, data, state=run), run


def assert_close_params(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-9, err_msg=k)


def test_an_old_model_file_loads_with_its_config_names_and_statistics(data, today):
    today, _ = today
    saved = load_model(OLD / "model.npz")
    assert TrainConfig.from_dict(saved.config) == CONFIG
    assert saved.class_names == data.class_names
    assert saved.geometry == data.geometry
    assert saved.preprocessor.mode == "per_channel"
    assert_close_params(saved.model.params, today.model.params)
    np.testing.assert_array_equal(
        predict_labels(saved.model, saved.preprocessor, data.X_test, geometry=data.geometry),
        predict_labels(today.model, today.preprocessor, data.X_test, geometry=data.geometry))


def test_an_old_checkpoint_resumes_to_where_todays_run_ends(data, today):
    today, today_run = today
    run = restore(OLD / "checkpoint.npz", CONFIG, data)
    assert run.loop.step == 20 and run.ema is not None
    resumed = train(CONFIG, data, state=run)
    assert resumed.steps == today.steps == 40
    assert resumed.best_step == today.best_step
    # the trajectory after step 20 (the loss of every step), and where it ends: the last
    # parameters' momentum and averages, and the best parameters the model is given
    np.testing.assert_allclose(resumed.history["loss"], today.history["loss"], rtol=1e-6)
    for k in ("train_loss", "val_acc", "val_acc_ema"):
        np.testing.assert_allclose(resumed.history[k], today.history[k], rtol=1e-6, err_msg=k)
    assert_close_params(run.optimizer.m, today_run.optimizer.m)
    assert_close_params(run.ema.averages, today_run.ema.averages)
    assert_close_params(resumed.model.params, today.model.params)
