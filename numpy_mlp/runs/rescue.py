"""What a diverged run leaves: its best parameters so far, as a finished run's model.npz.

A loss that turns NaN or infinite stops the training (:class:`~numpy_mlp.errors.DivergenceError`);
resuming would only diverge again, so instead of a checkpoint the run keeps the model it
had before, and its history, for the person to look at and to evaluate.
"""

from __future__ import annotations

from pathlib import Path

from ..training.checkpoint_file import CHECKPOINT_NAME
from ..training.loop import initial_params
from ..training.model_file import MODEL_NAME, write_model_file
from .writeup import history_csv


def save_best_so_far(out, config, data, run, *, data_dir=None, folder=None):
    """After a divergence: ``out/model.npz`` from the best parameters so far, and ``history.csv``.

    Before the first evaluation the best known parameters are the initial ones (step 0),
    rebuilt from the seed. The run is then finished (run.json says ``done``) and its
    checkpoint removed. ``data_dir`` is the data folder the model records (absolute);
    ``folder`` the RunFolder that writes ``out`` (None: the files are written directly).
    Returns a sentence saying what was saved, for the message.
    """
    model, s = run.model, run.loop
    if s.best_params is not None:
        model.load_params(s.best_params)
        what = f"step {s.best_step}, val_acc {s.best_val:.3f}"
    else:
        model.load_params(initial_params(config, model.input_dim, model.num_classes))
        what = "step 0, the initial weights: no evaluation came before the divergence"
    out = Path(out)

    def write_model(f):
        write_model_file(f, model, run.preprocessor, class_names=data.class_names,
                         config=config.to_dict(), data_dir=data_dir, geometry=data.geometry)

    if folder is None:
        write_model(out / MODEL_NAME)
        (out / "history.csv").write_text(history_csv(s.history), encoding="utf-8")
        (out / CHECKPOINT_NAME).unlink(missing_ok=True)
    else:
        folder.write(MODEL_NAME, write_model)
        folder.write_text("history.csv", history_csv(s.history))
        if folder.state() is not None:
            folder.set_phase("done")
        folder.remove(CHECKPOINT_NAME)  # resuming would diverge again
    return f"the best parameters so far ({what}) are saved in {out / MODEL_NAME}"
