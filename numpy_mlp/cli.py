"""The command line: the only place that parses arguments.

    numpy-mlp train     train a network and save a run folder
    numpy-mlp evaluate  accuracy of a saved model on train/val/test, per class
    numpy-mlp predict   classify image files with a saved model

Every flag of ``train`` maps one to one onto a field of ``TrainConfig``. Errors the user
can fix are printed as one line ``numpy-mlp: error: ...`` with exit status 2 (add
``--debug`` for the traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys

from .config import TrainConfig
from .errors import UserError

DEFAULTS = TrainConfig()

EXAMPLES = """examples:
  numpy-mlp train                                   # defaults: 2-layer net, about 3 minutes
  numpy-mlp train --data-dir ~/data/cifar-10-batches-py --out runs/first
  numpy-mlp train --hidden-dim 200 --alpha 1e-2 --beta 0.9 --batch-size 40 --num-iters 2000
  numpy-mlp evaluate --model runs/first/model.npz
  numpy-mlp predict --model runs/first/model.npz cat.jpg truck.png
"""


def positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return v


def nonneg_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return v


def finite_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return v


def hidden_dims(text):
    """'1000' or '512,256' -> tuple of widths."""
    try:
        dims = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give widths as whole numbers, e.g. 1000 or 512,256") from None
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every hidden width must be at least 1")
    return dims


def add_data_args(p):
    p.add_argument("--data-dir", metavar="D", help="folder with CIFAR-10 (batch files, cifar-10-batches-py/ or the "
                   ".tar.gz); default $NUMPY_MLP_DATA or ~/.cache/numpy-mlp, downloaded there if missing")
    p.add_argument("--offline", action="store_true", help="never download; fail with instructions if the data is missing")


def add_common_args(p):
    p.add_argument("--debug", action="store_true", help="show the full traceback of errors")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="numpy-mlp", description="Fully-connected networks in NumPy, trained with SGD with momentum on CIFAR-10.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    d = DEFAULTS
    t = sub.add_parser("train", help="train a network and save a run folder", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(t)
    t.add_argument("--hidden-dim", type=hidden_dims, metavar="H[,H2,...]",
                   help=f"hidden width(s); several make a deeper net (default {','.join(map(str, d.hidden_dim))})")
    t.add_argument("--alpha", type=finite_float, help=f"learning rate (default {d.alpha:g})")
    t.add_argument("--beta", type=finite_float, help=f"momentum in [0, 1): m <- beta*m + g (default {d.beta:g})")
    t.add_argument("--schedule", choices=["constant", "cosine", "step"],
                   help=f"learning-rate schedule over the run (default {d.schedule})")
    t.add_argument("--warmup", type=nonneg_int, help=f"steps of linear learning-rate warm-up (default {d.warmup})")
    t.add_argument("--batch-size", type=positive_int, help=f"minibatch size (default {d.batch_size})")
    length = t.add_mutually_exclusive_group()
    length.add_argument("--num-iters", type=positive_int, help="number of SGD steps (overrides --epochs)")
    length.add_argument("--epochs", type=finite_float, help=f"passes over the training split (default {d.epochs:g})")
    t.add_argument("--reg", type=finite_float, help=f"L2 strength: loss += 0.5*reg*sum(W^2) (default {d.reg:g})")
    t.add_argument("--dropout", type=finite_float, metavar="P",
                   help=f"inverted dropout: drop each hidden unit with probability P while training (default {d.dropout:g})")
    t.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                   help="Nesterov momentum: theta <- theta - alpha*(g + beta*m) (default off)")
    t.add_argument("--weight-decay", type=finite_float, metavar="WD",
                   help=f"decoupled weight decay on the weights: theta <- theta - alpha*WD*theta (default {d.weight_decay:g})")
    t.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="augmentation: mirror a random half of each minibatch left-right (default off)")
    t.add_argument("--crop-pad", type=nonneg_int, metavar="P",
                   help=f"augmentation: random 32x32 crops of the images padded by P pixels (default {d.crop_pad})")
    t.add_argument("--label-smoothing", type=finite_float, metavar="EPS",
                   help=f"target 1-EPS on the true class plus EPS/10 on every class (default {d.label_smoothing:g})")
    t.add_argument("--patience", type=nonneg_int, metavar="K",
                   help="early stopping: stop after K evaluations without a better validation accuracy and "
                        "keep the best parameters (default 0 = off)")
    t.add_argument("--val-size", type=nonneg_int, help=f"validation images carved from the training set (default {d.val_size})")
    t.add_argument("--preprocessing", choices=["per_image", "per_channel"],
                   help=f"per_image: each image minus its mean, over its std (the notebook's); "
                        f"per_channel: training-set channel statistics (default {d.preprocessing})")
    t.add_argument("--dtype", choices=["float32", "float64"], help=f"float type (default {d.dtype})")
    t.add_argument("--seed", type=int, help=f"seed of the split, the init and the batch order (default {d.seed})")
    t.add_argument("--evals", type=positive_int, help=f"evaluations (log lines) per run (default {d.evals})")
    t.add_argument("--out", metavar="DIR", help="run folder to write (default runs/<timestamp>)")
    t.add_argument("--quiet", "-q", action="store_true", help="print only the final summary")
    add_common_args(t)

    e = sub.add_parser("evaluate", help="accuracy of a saved model on train/val/test and per class")
    e.add_argument("--model", required=True, metavar="MODEL.npz", help="a model.npz written by 'numpy-mlp train'")
    add_data_args(e)
    add_common_args(e)

    p = sub.add_parser("predict", help="classify PNG/JPEG files with a saved model")
    p.add_argument("--model", required=True, metavar="MODEL.npz", help="a model.npz written by 'numpy-mlp train'")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files of any size (resized to 32x32)")
    p.add_argument("--top", type=positive_int, default=3, help="how many classes to show per image (default 3)")
    add_common_args(p)
    return parser


def config_from_args(args):
    """TrainConfig from the flags that were given; the rest keep their defaults."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    if "num_iters" in given:
        given["epochs"] = DEFAULTS.epochs
    return TrainConfig(**given)


def cmd_train(args):
    from .runs import run_training

    config = config_from_args(args)
    log = None if args.quiet else print
    out, m = run_training(config, data_dir=args.data_dir, download=not args.offline, out=args.out,
                          log=log, progress=not args.quiet and sys.stderr.isatty())
    if args.quiet:
        print(f"test accuracy {m['test_accuracy']:.4f} (val {m['val_accuracy']:.4f}) in "
              f"{m['total_seconds']:.0f}s; run saved to {out}/")
    return 0


def cmd_evaluate(args):
    from .runs import evaluate_saved

    r = evaluate_saved(args.model, data_dir=args.data_dir, download=not args.offline,
                       progress=sys.stderr.isatty())
    print(f"model: {r['model']!r}")
    for split in ("train", "val", "test"):
        print(f"{split:>5} accuracy: {r['accuracy'][split]:.4f}")
    print("per-class test accuracy:")
    for name, acc in r["per_class"].items():
        print(f"  {name:<11}{acc:.4f}")
    return 0


def cmd_predict(args):
    from .predict import predict_files

    for path, top in predict_files(args.model, args.images, top=args.top):
        print(f"{path}: " + ", ".join(f"{name} {p:.1%}" for name, p in top))
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict}[args.command](args)
    except UserError as e:
        if args.debug:
            raise
        print(f"numpy-mlp: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("numpy-mlp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
