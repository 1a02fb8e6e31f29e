"""One self-contained HTML page for a run folder: ``DIR/report.html``.

The page holds the config, the metrics, the per-class test accuracy, the training log and
every picture of the folder, the pictures embedded as base64 ``data:`` URIs, with no
script and no external file, so it opens in any browser without a server and can be
mailed or archived as one file. ``numpy-mlp train`` writes it at the end of a run;
``numpy-mlp report DIR`` writes it again from what the folder holds.
"""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path

from ..errors import RunFileError, RunFolderError, UserError, printable
from ..files.jsonfile import Fields, read_json, read_regular_bytes
from .folder import RunFolder

# The pictures a run writes, in the order the page shows them, with a caption each.
PICTURES = (
    ("accuracy.png", "Accuracy on a fixed training subset and on the validation split at each "
                     "evaluation; the star marks the parameters the run keeps."),
    ("loss.png", "Cross-entropy loss of every minibatch (faint) and its running mean."),
    ("predictions.png", "The first test images with the predicted label; mistakes are framed "
                        "in red with the true label in brackets."),
    ("confusion.png", "Test-set confusion matrix: row = true class, column = predicted class, "
                      "shaded by the fraction of the row."),
    ("weights.png", "First-layer weights W1[:, j] of the first hidden units (what training changed "
                    "in them, when the initial weights are known), each reshaped to an image of "
                    "the dataset's size (32x32 colour for CIFAR-10) and rescaled to 0..1."),
)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 980px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
.sub { color: #666; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8em; }
.card { border: 1px solid #ddd; border-radius: 8px; padding: 0.5em 0.9em; min-width: 6em; }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1em; }
.card b { display: block; font-size: 1.6em; }
table { border-collapse: collapse; }
td, th { padding: 0.2em 0.8em; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { background: #4c8bd6; height: 0.8em; display: inline-block; border-radius: 2px; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.92em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


MAX_PICTURE_BYTES = 64 << 20  # a run's PNGs are 20-200 KB
MAX_LOG_BYTES = 16 << 20      # a log line per evaluation: a few KB
FIX = "the run folder is damaged: remove that file, or write the report of another run"


def _read_config(path):
    """config.json as a table to show (any values), or None if there is none."""
    if not os.path.lexists(path):
        return None
    fields = Fields(path, RunFileError, FIX)
    return fields.mapping(read_json(path, fix=FIX, follow_links=False), "config.json")


def _read_run_file(path, limit):
    """The bytes of a file of the run folder; a link is refused, never followed (RunFolderError)."""
    return read_regular_bytes(path, limit=limit, error=RunFolderError, fix=FIX, follow_links=False)


def _data_uri(png_path):
    """``data:image/png;base64,...`` of a PNG file of the run folder (not a link)."""
    data = _read_run_file(png_path, MAX_PICTURE_BYTES)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _fmt(v):
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.4g}"  # NaN: a run without a validation split
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v)


def render_report(run_dir):
    """The HTML text of the report of ``run_dir`` (config.json, metrics.json, PNGs, train.log)."""
    run_dir = Path(run_dir)
    e = html.escape
    config = _read_config(run_dir / "config.json")
    metrics = None
    if os.path.lexists(run_dir / "metrics.json"):
        metrics = read_metrics(run_dir / "metrics.json", follow_links=False)
    if config is None and metrics is None:
        raise UserError(f"{run_dir} holds no config.json or metrics.json; pass a folder written by "
                        f"'numpy-mlp train'")
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             f"<title>numpy-mlp run {e(run_dir.resolve().name)}</title>"
             f"<style>{STYLE}</style></head><body>",
             f"<h1>numpy-mlp run <code>{e(run_dir.resolve().name)}</code></h1>"]
    if metrics:
        parts.append(f"<p class=\"sub\">{e(str(metrics.get('model', '')))}</p>")
        cards = [("test accuracy", "test_accuracy"), ("validation", "val_accuracy"),
                 ("train", "train_accuracy"), ("test, ten views", "test_accuracy_tta"),
                 ("val, ten views", "val_accuracy_tta")]
        counts = (("steps", "steps"), ("best step", "best_step"),
                  ("best weights", "best_source"), ("seconds in all", "total_seconds"))
        parts.append("<div class=\"cards\">" + "".join(
            f"<div class=\"card\">{e(name)}<b>{metrics[k]:.2%}</b></div>" for name, k in cards
            if isinstance(metrics.get(k), (int, float)) and math.isfinite(metrics[k]))
            + "".join(f"<div class=\"card\">{e(name)}<b>{e(_fmt(metrics[k]))}</b></div>"
                      for name, k in counts if k in metrics) + "</div>")
    parts.append("<div class=\"pair\">" + "".join(_figure(run_dir / name, caption)
                                                 for name, caption in PICTURES[:2]) + "</div>")
    per_class = (metrics or {}).get("per_class_test_accuracy")
    if per_class:
        rows = "".join(f"<tr><td>{e(str(c))}</td><td class=\"num\">{a:.1%}</td><td>"
                       f"<span class=\"bar\" style=\"width:{max(0.0, min(1.0, a)) * 200:.0f}px\">"
                       "</span></td></tr>"
                       for c, a in per_class.items() if isinstance(a, (int, float)))
        parts.append("<h2>Per-class test accuracy</h2><table><tr><th>class</th><th>accuracy</th>"
                     f"<th></th></tr>{rows}</table>")
    parts.append("<h2>Pictures</h2>")
    known = {name for name, _ in PICTURES}
    for name, caption in PICTURES[2:]:
        parts.append(_figure(run_dir / name, caption))
    for png in sorted(run_dir.glob("*.png")):  # any other picture the run wrote
        if png.name not in known:
            parts.append(_figure(png, png.stem.replace("_", " ")))
    if config:
        rows = "".join(f"<tr><td><code>{e(k)}</code></td><td>{e(_fmt(v))}</td></tr>"
                       for k, v in config.items())
        parts.append(f"<h2>Config</h2><table>{rows}</table>")
    if metrics:
        rows = "".join(f"<tr><td><code>{e(k)}</code></td><td>{e(_fmt(v))}</td></tr>"
                       for k, v in metrics.items() if not isinstance(v, dict))
        parts.append(f"<h2>Metrics</h2><table>{rows}</table>")
    log = run_dir / "train.log"
    if os.path.lexists(log):
        text = _read_run_file(log, MAX_LOG_BYTES).decode("utf-8", errors="replace")
        parts.append(f"<h2>Training log</h2><pre>{e(text)}</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _figure(png, caption):
    if not os.path.lexists(png):
        return ""
    return (f"<figure><img src=\"{_data_uri(png)}\" alt=\"{html.escape(png.name)}\">"
            f"<figcaption>{html.escape(png.name)}: {html.escape(caption)}</figcaption></figure>")


def write_report(run_dir, folder=None):
    """Write ``run_dir/report.html`` (atomically) and return its path.

    ``folder`` is the :class:`~numpy_mlp.runs.folder.RunFolder` of a run that owns
    ``run_dir`` (train's write-up); without it the folder is taken for the write, so the
    report of a run that is still going is refused with one line.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a folder; pass a run folder written by "
                        "'numpy-mlp train'")
    text = render_report(run_dir)  # first, so that a folder without a run gets no lock file
    if folder is not None:
        return folder.write_text("report.html", text)
    again = f"run 'numpy-mlp report {printable(run_dir)}' again"
    with RunFolder(run_dir, flag="report", then=again).open(create=False) as folder:
        return folder.write_text("report.html", text)


METRICS_FIX = "train the run again, or delete metrics.json to leave it out of the report"
# metrics.json's numbers, as writeup.run_metrics writes them; anything else there is only
# shown as text
METRIC_NUMBERS = ("train_accuracy", "val_accuracy", "test_accuracy", "val_accuracy_tta",
                  "test_accuracy_tta", "tta_shift", "best_step", "steps", "train_seconds",
                  "total_seconds")


def read_metrics(path, *, follow_links=True):
    """A run's ``metrics.json``: a table whose known numbers are numbers (NaN allowed: runs
    without a validation split wrote it before they left the val figures out) and whose
    per-class accuracies are a table of numbers. Raises RunFileError naming the field."""
    path = Path(path)
    fields = Fields(path, RunFileError, METRICS_FIX)
    metrics = read_json(path, fix=METRICS_FIX, follow_links=follow_links)
    fields.mapping(metrics, "metrics.json")
    for k in METRIC_NUMBERS:
        if k in metrics:
            fields.number(metrics[k], k, finite=False)
    per_class = metrics.get("per_class_test_accuracy")
    if per_class is not None:
        for name, a in fields.mapping(per_class, "per_class_test_accuracy").items():
            fields.number(a, f"per_class_test_accuracy.{name}", finite=False)
    if "model" in metrics:
        fields.text(metrics["model"], "model", max_chars=1000)
    return metrics
