"""The command line: the only place that parses arguments.

    numpy-mlp train     train a network and save a run folder
    numpy-mlp evaluate  accuracy of a saved model on train/val/test, per class
    numpy-mlp predict   classify image files with a saved model
    numpy-mlp report    write DIR/report.html again from a run folder
    numpy-mlp search    hyperparameter search with Optuna (see search.py)

Every flag of ``train`` maps one to one onto a field of ``TrainConfig``. Errors the user
can fix are printed as one line ``numpy-mlp: error: ...`` with exit status 2 (add
``--debug`` for the traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys

from .config import TrainConfig, parse_hidden_dims
from .errors import ConfigError, UserError
from .tomlfile import read_toml

DEFAULTS = TrainConfig()

EXAMPLES = """examples:
  numpy-mlp train                                   # defaults: 2-layer net, ~0.58 test in ~1.5 min on 2 cores
  numpy-mlp train --data-dir ~/data/cifar-10-batches-py --out runs/first
  numpy-mlp train --hidden-dim 200 --alpha 1e-2 --beta 0.9 --batch-size 40 --num-iters 2000
  numpy-mlp train --config first.toml --seed 1          # flags from a TOML file; flags given here win
  numpy-mlp evaluate --model runs/first/model.npz       # also writes its pictures beside the model
  numpy-mlp predict --model runs/first/model.npz cat.jpg truck.png
  numpy-mlp report runs/first                           # runs/first/report.html, one self-contained page
  python -m numpy_mlp --help                            # the same tool without the console script
