"""What a person sees of ``numpy-mlp train``: the progress bar and a log line per evaluation."""

from __future__ import annotations

import math

from tqdm import tqdm


def eval_line(history, total):
    """The log line of the last evaluation in ``history`` of a run of ``total`` steps; a run
    without a validation split (``--val-size 0``, whose val_acc is NaN) has no val_acc."""
    step, epoch, loss, train_acc, val_acc, alpha, seconds = (history[k][-1] for k in (
        "eval_step", "epoch", "train_loss", "train_acc", "val_acc", "alpha", "seconds"))
    val = "" if math.isnan(val_acc) else f"  val_acc {val_acc:.3f}"
    if val and history.get("val_acc_ema"):
        val += f"  val_acc_ema {history['val_acc_ema'][-1]:.3f}"
    return (f"step {step:>{len(str(total))}}/{total}  epoch {epoch:5.2f}  loss {loss:.4f}  "
            f"train_acc {train_acc:.3f}{val}  alpha {alpha:.3g}  ({seconds:.1f}s)")


class TrainingDisplay:
    """What a person sees of ``train``: a tqdm bar (``bar=True``, for terminals) and a log
    line per evaluation through ``say``. ``on_step`` and ``on_eval`` are train's callbacks."""

    def __init__(self, total, *, say=None, bar=False, initial=0):
        self.total, self.say = total, say
        self.bar = tqdm(total=total, initial=initial, disable=not bar, unit="step",
                        dynamic_ncols=True, leave=False)

    def __repr__(self):
        return f"TrainingDisplay(total={self.total}, bar={not self.bar.disable})"

    def on_step(self, run):
        self.bar.update(run.loop.step - self.bar.n)

    def on_eval(self, step, history):
        if self.say:
            self.say(eval_line(history, self.total))
        val_acc = history["val_acc"][-1]
        self.bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}",
                             **({} if math.isnan(val_acc) else {"val": f"{val_acc:.3f}"}))

    def close(self):
        self.bar.close()
