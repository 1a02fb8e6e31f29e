"""numpy_mlp.data.cifar10 and numpy_mlp.files.safe_pickle on tiny fixtures and the real data."""

import io
import json
import os
import pickle
import pickletools
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from fixtures_cifar import all_train, batch_dict, dumps, meta_dict, write_archive, write_cifar_dir

from numpy_mlp.data.cifar10 import CIFAR10_GEOMETRY, CLASS_NAMES, load_cifar10
from numpy_mlp.data.dataset import Dataset, default_data_dir, split_validation, to_images
from numpy_mlp.data.preprocessing import Preprocessor, channel_stats, preprocess
from numpy_mlp.errors import DataError
from numpy_mlp.files.safe_pickle import safe_load

N_PER_BATCH, N_TEST = 20, 10
N_TRAIN = 5 * N_PER_BATCH  # 100 training images in the fixtures


def row_set(X):
    return {row.tobytes() for row in X}


def load(folder, **kw):
    kw.setdefault("download", False)
    kw.setdefault("val_size", 10)
    return load_cifar10(folder, **kw)


# ------------------------------------------------------------------ fixtures of both kinds


def test_py2_fixture_really_is_python2_style(tmp_path):
    """The py2 fixture must use what the official files use, or the next test proves nothing."""
    write_cifar_dir(tmp_path, "py2")
    raw = (tmp_path / "data_batch_1").read_bytes()
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(raw)]
    assert ops[0] == ("PROTO", 2)
    assert ("GLOBAL", "numpy.core.multiarray _reconstruct") in ops
    assert {"BINSTRING", "SHORT_BINSTRING"} <= {name for name, _ in ops}
    assert not {"BINBYTES", "SHORT_BINBYTES", "BINUNICODE", "SHORT_BINUNICODE"} & {
        name for name, _ in ops}
    assert b"_codecs" not in raw


@pytest.mark.parametrize("style", ["py3", "py2"])
def test_load_both_pickle_styles(tmp_path, style):
    arrays = write_cifar_dir(tmp_path, style, n_per_batch=N_PER_BATCH, n_test=N_TEST)
    data = load(tmp_path, val_size=10)

    assert isinstance(data, Dataset)
    assert data.X_train.shape == (N_TRAIN - 10, 3072) and data.X_train.dtype == np.uint8
    assert data.X_val.shape == (10, 3072) and data.X_val.dtype == np.uint8
    assert data.y_train.shape == (N_TRAIN - 10,) and data.y_train.dtype == np.int64
    assert data.y_val.shape == (10,) and data.y_val.dtype == np.int64
    np.testing.assert_array_equal(data.X_test, arrays["test_batch"][0])
    np.testing.assert_array_equal(data.y_test, arrays["test_batch"][1])
    assert data.class_names == CLASS_NAMES
    assert data.source == str(tmp_path)

    # train + val is exactly the 100 training rows, each with its own label, disjoint
    X_all, y_all = all_train(arrays)
    label_of = {row.tobytes(): label for row, label in zip(X_all, y_all)}
    assert row_set(data.X_train).isdisjoint(row_set(data.X_val))
    assert row_set(data.X_train) | row_set(data.X_val) == set(label_of)
    for X, y in [(data.X_train, data.y_train), (data.X_val, data.y_val)]:
        assert [label_of[row.tobytes()] for row in X] == y.tolist()


