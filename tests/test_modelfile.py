"""model.npz read field by field: every damage is one ModelFileError line, nothing allocated first.

The hostile archives (a 2 KB file whose header claims 112 TiB, a small file that inflates
to hundreds of MB) are read in a child process whose peak memory is measured.
"""

import json
import os
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from numpy_mlp.data.cifar10 import CIFAR10_GEOMETRY
from numpy_mlp.data.dataset import Geometry
from numpy_mlp.data.preprocessing import Preprocessor
from numpy_mlp.errors import ModelFileError
from numpy_mlp.files.npzfile import MAX_RATIO
from numpy_mlp.nn.model import FullyConnectedNet
from numpy_mlp.training.model_file import (
    MAX_MODEL_BYTES,
    load_model,
    read_model_file,
    write_model_file,
)

CLASSES = [f"class{i}" for i in range(10)]


def good_model(path, hidden=(8,), mode="per_channel"):
    model = FullyConnectedNet(3072, hidden, 10, seed=0)
    stats = {"mean": np.array([120.0, 121.0, 122.0]), "std": np.array([60.0, 61.0, 62.0])}
    preprocessor = Preprocessor(mode, stats if mode == "per_channel" else None)
    write_model_file(path, model, preprocessor, class_names=CLASSES,
                     config={"reg": 0.01, "dropout": 0.0}, geometry=CIFAR10_GEOMETRY)
    return model


def members(path):
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    return arrays, json.loads(str(arrays.pop("meta")))


def rewrite(path, arrays, meta):
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


def test_a_saved_model_reads_back_exactly(tmp_path):
    model = good_model(tmp_path / "model.npz")
    params, meta = read_model_file(tmp_path / "model.npz")
    assert sorted(params) == ["W1", "W2", "b1", "b2"]
    for k, v in model.params.items():
        assert params[k].dtype == v.dtype and np.array_equal(params[k], v)
    assert meta["hidden_dim"] == [8] and meta["class_names"] == CLASSES


def test_a_compressed_model_of_real_weights_reads(tmp_path):
    model = good_model(tmp_path / "model.npz")
    arrays, meta = members(tmp_path / "model.npz")
    np.savez_compressed(tmp_path / "small.npz", meta=np.array(json.dumps(meta)), **arrays)
    params, _ = read_model_file(tmp_path / "small.npz")
    assert np.array_equal(params["W1"], model.params["W1"])


def damage_meta(**changes):
    def apply(arrays, meta):
        for k, v in changes.items():
            *parents, leaf = k.split(".")
            target = meta
            for p in parents:
                target = target[p]
            if v is DELETE:
                del target[leaf]
            else:
                target[leaf] = v
    return apply


DELETE = object()


def damage_array(name, value):
    def apply(arrays, meta):
        arrays[name] = value(arrays[name]) if callable(value) else value
    return apply


def nan_at(a):
    a = a.copy()
    a.flat[5] = np.nan
    return a


def inf_at(a):
    a = a.copy()
    a.flat[-1] = -np.inf
    return a


