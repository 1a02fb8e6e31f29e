"""checkpoint.npz and the JSON files of a run, read field by field: one line per damage."""

import copy
import json

import numpy as np
import pytest
from synthetic_data import synthetic

from numpy_mlp import TrainConfig
from numpy_mlp.errors import CheckpointError, ModelFileError, RunFileError
from numpy_mlp.files.jsonfile import MAX_BYTES
from numpy_mlp.runs.report import read_metrics
from numpy_mlp.runs.train import train_with_checkpoints
from numpy_mlp.training.checkpoint_file import CHECKPOINT_NAME, read_checkpoint
from numpy_mlp.training.config import read_config

CONFIG = TrainConfig(hidden_dim=(8, 6), batch_size=16, num_iters=12, evals=4,
                     preprocessing="per_channel", eval_train_size=30, checkpoint_every=5, threads=1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The bytes of a real final checkpoint (every member present: best/, stats/)."""
    out = tmp_path_factory.mktemp("ckpt")
    train_with_checkpoints(CONFIG, synthetic(n_train=80, n_val=20), out)
    return (out / CHECKPOINT_NAME).read_bytes()


def written(tmp_path, checkpoint, change=None):
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(checkpoint)
    if change is not None:
        state, arrays = read_checkpoint(path)
        state = copy.deepcopy(state)
        change(state, arrays)
        np.savez(path, state=np.array(json.dumps(state)), **arrays)
    return path


def test_a_real_checkpoint_reads_back_as_it_was_written(tmp_path, checkpoint):
    path = written(tmp_path, checkpoint)
    state, arrays = read_checkpoint(path)
    with np.load(path, allow_pickle=False) as raw:
        assert state == json.loads(str(raw["state"]))
        assert sorted(arrays) == sorted(set(raw.files) - {"state"})
        assert all(np.array_equal(arrays[k], raw[k]) for k in arrays)
    assert read_checkpoint(path, arrays=False) == (state, None)


def set_field(path, value):
    def change(state, arrays):
        *parents, leaf = path.split(".")
        target = state
        for p in parents:
            target = target[p]
        if value is DELETE:
            del target[leaf]
        else:
            target[leaf] = value(target[leaf]) if callable(value) else value
    return change


def set_array(name, value):
    def change(state, arrays):
        if value is DELETE:
            del arrays[name]
        else:
            arrays[name] = value(arrays[name]) if callable(value) else value
    return change


DELETE = object()


def with_nan(a):
    a = a.copy()
    a.flat[0] = np.nan
    return a


DAMAGES = {
    "no step": (set_field("loop.step", DELETE), "state.loop.step is missing"),
    "step as text": (set_field("loop.step", "12"), "state.loop.step is '12', not a whole number"),
    "negative pos": (set_field("loop.pos", -1), "state.loop.pos is -1"),
    "seconds as list": (set_field("loop.seconds", [1]), "state.loop.seconds is [1], not a number"),
    "best after step": (set_field("loop.best_step", 99), "state.loop.best_step is 99"),
    "teacher digest": (set_field("loop.teacher_digest", "abc"),
                       "state.loop.teacher_digest is 'abc', not a sha256 in hex, or empty"),
    "loss list short": (set_field("history.loss", lambda v: v[:-1]), "state.history.loss is"),
    "eval lists differ": (set_field("history.val_acc", lambda v: v + [0.5]),
                          "state.history.val_acc is"),
    "history a list": (set_field("history", []), "state.history is [], not a table"),
    "unknown history": (set_field("history.extra", []), "not lists the training loop keeps"),
    "loss a text": (set_field("history.loss", lambda v: ["x"] * len(v)),
                    "state.history.loss[0] is 'x'"),
    "rng garbage": (set_field("rng.order", {"bit_generator": "PCG64", "state": 5}),
                    "state.rng.order"),
    "rng a number": (set_field("rng.model", 3), "state.rng.model is 3"),
    "config not a table": (set_field("config", "fast"), "state.config is 'fast', not a table"),
    "config bad value": (set_field("config.alpha", -1), "state.config: alpha=-1"),
    "config unknown key": (set_field("config.speed", 1), "unknown config key(s) speed"),
    "mode changed": (set_field("preprocessor.mode", "per_image"),
                     "not the config's 'per_channel'"),
    "data fingerprint text": (set_field("data.n_train", "80"), "state.data.n_train is '80'"),
    "data dir a number": (set_field("data_dir", 5), "state.data_dir is 5"),
    "newer": (set_field("format_version", 9), "newer than this numpy-mlp reads"),
    "foreign format": (set_field("format", "other"), "state.format is 'other'"),
    "NaN parameter": (set_array("param/W1", with_nan), "param/W1 holds NaN or infinite values"),
    "NaN momentum": (set_array("m/b2", with_nan), "m/b2 holds NaN"),
    "integer parameters": (set_array("param/W2", lambda a: a.astype(np.int64)),
                           "param/W2 holds int64"),
    "wrong width": (set_array("param/b1", np.zeros(9, np.float32)),
                    "param/b1 has shape (9,), expected (8,)"),
    "missing momentum": (set_array("m/W1", DELETE), "missing ['m/W1']"),
    "unknown array": (set_array("junk", np.zeros(2)), "unexpected ['junk']"),
    "perm out of range": (set_array("perm", lambda a: a + 1000), "perm holds positions outside"),
    "perm of floats": (set_array("perm", lambda a: a.astype(np.float64)), "perm holds float64"),
    "eval_idx 2-D": (set_array("eval_idx", lambda a: a.reshape(-1, 1)), "eval_idx has shape"),
    "negative std": (set_field("preprocessor.stats.std", [1.0, -1.0, 1.0]),
                     "state.preprocessor.stats.std[1] is -1.0"),
    "no stats": (set_field("preprocessor.stats", None), "state.preprocessor.stats is missing"),
    "pos past perm": (set_field("loop.pos", 10_000), "state.loop.pos is 10000, outside the 80"),
    "fingerprint of other data": (set_field("data.n_train", 50), "not the 80 images perm orders"),
}


@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_a_damaged_checkpoint_is_one_line_naming_the_field(case, tmp_path, checkpoint):
    change, expected = DAMAGES[case]
    path = written(tmp_path, checkpoint, change)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    message = str(e.value)
    assert expected in message and str(path) in message and "\n" not in message
    assert "delete it to start the run again from step 0" in message or "upgrade" in message
    assert isinstance(e.value, ModelFileError)  # what the CLI and older callers catch


def test_a_state_nested_deep_or_not_json_is_one_line(tmp_path, checkpoint):
    path = written(tmp_path, checkpoint)
    _, arrays = read_checkpoint(path)
    for text, expected in (("[" * 50_000, "nests deeper"), ("{oops", "not valid JSON"),
                           ("[1]", "not a table")):
        np.savez(path, state=np.array(text), **arrays)
        with pytest.raises(CheckpointError, match=expected):
            read_checkpoint(path)


def test_a_checkpoint_truncated_or_of_another_program_is_one_line(tmp_path, checkpoint):
    path = tmp_path / CHECKPOINT_NAME
    for content, expected in ((checkpoint[: len(checkpoint) // 2], "damaged or truncated"),
                              (b"", "damaged"), (None, "no 'state' entry")):
        if content is None:
            np.savez(path, W1=np.zeros(3))
        else:
            path.write_bytes(content)
        with pytest.raises(CheckpointError, match=expected):
            read_checkpoint(path)


# ---------------------------------------------------------------- config.json, metrics.json


@pytest.mark.parametrize("content, expected", [
    ("[]", "config.json is [], not a table"),
    ('{"alpha": "fast"}', "alpha='fast' must be a finite number > 0"),
    ('{"hidden_dim": {"a": 1}}', "hidden_dim"),
    ('{"schedule": [1]}', "schedule"),
    ('{"speed": 3}', "unknown config key(s) speed"),
    ('{"batch_size": 1e400}', "batch_size=inf"),
    ("[" * 100_000, "nests deeper than 16 levels"),
    ('{"alpha": ' * 20 + "1" + "}" * 20, "nests deeper"),
    ("{", "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (" " * (MAX_BYTES + 1), "more than the 1,048,576"),
])
def test_a_damaged_config_json_is_one_line_naming_the_field(content, expected, tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(RunFileError) as e:
        read_config(path)
    assert expected in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_good_config_json_reads_as_its_config(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG.to_dict()))
    assert read_config(path) == CONFIG


@pytest.mark.parametrize("content, expected", [
    ("[1, 2]", "metrics.json is [1, 2], not a table"),
    ('{"test_accuracy": "high"}', "test_accuracy is 'high', not a number"),
    ('{"per_class_test_accuracy": [0.5]}', "per_class_test_accuracy is [0.5], not a table"),
    ('{"per_class_test_accuracy": {"cat": "good"}}', "per_class_test_accuracy.cat is 'good'"),
    ('{"model": 5}', "model is 5, not a text"),
    ("[" * 100_000, "nests deeper"),
])
def test_a_damaged_metrics_json_is_one_line_naming_the_field(content, expected, tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(content)
    with pytest.raises(RunFileError) as e:
        read_metrics(path)
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_metrics_without_a_validation_split_read_with_nan(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"val_accuracy": float("nan"), "test_accuracy": 0.4,
                                "per_class_test_accuracy": {"cat": 0.5}}))
    assert read_metrics(path)["test_accuracy"] == 0.4


def test_a_symlinked_metrics_json_is_refused_when_links_are_not_followed(tmp_path):
    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "metrics.json").symlink_to(tmp_path / "real.json")
    with pytest.raises(RunFileError, match="symbolic link"):
        read_metrics(tmp_path / "metrics.json", follow_links=False)
    assert read_metrics(tmp_path / "metrics.json") == {}


def test_a_checkpoint_of_the_first_layout_is_read_and_checked(tmp_path, checkpoint):
    # format 1: the mode in the state, the statistics as stats/* arrays
    def to_first_layout(state, arrays):
        preprocessor = state.pop("preprocessor")
        state["format_version"], state["preprocessing_mode"] = 1, preprocessor["mode"]
        arrays.update({f"stats/{k}": np.array(v) for k, v in preprocessor["stats"].items()})

    state, arrays = read_checkpoint(written(tmp_path, checkpoint, to_first_layout))
    assert state["preprocessing_mode"] == "per_channel" and arrays["stats/std"].shape == (3,)
    for damage, expected in (
            (lambda s, a: a.pop("stats/mean"), "missing ['stats/mean']"),
            (lambda s, a: a.update({"stats/std": -a["stats/std"]}), "stats/std is [-"),
            (lambda s, a: s.pop("preprocessing_mode"), "preprocessing_mode is missing")):
        def change(state, arrays, damage=damage):
            to_first_layout(state, arrays)
            damage(state, arrays)

        with pytest.raises(CheckpointError) as e:
            read_checkpoint(written(tmp_path, checkpoint, change))
        assert expected in str(e.value)