def test_subfolder_and_archive_layouts_give_the_same_data(tmp_path):
    write_cifar_dir(tmp_path / "flat", "py2")
    shutil.copytree(tmp_path / "flat", tmp_path / "sub" / "cifar-10-batches-py")
    (tmp_path / "arch").mkdir()
    write_archive(tmp_path / "arch" / "cifar-10-python.tar.gz", tmp_path / "flat")

    ref = load(tmp_path / "flat")
    for folder in ["sub", "arch"]:
        data = load(tmp_path / folder)
        for field in ["X_train", "y_train", "X_val", "y_val", "X_test", "y_test"]:
            np.testing.assert_array_equal(getattr(data, field), getattr(ref, field))
    assert load(tmp_path / "sub").source == str(tmp_path / "sub" / "cifar-10-batches-py")
    assert load(tmp_path / "arch").source == str(tmp_path / "arch" / "cifar-10-python.tar.gz")
    assert sorted(os.listdir(tmp_path / "arch")) == ["cifar-10-python.tar.gz"]  # not extracted


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMPY_MLP_DATA", str(tmp_path / "mine"))
    assert default_data_dir() == tmp_path / "mine"
    monkeypatch.delenv("NUMPY_MLP_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "cache" / "numpy-mlp"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".cache" / "numpy-mlp"


def test_load_uses_default_data_dir(monkeypatch, tmp_path):
    write_cifar_dir(tmp_path, "py3")
    monkeypatch.setenv("NUMPY_MLP_DATA", str(tmp_path))
    assert load(None).source == str(tmp_path)


# ------------------------------------------------------------------ validation split


def test_split_is_seeded_and_deterministic(tmp_path):
    write_cifar_dir(tmp_path, "py3")
    a, b, c = load(tmp_path, seed=1), load(tmp_path, seed=1), load(tmp_path, seed=2)
    np.testing.assert_array_equal(a.X_val, b.X_val)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert row_set(a.X_val) != row_set(c.X_val)


def test_split_validation_matches_the_documented_permutation():
    X = np.arange(12 * 3072).reshape(12, 3072).astype(np.uint8)
    X[:, 0] = np.arange(12)  # row id
    y = np.arange(12) % 10
    X_tr, y_tr, X_val, y_val = split_validation(X, y, 4, np.random.default_rng(7))
    val_idx = np.sort(np.random.default_rng(7).permutation(12)[:4])
    np.testing.assert_array_equal(X_val[:, 0], val_idx)
    np.testing.assert_array_equal(y_val, y[val_idx])
    np.testing.assert_array_equal(X_tr[:, 0], np.setdiff1d(np.arange(12), val_idx))


def test_val_size_zero_and_too_large(tmp_path):
    write_cifar_dir(tmp_path, "py3")
    data = load(tmp_path, val_size=0)
    assert data.X_val.shape == (0, 3072) and data.X_val.dtype == np.uint8
    assert data.y_val.shape == (0,) and data.y_val.dtype == np.int64
    assert len(data.X_train) == N_TRAIN
    for bad in [N_TRAIN, N_TRAIN + 1, -1]:
        with pytest.raises(DataError, match="val_size"):
            load(tmp_path, val_size=bad)


# ------------------------------------------------------------------ missing / damaged files


def test_offline_with_nothing_there_says_how_to_get_the_data(tmp_path):
    with pytest.raises(DataError) as err:
        load_cifar10(tmp_path / "empty", download=False)
    msg = str(err.value)
    assert "--data-dir" in msg and str(tmp_path / "empty") in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg
    assert "\n" not in msg
    assert not (tmp_path / "empty").exists()  # nothing created


@pytest.mark.parametrize("missing", ["data_batch_3", "test_batch", "batches.meta"])
def test_missing_file_is_named(tmp_path, missing):
    write_cifar_dir(tmp_path, "py3")
    (tmp_path / missing).unlink()
    with pytest.raises(DataError, match=missing):
        load(tmp_path)


@pytest.mark.parametrize("style", ["py3", "py2"])
def test_truncated_pickle_is_named(tmp_path, style):
    write_cifar_dir(tmp_path, style)
    f = tmp_path / "data_batch_2"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(DataError, match="data_batch_2"):
        load(tmp_path)


def _bad_batches():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(5, 3072), dtype=np.uint8)
    y = [0, 1, 2, 3, 4]
    return {
        "3071 columns": batch_dict(X[:, :-1], y, "b"),
        "1-D data": batch_dict(X.ravel(), y, "b"),
        "too few labels": batch_dict(X, y[:4], "b"),
        "label 10": batch_dict(X, [0, 1, 2, 3, 10], "b"),
        "label -1": batch_dict(X, [0, 1, 2, 3, -1], "b"),
        "pixel 300": batch_dict(X.astype(np.int16) + 100, y, "b"),
        "float pixels": batch_dict(X.astype(np.float32), y, "b"),
        "no labels": {b"data": X},
        "not a dict": [X, y],
    }