"""

CONFIG_FILE_HELP = """FILE.toml holds any flag of this command, named with - or _ (hidden-dim = [512, 256],
alpha = 1e-2, quiet = true), at the top level or in a [COMMAND] table; flags given on the
command line override it."""


def int_at_least(minimum, words):
    """An argparse type: a whole number >= ``minimum``; ``words`` says the bound in the error."""
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be {words}")
        return v
    return parse


positive_int = int_at_least(1, "at least 1")
nonneg_int = int_at_least(0, "0 or more")


def finite_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return v


def threads_arg(text):
    """'auto' or a positive number of BLAS threads."""
    return text if text == "auto" else positive_int(text)


def hidden_dims(text):
    """'1000' or '512,256' -> tuple of widths (config.parse_hidden_dims, as an argparse type)."""
    try:
        return parse_hidden_dims(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_data_args(p):
    p.add_argument("--data-dir", metavar="D", help="folder with CIFAR-10 (batch files, cifar-10-batches-py/ or the "
                   ".tar.gz); default $NUMPY_MLP_DATA or ~/.cache/numpy-mlp, downloaded there if missing")
    p.add_argument("--offline", action="store_true", help="never download; fail with instructions if the data is missing")


def add_common_args(p):
    p.add_argument("--debug", action="store_true", help="show the full traceback of errors")


def add_output_args(p):
    """--quiet/--verbose and --config FILE.toml (the flags of the command from a file)."""
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("--quiet", "-q", action="store_true", help="print only the result")
    loud.add_argument("--verbose", "-v", action="store_true", help="print more: the files written, BLAS threads, ...")
    p.add_argument("--config", metavar="FILE.toml", help="read flags from a TOML file (see below)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="numpy-mlp", description="Fully-connected networks in NumPy, trained with SGD with momentum on CIFAR-10.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    d = DEFAULTS
    t = sub.add_parser("train", help="train a network and save a run folder", epilog=EXAMPLES + "\n" + CONFIG_FILE_HELP,
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
    t.add_argument("--tta-shift", type=nonneg_int, metavar="S",
                   help="test-time augmentation: also report val/test accuracy averaged over ten views, each "
                        "image and its diagonal shifts by S pixels, all mirrored too (try half of --crop-pad; "
                        f"default {d.tta_shift} = off)")
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
    t.add_argument("--threads", type=threads_arg, metavar="auto|N",
                   help="BLAS threads for the matrix products: a number, or auto = timed choice among 1..all "
                        f"cores, rechecked as the load changes (default {d.threads})")
    t.add_argument("--out", metavar="DIR", help="run folder to write (default runs/<timestamp>)")
    t.add_argument("--checkpoint-every", type=nonneg_int, metavar="STEPS",
                   help="write DIR/checkpoint.npz every STEPS steps, atomically (default: 20 per run; "
                        "0 = only at the end and on Ctrl-C)")
    t.add_argument("--resume", metavar="DIR", help="continue the run in DIR (killed, crashed or stopped with "
                   "Ctrl-C) from its checkpoint, with its own config.json: no other training flags")
    add_output_args(t)
    add_common_args(t)

    e = sub.add_parser("evaluate", help="accuracy of a saved model on train/val/test and per class",
                       epilog=CONFIG_FILE_HELP)
    e.add_argument("--model", required=True, metavar="MODEL.npz",
                   help="a model.npz written by 'numpy-mlp train', or its run folder")
    e.add_argument("--out", metavar="DIR", help="folder for its pictures (default: the model's folder)")
    e.add_argument("--no-pictures", action="store_true", help="only print the accuracies")
    e.add_argument("--tta-shift", type=nonneg_int, metavar="S",
                   help="also report val/test accuracy averaged over ten views (each image and its diagonal "
                        "shifts by S pixels, all mirrored too); default: the run's own --tta-shift, 0 = off")
    add_data_args(e)
    add_output_args(e)
    add_common_args(e)

    p = sub.add_parser("predict", help="classify PNG/JPEG files with a saved model", epilog=CONFIG_FILE_HELP)
    p.add_argument("--model", required=True, metavar="MODEL.npz",
                   help="a model.npz written by 'numpy-mlp train', or its run folder")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files of any size (resized to 32x32), or folders of PNG/JPEG files")
    p.add_argument("--top", type=positive_int, default=3, help="how many classes to show per image (default 3)")
    p.add_argument("--tta-shift", type=nonneg_int, metavar="S",
                   help="average the probabilities over ten views of each image (itself and its diagonal "
                        "shifts by S pixels, all mirrored too); default: the run's own --tta-shift, 0 = off")
    add_output_args(p)
    add_common_args(p)

    r = sub.add_parser("report", help="write DIR/report.html again: one page with the config, metrics and "
                       "pictures of a run", epilog=CONFIG_FILE_HELP)
    r.add_argument("run_dir", metavar="DIR", help="a run folder written by 'numpy-mlp train'")
    add_output_args(r)
    add_common_args(r)

    add_search_parser(sub)
    return parser


SEARCH_EXAMPLES = """examples:
  numpy-mlp search --n-trials 30 --workers 2 --out runs/search1       # resume: the same command again
  numpy-mlp search --set epochs=10 --space alpha=1e-3:3e-2:log --space batch_size=64,128,256
  numpy-mlp search --config search.toml --sampler random --pruner halving
  numpy-mlp search --storage postgresql://user:pw@db-host/optuna --study-name cifar   # on every machine
