"""The big arrays are estimated before they are made (numpy_mlp/memory.py): a setting that
would need more memory than the machine has is refused with the real cause and a fix that
fits. The geometries are made up and the limit is set with $NUMPY_MLP_MEMORY_LIMIT, so
nothing large is ever allocated."""

import math
import re

import numpy as np
import pytest
from PIL import Image

from numpy_mlp import memory
from numpy_mlp.cli import commands as cli
from numpy_mlp.data import preprocessing
from numpy_mlp.data.preprocessing import check_whitening_fits, whitening_bytes
from numpy_mlp.errors import ConfigError
from numpy_mlp.nn.rules import flag_spelling, spelled_as
from numpy_mlp.runs import plots
from numpy_mlp.search.settings import SearchSettings, check_settings
from numpy_mlp.search.space import grid_bytes, grid_of
from numpy_mlp.training.config import TrainConfig
from numpy_mlp.training.loop import network_bytes, train
from numpy_mlp.training.metrics import confusion_matrix

GiB = 2**30


@pytest.fixture
def limit(monkeypatch):
    def set_limit(nbytes):
        monkeypatch.setenv(memory.LIMIT_VARIABLE, str(int(nbytes)))
        assert memory.available_bytes() <= nbytes
    return set_limit


def test_the_limit_caps_what_is_available_and_a_bad_one_is_named(monkeypatch, limit):
    assert memory.available_bytes() > 0
    limit(12345)
    assert memory.available_bytes() == 12345
    monkeypatch.setenv(memory.LIMIT_VARIABLE, "lots")
    with pytest.raises(ConfigError, match=r"\$NUMPY_MLP_MEMORY_LIMIT='lots': give a number"):
        memory.available_bytes()


def test_whitening_128_pixel_images_is_refused_with_a_size_that_fits(limit):
    D = 3 * 128 * 128  # 49152 values: a D x D float64 covariance is 18 GiB
    limit(4 * GiB)
    with pytest.raises(ConfigError) as e:
        check_whitening_fits(D, 3)
    text = str(e.value)
    assert "whitening 128x128x3 images (a D x D covariance, D = 49152) needs about 54.0 GiB" in text
    assert "preprocessing='per_channel'" in text  # Python's words here
    side = int(re.search(r"image_size=(\d+)", text).group(1))
    assert whitening_bytes(3 * side * side) <= 4 * GiB < whitening_bytes(3 * 2 * side * side)
    with spelled_as(flag_spelling), pytest.raises(ConfigError, match=r"--preprocessing "
                                                  r"per_channel, or smaller images \(--image-size"):
        check_whitening_fits(D, 3)
    check_whitening_fits(3 * side * side, 3)  # the advice fits


def test_train_on_a_folder_of_large_images_refuses_whiten_before_the_covariance(
        tmp_path, limit, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "pics" / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(
                tmp_path / "pics" / c / f"{i}.png")

    def never(*a, **k):  # should the estimate fail, the test stops before the slow part
        raise AssertionError("the covariance was made")
    monkeypatch.setattr(preprocessing.np.linalg, "eigh", never)
    limit(64 * 2**20)  # a 6912 x 6912 covariance takes 1.1 GiB with eigh's copies
    argv = ["train", "--dataset", "folder", "--data-dir", str(tmp_path / "pics"), "--val-size",
            "2", "--num-iters", "4", "--batch-size", "4", "--evals", "1", "--preprocessing",
            "whiten", "--whiten-dim", "64", "-q"]
    rc = cli.main([*argv, "--image-size", "48", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "D = 6912" in err and "--preprocessing per_channel" in err
    assert "--hidden-dim" not in err
    side = re.search(r"--image-size (\d+)\)$", err.strip()).group(1)
    monkeypatch.undo()  # the advice works
    limit(64 * 2**20)
    assert cli.main([*argv, "--image-size", side, "--out", str(tmp_path / "run2")]) == 0


def test_a_network_too_large_is_refused_with_widths_that_fit(limit):
    config = TrainConfig(hidden_dim=(200_000, 100), batch_size=16)
    need = network_bytes(config, 3072, 10)
    assert need > 3 * 4 * 3072 * 200_000  # weights, gradients, momentum at least
    limit(need // 3)
    with pytest.raises(ConfigError, match="the network .* needs about") as e:
        train(config, _tiny_data())
    widths = tuple(int(h) for h in re.search(r"hidden_dim=\(([\d, ]+)\)$",
                                             str(e.value)).group(1).split(","))
    assert network_bytes(config.replace(hidden_dim=widths), 3072, 10) <= need // 3


def test_a_confusion_matrix_of_4000_classes_is_refused_by_its_size(limit):
    limit(64 * 2**20)
    with pytest.raises(ConfigError, match=r"a 4000 x 4000 confusion matrix needs about 122 MiB.*"
                                          r"fewer classes"):
        confusion_matrix(np.zeros(3, int), np.zeros(3, int), 4000)
    with pytest.raises(ConfigError, match="picture of a 2000-class confusion matrix.*"
                                          "--no-pictures"):
        plots.plot_confusion(np.zeros((2, 2), int), [str(i) for i in range(2000)], "x.png")
    assert confusion_matrix(np.arange(3), np.arange(3), 3).trace() == 3  # small ones are made


def test_a_grid_too_large_to_list_is_refused_with_grid_points_that_fit(tmp_path, limit):
    s = SearchSettings(out=str(tmp_path / "s"), sampler="grid", grid_points=100)
    points = math.prod(len(v) for v in grid_of(s).values())  # six ranges of up to 100 values
    assert points > 10**10 and grid_bytes(s) > 64 * points
    limit(GiB)
    with pytest.raises(ConfigError, match=rf"the grid of {points:,} points \(100 per range\)"
                                          rf" needs about .* GiB of memory") as e:
        check_settings(s)
    points = int(re.search(r"--grid-points (\d+)", str(e.value)).group(1))
    assert grid_bytes(s, points) <= GiB < grid_bytes(s, points + 1)
    check_settings(SearchSettings(out=s.out, sampler="grid", grid_points=points))


def test_a_bare_memory_error_has_no_empty_brackets(monkeypatch, capsys):
    def bare(args):
        raise MemoryError()
    monkeypatch.setattr(cli, "_cmd_report", bare)
    assert cli.main(["report", "anywhere"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("numpy-mlp: error: not enough memory; ") and "()" not in err


def _tiny_data():
    from synthetic_data import synthetic
    return synthetic(n_train=20, n_val=5)
