"""The one configuration of a training run: a frozen dataclass whose fields declare themselves.

Each field of :class:`TrainConfig` is declared once, with :func:`knob`: its default, a help
line, its :class:`Rule` (the values it takes: bounds or choices) and whether a resumed run
may change it. Everything else is derived from that declaration:

- :meth:`TrainConfig.validate`, each rule kind with one message: ``{what} must be
  {description}`` (the rules of the network's arguments, ``optim.ALPHA``,
  ``model.DROPOUT``, ..., are declared beside the code that checks them: nn/rules.py);
- the ``train`` flags, their help and shown defaults, and the keys of a ``--config`` TOML
  file (cli/flags.py, from :data:`SETTINGS`);
- :data:`RESUMABLE_FIELDS`, the fields ``train --resume`` may change.

:data:`numpy_mlp.training.presets.PRESETS` are named sets of field values (``train --preset NAME``).
Every run saves its config as ``config.json``; :meth:`TrainConfig.from_dict` reads it back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..data.deform import ELASTIC, ROTATE, SHEAR, ZOOM
from ..data.mixing import CUTMIX, MIX_PROB, MIXUP
from ..data.preprocessing import PREPROCESSING_MODES
from ..data.registry import DATA_FIELDS, DATASETS, DEFAULT_DATASET
from ..errors import ConfigError, RunFileError, UserError
from ..files.jsonfile import Fields, read_json
from ..nn.architecture import ACTIVATION, BLOCKS, EXPANSION, NORM
from ..nn.ema import DECAY
from ..nn.layers import REG
from ..nn.model import DROPOUT
from ..nn.optim import ALPHA, BETA, WEIGHT_DECAY
from ..nn.rules import BOOL, TEXT, WIDTHS, Rule, check_blocks, choice, real, shown, whole
from ..nn.schedules import SCHEDULES
from .threads import THREADS

FLIP_MODES = ("random", "alternate")
MAX_SHIFT = 16  # pixels: the largest crop_pad and tta_shift (half an image)
DTYPES = ("float32", "float64")
MAX_SEED = 2**32 - 1  # the seeds every NumPy and Optuna generator takes
# a folder's images: 8 px at least; at most 128 px, where a row's sum (3 * 128**2 * 255)
# still stays below 2**24 and is exact in float32 (preprocessing.preprocess)
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 128


def knob(default, rule, help, *, metavar=None, none="", resumable=False):
    """A TrainConfig field declared once: its default, Rule and help line.

    ``none``: what None means, for a field that may be left unset. ``resumable``: a resumed
    run may change it, because it does not change what is computed.
    """
    return dataclasses.field(default=default, metadata={
        "rule": rule, "help": help, "metavar": metavar, "none": none, "resumable": resumable})


@dataclass(frozen=True)
class TrainConfig:
    # --- model ---
    hidden_dim: tuple = knob((1000,), WIDTHS, "hidden width(s): one is the notebook's two-layer "
                             "net, several make a deeper one", metavar="H[,H2,...]")
    reg: float = knob(4e-3, REG, "L2 strength: loss += 0.5*reg*sum(W^2)")
    dropout: float = knob(0.0, DROPOUT, "inverted dropout: drop each hidden "
                          "unit with probability P while training (0 = off)", metavar="P")
    dtype: str = knob("float32", choice(*DTYPES), "float type (float32 is fast)")
    norm: str = knob("none", NORM, "normalisation before each hidden activation (in "
                     "blocks: before each block and the head): layer or batch (running "
                     "statistics for evaluation)")
    activation: str = knob("relu", ACTIVATION, "hidden activation (gelu: tanh form)")
    blocks: int = knob(0, BLOCKS, "0 = a plain stack of --hidden-dim layers; B >= 1 = a "
                       "residual net of one width H: stem D->H, B pre-norm blocks h += "
                       "W_out act(W_in norm(h)) (H -> E*H -> H), norm, head H->C", metavar="B")
    expansion: int = knob(4, EXPANSION, "residual blocks: inner width E*H", metavar="E")
    # --- optimizer: m <- beta*m + g ; theta <- theta - alpha*m ---
    alpha: float = knob(1e-2, ALPHA,
                        "learning rate (the peak, before the schedule)")
    beta: float = knob(0.9, BETA, "momentum: m <- beta*m + g")
    nesterov: bool = knob(False, BOOL, "Nesterov momentum: theta <- theta - alpha*(g + beta*m)")
    weight_decay: float = knob(0.0, WEIGHT_DECAY, "decoupled weight decay on the "
                               "weights: theta <- theta - alpha*WD*theta", metavar="WD")
    schedule: str = knob("cosine", choice(*SCHEDULES), "learning-rate schedule over the run")
    warmup: int = knob(0, whole(0, 10**9), "steps of linear learning-rate warm-up")
    ema: float = knob(0.0, DECAY, "average of the weights "
                      "(0 = off): avg <- d*avg + (1-d)*theta after each step, d = min(DECAY, "
                      "(1+t)/(10+t)) at step t; each evaluation rates it on val too and the "
                      "better of the two is kept", metavar="DECAY")
    # --- distillation: loss = (1 - W) * cross-entropy + W * T^2 * KL(teacher || student) at T ---
    teacher: str | None = knob(None, TEXT, "distillation: the model file or run folder of a "
                               "trained net (several, comma-separated: an ensemble, their "
                               "probabilities averaged) whose softened probabilities on each "
                               "training batch, as augmented, the net learns as well as the "
                               "labels; trained on the same split (--seed, --val-size)",
                               metavar="MODEL[,MODEL...]", none="no teacher")
    distill: float = knob(0.9, real(0, 1), "with --teacher: the share W of the loss that "
                          "is the teacher's term (1 = the teacher alone, no labels)",
                          metavar="W")
    distill_temperature: float = knob(4.0, real(0, 100, open_low=True), "with --teacher: the "
                                      "temperature T of both sides' softmax in that term",
                                      metavar="T")
    # --- data ---
    dataset: str = knob(DEFAULT_DATASET, choice(*DATASETS), "what to train on (its files in "
                        "--data-dir, downloaded there if missing; folder: one subfolder of "
                        "images per class in --data-dir)")
    image_size: int = knob(32, whole(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE), "--dataset folder: "
                           "every image resized to S x S pixels (RGB)", metavar="S")
    batch_size: int = knob(128, whole(1, 10**6), "minibatch size N")
    num_iters: int | None = knob(None, whole(1, 10**9), "number of SGD steps (instead of "
                                 "--epochs)", none="--epochs decides")
    epochs: float = knob(15.0, real(0, 10**5, open_low=True), "passes over the training split")
    val_size: int = knob(5000, whole(0, 10**6), "validation images carved from the training set")
    preprocessing: str = knob("per_image", choice(*PREPROCESSING_MODES), "per_image: each "
                              "image minus its mean, over its std (the notebook's); per_channel: "
                              "training-set channel statistics; per_feature: training-set "
                              "statistics of each input value (any numeric features, as the "
                              "scikit-learn estimator); whiten: per_channel, then PCA whitening to "
                              "--whiten-dim components (ZCA up to a rotation; "
                              "numpy_mlp/data/preprocessing.py), which wants about 10x the "
                              "learning rate (--alpha 0.1 at batch 128)")
    whiten_dim: int = knob(1024, whole(1, 10**5), "--preprocessing whiten: the principal "
                           "components kept, at most the values of an image (3072)",
                           metavar="K")
    whiten_eps: float = knob(3.0, real(0, open_low=True), "--preprocessing whiten: the floor "
                             "added to each eigenvalue, as a share of their mean: the leading "
                             "components come out at unit variance, those below it damped "
                             "(textbook ZCA: 0.1, too hard here; docs/ablations.md#whitening)",
                             metavar="EPS")
    flip: bool = knob(True, BOOL, "augmentation: mirror a random half of each minibatch "
                      "left-right")
    flip_mode: str = knob("random", choice(*FLIP_MODES), "with --flip: random = each image "
                          "at even odds every time it is drawn; alternate = each mirrored "
                          "in every other epoch, from a random first choice, so that every "
                          "two epochs show it both ways")
    crop_pad: int = knob(0, whole(0, MAX_SHIFT), "augmentation: random 32x32 crops of the images "
                         "padded by P pixels", metavar="P")
    rotate: float = knob(0.0, ROTATE, "augmentation: rotate each training image by a random "
                         "angle of up to R degrees either way (nearest pixel; with --zoom, "
                         "--shear, --elastic, the crops and flips one gather: "
                         "numpy_mlp/data/deform.py)", metavar="R")
    zoom: float = knob(0.0, ZOOM, "augmentation: scale each training image by a random "
                       "factor in [1-Z, 1+Z] about its centre", metavar="Z")
    shear: float = knob(0.0, SHEAR, "augmentation: shear each training image by a random "
                        "angle of up to S degrees either way", metavar="S")
    elastic: float = knob(0.0, ELASTIC, "augmentation: elastic distortion, a smooth random "
                          "displacement of E pixels root mean square (one of 512 fields made "
                          "from --seed)", metavar="E")
    mixup: float = knob(0.0, MIXUP, "MixUp (0 = off): each image of a minibatch "
                        "blended with another, lam*x + (1-lam)*x', lam ~ Beta(A, A), the targets "
                        "likewise", metavar="A")
    cutmix: float = knob(0.0, CUTMIX, "CutMix (0 = off): a box of about 1-lam of "
                         "each image, lam ~ Beta(A, A), pasted from another, the targets weighted "
                         "by area; with --mixup too, each mixed batch takes one of the two, "
                         "at even odds", metavar="A")
    mix_prob: float = knob(1.0, MIX_PROB, "share of the minibatches that --mixup/--cutmix "
                           "mix (the others train on their own labels)", metavar="P")
    label_smoothing: float = knob(0.0, real(0, 1, open_high=True), "target 1-EPS on the true "
                                  "class plus EPS/C on every class", metavar="EPS")
    tta_shift: int = knob(0, whole(0, MAX_SHIFT), "test-time augmentation (0 = off): the final "
                          "val/test accuracy also averaged over ten views, each image and its "
                          "diagonal shifts by S pixels, all mirrored too (try half of "
                          "--crop-pad)", metavar="S", resumable=True)
    patience: int = knob(0, whole(0, 10**6), "early stopping (0 = off): stop after K evaluations "
                         "without a better validation accuracy and keep the best parameters",
                         metavar="K")
    # --- bookkeeping ---
    seed: int = knob(0, whole(0, MAX_SEED), "seed of the split, the init and the batch order")
    evals: int = knob(20, whole(1, 10**6), "evaluations (log lines) per run")
    eval_train_size: int = knob(5000, whole(1, 10**6), "training images used for the train "
                                "accuracy at each evaluation")
    checkpoint_every: int | None = knob(None, whole(0, 10**9), "write DIR/checkpoint.npz every "
                                        "STEPS steps, atomically (0 = only at the end and on "
                                        "Ctrl-C); does not change the results", metavar="STEPS",
                                        none="20 per run", resumable=True)
    checkpoint_minutes: float = knob(5.0, real(0, 10**6), "also write DIR/checkpoint.npz once "
                                     "M minutes of training have passed since the last one "
                                     "(0 = off), so that a long run loses at most that much; "
                                     "does not change the results", metavar="M",
                                     resumable=True)
    threads: int | str = knob("auto", THREADS, "BLAS threads for the matrix products: a "
                              "number, or auto = all cores unless other jobs hold one, "
                              "rechecked every 30 s (numpy_mlp/training/threads.py); "
                              "changes results only in their last bits", metavar="auto|N",
                              resumable=True)

    def __post_init__(self):
        for s in SETTINGS.values():  # normalised: widths a tuple, numbers int or float
            object.__setattr__(self, s.name, s.check(getattr(self, s.name)))
        check_blocks(self.hidden_dim, self.blocks)

    def validate(self):
        """Raise ConfigError naming the first field that is out of range."""
        for s in SETTINGS.values():
            s.check(getattr(self, s.name))
        check_blocks(self.hidden_dim, self.blocks)

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["hidden_dim"] = list(self.hidden_dim)
        return d

    @classmethod
    def from_dict(cls, d):
        """Build from a dict such as a saved ``config.json``; unknown keys are an error."""
        unknown = sorted(set(d) - set(SETTINGS), key=str)
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(map(str, unknown))}; "
                              f"known keys: {', '.join(sorted(SETTINGS))}")
        return cls(**d)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Setting:
    """One setting of a command, declared once: a TrainConfig field or another option.

    The flag, its ``--help`` line, the key of a ``--config`` file and the check of a value
    all come from it (cli/flags.py).
    """

    name: str                  # the field or option; its flag is --name-with-dashes
    rule: Rule
    help: str
    default: object = None
    metavar: str | None = None
    none: str = ""             # what leaving it unset (None) means, where that is allowed
    resumable: bool = False    # a resumed run may change it
    short: str | None = None   # a one-letter flag as well, e.g. "-q"
    required: bool = False

    @property
    def flag(self):
        return "--" + self.name.replace("_", "-")

    def check(self, value, what=None):
        """``value`` normalised by the rule (None where ``none`` allows it); else ConfigError."""
        if value is None and self.none:
            return None
        return self.rule.check(value, what or shown(self.name, value))


SETTINGS = {f.name: Setting(f.name, default=f.default, **f.metadata)
            for f in dataclasses.fields(TrainConfig)}
RESUMABLE_FIELDS = tuple(s.name for s in SETTINGS.values() if s.resumable)
EITHER_OR = (("num_iters", "epochs"),)  # give one: num_iters, when set, decides the run's length


def is_tta_shift(value):
    """Whether ``value`` is a test-time shift: an integer (not a bool) in 0..MAX_SHIFT."""
    return SETTINGS["tta_shift"].rule.accepts(value)


def layered(*layers, pairs=EITHER_OR):
    """Merge dicts of values, later layers winning (preset < file < command line).

    A name of one of ``pairs`` set in a layer removes its partner set earlier, so that
    ``--num-iters`` given on the command line overrides a preset's ``epochs``.
    """
    out = {}
    for layer in layers:
        for pair in pairs:
            if any(name in layer for name in pair):
                for name in pair:
                    out.pop(name, None)
        out.update(layer)
    return out


def data_config(saved: dict):
    """A TrainConfig with the data fields (dataset, image_size, val_size, seed) of a saved
    config dict, the defaults for those it lacks: what reads the same split again."""
    return TrainConfig.from_dict({k: saved[k] for k in DATA_FIELDS if k in saved})


CONFIG_FIX = "the file is damaged: fix it, or start a new run"


def train_config(value, fields, field="config"):
    """A TrainConfig from the saved dict ``value``; a wrong field is one ``fields.error`` line."""
    fields.mapping(value, field)
    try:
        return TrainConfig.from_dict(value)
    except ConfigError as e:
        raise fields.error(f"{fields.where}: {field}: {e}; {fields.fix}") from None
    except (TypeError, ValueError) as e:  # a value of a type no field check expects
        raise fields.error(f"{fields.where}: {field} does not describe a run ({e}); "
                           f"{fields.fix}") from None


def read_config(path):
    """The TrainConfig in a run's ``config.json``, checked field by field (RunFileError)."""
    path = Path(path)
    fields = Fields(path, RunFileError, CONFIG_FIX)
    return train_config(read_json(path, fix=CONFIG_FIX), fields, field="config.json")


SEARCH_BEST_NAME = "best.json"  # a search's best trial, in its folder (search/outputs.py)
SEARCH_FIX = "run the search again with the same --out to rewrite it"


def read_search_best(path):
    """The TrainConfig of a search's best trial: ``path`` is the search's folder or its
    best.json (written by ``numpy-mlp search``, whose ``config`` is the trial's whole
    TrainConfig), checked field by field (RunFileError); UserError if there is none."""
    given = Path(path)
    path = given / SEARCH_BEST_NAME if given.is_dir() else given
    if not path.is_file():
        raise UserError(f"--from-search {given}: there is no {path}; give the folder of a "
                        f"finished 'numpy-mlp search --out DIR' (it writes DIR/{SEARCH_BEST_NAME})")
    fields = Fields(path, RunFileError, SEARCH_FIX)
    best = fields.mapping(read_json(path, fix=SEARCH_FIX), SEARCH_BEST_NAME, keys=("config",))
    return train_config(best["config"], fields)
