"""A scikit-learn classifier on numpy-mlp: ``FullyConnectedClassifier``.

Needs the optional extra ``pip install numpy-mlp[sklearn]``; the rest of the package never
imports this module. The estimator trains through the package's own ``train(config, data)``:
its parameters are TrainConfig's fields (:data:`PARAMS`, from :data:`config.SETTINGS`), and
``fit(X, y)`` builds a TrainConfig from them and a Dataset from X, y (:func:`feature_data`)::

    from numpy_mlp.sklearn import FullyConnectedClassifier

    clf = FullyConnectedClassifier(hidden_dim=(256,), epochs=30).fit(X_train, y_train)
    clf.predict(X_test), clf.predict_proba(X_test), clf.score(X_test, y_test)
    clf.fit(X, y, sample_weight=w)                      # w (N,): a row of weight 2 counts twice
    for X_chunk, y_chunk in chunks:                      # one epoch per call, momentum kept
        clf.partial_fit(X_chunk, y_chunk, classes=all_labels)

    N  samples      D  features      H  hidden width      C  classes
"""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .data.cifar10 import CIFAR10_GEOMETRY
from .data.dataset import Dataset, Geometry, split_validation
from .data.preprocessing import Preprocessor
from .errors import ConfigError
from .nn.rules import BOOL, choice, real, shown
from .training import inference
from .training.config import SETTINGS, Setting, TrainConfig
from .training.loop import RowWeights, build, train
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
    "dtype": ("float64", "as MLPClassifier computes float64 features: a fit with integer "
              "sample weights then equals the fit on the rows repeated, to scikit-learn's "
              "1e-7 (float32 only to its rounding, 4e-7), at about 1.8 times the float32 "
              "time"),
}
# The estimator's parameters besides TrainConfig's. validation_fraction replaces val_size,
# a count of CIFAR-10 images, by a share of whatever X is given.
OWN_SETTINGS = {s.name: s for s in (
    Setting("validation_fraction", real(0, 1, open_high=True), "share of the rows held out for "
            "validation: the fitted model holds the parameters of the best validation "
            "accuracy, history_['val_acc'] is its curve, and patience > 0 stops early (0 = "
            "none, as MLPClassifier without early_stopping: every row trains, and history_ "
            "has no val_acc)", default=0.0),
    Setting("warm_start", BOOL, "fit continues from the fitted parameters and the optimizer's "
            "momentum instead of starting anew", default=False),
    Setting("class_weight", choice("balanced"), "weights of the classes in the loss: a dict "
            "{label: weight} (labels left out weigh 1), 'balanced' (n_samples / (n_classes * "
            "the label's count in y), as scikit-learn defines it) or None (all 1); multiplied "
            "with fit's sample_weight", default=None, none="every class weighs 1"),
)}
# partial_fit runs have no known length: one epoch per call at the constant rate alpha
# (no schedule, no warm-up), no validation rows, as MLPClassifier.partial_fit
PARTIAL_FIT = dict(epochs=1.0, num_iters=None, schedule="constant", warmup=0)
# history_ keys that only a fit with validation rows has (no all-NaN lists without)
VALIDATION_KEYS = ("val_acc", "val_acc_ema")
# TrainConfig fields with no meaning here: the data is X itself, not a named data set, and
# a teacher is a model file trained on a named data set's split
REPLACED = ("val_size", "dataset", "image_size", "teacher", "distill", "distill_temperature")
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


def _encode(classes, y, how, continuing):
    """The index of each label of y (N,) in the sorted ``classes`` (C,): (N,) int64, or a
    ParameterError naming the labels that are not among them."""
    codes = np.searchsorted(classes, y).clip(0, len(classes) - 1)
    if not np.array_equal(classes[codes], y):
        new = sorted(set(np.unique(y).tolist()) - set(classes.tolist()), key=str)
        among = f"the fitted classes_ {classes.tolist()}" if continuing else \
            f"classes={classes.tolist()}"
        fix = ("fit with warm_start=False to learn new classes" if how == "warm_start" else
               "classes= of the first call must hold every label the calls will see")
        raise ParameterError(f"{how}: labels {new} are not among {among}; {fix}")
    return codes.astype(np.int64)


def _split_weights(w, val_size, seed) -> RowWeights:
    """Row weights w (N,) split as :func:`feature_data` splits the rows (the same call,
    on the rows' indices); the training ones scaled to mean 1, so that the loss keeps its
    scale. ParameterError if they sum to 0."""
    n = len(w)
    index = np.arange(n)
    train_idx, _, val_idx, _ = split_validation(index[:, None], index, val_size,
                                                np.random.default_rng(seed))
    w_train, w_val = w[train_idx[:, 0]], w[val_idx[:, 0]]
    if not w_train.sum() > 0:
        raise ParameterError("sample_weight and class_weight: the weights of the training "
                             "rows are all zero; give some row a weight > 0")
    return RowWeights(train=w_train / w_train.mean(), val=w_val)