@pytest.mark.parametrize("case", list(_bad_batches()))
def test_wrong_contents_are_refused(tmp_path, case):
    write_cifar_dir(tmp_path, "py3")
    (tmp_path / "data_batch_4").write_bytes(dumps(_bad_batches()[case], "py3"))
    with pytest.raises(DataError, match="data_batch_4"):
        load(tmp_path)


def test_other_integer_dtypes_in_range_are_converted(tmp_path):
    arrays = write_cifar_dir(tmp_path, "py3")
    X, y = arrays["data_batch_1"]
    (tmp_path / "data_batch_1").write_bytes(dumps(batch_dict(X.astype(np.int64), y, "b"), "py3"))
    data = load(tmp_path, val_size=0)
    assert data.X_train.dtype == np.uint8
    np.testing.assert_array_equal(data.X_train[:len(X)], X)


def test_bad_meta_is_refused(tmp_path):
    write_cifar_dir(tmp_path, "py2")
    meta = meta_dict()
    meta[b"label_names"] = meta[b"label_names"][:9]
    (tmp_path / "batches.meta").write_bytes(dumps(meta, "py2"))
    with pytest.raises(DataError, match="batches.meta"):
        load(tmp_path)


# ------------------------------------------------------------------ the restricted unpickler


class _Payload:
    """Unpickling this calls ``func(arg)``: what a malicious batch file would do."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def _evil(kind, marker) -> bytes:
    """A pickle that creates ``marker`` when loaded by plain :func:`pickle.loads`."""
    if kind == "os.system":  # hand-written protocol 0, exactly the name os.system
        return b"cos\nsystem\n(S'touch \"%s\"'\ntR." % str(marker).encode()
    if kind == "posix.system":  # what pickle.dumps(os.system) writes
        return pickle.dumps({b"data": _Payload(os.system, f"touch '{marker}'")}, protocol=4)
    return pickle.dumps({b"data": _Payload(exec, f"open({str(marker)!r}, 'w').close()")},
                        protocol=4)


@pytest.mark.parametrize("kind", ["os.system", "posix.system", "builtins.exec"])
def test_malicious_pickle_is_refused_without_running_it(tmp_path, kind):
    # control: the payload really does create its file when unpickled by plain pickle
    control = tmp_path / "control"
    pickle.loads(_evil(kind, control))
    assert control.exists()

    marker = tmp_path / "pwned"
    raw = _evil(kind, marker)
    with pytest.raises(DataError, match=rf"refused to unpickle {kind} from evil"):
        safe_load(io.BytesIO(raw), name="evil")
    assert not marker.exists()

    # and through the loader, with the file named
    folder = tmp_path / "cifar"
    write_cifar_dir(folder, "py3")
    (folder / "data_batch_1").write_bytes(raw)
    with pytest.raises(DataError, match="not a CIFAR-10 batch") as err:
        load(folder)
    assert str(folder / "data_batch_1") in str(err.value)
    assert not marker.exists()


def test_codecs_encode_is_refused():
    """Python 3 protocol-2 bytes go through _codecs.encode, which CIFAR-10 never needs."""
    raw = pickle.dumps({b"data": b"abc"}, protocol=2)
    assert b"_codecs" in raw
    with pytest.raises(DataError, match="_codecs.encode"):
        safe_load(io.BytesIO(raw), name="x")


@pytest.mark.parametrize("style", ["py3", "py2"])
def test_numpy_scalars_are_allowed(style):
    obj = {b"n": np.int64(7), b"a": np.arange(3, dtype=np.uint8)}
    out = safe_load(io.BytesIO(dumps(obj, style)), name="x")
    assert out[b"n"] == 7 and out[b"a"].tolist() == [0, 1, 2]


# ------------------------------------------------------------------ preprocess / to_images


def _images(n=6, seed=0):
    X = np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)
    X[-1] = 17  # a constant image: std 0
    return X


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_image(dtype):
    X = _images()
    X_copy = X.copy()
    Z = preprocess(X, dtype=dtype)
    assert Z.shape == X.shape and Z.dtype == dtype
    np.testing.assert_allclose(Z[:-1].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(Z[:-1].std(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(Z[-1], 0)  # constant image: zeros, not NaN
    ref = X[:-1] - X[:-1].mean(axis=1, keepdims=True)
    ref /= X[:-1].std(axis=1, keepdims=True)
    np.testing.assert_allclose(Z[:-1], ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(X, X_copy)


def test_per_feature_standardises_any_features_with_training_statistics():
    from numpy_mlp.data.preprocessing import Preprocessor, feature_stats

    rng = np.random.default_rng(0)
    X_train = rng.normal(50, [1, 10, 1000, 0.1, 3], size=(200, 5))  # float64, D = 5
    X_train[:, 3] = 7.0  # constant in training
    stats = feature_stats(X_train)
    Z = preprocess(X_train, "per_feature", stats, dtype=np.float64)
    np.testing.assert_allclose(Z[:, [0, 1, 2, 4]].mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(Z[:, [0, 1, 2, 4]].std(axis=0), 1, rtol=1e-9)
    X_new = rng.normal(50, 5, size=(4, 5))
    Z_new = preprocess(X_new, "per_feature", stats, dtype=np.float32)
    ref = (X_new - stats["mean"]) / np.where(stats["std"] > 0, stats["std"], 1)
    np.testing.assert_allclose(Z_new, ref, rtol=1e-5)  # the constant column: only centred
    prep = Preprocessor.fit("per_feature", X_train, np.float32)
    again = Preprocessor.from_dict(json.loads(json.dumps(prep.to_dict())), np.float32)
    assert again(X_new).tobytes() == prep(X_new).tobytes()
    W, b = rng.normal(size=(5, 3)).astype(np.float32), np.ones(3, np.float32)
    folded = prep.folded(W, b)(X_new, np.empty((4, 5), np.float32))
    np.testing.assert_allclose(folded, prep(X_new) @ W + b, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"shape \(N, 5\)"):
        prep(X_new[:, :4])
    with pytest.raises(ValueError, match="needs stats"):
        preprocess(X_new, "per_feature")
    with pytest.raises(ValueError):  # mean and std of different lengths
        Preprocessor.from_dict({"mode": "per_feature", "stats": {"mean": [0, 1], "std": [1]}})


def test_channel_stats_and_per_channel_use_training_statistics():
    X_train, X_val = _images(50, seed=1), _images(7, seed=2)
    X_train[:, :1024] //= 2  # make the channels differ
    stats = channel_stats(X_train)
    planes = X_train.reshape(-1, 3, 1024).astype(np.float64)
    np.testing.assert_allclose(stats["mean"], planes.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(stats["std"], planes.std(axis=(0, 2)), rtol=1e-12)
    assert stats["mean"].shape == stats["std"].shape == (3,)
    assert channel_stats(X_train, chunk=7)["std"] == pytest.approx(stats["std"], rel=1e-12)

    Z = preprocess(X_val, "per_channel", stats)
    ref = (X_val.reshape(-1, 3, 1024) - stats["mean"][:, None]) / stats["std"][:, None]
    np.testing.assert_allclose(Z, ref.reshape(-1, 3072), rtol=1e-5, atol=1e-5)
    Z_train = preprocess(X_train, "per_channel", stats, dtype=np.float64)
    np.testing.assert_allclose(Z_train.reshape(-1, 3, 1024).mean(axis=(0, 2)), 0, atol=1e-9)
    np.testing.assert_allclose(Z_train.reshape(-1, 3, 1024).std(axis=(0, 2)), 1, rtol=1e-9)
    with pytest.raises(ValueError, match="stats"):
        preprocess(X_val, "per_channel")
    with pytest.raises(ValueError, match="mode"):
        preprocess(X_val, "global")


@pytest.mark.parametrize("mode", ["per_image", "per_channel"])
def test_out_buffer_is_reused_and_X_untouched(mode):
    X = _images()
    X_copy = X.copy()
    stats = channel_stats(X)
    out = np.full(X.shape, np.nan, dtype=np.float32)
    Z = preprocess(X, mode, stats, out=out)
    assert Z is out
    np.testing.assert_array_equal(out, preprocess(X, mode, stats))
    assert preprocess(X[::-1], mode, stats, out=out) is out  # second batch, same buffer
    np.testing.assert_array_equal(out, preprocess(X[::-1], mode, stats))
    np.testing.assert_array_equal(X, X_copy)
    with pytest.raises(ValueError, match="out"):
        preprocess(X, mode, stats, out=np.empty((len(X), 3072), np.float64))
    with pytest.raises(ValueError, match="out"):
        preprocess(X, mode, stats, out=np.empty((len(X) + 1, 3072), np.float32))


def test_a_dataset_states_its_geometry_and_it_must_fit_the_rows():
    X, y = np.zeros((4, 3072), np.uint8), np.zeros(4, np.int64)
    rows = (X, y, X[:1], y[:1], X[:1], y[:1], CLASS_NAMES, "here")
    with pytest.raises(TypeError, match="geometry"):
        Dataset(*rows)  # no default: CIFAR-10's is not assumed
    with pytest.raises(TypeError, match="states the Geometry of its rows"):
        Dataset(*rows, geometry=None)
    with pytest.raises(ValueError, match="X_val has shape"):
        Dataset(X, y, X[:1, :784], y[:1], X[:1], y[:1], CLASS_NAMES, "here",
                geometry=CIFAR10_GEOMETRY)
    assert Dataset(*rows, geometry=CIFAR10_GEOMETRY).geometry.D == 3072


def test_test_time_views_need_a_geometry():
    from numpy_mlp.nn.model import FullyConnectedNet
    from numpy_mlp.training.inference import predict_labels, probabilities

    X = np.zeros((2, 3072), np.uint8)
    model, prep = FullyConnectedNet(hidden_dim=4, seed=0), Preprocessor("per_image", None)
    for f in (predict_labels, probabilities):
        with pytest.raises(ValueError, match="geometry"):
            f(model, prep, X, tta_shift=1)
        assert len(f(model, prep, X, tta_shift=1, geometry=CIFAR10_GEOMETRY)) == 2


def test_to_images_is_channel_first_to_hwc():
    X = np.zeros((2, 3072), dtype=np.uint8)
    X[1, 0] = 10  # red, row 0, col 0
    X[1, 1024 + 5] = 20  # green, row 0, col 5
    X[1, 2048 + 32 * 3 + 1] = 30  # blue, row 3, col 1
    img = to_images(X, CIFAR10_GEOMETRY)
    assert img.shape == (2, 32, 32, 3) and img.dtype == np.uint8
    assert img[1, 0, 0, 0] == 10 and img[1, 0, 5, 1] == 20 and img[1, 3, 1, 2] == 30
    assert img.sum() == 60
    assert to_images(X[1], CIFAR10_GEOMETRY).shape == (32, 32, 3)


# ------------------------------------------------------------------ the real data


@pytest.mark.slow
def test_real_cifar10(cifar_dir):
    start = time.perf_counter()
    data = load_cifar10(cifar_dir, download=False, progress=False)
    seconds = time.perf_counter() - start
    print(f"loaded real CIFAR-10 in {seconds:.2f} s")
    assert (len(data.X_train), len(data.X_val), len(data.X_test)) == (45000, 5000, 10000)
    for X, y in [(data.X_train, data.y_train), (data.X_val, data.y_val),
                 (data.X_test, data.y_test)]:
        assert X.dtype == np.uint8 and X.shape[1] == 3072 and y.dtype == np.int64
        assert len(X) == len(y)
        assert set(np.unique(y)) == set(range(10))
    assert data.class_names == CLASS_NAMES
    assert data.source == str(cifar_dir)
    assert row_set(data.X_val[:500]).isdisjoint(row_set(data.X_train))
    assert data.X_train[:1000].std() > 10  # real images, not zeros


# ------------------------------------------------------------------ hostile pickles: bounded builds
# Each of these is a few bytes to a few MB of pickle that, read by plain pickle + NumPy, crashes
# the interpreter, exhausts memory or takes unbounded time.


class _Reduce:
    """Unpickles as ``func(*args)`` followed, if ``state`` is given, by a BUILD of ``state``."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _array_pickle(shape, dtype, raw):
    """NumPy's own pickle of an array, with the state (shape, dtype, data) chosen freely."""
    from numpy._core.multiarray import _reconstruct
    return pickle.dumps(_Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                                (1, shape, dtype, False, raw)), protocol=4)


