"""A scikit-learn classifier on numpy-mlp: ``FullyConnectedClassifier``.

Needs the optional extra ``pip install numpy-mlp[sklearn]``; the rest of the package never
imports this module. The estimator trains through the package's own ``train(config, data)``:
its parameters are TrainConfig's fields (:data:`PARAMS`, from :data:`config.SETTINGS`), and
``fit(X, y)`` builds a TrainConfig from them and a Dataset from X, y (:func:`feature_data`)::

    from numpy_mlp.sklearn import FullyConnectedClassifier

    clf = FullyConnectedClassifier(hidden_dim=(256,), epochs=30).fit(X_train, y_train)
    clf.predict(X_test), clf.predict_proba(X_test), clf.score(X_test, y_test)

    N  samples      D  features      H  hidden width      C  classes
"""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .data.cifar10 import CIFAR10_GEOMETRY
from .data.dataset import Dataset, Geometry
from .errors import ConfigError
from .nn.rules import BOOL, real, shown
from .training import inference
from .training.config import SETTINGS, Setting, TrainConfig
from .training.loop import build, train
from .training.model_file import IMAGE_MODES

IMAGE_GEOMETRY = CIFAR10_GEOMETRY  # the image layout the image-only options work on
IMAGE_D = IMAGE_GEOMETRY.D

# predict and predict_proba compute in float64 whatever the training dtype: in float32 a
# row's answer varies by ~1e-7 with the batch it is in (the BLAS's blocking), and
# scikit-learn requires a row's answer to be the same in any subset (to 1e-7)
INFERENCE_DTYPE = np.float64

# need rows of 3 x 32 x 32 images; each with its value that turns it off
IMAGE_ONLY = {"flip": False, "crop_pad": 0, "rotate": 0, "zoom": 0, "shear": 0, "elastic": 0,
              "cutmix": 0, "tta_shift": 0}
# Where the estimator's default differs from TrainConfig's, and why (docstring, below).
OWN_DEFAULTS = {
    "flip": (False, "an image augmentation; features are not images"),
    "preprocessing": ("per_feature", "each feature standardised with training statistics"),
}
# The estimator's parameters besides TrainConfig's. validation_fraction replaces val_size,
# a count of CIFAR-10 images, by a share of whatever X is given.
OWN_SETTINGS = {s.name: s for s in (
    Setting("validation_fraction", real(0, 1, open_high=True), "share of the rows held out for "
            "validation (0 = none): the fitted model holds the parameters of the best "
            "validation accuracy, and patience > 0 stops early", default=0.0),
    Setting("warm_start", BOOL, "fit continues from the fitted parameters and the optimizer's "
            "momentum instead of starting anew", default=False),
)}
# TrainConfig fields with no meaning here: the data is X itself, not a named data set
REPLACED = ("val_size", "dataset", "image_size")
SETTINGS_HERE = {**{k: s for k, s in SETTINGS.items() if k not in REPLACED}, **OWN_SETTINGS}
PARAMS = {k: OWN_DEFAULTS[k][0] if k in OWN_DEFAULTS else s.default
          for k, s in SETTINGS_HERE.items()}  # name -> default, in TrainConfig's order


class ParameterError(ConfigError, ValueError):
    """A parameter out of range: numpy-mlp's one-line ConfigError, and the ValueError that
    scikit-learn's conventions expect from ``fit``."""


def _geometry_of(d: int) -> Geometry:
    """The geometry of rows of d values: CIFAR-10's images for d = 3072 (what the image-only
    options need), else d plain features (:meth:`Geometry.features`)."""
    return IMAGE_GEOMETRY if d == IMAGE_D else Geometry.features(d)


def feature_data(X, y, class_names, val_size, seed) -> Dataset:
    """The Dataset ``train`` reads, from the X (N, D) numeric and the encoded y (N,) int64
    (the index into classes_) given to fit: ``val_size`` random rows held out for
    validation (chosen by ``np.random.default_rng(seed)``), an empty (0, D) test set (the
    test set is the caller's, through predict and score), the geometry of
    :func:`_geometry_of`."""
    return Dataset.split((X, y), (X[:0], y[:0]), val_size=val_size, seed=seed,
                         class_names=class_names, source="the X given to fit",
                         geometry=_geometry_of(X.shape[1]), name="features")


