"""The command line: the only place that parses arguments.

    numpy-mlp train     train a network and save a run folder
    numpy-mlp evaluate  accuracy of a saved model on train/val/test, per class
    numpy-mlp predict   classify image files with a saved model
    numpy-mlp report    write DIR/report.html again from a run folder
    numpy-mlp search    hyperparameter search with Optuna (see numpy_mlp/search/)
    numpy-mlp export    write a saved model as ONNX (uint8 images in, probabilities out)

Each command's options are declared once, as data: ``config.Setting`` objects (the flags
of ``train`` are the fields of ``TrainConfig``, ``config.SETTINGS``). From them come the
argparse flags with their help and shown defaults, the check of every value (one message
per rule, naming the flag), and the keys of a ``--config FILE.toml``. Errors the user can
fix are printed as one line ``numpy-mlp: error: ...`` with exit status 2 (add ``--debug``
for the traceback).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields

from ..data.dataset import ROW_LAYOUT
from ..errors import UserError, printable
from ..nn.rules import BOOL, TEXT, choice, flag_spelling, spelled_as, whole
from ..training.config import (
    EITHER_OR,
    RESUMABLE_FIELDS,
    SETTINGS,
    Setting,
    TrainConfig,
    layered,
    read_search_best,
)
from ..training.presets import PRESET_HELP, PRESETS
from ..training.signals import catching_stop_signals, stop_now
from ..version import __version__
from .flags import add_flags, as_flags, field_value, fill, read_flag_file, space_entry, unrecognized

TRAIN_EXAMPLES = """\
  numpy-mlp train                                   # defaults: 2-layer net, ~0.58 test, ~1.5 min
  numpy-mlp train --data-dir ~/data/cifar-10-batches-py --out runs/first
  numpy-mlp train --hidden-dim 200 --alpha 1e-2 --beta 0.9 --batch-size 40 --num-iters 2000
  numpy-mlp train --preset deep --seed 1                # a recipe (see the presets below)
  numpy-mlp train --config first.toml --seed 1          # flags from a TOML file (these win)
"""
EXAMPLES = f"""examples:
{TRAIN_EXAMPLES}\
  numpy-mlp evaluate --model runs/first/model.npz       # also writes its pictures beside the model
  numpy-mlp predict --model runs/first/model.npz cat.jpg truck.png
  numpy-mlp report runs/first                           # runs/first/report.html, one page
  python -m numpy_mlp --help                            # the same tool without the console script
"""

CONFIG_FILE_HELP = """FILE.toml holds any flag of this command, named with - or _
(hidden-dim = [512, 256], alpha = 1e-2, quiet = true), at the top level or in a [COMMAND]
table; flags given on the command line override it."""

# ------------------------------------------------------------------ the options, declared once

DEBUG = Setting("debug", BOOL, "show the full traceback of errors")
DATA = (Setting("data_dir", TEXT, "folder with the dataset: CIFAR-10's batch files, "
                "cifar-10-batches-py/ or the .tar.gz; another dataset's official files "
                "(docs/datasets.md); a folder of images: one subfolder per class", metavar="D",
                none="$NUMPY_MLP_DATA or ~/.cache/numpy-mlp (a subfolder per dataset other "
                "than CIFAR-10), downloaded there if missing"),
        Setting("offline", BOOL, "never download; fail with instructions if the data is "
                "missing"))
OUTPUT = (Setting("quiet", BOOL, "print only the result", short="-q"),
          Setting("verbose", BOOL, "print more: the files written, BLAS threads, ...",
                  short="-v"))
CONFIG = Setting("config", TEXT, "read flags from a TOML file (see below)", metavar="FILE.toml")
# either-or flags: one of each pair may be given
PAIRS = (*EITHER_OR, ("quiet", "verbose"), ("preset", "from_search"))
MODEL = Setting("model", TEXT, "a model.npz written by 'numpy-mlp train', or its run folder",
                metavar="MODEL.npz",
                required=True)
PRESET = Setting("preset", choice(*PRESETS), "start from a recipe (listed below); flags and "
                 "--config override its values")


def _tta_setting(what):
    """--tta-shift of evaluate and predict: TrainConfig's rule, by default the run's own."""
    return Setting("tta_shift", SETTINGS["tta_shift"].rule, f"{what} over ten views (each image "
                   "and its diagonal shifts by S pixels, all mirrored too)", metavar="S",
                   none="the run's own --tta-shift, 0 = off")


@dataclass(frozen=True)
class Command:
    """A command: its one-line help, its options and positional arguments."""

    help: str
    examples: str            # the lines of its --help's "examples:" section
    options: tuple = ()      # Settings: its flags and the keys of its --config file
    positionals: tuple = ()  # (name, nargs, metavar, help)
    flag_file: bool = True   # --config FILE.toml holds its flags (search reads its own file)

    def epilog(self, *more):
        """Its --help's closing text: the examples, ``more``, and the --config file's keys
        where it reads one."""
        parts = ["examples:\n" + self.examples.rstrip("\n"), *more]
        return "\n\n".join(parts + [CONFIG_FILE_HELP] * self.flag_file)


COMMANDS = {
    "train": Command("train a network and save a run folder", TRAIN_EXAMPLES, (
        *DATA, Setting("out", TEXT, "run folder to write", metavar="DIR",
                       none="runs/<timestamp>"),
        Setting("resume", TEXT, "continue the run in DIR (killed, crashed or stopped with "
                "Ctrl-C) from its checkpoint, with its own config.json: no other training "
                "flags", metavar="DIR"), PRESET,
        Setting("from_search", TEXT, "start from the config of the best trial of the search "
                "in DIR (DIR/best.json): its best trial trained again; flags and --config "
                "override its values", metavar="DIR"), *OUTPUT, DEBUG)),
    "evaluate": Command("accuracy of a saved model on train/val/test and per class", """\
  numpy-mlp evaluate --model runs/first/model.npz       # also writes its pictures beside the model
  numpy-mlp evaluate --model runs/first --no-pictures -q    # one line: the test accuracy
  numpy-mlp evaluate --model runs/wide --tta-shift 2    # also over ten views of each image
