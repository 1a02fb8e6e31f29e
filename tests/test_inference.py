"""A run's state and its saved parts round-trip; one inference path for evaluate and predict."""

import json

import numpy as np
import pytest
from fixtures_cifar import write_cifar_dir
from PIL import Image
from synthetic_data import synthetic

from numpy_mlp import TrainConfig
from numpy_mlp.cli.commands import main
from numpy_mlp.data.preprocessing import Preprocessor
from numpy_mlp.runs.predict import predict_files
from numpy_mlp.training.checkpoint_file import save_checkpoint
from numpy_mlp.training.checkpointing import restore
from numpy_mlp.training.loop import build, initial_params, train
from numpy_mlp.training.model_file import load_model

CONFIG = TrainConfig(hidden_dim=(24, 16), batch_size=16, num_iters=30, evals=5, dropout=0.2,
                     flip=True, crop_pad=2, preprocessing="per_channel", eval_train_size=50,
                     threads=1)


class Stop(Exception):
    pass


@pytest.mark.parametrize("mode", ["per_image", "per_channel", "per_feature"])
def test_preprocessor_round_trips_through_json_bit_for_bit(mode):
    X = np.random.default_rng(0).integers(0, 256, size=(40, 3072), dtype=np.uint8)
    prep = Preprocessor.fit(mode, X, np.float32)
    assert (prep.stats is None) == (mode == "per_image")
    again = Preprocessor.from_dict(json.loads(json.dumps(prep.to_dict())), np.float32)
    assert again.mode == mode
    assert again(X).tobytes() == prep(X).tobytes()
    W, b = np.ones((3072, 4), np.float32) / 3072, np.zeros(4, np.float32)
    buf = np.empty((40, 3072), np.float32)
    assert again.folded(W, b)(X, buf).tobytes() == prep.folded(W, b)(X, buf).tobytes()


@pytest.mark.parametrize("stats", [{"mean": [1, 2, 3]}, {"mean": [1, 2], "std": [1, 1]},
                                   {"mean": [0, 0, 0], "std": [1, -1, 1]},
                                   {"mean": [0, float("nan"), 0], "std": [1, 1, 1]}, None])
def test_preprocessor_refuses_statistics_that_are_not_three_numbers_each(stats):
    with pytest.raises(ValueError):
        Preprocessor.from_dict({"mode": "per_channel", "stats": stats})


@pytest.mark.parametrize("bad", [None, {"mode": "zca"}, {"stats": None}])
def test_preprocessor_refuses_a_dict_that_describes_none(bad):
    with pytest.raises(ValueError):
        Preprocessor.from_dict(bad)


def test_run_state_round_trips_through_a_checkpoint_and_goes_on_the_same(tmp_path):
    data = synthetic(n_train=120, n_val=40)

    def stop_at(step):
        def on_step(run):
            if run.loop.step == step:
                raise Stop
        return on_step

    state = build(config=CONFIG, data=data)
    with pytest.raises(Stop):
        train(CONFIG, data, state=state, on_step=stop_at(13))
    save_checkpoint(tmp_path / "c.npz", CONFIG, state)
    back = restore(tmp_path / "c.npz", CONFIG, data)
    assert back is not state and back.loop.step == 13
    for k in state.model.params:
        assert back.model.params[k].tobytes() == state.model.params[k].tobytes()
        assert back.optimizer.m[k].tobytes() == state.optimizer.m[k].tobytes()
        assert back.loop.best_params[k].tobytes() == state.loop.best_params[k].tobytes()
    assert back.preprocessor.to_dict() == state.preprocessor.to_dict()
    np.testing.assert_array_equal(back.eval_idx, state.eval_idx)
    np.testing.assert_array_equal(back.loop.perm, state.loop.perm)
    assert back.loop.history == state.loop.history
    # both go on to the same end: every generator and counter came back
    a, b = train(CONFIG, data, state=state), train(CONFIG, data, state=back)
    assert a.history["loss"] == b.history["loss"] and a.history["val_acc"] == b.history["val_acc"]
    for k in a.model.params:
        assert a.model.params[k].tobytes() == b.model.params[k].tobytes()