def _nested_labels(depth, width=10):
    """A list of ``width`` references to a list of ... ``width`` zeros: width**depth labels."""
    level = [0] * width
    for _ in range(depth - 1):
        level = [level] * width
    return level


def _deep_tuple_key(depth):
    """A dict whose one key is a tuple nested ``depth`` deep (hashing it recurses ``depth``)."""
    return b"\x80\x04}" + b")" + b"\x85" * depth + b"K\x01s."


def _hostile_pickles():
    from numpy._core.multiarray import scalar
    plain = pickle.dumps(np.zeros(3, np.uint8), protocol=4)
    return {
        # (pickle bytes, words in the message)
        "object array shorter than its shape": (
            _array_pickle((10**6,), np.dtype("O"), [1]), "dtype '|O'"),
        "array data shorter than its shape": (
            _array_pickle((100,), np.dtype("u1"), b"\0" * 10), "data is not 100 bytes"),
        "array of a structured dtype": (
            _array_pickle((1,), np.dtype([("a", "u1")]), b"\0"), "only numbers"),
        "numpy.ndarray called with a huge shape": (
            pickle.dumps(_Reduce(np.ndarray, ((10**12,), "u1")), protocol=4), "numpy.ndarray"),
        "object scalar": (
            pickle.dumps(_Reduce(scalar, (np.dtype("O"), b"\0" * 8)), protocol=4), "dtype '|O'"),
        "a nested tuple as a dict key": (_deep_tuple_key(1000), "dict key"),
        "a tuple nested 10**6 deep as a dict key": (_deep_tuple_key(10**6), "250,000 opcodes"),
        "a set": (pickle.dumps({b"labels": {1, 2}}, protocol=4), "opcode EMPTY_SET"),
        "an item set on an array": (plain[:-1] + b"K\x00]s.", "something other than a dict"),
        "an append to a dict": (b"\x80\x04}K\x01a.", "something other than a list"),
        "a 4 GB string declared in 20 bytes": (b"\x80\x04B\xff\xff\xff\xff" + b"x" * 10,
                                               "truncated"),
    }


