"""TrainConfig as the one source of every training knob: --help, flags, TOML, checks, presets."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_cifar import write_cifar_dir

import numpy_mlp.runs.train
from numpy_mlp.cli.commands import build_parser, check_resume_flags, main
from numpy_mlp.errors import ConfigError
from numpy_mlp.nn.model import FullyConnectedNet
from numpy_mlp.nn.optim import SGD
from numpy_mlp.nn.rules import parse_hidden_dims
from numpy_mlp.nn.schedules import SCHEDULES
from numpy_mlp.training.config import RESUMABLE_FIELDS, SETTINGS, TrainConfig
from numpy_mlp.training.presets import PRESETS, fit_to_run
from numpy_mlp.training.threads import ThreadChooser, check_threads

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def captured(monkeypatch):
    """Replace run_training by a recorder: the config the CLI builds, without training."""
    calls = []

    def fake(config, **kw):
        calls.append(config)
        return Path("runs/x"), {"test_accuracy": 0.5, "val_accuracy": 0.5, "total_seconds": 1.0,
                                "model": "m"}

    monkeypatch.setattr(numpy_mlp.runs.train, "run_training", fake)
    return calls


def help_text(capsys, monkeypatch, command="train"):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def flag_block(text, flag):
    """The help of one flag, whitespace collapsed: from its line to the next flag's."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"  (-\w, )?{flag}\b", line))
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"  -", lines[i])
                or not lines[i].strip()), len(lines))
    return " ".join(" ".join(lines[start:end]).split())


def shown_default(block):
    """The default a help block states: the text after its last 'default'."""
    m = re.search(r".*default:? (.+)\)$", block)
    assert m, block
    return m.group(1)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_help_names_every_field_with_its_real_default_and_choices(name, capsys, monkeypatch):
    field = SETTINGS[name]
    block = flag_block(help_text(capsys, monkeypatch), field.flag)
    stated, default = shown_default(block), field.default
    if isinstance(default, bool):  # --flip said "(default off)" while it is on
        assert block.startswith(f"{field.flag}, --no-{field.flag[2:]}")
        assert stated == ("on" if default else "off")
    elif default is None:
        assert stated == field.none and "default:" in block
    elif isinstance(default, tuple):
        assert parse_hidden_dims(stated) == default
    elif isinstance(default, (int, float)):
        assert float(stated) == default
    else:
        assert stated == default
    if field.rule.kind == "choice":
        assert "{" + ",".join(field.rule.choices) + "}" in block
    if field.rule.kind in ("whole", "real"):
        assert field.rule.span() in block  # the bounds, as the messages state them


def test_schedule_and_search_choices_are_the_modules_own_constants(capsys, monkeypatch):
    from numpy_mlp.search import PRUNERS, SAMPLERS

    assert SETTINGS["schedule"].rule.choices == SCHEDULES
    text = help_text(capsys, monkeypatch, "search")
    assert "{" + ",".join(SAMPLERS) + "}" in text and "{" + ",".join(PRUNERS) + "}" in text
    assert main(["search", "--sampler", "anneal"]) == 2
    assert f"--sampler 'anneal' must be one of {', '.join(SAMPLERS)}" in capsys.readouterr().err


