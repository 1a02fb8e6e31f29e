"""numpy_mlp.sklearn.FullyConnectedClassifier: scikit-learn's own estimator checks, the
meta-estimators it must work in, and what it adds (warm start, validation, refusals)."""

import copy

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the optional extra; the test extra installs it

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_blobs  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from numpy_mlp.sklearn import PARAMS, FullyConnectedClassifier, ParameterError
from numpy_mlp.training.config import SETTINGS

FAST = dict(hidden_dim=(32,), epochs=20, evals=2, threads=1)
# the checks that are expected to fail, and why: in float32 (not the default) a fit with
# integer weights
# equals the fit on the repeated rows only to float32 rounding (4e-7 relative, where the
# check asks 1e-7): the sums of the gradients run over other rows in another order. In
# float64, the default, the same check passes; the weighting itself is
# tested exactly in test_a_row_of_weight_two_is_the_row_twice. (The small network may pass
# it: fewer rows and steps, less rounding; the expectation is not strict.)
EXPECTED_FAILED_FLOAT32 = {
    "check_sample_weight_equivalence_on_dense_data": "float32 rounding: 4e-7 > 1e-7"}


def expected_failed(estimator):
    return EXPECTED_FAILED_FLOAT32 if estimator.dtype == "float32" else {}


def small():
    return FullyConnectedClassifier(**FAST)


# the defaults (H = 1000, 15 epochs, float64: about 20 s for all the checks), the
# defaults in float32, and the small one
@parametrize_with_checks([FullyConnectedClassifier(), FullyConnectedClassifier(dtype="float32"),
                          small()], expected_failed_checks=expected_failed)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def blobs(n=200, d=5, seed=0):
    return make_blobs(n_samples=n, n_features=d, centers=3, random_state=seed)


def test_params_are_train_configs_fields():
    params = FullyConnectedClassifier().get_params()
    assert set(params) == set(PARAMS)
    # val_size is replaced by validation_fraction; the data set is X itself; a teacher is a
    # model file trained on a named data set's split
    assert set(SETTINGS) - set(params) == {"val_size", "dataset", "image_size", "teacher",
                                           "distill", "distill_temperature"}
    assert {"validation_fraction", "warm_start"} <= set(params)
    assert params["flip"] is False and params["preprocessing"] == "per_feature"
    assert params["dtype"] == "float64" and FullyConnectedClassifier().fit(
        *blobs(n=30)).model_.dtype == np.float64
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
    clf = FullyConnectedClassifier(hidden_dim=(64,), epochs=2, threads=1,
                                   dtype="float32").fit(X, y)
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
    no_val = small().fit(X, y)  # the default: every row trains, as MLPClassifier's
    assert np.isnan(no_val.best_val_acc_) and "val_acc" not in no_val.history_
    assert len(no_val.history_["train_acc"]) == FAST["evals"]  # the curve there is


def test_a_validation_curve_with_an_ema_has_both_keys():
    X, y = blobs()
    clf = small().set_params(validation_fraction=0.2, ema=0.9).fit(X, y)
    assert len(clf.history_["val_acc"]) == len(clf.history_["val_acc_ema"]) == FAST["evals"]
    assert "val_acc_ema" not in small().set_params(ema=0.9).fit(X, y).history_


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
                                   preprocessing=mode, dtype="float32").fit(X, y)
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


# one full-batch SGD step (batch_size is capped at the rows), at the rate alpha itself (a
# cosine schedule's one step would be at its end, rate 0), in float64
ONE_STEP = dict(hidden_dim=(6,), num_iters=1, schedule="constant", beta=0.9, alpha=0.5,
                dtype="float64", threads=1, reg=1e-3)


def one_step(X, y, **fit):
    """The parameters after one full-batch SGD step from the same start."""
    return FullyConnectedClassifier(**ONE_STEP).fit(X, y, **fit).model_.params


def test_a_row_of_weight_two_is_the_row_twice():
    # rows a, b, c, d, e of 3 classes; weights (2, 1, 0, 1, 1): the batch a, a, b, d, e
    # (c removed).
    # With batch_size capped at the rows, each fit is one full-batch step, so the order of
    # the rows does not matter: the gradient is (2 g_a + g_b + 0 g_c + g_d + g_e) / 5 both ways,
    # and the weighted feature statistics are those of the repeated rows.
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 4)), np.array([0, 1, 2, 1, 2])
    weighted = one_step(X, y, sample_weight=[2, 1, 0, 1, 1])
    repeated = one_step(X[[0, 0, 1, 3, 4]], y[[0, 0, 1, 3, 4]])
    unweighted = one_step(X, y)
    for k in weighted:
        np.testing.assert_allclose(weighted[k], repeated[k], rtol=1e-12, atol=1e-14)
    assert max(np.abs(weighted[k] - unweighted[k]).max() for k in weighted) > 1e-3


def test_weights_in_float32_are_the_repeated_rows_to_its_rounding():
    X, y = blobs(n=60)
    w = np.random.default_rng(1).integers(0, 4, size=60)
    keep = np.repeat(np.arange(60), w)
    clf = FullyConnectedClassifier(hidden_dim=(16,), epochs=10, threads=1, dtype="float32")
    weighted = clone(clf).fit(X, y, sample_weight=w).predict_proba(X)
    repeated = clone(clf).fit(X[keep], y[keep]).predict_proba(X)
    np.testing.assert_allclose(weighted, repeated, atol=1e-5)