@pytest.mark.parametrize("case", list(_hostile_pickles()))
def test_hostile_pickle_is_refused_before_it_is_built(case):
    raw, words = _hostile_pickles()[case]
    with pytest.raises(DataError, match="x") as err:
        safe_load(io.BytesIO(raw), name="x")
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_dtype_state_cannot_set_the_object_flag():
    """A pickled dtype state with NumPy's object flags set would make bytes be read as pointers."""
    raw = pickle.dumps(np.arange(4, dtype=np.uint8), protocol=4)
    # the dtype state ends with flags 0 (BININT1 0, TUPLE, MEMOIZE, BUILD): make it 63
    assert raw.count(b"K\x00t\x94b") == 1
    tampered = raw.replace(b"K\x00t\x94b", b"K?t\x94b")  # NPY_OBJECT_DTYPE_FLAGS
    # control: NumPy itself takes the flags and breaks (an internal error), in a child process
    code = f"import pickle; pickle.loads({tampered!r})"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode != 0
    out = safe_load(io.BytesIO(tampered), name="x")
    assert out.dtype == np.uint8 and not out.dtype.hasobject and out.tolist() == [0, 1, 2, 3]
    assert not np.dtype("u1").hasobject  # NumPy's shared dtype untouched


def test_big_endian_arrays_are_read_and_leave_numpy_alone():
    """The byte order is set on a copy of the dtype, never on NumPy's shared np.dtype('i8')."""
    out = safe_load(io.BytesIO(pickle.dumps(np.arange(3, dtype=">i8"), protocol=4)), name="x")
    assert out.tolist() == [0, 1, 2]
    assert np.dtype("i8").byteorder == "=" and np.arange(2).tobytes()[0] == 0