""", (
        MODEL, Setting("out", TEXT, "folder for its pictures", metavar="DIR",
                       none="the model's folder"),
        Setting("no_pictures", BOOL, "only print the accuracies"),
        _tta_setting("also report val/test accuracy averaged"), *DATA, *OUTPUT, DEBUG)),
    "predict": Command("classify PNG/JPEG files with a saved model", """\
  numpy-mlp predict --model runs/first/model.npz cat.jpg truck.png
  numpy-mlp predict --model runs/first --top 1 photos/   # every PNG/JPEG in a folder
""", (
        MODEL, Setting("top", whole(1), "how many classes to show per image", default=3),
        Setting("format", choice("text", "json", "csv"), "how to print the classes: text "
                "lines, or for scripts a JSON list or CSV rows (file,rank,class,probability,"
                "error); a file that cannot be read is named on stderr, the others are still "
                "classified, and the exit status is 2", default="text"),
        _tta_setting("average the probabilities"), *OUTPUT, DEBUG),
        (("images", "+", "IMAGE", "image files of any size (resized to the model's image size, "
          "32x32 for CIFAR-10), or folders of PNG/JPEG files"),)),
    "report": Command("write DIR/report.html again: one page with the config, metrics and "
                      "pictures of a run; for several runs, one page comparing them", """\
  numpy-mlp report runs/first                           # runs/first/report.html, one page
  numpy-mlp report runs/first runs/wide --out runs/cmp  # runs/cmp/compare.html: both side by side
""", (
        Setting("out", TEXT, "with several runs: the folder of the page comparing them, "
                "compare.html (never one of the runs' folders, which are only read)",
                metavar="DIR", none="runs/compare/<timestamp>"), *OUTPUT, DEBUG),
        (("run_dirs", "+", "DIR", "a run folder written by 'numpy-mlp train'; two or more: "
          "their configs side by side, their curves overlaid, their pictures"),)),
    "export": Command("write a saved model as ONNX, input normalisation included", """\
  numpy-mlp export runs/first --onnx first.onnx         # needs pip install 'numpy-mlp[onnx]'