def test_class_weight_is_a_weight_for_each_row_of_the_class():
    from sklearn.utils.class_weight import compute_class_weight
    X = np.random.default_rng(2).normal(size=(50, 4))
    y = np.repeat([0, 1], [40, 10])  # 40 of class 0, 10 of class 1
    labels = np.array(["no", "yes"])[y]

    def params(**kw):
        return one_step(X, labels, **kw) if "sample_weight" in kw else \
            FullyConnectedClassifier(**ONE_STEP, **kw).fit(X, labels).model_.params

    balanced = compute_class_weight("balanced", classes=np.array(["no", "yes"]), y=labels)
    assert balanced.tolist() == [50 / (2 * 40), 50 / (2 * 10)]
    for cw, w in (({"yes": 3.0}, np.where(y == 1, 3.0, 1.0)), ("balanced", balanced[y])):
        got, want = params(class_weight=cw), params(sample_weight=w)
        for k in got:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-14)
        assert np.abs(got["W1"] - params()["W1"]).max() > 1e-3  # the weights matter
    # class_weight and sample_weight multiply
    clf = FullyConnectedClassifier(**ONE_STEP, class_weight={"yes": 3.0})
    both = clf.fit(X, labels, sample_weight=np.arange(50) % 2 + 1.0).model_.params
    product = one_step(X, labels, sample_weight=(np.arange(50) % 2 + 1.0) *
                       np.where(y == 1, 3.0, 1.0))
    np.testing.assert_allclose(both["W1"], product["W1"], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("params, fit, message", [
    ({}, dict(sample_weight=[-1.0] + [1.0] * 199), "sample_weight: every weight must be a "
     "finite number >= 0"),
    ({}, dict(sample_weight=[1.0] * 3), r"sample_weight has shape \(3,\); it needs one weight "
     r"per row of X: shape \(200,\)"),
    ({}, dict(sample_weight=[0.0] * 200), "the weights of the training rows are all zero"),
    (dict(class_weight="even"), {}, "class_weight='even' must be one of balanced, a dict"),
    (dict(class_weight={7: 2.0}), {}, r"class_weight: labels \[7\] are not among the classes"),
    (dict(class_weight={0: -2.0}), {}, "class_weight: every weight must be a finite number"),
    (dict(mixup=0.2), dict(sample_weight=[1.0] * 200), "row weights do not combine with MixUp"),
])
def test_bad_weights_are_one_clear_value_error(params, fit, message):
    X, y = blobs()
    with pytest.raises(ParameterError, match=message) as e:
        small().set_params(**params).fit(X, y, **fit)
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)


def test_partial_fit_is_one_epoch_per_call_with_the_momentum_kept():
    X, y = blobs(n=200)
    clf = FullyConnectedClassifier(hidden_dim=(16,), batch_size=50, threads=1, evals=1)
    with pytest.raises(ParameterError, match="the first call needs classes="):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:100], y[:100], classes=[2, 0, 1])
    assert list(clf.classes_) == [0, 1, 2] and clf.n_steps_ == 2  # 100 rows / batches of 50
    clf.partial_fit(X[100:], y[100:])
    assert clf.n_steps_ == 4 and clf.history_["step"] == [1, 2, 3, 4]
    assert set(clf.history_["alpha"]) == {clf.alpha}  # a constant rate: no schedule
    assert "val_acc" not in clf.history_
    # momentum: one more call of one batch with beta = 0.5 must give 0.5 * m + g, where g
    # is the same call's gradient with beta = 0 (its momentum then holds g alone)
    m = {k: v.copy() for k, v in clf.run_.optimizer.m.items()}
    kept, plain = copy.deepcopy(clf), copy.deepcopy(clf)
    kept.set_params(beta=0.5).partial_fit(X[:50], y[:50])
    plain.set_params(beta=0.0).partial_fit(X[:50], y[:50])
    for k in m:
        np.testing.assert_allclose(kept.run_.optimizer.m[k], 0.5 * m[k] + plain.run_.optimizer.m[k],
                                   rtol=1e-5, atol=1e-6)
    for _ in range(10):
        clf.partial_fit(X, y, classes=[0, 1, 2])  # the classes again: allowed
    assert clf.score(X, y) > 0.95
    with pytest.raises(ParameterError, match=r"labels \[5\] are not among the fitted "
                       r"classes_ \[0, 1, 2\]; classes= of the first call must hold"):
        clf.partial_fit(X[:10], np.full(10, 5))
    with pytest.raises(ParameterError, match=r"labels \[2\] are not among classes=\[0, 1\]"):
        FullyConnectedClassifier().partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ParameterError, match="differ from the first call's"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ParameterError, match="class_weight='balanced' needs the counts"):
        FullyConnectedClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])


def test_partial_fit_draws_new_batches_each_call():
    # the batch order goes on from the previous call's generator: two calls on the same
    # rows are two different epochs, not the same one twice
    X, y = blobs(n=40)
    clf = FullyConnectedClassifier(hidden_dim=(8,), batch_size=10, threads=1, evals=1)
    orders = []
    for _ in range(2):
        clf.partial_fit(X, y, classes=[0, 1, 2])
        orders.append(clf.run_.loop.perm.copy())
    assert not np.array_equal(*orders)