def _parameter_docs():
    lines = []
    for name, s in SETTINGS_HERE.items():
        own = (f" (TrainConfig: {s.default!r}; {OWN_DEFAULTS[name][1]})"
               if name in OWN_DEFAULTS else "")
        lines += [f"{name} : default {PARAMS[name]!r}{own}", f"    {s.help}."]
    return "\n    ".join(lines)


class FullyConnectedClassifier(ClassifierMixin, BaseEstimator):
    """A fully-connected ReLU network trained with SGD with momentum, as a scikit-learn
    classifier: ``fit(X, y)`` on numeric features X (N, D) of any D and labels y (N,) of any
    type, then ``predict`` (N,), ``predict_proba`` (N, C) and ``score``.

    Each fit is one ``numpy_mlp.train(config, data)`` run. How TrainConfig's fields apply
    to tabular features:

    - ``preprocessing`` defaults to ``per_feature``: each feature minus its training mean,
      over its training std. ``per_image`` and ``per_channel``, like the image-only options
      ``flip`` (off here by default), ``crop_pad``, the deformations (``rotate``, ``zoom``,
      ``shear``, ``elastic``), ``cutmix`` and ``tta_shift``, need rows
      that are 3 x 32 x 32 images (D = 3072, CIFAR-10's layout); on other features fit refuses them
      with a ParameterError naming the option.
    - ``dataset`` and ``image_size`` are not parameters: the data is X.
    - ``val_size`` is replaced by ``validation_fraction``; ``patience`` counts evaluations
      (``evals`` per fit) without a better validation accuracy.
    - ``batch_size`` is capped at the training rows (as MLPClassifier does).
    - ``checkpoint_every`` and ``checkpoint_minutes`` have no effect: the estimator writes no
      files.
    - ``dtype`` is the training's: ``predict`` and ``predict_proba`` compute in float64,
      so that a row's answer does not depend on the rows it is given with.
    - With ``warm_start``, each fit runs the configured length again with the learning-rate
      schedule from its start, but from the fitted parameters and momentum, on the first
      fit's input statistics; its classes must be among ``classes_``.

    Parameters
    ----------
    {params}

    Attributes
    ----------
    classes_ : (C,) the labels, sorted (``np.unique(y)``).
    n_features_in_ : D.
    history_ : dict of lists, the last fit's ``TrainResult.history`` (see ``train``).
    best_val_acc_ : validation accuracy of the parameters kept (NaN without validation).
    stopped_early_ : whether patience ended the last fit early.
    n_steps_ : SGD steps of the last fit.
    model_ : the ``FullyConnectedNet``, (N, D) -> (N, C) scores.
    config_ : the TrainConfig of the last fit.
    run_ : the ``RunState`` the last fit ended in (its optimizer holds the momentum).
    """

    def __init__(self, **params):
        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            raise TypeError(f"unknown parameter(s) {', '.join(unknown)}; "
                            f"known: {', '.join(PARAMS)}")
        for name, default in PARAMS.items():  # stored as given: fit checks them
            setattr(self, name, params.get(name, default))

    # scikit-learn reads the parameters from the signature of __init__
    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
           for k, v in PARAMS.items()])

    def _config(self, n, d):
        """The TrainConfig of a fit on n rows of d features, and the validation rows."""
        try:
            own = {k: s.check(getattr(self, k)) for k, s in OWN_SETTINGS.items()}
            fields = {k: getattr(self, k) for k in PARAMS if k in SETTINGS}
            val_size = int(round(own["validation_fraction"] * n))
            if val_size >= n:
                raise ConfigError(f"{shown('validation_fraction', self.validation_fraction)} "
                                  f"leaves no training rows of {n}; use a smaller fraction")
            fields["batch_size"] = min(SETTINGS["batch_size"].check(self.batch_size), n - val_size)
            config = TrainConfig(**fields, val_size=val_size)
        except ConfigError as e:
            raise ParameterError(str(e)) from None
        if d != IMAGE_D:
            names = [k for k in IMAGE_ONLY if getattr(config, k)]
            off = [shown(k, IMAGE_ONLY[k]) for k in names]
            if config.preprocessing in IMAGE_MODES:
                names.append("preprocessing")
                off.append("preprocessing='per_feature'")
            if names:
                on = ", ".join(shown(k, getattr(config, k)) for k in names)
                raise ParameterError(f"{on}: only for rows of 3 x 32 x 32 images "
                                     f"(D = {IMAGE_D}); these have D = {d}: turn it off "
                                     f"({', '.join(off)})")
        return config

    def fit(self, X, y):
        """Train on X (N, D) numeric and y (N,) labels; with ``warm_start`` and a fitted
        model, continue from its parameters and momentum. Returns self."""
        warm = bool(self.warm_start) and hasattr(self, "run_")
        X, y = validate_data(self, X, y, reset=not warm, dtype="numeric")
        check_classification_targets(y)
        if warm:
            codes = np.searchsorted(self.classes_, y).clip(0, len(self.classes_) - 1)
            if not np.array_equal(self.classes_[codes], y):
                new = sorted(set(np.unique(y)) - set(self.classes_), key=str)
                raise ParameterError(f"warm_start: labels {new} are not among the fitted "
                                     f"classes_ {list(self.classes_)}; fit with "
                                     f"warm_start=False to learn new classes")
            classes = self.classes_
        else:
            classes, codes = np.unique(y, return_inverse=True)
        config = self._config(*X.shape)
        data = feature_data(X, codes.astype(np.int64), map(str, classes), config.val_size,
                            config.seed)
        run = build(config, data)
        if warm:
            previous = self.run_
            if run.model.dtype != previous.model.dtype:
                raise ParameterError("warm_start: dtype differs from the fitted model's; fit "
                                     "with warm_start=False to change it")
            try:
                run.model.load_params(previous.model.copy_params())  # the buffers too
            except (ValueError, KeyError):
                raise ParameterError("warm_start: hidden_dim or the architecture (norm, blocks, "
                                     "expansion) differs from the fitted model's; fit with "
                                     "warm_start=False to change it") from None
            run.optimizer.load_state_dict(previous.optimizer.state_dict())
            if run.ema is not None:  # the average goes on from the fitted one, or starts here
                ema = previous.ema
                run.ema.load_state_dict(run.model.params if ema is None else ema.averages)
            run.preprocessor = previous.preprocessor
        result = train(config, data, state=run)
        self.classes_, self.config_, self.run_, self.model_ = classes, config, run, result.model
        self.history_, self.n_steps_ = result.history, result.steps
        self.best_val_acc_, self.stopped_early_ = result.best_val_acc, result.stopped_early
        return self

    def _inputs(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype="numeric")

    def predict_proba(self, X):
        """Class probabilities (N, C) float64 of X (N, D), columns in the order of classes_.

        Computed in float64 (:data:`INFERENCE_DTYPE`), so that a row's probabilities do
        not depend on the rows it is given with."""
        X = self._inputs(X)
        return inference.probabilities(self.model_, self.run_.preprocessor, X,
                                       tta_shift=self.config_.tta_shift,
                                       geometry=_geometry_of(self.n_features_in_),
                                       dtype=INFERENCE_DTYPE)

    def predict(self, X):
        """Predicted labels (N,) of X (N, D), taken from classes_: those of the highest
        :meth:`predict_proba`."""
        codes = self.predict_proba(X).argmax(axis=1)  # first: it checks that self is fitted
        return self.classes_[codes]

FullyConnectedClassifier.__doc__ = FullyConnectedClassifier.__doc__.replace(
    "{params}", _parameter_docs())