"""


def add_search_parser(sub):
    s = sub.add_parser("search", help="hyperparameter search with Optuna (several workers, several machines)",
                       epilog=SEARCH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(s)
    s.add_argument("--n-trials", type=positive_int, default=20,
                   help="finished trials the study should hold; a resumed or joined study continues to it (default 20)")
    s.add_argument("--workers", type=positive_int, default=1,
                   help="worker processes on this machine, one BLAS thread each (default 1)")
    s.add_argument("--storage", metavar="URL",
                   help="Optuna storage shared by all workers: postgresql://..., redis://... or a journal file "
                        "path (default DIR/study.journal)")
    s.add_argument("--study-name", default="numpy-mlp", metavar="S", help="name of the study in the storage (default numpy-mlp)")
    s.add_argument("--timeout", type=finite_float, metavar="SECONDS",
                   help="a worker starts no new trial after this many seconds (running trials finish)")
    s.add_argument("--out", metavar="DIR", help="folder of the search: trials.csv, best.json, best_model.npz, plots, "
                   "the journal (default runs/search/<timestamp>)")
    s.add_argument("--sampler", choices=["tpe", "random", "grid"], default="tpe", help="default tpe")
    s.add_argument("--pruner", choices=["median", "halving", "none"], default="median",
                   help="stop poor trials from their validation accuracy: median, halving (successive halving) or none "
                        "(default median)")
    s.add_argument("--grid-points", type=positive_int, default=3, help="grid sampler: values per range (default 3)")
    s.add_argument("--seed", type=int, default=0, help="seed of the samplers (default 0); fix the split with --set seed=N")
    s.add_argument("--config", metavar="FILE.toml", help="a TOML file with [fixed] and [space] tables")
    s.add_argument("--set", action="append", default=[], type=field_value, metavar="FIELD=VALUE",
                   help="fix any TrainConfig field for every trial, e.g. --set schedule=cosine --set flip=true")
    s.add_argument("--space", action="append", default=[], type=space_entry, metavar="FIELD=SPEC",
                   help="search FIELD over LOW:HIGH, LOW:HIGH:log or a list A,B,C (replaces its default range)")
    s.add_argument("--quiet", "-q", action="store_true", help="print only the final summary")
    add_common_args(s)


def _value(text):
    """'1e-3' -> 0.001, 'true' -> True, '[1, 2]' -> [1, 2], anything else stays text."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def field_value(text):
    """'FIELD=VALUE' -> {FIELD: value}; hidden_dim=512,256 gives a tuple of widths."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write FIELD=VALUE, e.g. epochs=10")
    name = name.strip()
    return {name: hidden_dims(value) if name == "hidden_dim" else _value(value.strip())}


def space_entry(text):
    """'FIELD=LOW:HIGH[:log]' -> a range; 'FIELD=A,B,C' -> a list of values."""
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write FIELD=LOW:HIGH, FIELD=LOW:HIGH:log or FIELD=A,B,C")
    parts = spec.split(":")
    if len(parts) in (2, 3) and "," not in spec:
        low, high = (_value(p) for p in parts[:2])
        if len(parts) == 3 and parts[2] != "log":
            raise argparse.ArgumentTypeError(f"{text!r}: the third part of a range can only be 'log'")
        return {name.strip(): {"low": low, "high": high, "log": len(parts) == 3}}
    return {name.strip(): {"choices": [_value(v.strip()) for v in spec.split(",")]}}


def config_from_args(args):
    """TrainConfig from the flags that were given; the rest keep their defaults."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    if "num_iters" in given:
        given["epochs"] = DEFAULTS.epochs
    return TrainConfig(**given)


def cmd_train(args):
    from .runs import run_training

    resume_overrides = check_resume_flags(args) if args.resume else None
    config = None if args.resume else config_from_args(args)
    log = None if args.quiet else print
    if args.verbose:
        print_blas_threads()
    # a progress bar on a terminal; plain log lines when the output goes to a file or a pipe
    if args.resume:
        from .runs import resume_training

        out, m = resume_training(args.resume, data_dir=args.data_dir, overrides=resume_overrides,
                                 download=not args.offline, log=log, progress=not args.quiet and sys.stderr.isatty())
    else:
        out, m = run_training(config, data_dir=args.data_dir, download=not args.offline, out=args.out,
                              log=log, progress=not args.quiet and sys.stderr.isatty())
    if args.quiet:
        print(f"test accuracy {m['test_accuracy']:.4f} (val {m['val_accuracy']:.4f}) in "
              f"{m['total_seconds']:.0f}s; run saved to {out}/")
    if args.verbose:
        print(f"model: {m['model']}")
        print_files(sorted(p for p in out.iterdir() if not p.name.startswith(".")))
    return 0


def check_resume_flags(args):
    """``--resume DIR`` runs DIR's own config.json: refuse flags that would change the run.

    Returns the given flags that may change on resume (``RESUMABLE_CHANGES``: they do not
    change what is computed), as TrainConfig fields.
    """
    from .checkpoint import RESUMABLE_CHANGES

    given = {f.name for f in dataclasses.fields(TrainConfig) if getattr(args, f.name, None) is not None}
    refused = sorted(given - set(RESUMABLE_CHANGES)) + (["out"] if args.out else [])
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise UserError(f"--resume continues the run with its saved config.json; leave out {flags} "
                        f"(only --data-dir, --offline, --checkpoint-every, --threads, --tta-shift and output flags may be given)")
    return {name: getattr(args, name) for name in given}