def test_initial_params_are_the_built_runs_without_the_data():
    data = synthetic(n_train=64)
    built = build(CONFIG, data).model.params
    init = initial_params(CONFIG, 3072, 10)
    assert sorted(init) == sorted(built)
    for k in built:
        assert init[k].tobytes() == built[k].tobytes()
    assert not np.array_equal(initial_params(CONFIG.replace(seed=1), 3072, 10)["W1"], init["W1"])


# ----------------------------------------------------------------- a trained run, from the CLI

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small trained run on a CIFAR-like folder given by --data-dir (with crops and a shift)."""
    root = tmp_path_factory.mktemp("run")
    write_cifar_dir(root / "cifar", n_per_batch=20, n_test=40)
    assert main(["train", "--data-dir", str(root / "cifar"), "--offline", "--hidden-dim", "16",
                 "--num-iters", "6", "--batch-size", "16", "--val-size", "20", "--evals", "2",
                 "--crop-pad", "2", "--tta-shift", "1", "--out", str(root / "run"), "--quiet"]) == 0
    return root


def no_download(monkeypatch, tmp_path):
    """Downloads fail the test; the default data folder is an empty one."""
    import numpy_mlp.data.download

    def refuse(*a, **kw):
        raise AssertionError("evaluate tried to download")

    monkeypatch.setattr(numpy_mlp.data.download, "download_file", refuse)
    (tmp_path / "default").mkdir()
    monkeypatch.setenv("NUMPY_MLP_DATA", str(tmp_path / "default"))


@pytest.mark.parametrize("model", ["run/model.npz", "run"])
def test_evaluate_reads_the_runs_own_data_folder_without_downloading(model, run, tmp_path,
                                                                     monkeypatch, capsys):
    no_download(monkeypatch, tmp_path)
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run / model), "--no-pictures"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((run / "run" / "metrics.json").read_text())
    assert f"test accuracy: {metrics['test_accuracy']:.4f}" in out
    assert f"ten views, shift 1: {metrics['test_accuracy_tta']:.4f}" in out
    assert load_model(run / model).data_dir == str((run / "cifar").resolve())


def test_evaluate_falls_back_to_the_default_folder_when_the_runs_is_gone(run, tmp_path, monkeypatch,
                                                                        capsys):
    no_download(monkeypatch, tmp_path)
    (run / "cifar").rename(run / "moved")
    try:
        assert main(["evaluate", "--model", str(run / "run"), "--offline", "--no-pictures"]) == 2
        captured = capsys.readouterr()
        assert f"data folder {(run / 'cifar').resolve()} is gone" in captured.out
        err = captured.err.strip()
        assert "\n" not in err and "not found in" in err and str(tmp_path / "default") in err
        # --data-dir still wins over both
        assert main(["evaluate", "--model", str(run / "run"), "--data-dir", str(run / "moved"),
                     "--offline", "--no-pictures", "-q"]) == 0
    finally:
        (run / "moved").rename(run / "cifar")


def test_a_folder_without_a_model_is_one_line(tmp_path, capsys):
    assert main(["evaluate", "--model", str(tmp_path), "--offline"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{tmp_path} holds no model.npz" in err


def test_predict_classifies_the_images_of_a_folder(run, tmp_path, capsys):
    folder = tmp_path / "pics"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(4)
    for name in ("b.png", "a.JPG", "c.jpeg", "sub/d.png"):
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    expected = [str(folder / n) for n in ("a.JPG", "b.png", "c.jpeg")]  # sorted, not in sub/
    got = predict_files(run / "run", [folder], top=10)
    assert [p for p, _ in got] == expected
    by_file = predict_files(run / "run" / "model.npz", expected, top=10)
    assert got == by_file
    for _, top in got:  # the run's shift: the mean over ten views, still a distribution
        assert sum(p for _, p in top) == pytest.approx(1.0)
    capsys.readouterr()
    assert main(["predict", "--model", str(run / "run"), "-q", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{p}: {top[0][0]}" for p, top in got]

    (tmp_path / "empty").mkdir()
    assert main(["predict", "--model", str(run / "run"), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"folder {tmp_path / 'empty'} holds no image files" in err
