"""One page comparing several runs: ``numpy-mlp report RUN RUN ... --out DIR``.

``DIR/compare.html`` shows the runs side by side, one column each: their results
(metrics.json), how each was run (run.json's provenance: versions, BLAS, date, command
line), their configs with the rows that differ highlighted, the training loss and the
validation accuracy of all of them overlaid (from history.csv, drawn as inline SVG), and
each run's own pictures in a row per picture. Like report.html it has no script and no
external file. DIR is a folder of its own, never one of the runs' folders, which are only
read.
"""

from __future__ import annotations

import html
import io
import os
from pathlib import Path

from ..errors import UserError, printable
from . import plots
from .folder import RunFolder, read_run_state
from .report import PICTURES, STYLE, _data_uri, _fmt, _read_config, read_metrics
from .train import default_run_dir
from .writeup import read_history

COMPARE_NAME = "compare.html"
COMPARE_ROOT = "runs/compare"  # the default DIR is COMPARE_ROOT/<timestamp>
# metrics.json's entries shown in the results table, with their names on the page
RESULTS = (("test accuracy", "test_accuracy"), ("validation accuracy", "val_accuracy"),
           ("train accuracy", "train_accuracy"), ("test, ten views", "test_accuracy_tta"),
           ("steps", "steps"), ("best step", "best_step"), ("seconds in all", "total_seconds"),
           ("model", "model"))
PROVENANCE = (("numpy-mlp", "numpy_mlp"), ("started (UTC)", "started_utc"),
              ("command", "command"), ("Python", "python"), ("NumPy", "numpy"),
              ("BLAS", "blas"))
CURVES = (("loss", "Training loss of each run (running mean)"),
          ("val_acc", "Validation accuracy of each run at each evaluation"))
EXTRA_STYLE = """
.runs td, .runs th { vertical-align: top; max-width: 22em; overflow-wrap: anywhere; }
tr.diff td { background: #fff3c4; } tr.diff td:first-child::after { content: " \\2260"; }
.row { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 1em; }
svg { max-width: 100%; height: auto; }
"""


def _label(run, runs):
    """A run's name on the page: its folder's name, or the path given if two share it."""
    names = [r.resolve().name for r in runs]
    return run.resolve().name if names.count(run.resolve().name) == 1 else str(run)


def _read_run(run):
    """What the page shows of the run folder ``run``: its config, metrics, provenance and
    history (each None where the run has none); UserError if it is no run folder."""
    if not run.is_dir():
        raise UserError(f"{printable(run)} is not a folder; pass run folders written by "
                        "'numpy-mlp train'")
    config = _read_config(run / "config.json")
    metrics = (read_metrics(run / "metrics.json", follow_links=False)
               if os.path.lexists(run / "metrics.json") else None)
    if config is None and metrics is None:
        raise UserError(f"{printable(run)} holds no config.json or metrics.json; pass run "
                        "folders written by 'numpy-mlp train'")
    state = read_run_state(run)
    history = read_history(run / "history.csv") if os.path.lexists(run / "history.csv") else None
    return {"config": config, "metrics": metrics,
            "provenance": (state or {}).get("provenance"), "history": history}


def _table(title, labels, rows, *, mark_differences=False):
    """A table with a row per ``(name, values)`` of ``rows`` and a column per run; with
    ``mark_differences`` the rows whose values are not all the same get class ``diff``."""
    e = html.escape
    head = "".join(f"<th>{e(label)}</th>" for label in labels)
    body = []
    for name, values in rows:
        shown = ["—" if v is None else _fmt(v) for v in values]
        differs = mark_differences and len(set(shown)) > 1
        row = "<tr class=\"diff\">" if differs else "<tr>"
        body.append(f"{row}<td><code>{e(name)}</code></td>"
                    + "".join(f"<td>{e(v)}</td>" for v in shown) + "</tr>")
    return (f"<h2>{e(title)}</h2><table class=\"runs\"><tr><th></th>{head}</tr>"
            + "".join(body) + "</table>")


def _curves_svg(histories, labels, kind):
    """The inline SVG of the runs' ``kind`` curves overlaid (plots.plot_compared)."""
    buf = io.BytesIO()
    plots.plot_compared(histories, labels, kind, buf, fmt="svg")
    text = buf.getvalue().decode("utf-8")
    return text[text.index("<svg"):]  # without the XML prologue, which HTML does not take


def render_comparison(runs):
    """The HTML text of the page comparing the run folders ``runs`` (two or more Paths)."""
    e = html.escape
    read = [_read_run(run) for run in runs]
    labels = [_label(run, runs) for run in runs]
    parts = ["<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             f"<title>numpy-mlp: {len(runs)} runs compared</title>"
             f"<style>{STYLE}{EXTRA_STYLE}</style></head><body>",
             f"<h1>numpy-mlp: {len(runs)} runs compared</h1>",
             "<p class=\"sub\">" + ", ".join(f"<code>{e(str(run))}</code>" for run in runs)
             + "</p>"]
    parts.append(_table("Results", labels, [(name, [(r["metrics"] or {}).get(k) for r in read])
                                            for name, k in RESULTS]))
    with_history = [(r["history"], label) for r, label in zip(read, labels) if r["history"]]
    if with_history:
        histories, curve_labels = zip(*with_history)
        parts.append("<h2>Curves</h2><div class=\"pair\">" + "".join(
            f"<figure id=\"curves-{kind}\">{_curves_svg(histories, curve_labels, kind)}"
            f"<figcaption>{e(caption)}</figcaption></figure>" for kind, caption in CURVES)
            + "</div>")
    keys = list(dict.fromkeys(k for r in read for k in (r["config"] or {})))
    parts.append(_table("Configs (rows that differ are marked \u2260)", labels,
                        [(k, [(r["config"] or {}).get(k) for r in read]) for k in keys],
                        mark_differences=True))
    parts.append(_table("How each was run (run.json)", labels,
                        [(name, [(r["provenance"] or {}).get(k) for r in read])
                         for name, k in PROVENANCE], mark_differences=True))
    parts.append("<h2>Pictures</h2>")
    for name, caption in PICTURES:
        cells = [f"<figure><img src=\"{_data_uri(run / name)}\" alt=\"{e(label)}: {e(name)}\">"
                 f"<figcaption>{e(label)}</figcaption></figure>"
                 for run, label in zip(runs, labels) if os.path.lexists(run / name)]
        if cells:
            parts.append(f"<h3>{e(name)}</h3><p class=\"sub\">{e(caption)}</p>"
                         f"<div class=\"row\">{''.join(cells)}</div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_comparison(runs, out=None):
    """Write ``out/compare.html`` (default ``runs/compare/<timestamp>``) comparing the run
    folders ``runs``; returns its path.

    Raises:
        UserError: fewer than two runs, a folder that holds no run, or an ``out`` that is
        one of the runs' folders or inside one (they are only read).
    """
    runs = [Path(run) for run in runs]
    if len(runs) < 2:
        raise UserError("give two or more run folders to compare")
    out = Path(out) if out is not None else default_run_dir(COMPARE_ROOT)
    where = out.resolve()
    for run in runs:
        if where == run.resolve() or run.resolve() in where.parents:
            raise UserError(f"--out {printable(out)} is inside the run folder {printable(run)}; "
                            "the comparison goes into a folder of its own: choose another --out")
    text = render_comparison(runs)  # first, so that a bad run leaves no folder behind
    with RunFolder(out, flag="--out", then="choose another folder with --out").open(
            check=(COMPARE_NAME,)) as folder:
        return folder.write_text(COMPARE_NAME, text)