DAMAGES = {
    "NaN weights": (damage_array("W1", nan_at), "W1 holds NaN or infinite values"),
    "infinite bias": (damage_array("b2", inf_at), "b2 holds NaN or infinite values"),
    "integer weights": (damage_array("W2", lambda a: a.astype(np.int32)),
                        "W2 holds int32 values, expected floats"),
    "string weights": (damage_array("b1", np.array(["x"] * 8)),
                       "b1 holds <U1 values, expected floats"),
    "complex weights": (damage_array("b1", lambda a: a.astype(np.complex64)), "not plain numbers"),
    "wrong shape": (damage_array("W1", np.zeros((3072, 9), np.float32)),
                    "W1 has shape (3072, 9), expected (3072, 8)"),
    "extra array": (damage_array("W3", np.zeros(3, np.float32)), "do not match the architecture"),
    "zero classes": (damage_meta(num_classes=0), "meta.num_classes is 0, not a whole number >= 1"),
    "classes as text": (damage_meta(num_classes="10"), "meta.num_classes is '10'"),
    "meta config a list": (damage_meta(config=[1, 2]), "meta.config is [1, 2], not a table"),
    "negative reg": (damage_meta(**{"config.reg": -1}), "meta.config.reg is -1"),
    "hidden width zero": (damage_meta(hidden_dim=[0]), "meta.hidden_dim[0] is 0"),
    "hidden dim a table": (damage_meta(hidden_dim={"a": 1}),
                           "meta.hidden_dim is {'a': 1}, not a list"),
    "other input size": (damage_meta(input_dim=784), "meta.input_dim is 784, not 3072"),
    "unknown dtype": (damage_meta(dtype="float16"),
                      "meta.dtype is 'float16', not one of float32, float64"),
    "preprocessing a text": (damage_meta(preprocessing="per_image"),
                             "meta.preprocessing is 'per_image', not a table"),
    "unknown mode": (damage_meta(**{"preprocessing.mode": "zca"}),
                     "meta.preprocessing.mode is 'zca'"),
    "two means": (damage_meta(**{"preprocessing.stats.mean": [1.0, 2.0]}),
                  "meta.preprocessing.stats.mean is"),
    "negative std": (damage_meta(**{"preprocessing.stats.std": [1.0, -2.0, 1.0]}),
                     "meta.preprocessing.stats.std[1] is -2.0"),
    "NaN mean": (damage_meta(**{"preprocessing.stats.mean": [1.0, float("nan"), 1.0]}),
                 "not a finite number"),
    "no stats": (damage_meta(**{"preprocessing.stats": None}),
                 "meta.preprocessing.stats is missing"),
    "class names short": (damage_meta(class_names=["cat"]), "a list of 1 items, expected 10"),
    "class name a number": (damage_meta(class_names=list(range(10))),
                            "meta.class_names[0] is 0, not a text"),
    "class name too long": (damage_meta(class_names=["x" * 10_000] * 10),
                            "not a text of at most 100"),
    "newer format": (damage_meta(format_version=99), "newer than this numpy-mlp reads"),
    "foreign format": (damage_meta(format="keras"), "meta.format is 'keras'"),
    "no class names": (damage_meta(class_names=DELETE), "meta.class_names is missing"),
}


@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_a_damaged_model_is_one_line_naming_the_field(case, tmp_path):
    path = tmp_path / "model.npz"
    good_model(path)
    arrays, meta = members(path)
    damage, expected = DAMAGES[case]
    damage(arrays, meta)
    rewrite(path, arrays, meta)
    with pytest.raises(ModelFileError) as e:
        read_model_file(path)
    message = str(e.value)
    assert expected in message and str(path) in message and "\n" not in message
    assert "retrain" in message or "upgrade" in message
    assert "--hidden-dim" not in message


def zip_members(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)


def npy_bytes(array):
    import io
    f = io.BytesIO()
    np.save(f, array)
    return f.getvalue()


@pytest.mark.parametrize("case, expected", [
    ("missing", "does not exist"),
    ("folder", "is a folder"),
    ("text", "not a numpy-mlp model file (not an .npz archive"),
    ("truncated", "truncated"),
    ("no .npy", "does not end in .npy"),
    ("pickled", "pickled Python objects, which numpy-mlp never loads"),
    ("meta a list", "meta is [1, 2], not a table"),
    ("meta not JSON", "is not valid JSON"),
    ("meta nested deep", "nests deeper than"),
    ("no meta", "no 'meta' entry"),
    ("bad header", "no valid .npy header"),
])
def test_an_archive_that_is_no_model_is_one_line(case, expected, tmp_path):
    path = tmp_path / "model.npz"
    good_model(path)
    arrays, meta = members(path)
    if case == "missing":
        path = tmp_path / "nope.npz"
    elif case == "folder":
        path = tmp_path / "dir.npz"
        path.mkdir()
    elif case == "text":
        path.write_text("hello")
    elif case == "truncated":
        path.write_bytes(path.read_bytes()[:3000])
    elif case == "no .npy":
        zip_members(path, {"meta": npy_bytes(np.array(json.dumps(meta)))})
    elif case == "pickled":
        np.savez(path, meta=np.array([{"a": 1}], dtype=object))
    elif case == "meta a list":
        np.savez(path, meta=np.array(json.dumps([1, 2])), **arrays)
    elif case == "meta not JSON":
        np.savez(path, meta=np.array("{nope"), **arrays)
    elif case == "meta nested deep":
        np.savez(path, meta=np.array("[" * 5000 + "]" * 5000), **arrays)
    elif case == "no meta":
        np.savez(path, **arrays)
    elif case == "bad header":
        zip_members(path, {"meta.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': 'nonsense"})
    with pytest.raises(ModelFileError) as e:
        read_model_file(path)
    assert expected in str(e.value) and "\n" not in str(e.value)


