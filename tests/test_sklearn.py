"""numpy_mlp.sklearn.FullyConnectedClassifier: scikit-learn's own estimator checks, the
meta-estimators it must work in, and what it adds (warm start, validation, refusals)."""

import copy

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the optional extra; the test extra installs it

from sklearn.datasets import load_digits, make_blobs  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from numpy_mlp.sklearn import PARAMS, FullyConnectedClassifier, ParameterError
from numpy_mlp.training.config import SETTINGS

FAST = dict(hidden_dim=(32,), epochs=20, evals=2, threads=1)
# the checks that are expected to fail, and why (none while this stays empty)
EXPECTED_FAILED = {}


def small():
    return FullyConnectedClassifier(**FAST)


# the defaults (H = 1000, 15 epochs: about 10 s for all the checks) and the small one
@parametrize_with_checks([FullyConnectedClassifier(), small()],
                         expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def blobs(n=200, d=5, seed=0):
    return make_blobs(n_samples=n, n_features=d, centers=3, random_state=seed)


def test_params_are_train_configs_fields():
    params = FullyConnectedClassifier().get_params()
    assert set(params) == set(PARAMS)
    # val_size is replaced by validation_fraction; the data set is X itself
    assert set(SETTINGS) - set(params) == {"val_size", "dataset", "image_size"}
    assert {"validation_fraction", "warm_start"} <= set(params)
    assert params["flip"] is False and params["preprocessing"] == "per_feature"
    clf = FullyConnectedClassifier().set_params(alpha=0.05, hidden_dim=(7,))
    assert clf.get_params()["alpha"] == 0.05 and clf.hidden_dim == (7,)


def test_core_does_not_import_sklearn():
    import subprocess
    import sys
    code = "import sys, numpy_mlp; assert 'numpy_mlp.sklearn' not in sys.modules; " \
           "assert 'sklearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_any_labels_and_features():
    X, y = blobs()
    names = np.array(["cat", "dog", "emu"])[y]
    clf = small().fit(X * 1000 + 5, names)  # any scale: standardised with training statistics
    assert list(clf.classes_) == ["cat", "dog", "emu"] and clf.n_features_in_ == 5
    assert clf.predict(X[:3] * 1000 + 5).dtype == names.dtype
    proba = clf.predict_proba(X * 1000 + 5)
    assert proba.shape == (200, 3) and np.allclose(proba.sum(axis=1), 1)
    assert clf.score(X * 1000 + 5, names) > 0.95


def test_a_rows_probabilities_do_not_depend_on_its_batch():
    # float32 products differ by ~1e-7 with the batch's shape (the BLAS's blocking); the
    # estimator computes in float64, where they agree to ~1e-16
    X, y = blobs(n=300, d=40)
    clf = FullyConnectedClassifier(hidden_dim=(64,), epochs=2, threads=1).fit(X, y)
    assert clf.model_.dtype == np.float32  # trained in float32
    whole = clf.predict_proba(X)
    for rows in (slice(0, 1), slice(5, 12), slice(1, 300, 2), slice(17, 300)):
        np.testing.assert_allclose(clf.predict_proba(X[rows]), whole[rows], rtol=1e-12,
                                   atol=1e-15)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[whole.argmax(axis=1)])


def test_constant_feature_stays_finite():
    X, y = blobs()
    X[:, 0] = 3.0  # constant in training: centred only, so another value later is finite
    clf = small().fit(X, y)
    X2 = X.copy()
    X2[:, 0] = 1e3
    assert np.isfinite(clf.predict_proba(X2)).all()


def test_validation_fraction_and_early_stopping():
    X, y = blobs(n=400)
    clf = FullyConnectedClassifier(**{**FAST, "evals": 50, "epochs": 200},
                                   validation_fraction=0.25, patience=2).fit(X, y)
    assert clf.stopped_early_ and 0.9 <= clf.best_val_acc_ <= 1
    assert len(clf.history_["val_acc"]) < 50 and len(clf.history_["step"]) == clf.n_steps_
    no_val = small().fit(X, y)
    assert np.isnan(no_val.best_val_acc_) and np.isnan(no_val.history_["val_acc"]).all()


def test_warm_start_keeps_the_parameters():
    X, y = blobs()
    W1_init = FullyConnectedClassifier(**FAST, alpha=1e-9).fit(X, y).model_.params["W1"]
    clf = FullyConnectedClassifier(**FAST, warm_start=True).fit(X, y)
    W1 = clf.model_.params["W1"].copy()
    clf.set_params(alpha=1e-9).fit(X, y)  # a learning rate that hardly moves them
    assert np.abs(clf.model_.params["W1"] - W1).max() * 100 < np.abs(W1 - W1_init).max()
    with pytest.raises(ParameterError, match="not among the fitted classes_"):
        clf.fit(X, y + 5)
    with pytest.raises(ParameterError, match="hidden_dim or the architecture"):
        clf.set_params(hidden_dim=(9,)).fit(X, y)