def _weighted_feature_preprocessor(X, w, dtype) -> Preprocessor:
    """per_feature standardisation with the mean and std of the rows X (N, D) weighted by
    w (N,): the statistics of the rows repeated as their weights say."""
    mean = np.average(X, axis=0, weights=w)  # (D,) float64
    std = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=w))  # (D,)
    return Preprocessor("per_feature", {"mean": mean, "std": std}, dtype)


def _continue(run, previous, how):
    """Make the new ``run`` go on from ``previous`` (the fitted one): its parameters,
    momentum, EMA, input statistics and random streams (dropout, batch order), so that
    the next call draws new batches; ParameterError naming ``how`` where they differ."""
    if run.model.dtype != previous.model.dtype:
        raise ParameterError(f"{how}: dtype differs from the fitted model's; fit "
                             f"with warm_start=False to change it")
    try:
        run.model.load_params(previous.model.copy_params())  # the buffers too
    except (ValueError, KeyError):
        raise ParameterError(f"{how}: hidden_dim or the architecture (norm, blocks, "
                             f"expansion) differs from the fitted model's; fit with "
                             f"warm_start=False to change it") from None
    run.optimizer.load_state_dict(previous.optimizer.state_dict())
    if run.ema is not None:  # the average goes on from the fitted one, or starts here
        ema = previous.ema
        run.ema.load_state_dict(run.model.params if ema is None else ema.averages)
    run.preprocessor = previous.preprocessor
    run.model.rng = previous.model.rng
    s, before = run.loop, previous.loop
    s.order_rng, s.aug_rng, s.mix_rng = before.order_rng, before.aug_rng, before.mix_rng
    s.perm = s.order_rng.permutation(len(s.perm))


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
    - ``val_size`` is replaced by ``validation_fraction``, 0 by default: every row trains,
      as in MLPClassifier, and ``history_`` has no ``val_acc``; a fraction > 0 holds those
      rows out, records their accuracy at each evaluation and keeps the best parameters;
      ``patience`` counts evaluations (``evals`` per fit) without a better one.
    - ``batch_size`` is capped at the training rows (as MLPClassifier does).
    - ``checkpoint_every`` and ``checkpoint_minutes`` have no effect: the estimator writes no
      files.
    - ``dtype`` defaults to float64 (see below); with float32 the training is about 1.8
      times faster, and ``predict`` and ``predict_proba`` still compute in float64, so that
      a row's answer does not depend on the rows it is given with.
    - With ``warm_start``, each fit runs the configured length again with the learning-rate
      schedule from its start, but from the fitted parameters and momentum, on the first
      fit's input statistics; its classes must be among ``classes_``.
    - ``fit(X, y, sample_weight)`` and ``class_weight`` weigh each row's loss: a weight of 2
      trains as the row given twice (the per_feature statistics are weighted too), 0 as
      the row left out. The training rows' weights are scaled to mean 1 in each call.
      Validation rows count with their weights in the validation accuracy.
    - ``partial_fit(X, y, classes=...)`` runs one epoch per call at the constant rate
      ``alpha`` (no schedule, no warm-up, no validation rows), going on from the previous
      call's parameters, momentum and batch order; ``history_`` and ``n_steps_`` add up
      over the calls. Not with ``class_weight='balanced'`` (it needs all the labels).

    Parameters
    ----------
    {params}

    Attributes
    ----------
    classes_ : (C,) the labels, sorted (``np.unique(y)``).
    n_features_in_ : D.
    history_ : dict of lists, the last fit's ``TrainResult.history`` (see ``train``), without
        ``val_acc`` and ``val_acc_ema`` when no rows were held out (validation_fraction=0).
    best_val_acc_ : validation accuracy of the parameters kept (NaN without validation).
    stopped_early_ : whether patience ended the last fit early.
    n_steps_ : SGD steps of the last fit (of all the partial_fit calls since the first).
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

    def _config(self, n, d, partial=False):
        """The TrainConfig of a fit (or with ``partial`` a partial_fit call: one epoch at a
        constant rate, :data:`PARTIAL_FIT`, without validation rows) on n rows of d
        features; its val_size is the number of validation rows."""
        try:
            own = {k: s.check(getattr(self, k)) for k, s in OWN_SETTINGS.items()
                   if k != "class_weight"}  # checked with the labels, in _row_weights
            fields = {k: getattr(self, k) for k in PARAMS if k in SETTINGS}
            if partial:
                fields.update(PARTIAL_FIT)
            val_size = 0 if partial else int(round(own["validation_fraction"] * n))
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

    def fit(self, X, y, sample_weight=None):
        """Train on X (N, D) numeric and y (N,) labels, each row's loss weighted by
        ``sample_weight`` (N,) (None: all 1) times its class's ``class_weight``; with
        ``warm_start`` and a fitted model, continue from its parameters and momentum.
        Returns self."""
        warm = bool(self.warm_start) and hasattr(self, "run_")
        return self._fit(X, y, sample_weight, continuing=warm, how="warm_start")

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of SGD on X (N, D) and y (N,), from the parameters and the momentum
        the previous call (or fit) left; at the constant rate ``alpha``, without
        validation rows, on the first call's feature statistics. ``classes``: every label
        the calls will see, required on the first call (later calls may repeat it).
        ``sample_weight`` as in :meth:`fit`. Returns self."""
        continuing = hasattr(self, "run_")
        if not continuing and classes is None:
            raise ParameterError("partial_fit: the first call needs classes=, every label the "
                                 "calls will see, e.g. partial_fit(X, y, classes=np.unique(y_all))")
        if classes is not None:
            classes = np.unique(classes)
            if continuing and not np.array_equal(classes, self.classes_):
                raise ParameterError(f"partial_fit: classes={classes.tolist()} differ from the "
                                     f"first call's {self.classes_.tolist()}; start anew with fit")
        return self._fit(X, y, sample_weight, continuing=continuing, how="partial_fit",
                         classes=classes)

    def _fit(self, X, y, sample_weight, *, continuing, how, classes=None):
        """fit and partial_fit: a run from the start, or ``continuing`` from the fitted one
        (``how``: "warm_start" or "partial_fit", the option named in messages); partial_fit
        gives the ``classes`` of a first call."""
        partial = how == "partial_fit"
        X, y = validate_data(self, X, y, reset=not continuing, dtype="numeric")
        check_classification_targets(y)
        if continuing:
            classes = self.classes_
        elif classes is None:
            classes = np.unique(y)
        codes = _encode(classes, y, how, continuing)
        row_weights = self._row_weights(classes, codes, sample_weight, len(y), partial)
        config = self._config(*X.shape, partial=partial)
        data = feature_data(X, codes, map(str, classes), config.val_size, config.seed)
        weights = None
        if row_weights is not None:
            weights = _split_weights(row_weights, config.val_size, config.seed)
        preprocessor = None
        if weights is not None and config.preprocessing == "per_feature":
            preprocessor = _weighted_feature_preprocessor(data.X_train, weights.train,
                                                          config.dtype)
        run = build(config, data, preprocessor)
        if continuing:
            _continue(run, self.run_, how)
        try:
            result = train(config, data, state=run, weights=weights)
        except ConfigError as e:
            raise ParameterError(str(e)) from None
        history = result.history
        if not len(data.y_val):  # no validation rows: no all-NaN accuracy lists
            history = {k: v for k, v in history.items() if k not in VALIDATION_KEYS}
        steps = result.steps
        if partial and continuing and set(self.history_) == set(history):
            # the calls' histories one after the other, steps counted from the first call
            before = self.n_steps_
            history = {k: self.history_[k] + ([i + before for i in v]
                                              if k in ("step", "eval_step") else v)
                       for k, v in history.items()}
            steps += before
        self.classes_, self.config_, self.run_, self.model_ = classes, config, run, result.model
        self.history_, self.n_steps_ = history, steps
        self.best_val_acc_, self.stopped_early_ = result.best_val_acc, result.stopped_early
        return self

    def _row_weights(self, classes, codes, sample_weight, n, partial):
        """Each row's weight (N,) float64, ``sample_weight`` times its class's weight; None
        when both are None. ParameterError for a weight that is not a finite number >= 0."""
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.shape != (n,):
                raise ParameterError(f"sample_weight has shape {w.shape}; it needs one "
                                     f"weight per row of X: shape ({n},)")
            if not (np.isfinite(w).all() and (w >= 0).all()):
                raise ParameterError("sample_weight: every weight must be a finite number "
                                     ">= 0")
        per_class = self._class_weights(classes, codes, partial)
        if per_class is not None:
            w = per_class[codes] if w is None else w * per_class[codes]
        return w

    def _class_weights(self, classes, codes, partial):
        """The weight of each class (C,) float64 from ``class_weight``, or None."""
        cw = self.class_weight
        if isinstance(cw, dict):
            unknown = [k for k in cw if k not in set(classes.tolist())]
            if unknown:
                raise ParameterError(f"class_weight: labels {unknown} are not among the "
                                     f"classes {classes.tolist()}")
            weights = np.array([cw.get(c, 1.0) for c in classes.tolist()], dtype=object)
            if not all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                       and np.isfinite(v) and v >= 0 for v in weights):
                raise ParameterError("class_weight: every weight must be a finite number >= 0")
            return weights.astype(np.float64)
        try:
            cw = OWN_SETTINGS["class_weight"].check(cw)
        except ConfigError as e:
            raise ParameterError(f"{e}, a dict {{label: weight}} or None") from None
        if cw is None:
            return None
        if partial:
            raise ParameterError("class_weight='balanced' needs the counts of all the labels, "
                                 "which partial_fit does not see; give a dict, e.g. "
                                 "compute_class_weight('balanced', classes=classes, y=y_all) "
                                 "from sklearn.utils.class_weight")
        # scikit-learn's 'balanced': n_samples / (n_classes * count), over the labels of y
        counts = np.bincount(codes, minlength=len(classes)).astype(np.float64)
        with np.errstate(divide="ignore"):
            return np.where(counts > 0, len(codes) / (len(classes) * counts), 1.0)

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