def header_claiming(shape, dtype="<f4"):
    """An .npy v1.0 header for ``shape``, padded as numpy pads it."""
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {tuple(shape)}, }}"
    pad = 64 - (10 + len(text) + 1) % 64
    text = text + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode()


def hostile_112_tib(path):
    """2 KB: a W1 whose header claims (2**22, 2**23) float32 = 128 TiB... with 1 KB of data."""
    zip_members(path, {"W1.npy": header_claiming((1 << 22, 7 << 20)) + b"\0" * 1024,
                       "meta.npy": npy_bytes(np.array("{}"))})


def hostile_directory(path):
    """A stored member whose zip directory also claims ~3.9 GB, matching its header."""
    shape = (3072, 300_000)
    zip_members(path, {"W1.npy": header_claiming(shape) + b"\0" * 1024})
    data = bytearray(path.read_bytes())
    real = len(header_claiming(shape)) + 1024
    claimed = len(header_claiming(shape)) + 3072 * 300_000 * 4
    for sig, offset in ((b"PK\x03\x04", 18), (b"PK\x01\x02", 20)):  # compressed and file size
        at = data.find(sig)
        assert struct.unpack_from("<I", data, at + offset + 4)[0] == real
        struct.pack_into("<II", data, at + offset, claimed, claimed)
    path.write_bytes(bytes(data))


def inflating(path, hidden=21_845):
    """A model whose meta and headers agree, its W1 ~268 MB of zeros deflated to ~260 KB."""
    meta = {"format": "numpy-mlp", "format_version": 1, "input_dim": 3072, "hidden_dim": [hidden],
            "num_classes": 10, "dtype": "float32",
            "preprocessing": {"mode": "per_image", "stats": None}, "class_names": CLASSES,
            "config": None}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("W1.npy", "w", force_zip64=True) as f:
            f.write(header_claiming((3072, hidden)))
            zeros = bytes(3072 * 4 * 1000)
            for start in range(0, hidden, 1000):
                f.write(zeros[:3072 * 4 * min(1000, hidden - start)])
        z.writestr("b1.npy", npy_bytes(np.zeros(hidden, np.float32)))
        z.writestr("W2.npy", npy_bytes(np.zeros((hidden, 10), np.float32)))
        z.writestr("b2.npy", npy_bytes(np.zeros(10, np.float32)))
        z.writestr("meta.npy", npy_bytes(np.array(json.dumps(meta))))


# the peak resident memory of this process (VmHWM; ru_maxrss would keep the parent's
# peak across fork and exec)
PEAK_MB = """
def peak_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) // 1024
"""

PEAK = PEAK_MB + """
import sys
from numpy_mlp.errors import ModelFileError
from numpy_mlp.training.model_file import read_model_file
before = peak_mb()
try:
    read_model_file(sys.argv[1])
    print("loaded")
except ModelFileError as e:
    print(e)
print(peak_mb() - before)
"""