def test_a_file_longer_than_the_bound_is_refused():
    raw = dumps(batch_dict(np.zeros((3, 3072), np.uint8), [0, 1, 2], "b"), "py2")
    assert safe_load(io.BytesIO(raw), name="x", max_bytes=len(raw))[b"labels"] == [0, 1, 2]
    with pytest.raises(DataError, match=f"x is larger than {len(raw) - 1:,} bytes"):
        safe_load(io.BytesIO(raw), name="x", max_bytes=len(raw) - 1)


def _labels_cases():
    nested = _nested_labels(10)  # 10**10 labels
    return {
        "nested lists, 10**10 labels": [nested[0]] * 5,
        "the nested list itself": nested,
        "a tuple": (0, 1, 2, 3, 4),
        "bools": [True, False, True, False, True],
        "floats": [0.0, 1.0, 2.0, 3.0, 4.0],
        "strings": [b"0", b"1", b"2", b"3", b"4"],
        "a 2-D array": np.zeros((5, 1), np.int64),
        "a float array": np.zeros(5, np.float32),
        "a huge int": [0, 1, 2, 3, 10**100],
        "a uint64 array beyond int64": np.array([0, 1, 2, 3, 2**63], np.uint64),
    }


@pytest.mark.parametrize("case", list(_labels_cases()))
def test_labels_are_checked_before_numpy_converts_them(tmp_path, case):
    write_cifar_dir(tmp_path, "py3")
    X = np.zeros((5, 3072), np.uint8)
    raw = pickle.dumps({b"data": X, b"labels": _labels_cases()[case]}, protocol=4)
    assert len(raw) < 16000 + X.nbytes  # a small file, whatever it describes
    (tmp_path / "data_batch_3").write_bytes(raw)
    start = time.perf_counter()
    with pytest.raises(DataError, match="data_batch_3 is not a valid CIFAR-10 batch") as err:
        load(tmp_path)
    assert time.perf_counter() - start < 10 and "\n" not in str(err.value)
    assert "labels" in str(err.value)