def print_blas_threads():
    from threadpoolctl import threadpool_info

    for pool in threadpool_info():
        print(f"BLAS: {pool.get('internal_api')} {pool.get('version')} with {pool.get('num_threads')} threads")


def print_files(paths):
    print("files written:")
    for path in paths:
        print(f"  {path}  ({path.stat().st_size / 1024:,.0f} KiB)")


def cmd_evaluate(args):
    from .runs import evaluate_saved

    r = evaluate_saved(args.model, data_dir=args.data_dir, download=not args.offline,
                       progress=not args.quiet and sys.stderr.isatty(), out=args.out,
                       pictures=not args.no_pictures, log=None if args.quiet else print, tta_shift=args.tta_shift)
    acc, views = r["accuracy"], f"ten views, shift {r['tta_shift']}"
    if args.quiet:
        print(f"test accuracy {acc['test']:.4f}" + (f" ({views}: {acc['test_tta']:.4f})" if r["tta_shift"] else ""))
        return 0
    print(f"model: {r['model']!r}")
    for split in ("train", "val", "test"):
        tta = f"   {views}: {acc[split + '_tta']:.4f}" if split + "_tta" in acc else ""
        print(f"{split:>5} accuracy: {acc[split]:.4f}{tta}")
    print("per-class test accuracy:")
    for name, a in r["per_class"].items():
        print(f"  {name:<11}{a:.4f}")
    if args.verbose:
        from pathlib import Path

        names = list(r["per_class"])
        print("confusion matrix (row = true class, column = predicted):")
        print(" " * 12 + " ".join(f"{n[:5]:>5}" for n in names))
        for name, row in zip(names, r["confusion"]):
            print(f"  {name:<10}" + " ".join(f"{v:5d}" for v in row))
        print_files([Path(p) for p in r["pictures"]])
    elif r["pictures"]:
        print("pictures: " + ", ".join(str(p) for p in r["pictures"]))
    return 0


def cmd_report(args):
    from .report import write_report

    path = write_report(args.run_dir)
    if not args.quiet:
        print(f"wrote {path}; open it in any browser")
    return 0


def cmd_search(args):
    from .runs import default_run_dir
    from .search import SearchSettings, load_search_file, merge_space, run_search

    file_fixed, file_space = load_search_file(args.config) if args.config else ({}, {})
    fixed, space = merge_space([file_space, *args.space], [file_fixed, *args.set])
    out = args.out or str(default_run_dir("runs/search"))
    settings = SearchSettings(out=out, n_trials=args.n_trials, workers=args.workers, storage=args.storage,
                              study_name=args.study_name, timeout=args.timeout, sampler=args.sampler,
                              pruner=args.pruner, grid_points=args.grid_points, seed=args.seed, fixed=fixed,
                              space=space, data_dir=args.data_dir, download=not args.offline)
    best = run_search(settings, log=None if args.quiet else print)
    if args.quiet:
        t = best["trials"]
        print(f"best trial {best['best_trial']}: val {best['val_accuracy']:.4f}  test {best['test_accuracy']:.4f}; "
              f"{t['complete']} complete, {t['pruned']} pruned, {t['failed']} failed; saved to {out}/")
    return 0


def cmd_predict(args):
    from .predict import predict_files

    for path, top in predict_files(args.model, args.images, top=1 if args.quiet else args.top, tta_shift=args.tta_shift):
        print(f"{path}: " + (top[0][0] if args.quiet else ", ".join(f"{name} {p:.1%}" for name, p in top)))
    return 0


# ------------------------------------------------------------------ flags from a TOML file

FLAG_FILE_COMMANDS = ("train", "evaluate", "predict", "report")  # search reads its own --config


def _subparsers(parser):
    """{command name: its ArgumentParser}."""
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            return a.choices
    return {}


