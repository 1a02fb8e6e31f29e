"""The pictures of a run: what they show, checked on the arrays and on the written PNGs."""

import numpy as np
import pytest
from PIL import Image

from numpy_mlp.data.cifar10 import CIFAR10_GEOMETRY, CLASS_NAMES
from numpy_mlp.data.dataset import to_images
from numpy_mlp.runs import plots


def read_png(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_weight_templates_put_each_column_back_as_a_channel_last_image_in_0_1():
    rng = np.random.default_rng(0)
    W1 = rng.standard_normal((3072, 4))
    W1[:, 2] = 0.0  # a constant unit must not divide by zero
    t = plots.weight_templates(W1, CIFAR10_GEOMETRY)
    assert t.shape == (4, 32, 32, 3)
    # unit 0: channel-first layout (1024 red, 1024 green, 1024 blue), row-major planes
    col = W1[:, 0]
    lo, hi = col.min(), col.max()
    assert t[0, 0, 0, 0] == pytest.approx((col[0] - lo) / (hi - lo))          # red, row 0, col 0
    assert t[0, 0, 1, 1] == pytest.approx((col[1024 + 1] - lo) / (hi - lo))   # green, row 0, col 1
    assert t[0, 1, 0, 2] == pytest.approx((col[2048 + 32] - lo) / (hi - lo))  # blue, row 1, col 0
    for k in (0, 1, 3):  # each unit rescaled on its own to exactly 0..1
        assert t[k].min() == 0.0 and t[k].max() == pytest.approx(1.0)
    assert np.all(t[2] == 0.0)
    with pytest.raises(ValueError, match="3072"):
        plots.weight_templates(np.zeros((100, 4)), CIFAR10_GEOMETRY)


def test_first_layer_picture_of_a_template_shows_the_template(tmp_path):
    # one hidden unit whose weights are a red square on a blue background
    img = np.zeros((3, 32, 32))
    img[2] = 1.0
    img[0, 8:24, 8:24], img[2, 8:24, 8:24] = 1.0, 0.0
    W1 = img.reshape(3072, 1)
    path = plots.plot_first_layer_weights(W1, tmp_path / "w.png", geometry=CIFAR10_GEOMETRY)
    px = read_png(path).astype(int)
    red = (px[..., 0] > 200) & (px[..., 1] < 60) & (px[..., 2] < 60)
    blue = (px[..., 2] > 200) & (px[..., 0] < 60) & (px[..., 1] < 60)
    assert red.sum() > 100 and blue.sum() > red.sum()  # the square inside a larger frame
    # with W1_init the picture shows the change, W1 - W1_init: here exactly zero -> all black
    path = plots.plot_first_layer_weights(W1 + 5.0, tmp_path / "d.png", W1_init=W1 + 5.0,
                                          geometry=CIFAR10_GEOMETRY)
    px = read_png(path).astype(int)
    assert not ((px[..., 0] > 200) & (px[..., 2] < 60)).any()
    # a shrunken random start (as L2 leaves it) plus the template: the template shows, not the noise
    W0 = np.random.default_rng(0).standard_normal((3072, 1)) * 3
    W0 -= (W0 * W1).sum() / (W1 * W1).sum() * W1  # noise orthogonal to the template
    path = plots.plot_first_layer_weights(0.35 * W0 + W1, tmp_path / "s.png", W1_init=W0,
                                          geometry=CIFAR10_GEOMETRY)
    px = read_png(path).astype(int)
    red = (px[..., 0] > 200) & (px[..., 1] < 60) & (px[..., 2] < 60)
    assert red.sum() > 100


def test_prediction_grid_frames_the_mistakes_in_red(tmp_path):
    images = np.full((8, 32, 32, 3), 128, dtype=np.uint8)  # grey images: only frames are red
    y_true = np.arange(8)
    right = plots.plot_predictions(images, y_true, y_true, CLASS_NAMES, tmp_path / "right.png",
                                   cols=4)
    y_pred = y_true.copy()
    y_pred[[1, 6]] = 9
    wrong = plots.plot_predictions(images, y_true, y_pred, CLASS_NAMES, tmp_path / "wrong.png",
                                   cols=4)

    def strong_red(path):
        px = read_png(path).astype(int)
        return ((px[..., 0] > 200) & (px[..., 1] < 50) & (px[..., 2] < 50)).sum()

    assert strong_red(right) < 50  # no frames (the only red would be text, and there is none)
    assert strong_red(wrong) > 400  # two red frames and two red titles


def test_confusion_matrix_picture_names_the_classes_and_their_accuracy(tmp_path, monkeypatch):
    import matplotlib.axes

    cm = np.diag(np.arange(1, 11)) + 1
    seen = {}
    original = matplotlib.axes.Axes.set_yticks

    def spy(self, ticks, labels=None, **kw):
        seen["labels"] = list(labels) if labels is not None else None
        return original(self, ticks, labels, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_yticks", spy)
    plots.plot_confusion(cm, CLASS_NAMES, tmp_path / "c.png")
    assert seen["labels"][0] == "airplane  18%"  # 1 + 1 right of 1 + 1 + 9 = 11
    assert seen["labels"][9].startswith("truck")


def test_accuracy_curve_marks_the_best_validation_point(tmp_path, monkeypatch):
    import matplotlib.axes

    labels = []
    original = matplotlib.axes.Axes.plot

    def spy(self, *args, **kw):
        labels.append(kw.get("label"))
        return original(self, *args, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    h = {"epoch": [1, 2, 3], "train_acc": [0.3, 0.5, 0.6], "val_acc": [0.25, 0.45, 0.4]}
    plots.plot_accuracy(h, tmp_path / "a.png")
    assert labels == ["train (fixed subset)", "validation", "best validation 0.450 (kept)"]
    assert (tmp_path / "a.png").stat().st_size > 1000


def test_to_images_and_the_grid_agree_on_the_layout(tmp_path):
    # a CIFAR-10 row that is pure red must be drawn red
    row = np.zeros((1, 3072), dtype=np.uint8)
    row[0, :1024] = 255
    path = plots.plot_predictions(to_images(row, CIFAR10_GEOMETRY), [3], [3], CLASS_NAMES,
                                  tmp_path / "r.png", cols=1)
    px = read_png(path).astype(int)
    assert ((px[..., 0] > 240) & (px[..., 1] < 20) & (px[..., 2] < 20)).sum() > 1000