@pytest.mark.parametrize("make, expected", [
    (hostile_112_tib, "declares shape (4194304, 7340032) of float32 (123,145,302,310,912 bytes) "
                      "but holds"),
    (hostile_directory, "runs past the end of the file"),
    (inflating, "would inflate from"),
])
def test_a_hostile_model_is_refused_without_allocating_what_it_claims(make, expected, tmp_path):
    path = tmp_path / "model.npz"
    make(path)
    assert path.stat().st_size < 2_000_000
    proc = subprocess.run([sys.executable, "-c", PEAK, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    message, grown_mb = proc.stdout.splitlines()
    assert expected in message and "--hidden-dim" not in message
    assert int(grown_mb) < 50  # MB beyond what importing numpy-mlp took


def test_the_inflation_bound_is_what_refuses_the_inflating_model(tmp_path):
    path = tmp_path / "model.npz"
    inflating(path, hidden=2000)  # 24 MB of zeros: above the free size, beyond the ratio
    info = zipfile.ZipFile(path).getinfo("W1.npy")
    assert info.file_size > MAX_RATIO * info.compress_size
    with pytest.raises(ModelFileError, match="would inflate"):
        read_model_file(path)


def test_a_model_too_large_to_load_is_refused_from_its_meta(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    good_model(path, hidden=(64,))
    monkeypatch.setattr("numpy_mlp.training.model_file.MAX_MODEL_BYTES", 100_000)
    with pytest.raises(ModelFileError, match="would take 789,288 bytes, more than the 100,000"):
        read_model_file(path)
    assert MAX_MODEL_BYTES >= 1 << 30  # a real cap leaves room for wide nets


def test_a_symlinked_model_is_read_like_its_target(tmp_path):
    good_model(tmp_path / "model.npz")
    os.symlink(tmp_path / "model.npz", tmp_path / "link.npz")  # models may be shared by links
    assert sorted(read_model_file(tmp_path / "link.npz")[0]) == ["W1", "W2", "b1", "b2"]


@pytest.mark.parametrize("D", [7, 20_000])
def test_a_model_of_features_records_their_geometry_and_reads_back(tmp_path, D):
    # wider than an image's side (4096) but no more values than the largest image has
    model = FullyConnectedNet(D, (2,), 3, seed=0)
    stats = {"mean": np.zeros(D), "std": np.ones(D)}
    write_model_file(tmp_path / "m.npz", model, Preprocessor("per_feature", stats),
                     class_names=["a", "b", "c"], geometry=Geometry.features(D))
    saved = load_model(tmp_path / "m.npz")
    assert saved.geometry == Geometry(1, 1, D) and saved.model.input_dim == D


def test_geometries_are_images_or_a_row_of_features():
    for good in ((3, 32, 32), (1, 28, 28), (1, 4096, 4096), (1, 1, 20_000)):
        assert Geometry.from_dict(Geometry(*good).to_dict()) == Geometry(*good)
    for bad in ((2, 32, 32), (3, 1, 20_000), (1, 2, 5000), (1, 1, 3 * 4096 ** 2 + 1),
                (1, 0, 5), (3, 32, 32.0)):
        with pytest.raises(ValueError, match="expected 1 or 3 channels"):
            Geometry.from_dict(dict(zip(("channels", "height", "width"), bad)))


def test_a_model_of_float_features_reads_and_its_statistics_must_fit_its_width(tmp_path):
    # per_feature: any D, one mean and one std per feature
    model = FullyConnectedNet(7, (4,), 3, seed=0)
    stats = {"mean": np.arange(7.0), "std": np.ones(7)}
    path = tmp_path / "features.npz"
    write_model_file(path, model, Preprocessor("per_feature", stats), class_names=["a", "b", "c"],
                     geometry=Geometry.features(7))
    params, meta = read_model_file(path)
    assert params["W1"].shape == (7, 4) and meta["input_dim"] == 7
    arrays, meta = members(path)
    for change, expected in (
            (lambda m: m["preprocessing"]["stats"].update(mean=[0.0] * 6, std=[1.0] * 6),
             "not one per input feature (7)"),
            (lambda m: m["preprocessing"]["stats"].update(std=[1.0] * 6),
             "meta.preprocessing.stats.std is"),
            (lambda m: m.update(preprocessing={"mode": "per_image", "stats": None},
                                geometry=CIFAR10_GEOMETRY.to_dict()),
             "meta.input_dim is 7, not 3072")):
        broken = json.loads(json.dumps(meta))
        change(broken)
        rewrite(path, arrays, broken)
        with pytest.raises(ModelFileError) as e:
            read_model_file(path)
        assert expected in str(e.value)