def test_building_the_train_parser_does_not_import_optuna():
    code = ("import sys; from numpy_mlp.cli.commands import build_parser; build_parser('train')"
            ".parse_args(['train']); print('optuna' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert done.stdout.strip() == "False", done.stderr


# (field, a value it refuses as Python/TOML, the same value as command-line text)
BAD = [
    ("alpha", "-1", "-1"),             # real > 0
    ("beta", "1.5", "1.5"),            # real in [0, 1), with the field's note
    ("epochs", "1e300", "1e300"),      # real with an upper bound
    ("batch_size", "0", "0"),          # whole number in 1..N
    ("num_iters", "1e29", "1e29"),     # not a whole number
    ("threads", "5000", "5000"),       # 'auto' or a whole number
    ("schedule", "'exp'", "exp"),      # a choice
    ("hidden_dim", "0", "0"),          # widths
    ("flip", "1", None),               # true or false (a flag cannot spell a bad bool)
]


def rule_part(message):
    assert " must be " in message, message
    return message.split(" must be ", 1)[1].strip()


@pytest.mark.parametrize("name, literal, text", BAD, ids=[b[0] for b in BAD])
def test_each_rule_has_one_message_from_every_source(name, literal, text, tmp_path, capsys,
                                                     captured):
    value = eval(literal)
    with pytest.raises(ConfigError) as e:
        TrainConfig(**{name: value})
    message = str(e.value)
    assert message.startswith(f"{name}={value!r} must be ")
    rule = rule_part(message)
    safe = ["--offline", "--data-dir", str(tmp_path / "none")]  # never a download, whatever

    flag = SETTINGS[name].flag
    if text is not None:
        assert main(["train", *safe, flag, text]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"numpy-mlp: error: {flag} ") and err.count("\n") == 1
        assert rule_part(err) == rule

    path = tmp_path / "f.toml"
    path.write_text(f"{flag[2:]} = {literal}\n")
    assert main(["train", *safe, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"numpy-mlp: error: {path}: {flag[2:]} = ") and err.count("\n") == 1
    assert rule_part(err) == rule
    assert not captured

    assert rule_part(str(pytest.raises(ConfigError, SETTINGS[name].check, value).value)) == rule


@pytest.mark.parametrize("make, name, value", [
    (lambda v: SGD({"w": np.zeros(1)}, alpha=v), "alpha", 0.0),
    (lambda v: SGD({"w": np.zeros(1)}, beta=v), "beta", 1.0),
    (lambda v: SGD({"w": np.zeros(1)}, weight_decay=v), "weight_decay", -1.0),
    (lambda v: FullyConnectedNet(hidden_dim=4, dropout=v), "dropout", 1.0),
    (lambda v: FullyConnectedNet(hidden_dim=4, reg=v), "reg", float("nan")),
    (lambda v: FullyConnectedNet(hidden_dim=v), "hidden_dim", 0),
    (lambda v: ThreadChooser(v), "threads", 0),
    (check_threads, "threads", 10**20),
])
def test_optim_model_and_threads_refuse_with_trainconfigs_message(make, name, value):
    with pytest.raises(ConfigError) as direct:
        make(value)
    with pytest.raises(ConfigError) as config:
        TrainConfig(**{name: value})
    assert str(direct.value) == str(config.value)


def test_values_are_normalised_as_the_rules_say():
    c = TrainConfig(epochs=2, hidden_dim="512, 256", batch_size=np.int64(64), alpha=np.float32(0.5))
    assert c.epochs == 2.0 and isinstance(c.epochs, float) and c.hidden_dim == (512, 256)
    assert type(c.batch_size) is int and type(c.alpha) is float
    for spelling in (200, (200,), [200], "200", np.array([200]), 200.0):
        assert parse_hidden_dims(spelling) == (200,)
    for bad in ("", [], "a,b", [0], [1.5], float("inf"), True, {"a": 1}):
        with pytest.raises(ConfigError, match="must be whole numbers >= 1"):
            parse_hidden_dims(bad)
    huge = "x" * 10_000  # a refused value is shown short, however large it is
    with pytest.raises(ConfigError) as e:
        TrainConfig(schedule=huge)
    assert len(str(e.value)) < 200


# --------------------------------------------------------------------------- presets

def test_presets_are_valid_configs_and_listed_with_their_values_in_help(capsys, monkeypatch):
    text = " ".join(help_text(capsys, monkeypatch).split())
    assert set(PRESETS) >= {"deep", "wide"}
    for name, values in PRESETS.items():
        TrainConfig(**values)
        assert f"{name}:" in text
        for field, v in values.items():
            shown = ",".join(map(str, v)) if isinstance(v, tuple) else f"{v:g}" if isinstance(
                v, float) else str(v)
            assert f"{SETTINGS[field].flag} {shown}" in text
    assert PRESETS["deep"]["hidden_dim"] == (2048, 1024, 512) and PRESETS["wide"]["hidden_dim"] == (
        4096,)


def test_command_line_beats_the_file_beats_the_preset_beats_the_defaults(tmp_path, captured):
    path = tmp_path / "f.toml"
    path.write_text("reg = 2e-3\ncrop-pad = 3\nnum-iters = 40\n")
    assert main(["train", "--preset", "deep", "--config", str(path), "--crop-pad", "1"]) == 0
    c, deep = captured[-1], PRESETS["deep"]
    assert c.crop_pad == 1 and c.reg == 2e-3  # the command line, the file
    assert c.dropout == deep["dropout"] and c.hidden_dim == deep["hidden_dim"]  # the preset
    assert c.num_iters == 40 and c.epochs == TrainConfig().epochs  # num_iters replaces its epochs
    assert "beta" not in deep and c.beta == TrainConfig().beta  # the default
    path.write_text('preset = "wide"\n')
    assert main(["train", "--config", str(path)]) == 0
    assert captured[-1] == TrainConfig(**PRESETS["wide"])


def test_unknown_preset_is_one_line_listing_the_known_ones(capsys, captured):
    assert main(["train", "--preset", "huge"]) == 2
    err = capsys.readouterr().err
    assert err == f"numpy-mlp: error: --preset 'huge' must be one of {', '.join(PRESETS)}\n"
    assert not captured


def test_a_preset_run_saves_its_values_in_config_json_and_a_flag_overrides_one(tmp_path):
    write_cifar_dir(tmp_path / "cifar", n_per_batch=20, n_test=20)
    out = tmp_path / "run"
    assert main(["train", "--preset", "deep", "--data-dir", str(tmp_path / "cifar"), "--offline",
                 "--hidden-dim", "16", "--num-iters", "3", "--batch-size", "16", "--val-size", "20",
                 "--eval-train-size", "20", "--threads", "1", "--out", str(out), "-q"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved == TrainConfig.from_dict(saved).to_dict()  # the full config, every field
    for field, value in PRESETS["deep"].items():
        # the flags set the first three; the last two follow the run's length (fit_to_run)
        if field not in ("hidden_dim", "epochs", "batch_size", "warmup", "evals"):
            assert saved[field] == value, field
    assert saved["hidden_dim"] == [16] and saved["num_iters"] == 3
    assert saved["batch_size"] == 16 != PRESETS["deep"]["batch_size"]  # the flag beats the preset
    assert saved["epochs"] == TrainConfig().epochs  # --num-iters, not the preset's 170 epochs
    # 3 steps of 16 images, fewer than the 40 an evaluation reads: the warm-up shorter than
    # the run, one evaluation, and config.json says what the run trained with
    assert saved["warmup"] < 3 and saved["evals"] == 1
    assert f'"warmup": {saved["warmup"]}' in (out / "train.log").read_text()


# --------------------------------------------------------------------------- the run's length

CIFAR_TRAIN, CIFAR_EVAL = 45_000, 10_000  # training images; images an evaluation reads


def test_a_shortened_preset_keeps_its_warmup_share_and_fewer_evaluations():
    """--preset wide --epochs 1 is 175 steps: the preset's 200 warm-up steps would never
    reach the peak rate, and its 30 evaluations would take most of the time."""
    config = TrainConfig(**{**PRESETS["wide"], "epochs": 1.0})
    fitted, note = fit_to_run(config, CIFAR_TRAIN, CIFAR_EVAL, given={"epochs"}, preset="wide")
    total = 175  # 45000 // 256 steps per epoch
    assert fitted.warmup == round(200 * total / (150 * total)) == 1
    assert fitted.evals == total * 256 // CIFAR_EVAL == 4  # one per 10,000 images trained
    assert fitted.replace(warmup=200, evals=30) == config  # nothing else changes
    assert note == ("fitted to this run of 175 steps: --warmup 200 -> 1 (the share of its run "
                    "the preset gives it), --evals 30 -> 4 (one per 10000 images trained, as "
                    "many as an evaluation reads); give --warmup or --evals to choose")
    # half the preset's epochs: half its warm-up, all its evaluations
    half, note = fit_to_run(config.replace(epochs=75.0), CIFAR_TRAIN, CIFAR_EVAL,
                            given={"epochs"}, preset="wide")
    assert (half.warmup, half.evals) == (100, 30) and "--evals" not in note


def test_the_hour_preset_is_the_deep_recipe_on_fewer_components_run_longer():
    """docs/ablations.md#an-hour measures two changes from --preset deep, its length (with
    the count of evaluations over it) and the whitening's components, and nothing else."""
    hour, deep = dict(PRESETS["hour"]), dict(PRESETS["deep"])
    assert hour.pop("epochs") > deep.pop("epochs")
    assert hour.pop("whiten_dim") < TrainConfig(**deep).whiten_dim
    hour.pop("evals"), deep.pop("evals")
    assert hour == deep


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_preset_at_its_own_length_is_left_as_it_is(name):
    config = TrainConfig(**PRESETS[name])
    assert fit_to_run(config, CIFAR_TRAIN, CIFAR_EVAL, given=set(), preset=name) == (config, None)


def test_what_the_user_gave_is_kept_and_a_warmup_as_long_as_the_run_refused():
    config = TrainConfig(**{**PRESETS["wide"], "num_iters": 300, "warmup": 120, "evals": 30})
    fitted, note = fit_to_run(config, CIFAR_TRAIN, CIFAR_EVAL, preset="wide",
                              given={"num_iters", "warmup", "evals"})
    assert (fitted, note) == (config, None)
    assert fit_to_run(config, CIFAR_TRAIN, CIFAR_EVAL) == (config, None)  # the Python API's
    with pytest.raises(ConfigError) as e:
        fit_to_run(config.replace(warmup=300), CIFAR_TRAIN, CIFAR_EVAL, given={"warmup"})
    assert str(e.value) == ("--warmup 300 is not shorter than the run (300 steps): give --warmup "
                            "30 (a tenth of the run) or a longer run (--epochs or --num-iters)")
    fitted, note = fit_to_run(config.replace(warmup=151), CIFAR_TRAIN, CIFAR_EVAL,
                              given={"warmup", "evals"})
    assert fitted.warmup == 151 and note == ("note: --warmup 151 is most of this run of 300 "
                                             "steps: the rate reaches its peak only at step 151")
    assert fit_to_run(config.replace(warmup=150), CIFAR_TRAIN, CIFAR_EVAL,
                      given={"warmup", "evals"})[1] is None  # half the run: the user's choice
    fitted, note = fit_to_run(config.replace(warmup=151), CIFAR_TRAIN, CIFAR_EVAL,
                              given={"warmup"}, preset="wide")  # both in one line
    assert fitted.evals == 7 and note.startswith("fitted to this run of 300 steps: --evals 30 -> 7")
    assert note.endswith("; note: --warmup 151 is most of this run of 300 steps: the rate "
                         "reaches its peak only at step 151")
    # the defaults' 20 evaluations stay, however short the run: the notebook's log line
    # every 1/20 of it (2,000 steps of 40 images read 80,000, 8 evaluations' worth)
    config = TrainConfig(num_iters=2000, batch_size=40)
    assert fit_to_run(config, CIFAR_TRAIN, CIFAR_EVAL, given={"num_iters", "batch_size"}) == \
        (config, None)


def test_the_fitted_settings_are_said_once_and_a_long_warmup_is_one_line(tmp_path, capsys):
    write_cifar_dir(tmp_path / "cifar", n_per_batch=110, n_test=20)  # 530 training images
    common = ["train", "--data-dir", str(tmp_path / "cifar"), "--offline", "--hidden-dim", "8",
              "--batch-size", "16", "--val-size", "20", "--eval-train-size", "20",
              "--threads", "1"]
    out = tmp_path / "run"
    assert main([*common, "--preset", "wide", "--whiten-dim", "16", "--num-iters", "6",
                 "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    fitted = [line for line in lines if line.startswith("fitted to this run of 6 steps: ")]
    # wide's 200 of its 150 steps of 256 (two a pass over 530 images), in 6 steps: 6 * 4/3
    assert len(fitted) == 1 and "--warmup 200 -> 4 (" in fitted[0]
    assert "--evals 30 -> 2 (one per 40 images trained" in fitted[0]  # 6 steps * 16 // 40
    assert len([line for line in lines if line.startswith("step ")]) == 2
    saved = json.loads((out / "config.json").read_text())
    assert (saved["warmup"], saved["evals"]) == (4, 2)
    assert fitted[0] in (out / "train.log").read_text()
    assert main([*common, "--warmup", "6", "--num-iters", "6", "--out", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err == (
        "numpy-mlp: error: --warmup 6 is not shorter than the run (6 steps): give --warmup 0 "
        "(a tenth of the run) or a longer run (--epochs or --num-iters)\n")


# --------------------------------------------------------------------------- resuming

def test_resumable_fields_come_from_the_fields_metadata(capsys):
    assert RESUMABLE_FIELDS == tuple(n for n, s in SETTINGS.items() if s.resumable)
    assert set(RESUMABLE_FIELDS) == {"checkpoint_every", "checkpoint_minutes", "threads",
                                     "tta_shift"}
    assert main(["train", "--resume", "nowhere", "--alpha", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "leave out --alpha" in err and all(SETTINGS[n].flag in err for n in RESUMABLE_FIELDS)
    args = build_parser().parse_args(["train", "--resume", "r", "--threads", "1",
                                      "--tta-shift", "2", "--checkpoint-every", "5"])
    assert check_resume_flags(args) == {"threads": 1, "tta_shift": 2, "checkpoint_every": 5}
    for extra in (["--preset", "wide"], ["--out", "x"]):
        with pytest.raises(Exception, match=f"leave out {extra[0]}"):
            check_resume_flags(build_parser().parse_args(["train", "--resume", "r", *extra]))