def test_warm_start_keeps_the_momentum():
    X, y = blobs()
    clf = FullyConnectedClassifier(**FAST, warm_start=True).fit(X, y)
    m = {k: v.copy() for k, v in clf.run_.optimizer.m.items()}
    assert all(np.abs(v).max() > 0 for v in m.values())
    # one more step from the same parameters on the same batch: m <- beta*m + g. With
    # beta = 0 it leaves g alone, so beta = 0.5 must give 0.5*m + that g.
    kept, plain = copy.deepcopy(clf), copy.deepcopy(clf)
    kept.set_params(num_iters=1, beta=0.5).fit(X, y)
    plain.set_params(num_iters=1, beta=0.0).fit(X, y)
    for k in m:
        g = plain.run_.optimizer.m[k]
        np.testing.assert_allclose(kept.run_.optimizer.m[k], 0.5 * m[k] + g, rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("option", [dict(flip=True), dict(crop_pad=2), dict(tta_shift=1),
                                    dict(preprocessing="per_image")])
def test_image_only_options_refused_on_features(option):
    X, y = blobs()
    name = next(iter(option))
    with pytest.raises(ParameterError, match=f"{name}=.*only for rows of 3 x 32 x 32 images"):
        small().set_params(**option).fit(X, y)


def test_image_options_work_on_image_rows():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(40, 3072)).astype(np.uint8)  # D = 3072: CIFAR-10's rows
    y = np.arange(40) % 2
    clf = FullyConnectedClassifier(hidden_dim=(8,), epochs=2, evals=1, threads=1, flip=True,
                                   crop_pad=2, tta_shift=1, preprocessing="per_channel")
    assert clf.fit(X, y).predict_proba(X[:5]).shape == (5, 2)
    assert clf.run_.preprocessor.mode == "per_channel"


@pytest.mark.parametrize("mode", ["per_image", "per_channel"])
def test_float64_answers_are_the_trained_models_on_image_rows(mode):
    # the estimator's float64 predictions fold each normalisation into the first layer
    # anew: they must be those of the float32 model the trainer evaluates
    from numpy_mlp.training import inference
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, size=(60, 3072)).astype(np.uint8)
    y = np.arange(60) % 3
    clf = FullyConnectedClassifier(hidden_dim=(8,), epochs=2, evals=1, threads=1,
                                   preprocessing=mode).fit(X, y)
    as_trained = inference.probabilities(clf.model_, clf.run_.preprocessor, X)
    np.testing.assert_allclose(clf.predict_proba(X), as_trained, atol=1e-5)
    assert np.abs(clf.predict_proba(X) - as_trained).max() > 0  # a float64 computation


@pytest.mark.parametrize("D", [5, 3072, 20_000])
def test_the_estimators_data_is_a_dataset_of_its_geometry(D, monkeypatch):
    import numpy_mlp.sklearn as sk
    from numpy_mlp.data.cifar10 import CIFAR10_GEOMETRY
    from numpy_mlp.data.dataset import Dataset, Geometry

    seen = []
    real_train = sk.train

    def spy(config, data, **kw):
        seen.append(data)
        return real_train(config, data, **kw)

    monkeypatch.setattr(sk, "train", spy)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, D)), np.arange(30) % 3
    clf = FullyConnectedClassifier(hidden_dim=(4,), epochs=1, evals=1, threads=1,
                                   validation_fraction=0.2)
    assert clf.fit(X, y).predict(X[:4]).shape == (4,)
    data, = seen
    assert isinstance(data, Dataset) and data.class_names == ("0", "1", "2")
    assert data.geometry == (CIFAR10_GEOMETRY if D == 3072 else Geometry.features(D))
    assert data.X_train.shape == (24, D) and data.X_val.shape == (6, D)
    assert data.X_test.shape == (0, D)


def test_bad_parameter_is_one_clear_value_error():
    X, y = blobs()
    with pytest.raises(ValueError, match="alpha=0 must be"):
        small().set_params(alpha=0).fit(X, y)
    with pytest.raises(ValueError, match="validation_fraction=1.5 must be"):
        small().set_params(validation_fraction=1.5).fit(X, y)


def test_pipeline():
    X, y = blobs()
    pipe = make_pipeline(MinMaxScaler(), small()).fit(X, y)
    assert pipe.score(X, y) > 0.95


def test_grid_search():
    X, y = blobs()
    grid = GridSearchCV(small(), {"alpha": [1e-9, 0.05]}, cv=3).fit(X, y)
    assert grid.best_params_["alpha"] == 0.05  # a learning rate of 1e-9 learns nothing
    assert grid.best_score_ > 0.9


def test_cross_val_score():
    X, y = blobs()
    scores = cross_val_score(small(), X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.9


def test_digits_accuracy():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    clf = FullyConnectedClassifier(hidden_dim=(256,), alpha=0.05, epochs=20, threads=1)
    assert clf.fit(X_train, y_train).score(X_test, y_test) >= 0.95