def test_a_labels_bomb_is_a_few_hundred_bytes():
    """The hostile case above is as small as the issue says: nested lists sharing references."""
    raw = pickle.dumps({b"labels": _nested_labels(10)}, protocol=4)
    assert len(raw) < 300


def test_labels_as_a_1d_array_or_numpy_ints_are_read(tmp_path):
    arrays = write_cifar_dir(tmp_path, "py3")
    X, y = arrays["data_batch_1"]
    (tmp_path / "data_batch_1").write_bytes(
        dumps({b"data": X, b"labels": np.asarray(y, dtype=np.uint8)}, "py3"))
    (tmp_path / "data_batch_2").write_bytes(
        dumps({b"data": arrays["data_batch_2"][0],
               b"labels": [np.int64(v) for v in arrays["data_batch_2"][1]]}, "py2"))
    data = load(tmp_path, val_size=0)
    np.testing.assert_array_equal(data.y_train[:2 * len(y)],
                                  np.concatenate([y, arrays["data_batch_2"][1]]))


def _bad_meta():
    names = [n.encode() for n in CLASS_NAMES]
    return {
        "eleven names": names + [b"extra"],
        "a name of 101 characters": names[:9] + [b"x" * 101],
        "an empty name": names[:9] + [b""],
        "a name with a newline": names[:9] + ["two\nlines"],
        "a name with a terminal escape": names[:9] + ["\x1b[2J"],
        "a name that is a number": names[:9] + [7],
        "names as a tuple": tuple(names),
        "names of a megabyte each": [n * 100_000 for n in names],  # refused by size: no build
    }


@pytest.mark.parametrize("case", list(_bad_meta()))
def test_bad_class_names_are_refused(tmp_path, case):
    write_cifar_dir(tmp_path, "py2")
    meta = meta_dict()
    meta[b"label_names"] = _bad_meta()[case]
    (tmp_path / "batches.meta").write_bytes(dumps(meta, "py3"))
    with pytest.raises(DataError, match="batches.meta") as err:
        load(tmp_path)
    assert "\n" not in str(err.value)