""", (
        Setting("onnx", TEXT, f"the .onnx file to write: uint8 images (N, C*H*W) in, "
                f"{ROW_LAYOUT}; class probabilities (N, C) out (docs/onnx.md; needs pip "
                f"install 'numpy-mlp[onnx]')",
                metavar="FILE", required=True), DEBUG),
        (("run", None, "RUN", "a run folder of 'numpy-mlp train', or its model.npz"),),
        flag_file=False),
    "search": Command("hyperparameter search with Optuna (several workers, several machines)",
                      """\
  numpy-mlp search --n-trials 30 --workers 2 --out runs/search1   # resume: the same again
  numpy-mlp search --set epochs=10 --space alpha=1e-3:3e-2:log --space batch_size=64,128,256
  numpy-mlp search --config search.toml --sampler random --pruner halving
  numpy-mlp search --storage postgresql://user:pw@db-host/optuna --study-name cifar
                                                         # the same on every machine
""", flag_file=False),
}


def search_settings():
    """The options of search, declared beside SearchSettings; imported only when search is
    the command (it imports Optuna, which takes seconds)."""
    from ..search.settings import flag_settings

    return (*DATA, *flag_settings(), DEBUG)


def _settings_of(command):
    """The Settings of ``command``, in the order --help lists them."""
    if command == "search":
        return search_settings()
    cmd = COMMANDS[command]
    fields = tuple(SETTINGS.values()) if command == "train" else ()
    return (*cmd.options, *((CONFIG,) if cmd.flag_file else ()), *fields)


def _presets_help():
    lines = textwrap.wrap("presets (--preset NAME; flags and --config FILE.toml override "
                          "their values; in a shorter or longer run --warmup keeps its share "
                          "of the run, --evals may be capped, and a log line says so):", 96)
    for name, values in PRESETS.items():
        lines.append(f"  {name}: {PRESET_HELP[name]}")
        lines += textwrap.wrap(as_flags(values), 96, initial_indent="    ",
                               subsequent_indent="    ", break_on_hyphens=False)
    return "\n".join(lines)


FIELDS_TITLE = "training settings (TrainConfig fields, saved in DIR/config.json)"


def build_parser(command=None):
    """The parser of every command; with ``command`` given, only that command's options are
    added (the others are only listed: search's options import Optuna)."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="numpy-mlp", epilog=EXAMPLES, formatter_class=raw,
        description="Fully-connected networks in NumPy, trained with SGD with momentum on "
                    "CIFAR-10.")
    parser.add_argument("--version", action="version", version=f"numpy-mlp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parser.commands = {}  # name -> its parser: an error in its arguments shows its own usage
    for name, cmd in COMMANDS.items():
        more = (_presets_help(),) if name == "train" else ()
        p = sub.add_parser(name, help=cmd.help, epilog=cmd.epilog(*more), formatter_class=raw)
        parser.commands[name] = p
        if command not in (None, name):
            continue
        add_flags(p, _settings_of(name), PAIRS, name == "train" and FIELDS_TITLE)
        for pos, nargs, metavar, help in cmd.positionals:
            p.add_argument(pos, nargs=nargs, metavar=metavar, help=help)
        if name == "search":
            p.add_argument("--set", action="append", default=[], type=field_value,
                           metavar="FIELD=VALUE", help="fix any TrainConfig field for every "
                           "trial, e.g. --set schedule=cosine --set flip=true")
            p.add_argument("--space", action="append", default=[], type=space_entry,
                           metavar="FIELD=SPEC", help="search FIELD over LOW:HIGH, LOW:HIGH:log "
                           "or a list A,B,C (replaces its default range)")
    return parser


def resolve(args):
    """Complete ``args`` as the command reads it: the flags given, over the command's
    ``--config FILE.toml``, over the declared defaults (flags.fill); UserError on a bad value."""
    settings = _settings_of(args.command)
    from_file = {}
    if COMMANDS[args.command].flag_file and args.config is not None:
        from_file = read_flag_file(args.config, args.command, settings, tuple(COMMANDS), PAIRS)
    fill(args, settings, from_file, PAIRS)


def given_fields(args):
    """The TrainConfig fields given on the command line or in the --config file, by name."""
    return {name: getattr(args, name) for name in SETTINGS
            if getattr(args, name, None) is not None}


def config_from_args(args):
    """TrainConfig from ``--preset`` and the fields given (on the command line or in the
    --config file), which win over it; the rest keep their defaults."""
    preset = getattr(args, "preset", None)
    given = given_fields(args)
    if getattr(args, "from_search", None):  # a search's best trial, as the search trained it
        return TrainConfig(**layered(read_search_best(args.from_search).to_dict(), given))
    return TrainConfig(**layered(PRESETS[PRESET.check(preset)] if preset else {}, given))


def _cmd_train(args):
    from ..runs.train import resume_training, run_training

    resume_overrides = check_resume_flags(args) if args.resume else None
    config = None if args.resume else config_from_args(args)
    log = None if args.quiet else print
    if args.verbose:
        _print_blas_threads()
    # a progress bar on a terminal; plain log lines when the output goes to a file or a pipe
    how = dict(data_dir=args.data_dir, download=not args.offline, log=log,
               progress=not args.quiet and sys.stderr.isatty())
    if args.resume:
        out, m = resume_training(args.resume, overrides=resume_overrides, **how)
    else:
        # what the user left to the preset or the defaults follows the run's length
        out, m = run_training(config, out=args.out, given=set(given_fields(args)),
                              preset=args.preset, command=["numpy-mlp", *args.argv], **how)
    if args.quiet:
        val = f" (val {m['val_accuracy']:.4f})" if "val_accuracy" in m else ""
        print(f"test accuracy {m['test_accuracy']:.4f}{val} in {m['total_seconds']:.0f}s; "
              f"run saved to {out}/")
    if args.verbose:
        print(f"model: {m['model']}")
        _print_files(sorted(p for p in out.iterdir() if not p.name.startswith(".")))
    return 0


def check_resume_flags(args):
    """``--resume DIR`` runs DIR's own config.json: refuse flags that would change the run.

    Returns the given fields that may change on resume (``config.RESUMABLE_FIELDS``: they
    do not change what is computed).
    """
    given = {name for name in SETTINGS if getattr(args, name, None) is not None}
    refused = sorted(given - set(RESUMABLE_FIELDS)) + [n for n in ("out", "preset", "from_search")
                                                        if getattr(args, n)]
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        allowed = ", ".join(SETTINGS[name].flag for name in RESUMABLE_FIELDS)
        raise UserError(f"--resume continues the run with its saved config.json; leave out "
                        f"{flags} (only --data-dir, --offline, {allowed} and output flags may "
                        "be given)")
    return {name: getattr(args, name) for name in given}


def _print_blas_threads():
    from threadpoolctl import threadpool_info

    for pool in threadpool_info():
        print(f"BLAS: {pool.get('internal_api')} {pool.get('version')} "
              f"with {pool.get('num_threads')} threads")


def _print_files(paths):
    print("files written:")
    for path in paths:
        print(f"  {path}  ({path.stat().st_size / 1024:,.0f} KiB)")


def _cmd_evaluate(args):
    from ..runs.evaluate import evaluate_saved

    r = evaluate_saved(args.model, data_dir=args.data_dir, download=not args.offline,
                       progress=not args.quiet and sys.stderr.isatty(), out=args.out,
                       pictures=not args.no_pictures, log=None if args.quiet else print,
                       tta_shift=args.tta_shift)
    acc, views = r["accuracy"], f"ten views, shift {r['tta_shift']}"
    if args.quiet:
        tta = f" ({views}: {acc['test_tta']:.4f})" if r["tta_shift"] else ""
        print(f"test accuracy {acc['test']:.4f}{tta}")
        return 0
    print(f"model: {r['description']}")  # the words of the run's metrics.json
    for split in ("train", "val", "test"):
        if split not in acc:  # --val-size 0: the run trained on every training image
            print(f"{split:>5} accuracy: none (no validation split: the run trained on every "
                  "training image)")
            continue
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
        _print_files([Path(p) for p in r["pictures"]])
    elif r["pictures"]:
        print("pictures: " + ", ".join(str(p) for p in r["pictures"]))
    return 0


def _cmd_report(args):
    from ..runs.compare import write_comparison
    from ..runs.report import write_report

    if len(args.run_dirs) > 1:
        path = write_comparison(args.run_dirs, args.out)
    elif args.out is not None:
        raise UserError(f"--out is for comparing several runs; the report of one run goes into "
                        f"its folder: numpy-mlp report {args.run_dirs[0]}")
    else:
        path = write_report(args.run_dirs[0])
    if not args.quiet:
        print(f"wrote {path}; open it in any browser")
    return 0


def _cmd_search(args):
    from ..runs.train import default_run_dir
    from ..search import SearchSettings, load_search_file, merge_space, run_search

    file_fixed, file_space = load_search_file(args.config) if args.config else ({}, {})
    fixed, space = merge_space([file_space, *args.space], [file_fixed, *args.set])
    out = args.out or str(default_run_dir("runs/search"))
    given = {f.name: getattr(args, f.name) for f in dataclass_fields(SearchSettings)
             if f.name not in ("out", "fixed", "space", "download")}  # the flags, by name
    settings = SearchSettings(out=out, fixed=fixed, space=space, download=not args.offline,
                              **given)
    best = run_search(settings, log=None if args.quiet else print)
    if args.quiet:
        t = best["trials"]
        print(f"best trial {best['best_trial']}: val {best['val_accuracy']:.4f}  "
              f"test {best['test_accuracy']:.4f}; {t['complete']} complete, {t['pruned']} "
              f"pruned, {t['failed']} failed; saved to {out}/")
    return 0


def _cmd_export(args):
    from ..onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx

    path = export_onnx(args.run, args.onnx)
    print(f"wrote {path}: input '{INPUT_NAME}' uint8 (N, C*H*W), {ROW_LAYOUT}; output "
          f"'{OUTPUT_NAME}' (N, C)")
    return 0


def _cmd_predict(args):
    from ..runs.predict import as_csv, as_json, classify_files

    predictions = classify_files(args.model, args.images, top=1 if args.quiet else args.top,
                                 tta_shift=args.tta_shift)
    if args.format == "json":
        print(as_json(predictions))
    elif args.format == "csv":
        print(as_csv(predictions), end="")
    failed = [p for p in predictions if p.error is not None]
    for p in predictions:
        if p.error is not None:  # every file it cannot read, one line each, the rest still shown
            print(f"numpy-mlp: error: {p.error}", file=sys.stderr)
        elif args.format == "text":
            shown = (p.top[0][0] if args.quiet else
                     ", ".join(f"{name} {q:.1%}" for name, q in p.top))
            print(f"{p.path}: {shown}")
    return 2 if failed else 0


# what to do when a command runs out of memory: the flags that size the work, where it has them
MEMORY_HINTS = {"train": "use a smaller --hidden-dim or --batch-size",
                "search": "search smaller widths (--space hidden_dim=...) or fewer --workers"}
MEMORY_HINT = "the model or the images are larger than this machine's memory"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else "")
    if not argv:  # a first try: show what there is rather than a usage error
        parser.print_help()
        return 0
    args, extras = parser.parse_known_args(argv)
    if extras:  # in the command's own usage, with the flag meant or the list's one spelling
        other = ("--set", "--space") if args.command == "search" else ()
        parser.commands[args.command].error(
            unrecognized(argv, extras, _settings_of(args.command), other))
    args.argv = argv  # the command line, as a run records it (run.json)
    try:
        # SIGTERM stops every phase as Ctrl-C does, with the same one line (training and the
        # write-up put their own handlers over this one: they stop at a safe point); advice
        # names the flags of the command (search: --set)
        with catching_stop_signals(stop_now), spelled_as(flag_spelling):
            resolve(args)
            return {"train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict,
                    "search": _cmd_search, "report": _cmd_report,
                    "export": _cmd_export}[args.command](args)
    except UserError as e:
        if args.debug:
            raise
        print(f"numpy-mlp: error: {printable(e)}", file=sys.stderr)  # one line whatever names hold
        return 2
    except OSError as e:  # a path the system refuses (too long, under a file, read-only)
        from ..runs.folder import os_error_line

        line = os_error_line(e)
        if args.debug or line is None:
            raise
        print(f"numpy-mlp: error: {line}", file=sys.stderr)
        return 2
    except MemoryError as e:
        if args.debug:
            raise
        hint = MEMORY_HINTS.get(args.command, MEMORY_HINT)
        shape = f" ({e})" if str(e) else ""  # NumPy names the array; a bare MemoryError nothing
        print(f"numpy-mlp: error: not enough memory{shape}; {hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Interrupted says what was saved and how to go on
        print("numpy-mlp: interrupted" + (f": {printable(e)}" if str(e) else ""), file=sys.stderr)
        return 128 + getattr(e, "signum", 2)  # 130 for Ctrl-C, 143 for SIGTERM, as a shell says


if __name__ == "__main__":
    sys.exit(main())