def _given_on_command_line(argv):
    """Namespace holding only the options that ``argv`` itself gives (no defaults)."""
    parser = build_parser()
    for sp in _subparsers(parser).values():
        for a in sp._actions:
            a.default, a.required = argparse.SUPPRESS, False
    return parser.parse_known_args(argv)[0]


def _flag_value(action, value, where):
    """A TOML value converted as the command line would convert the flag's text."""
    if isinstance(action, argparse.BooleanOptionalAction) or action.nargs == 0:
        if not isinstance(value, bool):
            raise UserError(f"{where} = {value!r}: this flag is on or off; write true or false")
        if isinstance(action, argparse.BooleanOptionalAction):
            return value
        return action.const if value else action.default
    if isinstance(value, (dict, bool)):
        raise UserError(f"{where} = {value!r}: give a number, a text or a list, as on the command line")
    items = value if isinstance(value, list) else [value]
    if action.nargs in ("+", "*"):
        texts = [str(v) for v in items]
    else:
        texts = [",".join(str(v) for v in items)]  # hidden-dim = [512, 256] -> "512,256"
    out = []
    for text in texts:
        try:
            v = action.type(text) if action.type else text
        except (argparse.ArgumentTypeError, TypeError, ValueError) as e:
            raise UserError(f"{where} = {value!r}: {e}") from None
        if action.choices is not None and v not in action.choices:
            raise UserError(f"{where} = {value!r}: choose one of {', '.join(map(str, action.choices))}")
        out.append(v)
    return out if action.nargs in ("+", "*") else out[0]


def apply_config_file(parser, argv):
    """Make the flags in ``--config FILE.toml`` the defaults of the command being run.

    Keys are the command's flag names with - or _ (``hidden-dim`` or ``hidden_dim``), at
    the top level of the file or in a ``[COMMAND]`` table (which wins over the top level).
    Flags given on the command line win over the file; an unknown key is a UserError
    naming it.
    """
    given = _given_on_command_line(argv)
    command, path = getattr(given, "command", None), getattr(given, "config", None)
    if command not in FLAG_FILE_COMMANDS or path is None:
        return
    commands = _subparsers(parser)
    sub = commands[command]
    table = read_toml(path)
    values = {k: v for k, v in table.items() if not (k in commands and isinstance(v, dict))}
    values.update(table.get(command) if isinstance(table.get(command), dict) else {})
    flags = {a.dest: a for a in sub._actions if a.option_strings and a.dest not in ("help", "config")}
    exclusive = {a.dest: [b.dest for b in g._group_actions if b is not a]
                 for g in sub._mutually_exclusive_groups for a in g._group_actions}
    defaults = {}
    for key, value in values.items():
        dest = key.replace("-", "_")
        action = flags.get(dest)
        if action is None:
            raise UserError(f"{path}: unknown key {key!r} for 'numpy-mlp {command}'; known keys: "
                            f"{', '.join(sorted(d.replace('_', '-') for d in flags))}")
        if hasattr(given, dest) or any(hasattr(given, d) for d in exclusive.get(dest, ())):
            continue  # the command line wins
        defaults[dest] = _flag_value(action, value, f"{path}: {key}")
        action.required = False
    sub.set_defaults(**defaults)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv:  # a first try: show what there is rather than a usage error
        parser.print_help()
        return 0
    try:
        apply_config_file(parser, argv)
    except UserError as e:
        if "--debug" in argv:
            raise
        print(f"numpy-mlp: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
                "search": cmd_search, "report": cmd_report}[args.command](args)
    except UserError as e:
        if args.debug:
            raise
        print(f"numpy-mlp: error: {e}", file=sys.stderr)
        return 2
    except MemoryError as e:
        if args.debug:
            raise
        print(f"numpy-mlp: error: not enough memory ({e}); use a smaller --hidden-dim or --batch-size",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Interrupted says what was saved and how to go on
        print("numpy-mlp: interrupted" + (f": {e}" if str(e) else ""), file=sys.stderr)
        return 128 + getattr(e, "signum", 2)  # 130 for Ctrl-C, 143 for SIGTERM, as a shell says


if __name__ == "__main__":
    sys.exit(main())