def test_class_names_of_the_longest_allowed_length_are_read(tmp_path):
    from numpy_mlp.data.cifar10 import MAX_NAME_CHARS
    write_cifar_dir(tmp_path, "py3")
    meta = meta_dict()
    meta[b"label_names"] = [chr(ord("a") + i).encode() * MAX_NAME_CHARS for i in range(10)]
    (tmp_path / "batches.meta").write_bytes(dumps(meta, "py2"))
    assert load(tmp_path).class_names[3] == "d" * MAX_NAME_CHARS


# ------------------------------------------------------------------ hostile archives: bounded reads


def test_an_archive_that_decompresses_beyond_the_bound_is_refused(tmp_path):
    from numpy_mlp.data.cifar10 import read_archive
    src = tmp_path / "src"
    write_cifar_dir(src, "py3")
    archive = write_archive(tmp_path / "a.tar.gz", src)
    read_archive(archive)  # control: fine with the default bound
    with pytest.raises(DataError, match="decompresses to more than 100,000 bytes"):
        read_archive(archive, max_bytes=100_000)


def test_a_huge_tar_header_is_refused_before_it_is_read(tmp_path):
    """tarfile reads a GNU long name whole; 33 MB of it (34 kB compressed) must not be read."""
    import tarfile

    from numpy_mlp.files.safe_pickle import MAX_BYTES
    src = tmp_path / "src"
    write_cifar_dir(src, "py3")
    info = tarfile.TarInfo("x" * (MAX_BYTES + 1000))
    (tmp_path / "data").mkdir()
    archive = write_archive(tmp_path / "data" / "cifar-10-python.tar.gz", src, [info])
    good = write_archive(tmp_path / "good.tar.gz", src)
    assert archive.stat().st_size - good.stat().st_size < 100_000
    with pytest.raises(DataError, match="tar header of more than"):
        load(tmp_path / "data")


@pytest.mark.parametrize("case", ["member too large", "member twice"])
def test_archive_members_are_bounded_and_unique(tmp_path, case):
    import tarfile
    src = tmp_path / "src"
    write_cifar_dir(src, "py3")
    if case == "member too large":
        (src / "batches.meta").write_bytes(dumps({b"label_names": [b"x" * 70_000] * 10}, "py3"))
        extra, words = [], "batches.meta has 70,0"
    else:
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = 3
        extra, words = [info], "holds cifar-10-batches-py/test_batch twice"
    (tmp_path / "data").mkdir()
    write_archive(tmp_path / "data" / "cifar-10-python.tar.gz", src, extra)
    with pytest.raises(DataError, match=words):
        load(tmp_path / "data")


# ------------------------------------------------------------------ folders that are not created


def test_a_missing_parent_is_never_created_for_a_download(tmp_path, monkeypatch):
    """An explicit path whose parent is gone: one line, no folder tree, no network."""
    from numpy_mlp.data import download

    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(download.urllib.request, "urlopen", no_network)
    folder = tmp_path / "gone" / "deeper" / "cifar"
    with pytest.raises(DataError, match="does not exist") as err:
        load_cifar10(folder, download=True, progress=False)
    assert str(tmp_path / "gone" / "deeper") in str(err.value) and "\n" not in str(err.value)
    assert os.listdir(tmp_path) == []


def test_create_false_refuses_a_missing_folder(tmp_path, monkeypatch):
    from numpy_mlp.data import download
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda *a, **k: 1 / 0)
    with pytest.raises(DataError, match="does not exist") as err:
        load_cifar10(tmp_path / "moved", download=True, create=False, progress=False)
    assert str(tmp_path / "moved") in str(err.value)
    assert os.listdir(tmp_path) == []
    write_cifar_dir(tmp_path / "there", "py3")  # an existing folder is read as always
    assert load_cifar10(tmp_path / "there", create=False, val_size=0).X_train.shape[0] == N_TRAIN
