"""Export a saved model as ONNX, its input normalisation included (``numpy-mlp export``).

The exported graph takes the images as they are stored and gives class probabilities:

    images         (N, D) uint8, one image per row, channel-first as in CIFAR-10's batch files
    -> Cast        (N, D) float of the model's dtype
    -> per_image:  minus the row's mean, times 1 / max(row std, eps)       (preprocess's formula)
       per_channel: minus the training mean m, times r = 1 / max(std, eps)  (constants (D,))
    -> Gemm W1 b1 -> [LayerNormalization] -> Relu -> ... -> Gemm WL bL      (N, H1) ... (N, C)
    -> Softmax     probabilities (N, C)

Dropout is the identity here; batch norm is folded into the Gemm beside it (exact, as in
evaluation: ``FullyConnectedNet.eval_params``); GELU is its tanh form in Mul/Add/Tanh nodes
(opset 17 has no Gelu); a residual net's blocks end in an Add of the stream and the branch.

N is dynamic. The layout of a row is stated in the model, since a graph cannot see it (an
image flattened height x width x channel is a row of the same length, and gets wrong
classes): in the input's doc_string (:func:`input_doc`) and in ``metadata_props`` under
``input_layout`` ("NCHW, flattened") and ``image_shape`` (a JSON [C, H, W]). The class names
are there too (key ``class_names``, a JSON list in label order). The probabilities are
those of a single view: a run's test-time shift (``--tta-shift``) averages several views
outside the network and is not exported.

The per_channel statistics are kept as a Sub and a Mul rather than folded into W1 (as
``Preprocessor.folded`` does for evaluation): they cost 2 operations per input value against
the Gemm's 2H, and they make the exported normalisation the plain path's exactly.

The ``onnx`` package is imported only here, when exporting (the extra ``numpy-mlp[onnx]``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .data.dataset import ROW_LAYOUT
from .data.preprocessing import EPS
from .errors import ModelFileError, UserError
from .files.atomic import atomic_write, check_output_path
from .training.model_file import MODEL_NAME, load_model
from .version import __version__

INPUT_NAME = "images"  # (N, D) uint8
OUTPUT_NAME = "probabilities"  # (N, C) float
BATCH = "N"  # the name of the dynamic batch dimension
CLASS_NAMES_KEY = "class_names"  # metadata_props key: a JSON list of the C names
LAYOUT_KEY, LAYOUT = "input_layout", "NCHW, flattened"  # metadata_props: how a row is laid out
SHAPE_KEY = "image_shape"  # metadata_props key: a JSON [C, H, W], the shape before flattening
OPSET = 17  # ReduceMean still takes its axes as an attribute; onnxruntime >= 1.13 runs it
IR_VERSION = 8  # the IR version of opset 17, so that older runtimes read the file too

MAX_BYTES = 2**31 - 2**20  # protobuf refuses messages of 2 GiB; leave room for the graph


def input_doc(geometry):
    """The input's layout in one line, for a model of ``geometry``: what the ONNX model's
    input says of itself (``uint8 (N, 3072) = (N, C*H*W), C, H, W = 3, 32, 32: each image
    channel-first ...``)."""
    C, H, W = geometry.channels, geometry.height, geometry.width
    grey = "; a grey image's (H, W) pixels need only .reshape(N, -1)" if C == 1 else ""
    return (f"uint8 ({BATCH}, {geometry.D}) = ({BATCH}, C*H*W), C, H, W = {C}, {H}, {W}: "
            f"{ROW_LAYOUT}{grey}")


def _load_for_export(path):
    """The model file's network, its input preparation, its class names and geometry.

    The one place that reads a saved model for export, through
    :func:`~numpy_mlp.training.model_file.load_model` and the Preprocessor's public
    attributes (``mode``, ``stats``, ``dtype``).

    Returns:
        ``(model, preprocessor, class_names, geometry)``: a FullyConnectedNet, a
        Preprocessor (uint8 (N, D) -> float (N, D)), a tuple of C names and the Geometry of
        its input rows.
    """
    saved = load_model(path)
    return saved.model, saved.preprocessor, saved.class_names, saved.geometry


def _model_path_of(run):
    """``run`` itself if it is a file, else the model file in the run folder ``run``."""
    run = Path(run)
    if run.is_dir():
        if not (run / MODEL_NAME).is_file():
            raise ModelFileError(f"{run} has no {MODEL_NAME}: give a run folder written by "
                                 f"'numpy-mlp train' (a finished run), or a model .npz file")
        return run / MODEL_NAME
    if not run.exists():
        raise ModelFileError(f"{run} does not exist: give a run folder written by "
                             f"'numpy-mlp train' or its {MODEL_NAME}")
    return run


def build_onnx(model, preprocessor, class_names, geometry):
    """The ONNX model: uint8 images (N, D) in, probabilities (N, C) out (see the module doc).

    Args:
        model: a FullyConnectedNet (its ``params``, ``num_layers``, ``input_dim``, ``dtype``).
        preprocessor: a Preprocessor (its ``mode``, ``stats``, ``dtype``).
        class_names: the C class names, in label order.
        geometry: the Geometry of its input rows, stated in the model (:func:`input_doc`).
    Returns:
        an ``onnx.ModelProto`` (the graph is checked with ``onnx.checker`` by the tests).
    Raises:
        UserError: the onnx package is not installed, or the model is too large for one file.
    """
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as e:
        raise UserError(f"ONNX export needs the onnx package ({e}): "
                        f"pip install 'numpy-mlp[onnx]'") from None

    dtype = np.dtype(model.dtype)
    size = sum(v.nbytes for v in model.params.values())
    if size > MAX_BYTES:
        raise UserError(f"the model's parameters take {size / 2**30:.1f} GiB; one ONNX file "
                        f"holds less than 2 GiB: export a smaller model")
    float_type = helper.np_dtype_to_tensor_dtype(dtype)
    nodes, constants = [], []

    def const(name, value):
        constants.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    h = node("Cast", [INPUT_NAME], "pixels", to=float_type)  # (N, D), exact for 0..255
    h = _normalisation(node, const, h, preprocessor, model.input_dim)  # (N, D)
    h = _network(node, const, h, model)  # (N, C) scores
    node("Softmax", [h], OUTPUT_NAME, axis=1)  # (N, C)

    graph = helper.make_graph(
        nodes, "numpy_mlp",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, [BATCH, model.input_dim],
                                       doc_string=input_doc(geometry))],
        [helper.make_tensor_value_info(
            OUTPUT_NAME, float_type, [BATCH, len(class_names)],
            doc_string=f"({BATCH}, {len(class_names)}) class probabilities, in the order of "
                       f"the metadata's {CLASS_NAMES_KEY}")],
        initializer=constants,
        doc_string=f"{INPUT_NAME}: {input_doc(geometry)}; {OUTPUT_NAME}: ({BATCH}, "
                   f"{len(class_names)}) class probabilities")
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="numpy-mlp", producer_version=__version__,
                                   doc_string=repr(model))
    onnx_model.ir_version = IR_VERSION
    helper.set_model_props(onnx_model, {
        CLASS_NAMES_KEY: json.dumps(list(class_names)), "preprocessing": preprocessor.mode,
        LAYOUT_KEY: LAYOUT,
        SHAPE_KEY: json.dumps([geometry.channels, geometry.height, geometry.width])})
    return onnx_model


def _network(node, const, h, model):
    """The nodes of the network (in evaluation) on the normalised inputs ``h`` (N, D); returns
    the scores' name (N, C). The same operations as ``FullyConnectedNet.forward_after_first``
    on ``eval_params()``, in its order."""
    params, norm = model.eval_params()  # batch norm folded into the Gemms: norm none or layer
    last = model.num_layers

    def affine(i, x, name):
        W, b = (const(k, params[k]) for k in (f"W{i}", f"b{i}"))
        return node("Gemm", [x, W, b], name)

    def normalise(k, x):
        if norm == "none":
            return x
        gamma, beta = (const(f"{p}{k}", params[f"{p}{k}"]) for p in ("gamma", "beta"))
        return node("LayerNormalization", [x, gamma, beta], f"norm{k}", axis=-1, epsilon=1e-5)

    def act(x, name):
        if model.activation == "relu":
            return node("Relu", [x], name)
        # 0.5 x (1 + tanh(c (x + 0.044715 x^3))), layers.gelu_forward's formula
        cube = node("Mul", [node("Mul", [x, x], f"{name}_sq"), x], f"{name}_cube")
        inner = node("Add", [x, node("Mul", [cube, const(f"{name}_k", 0.044715)],
                                     f"{name}_kcube")], f"{name}_inner")
        t = node("Tanh", [node("Mul", [inner, const(f"{name}_c", np.sqrt(2.0 / np.pi))],
                               f"{name}_scaled")], f"{name}_tanh")
        one_plus = node("Add", [t, const(f"{name}_one", 1.0)], f"{name}_1pt")
        half_x = node("Mul", [x, const(f"{name}_half", 0.5)], f"{name}_halfx")
        return node("Mul", [half_x, one_plus], name)

    h = affine(1, h, "affine1" if last > 1 else "scores")  # (N, H1)
    if model.arch.residual:
        for k in range(1, model.blocks + 1):
            a = act(affine(2 * k, normalise(k, h), f"block{k}_in"), f"block{k}_act")  # (N, eH)
            r = affine(2 * k + 1, a, f"block{k}_out")  # (N, H)
            h = node("Add", [h, r], f"stream{k}")
        return affine(last, normalise(model.blocks + 1, h), "scores")
    for i in range(2, last + 1):
        h = act(normalise(i - 1, h), f"hidden{i - 1}")
        h = affine(i, h, "scores" if i == last else f"affine{i}")  # (N, H_i); (N, C)
    return h


def _normalisation(node, const, x, preprocessor, D):
    """The nodes of ``preprocessor`` on the float pixels ``x`` (N, D); returns their output.

    The same operations as :func:`~numpy_mlp.data.preprocessing.preprocess`, in its order,
    so that the exported network sees what ours does (up to the rounding of the sums).
    """
    if preprocessor.mode == "per_image":
        mean = node("ReduceMean", [x], "row_mean", axes=[1], keepdims=1)  # (N, 1)
        centred = node("Sub", [x, mean], "centred")  # (N, D)
        squares = node("Mul", [centred, centred], "squares")
        var = node("ReduceMean", [squares], "row_var", axes=[1], keepdims=1)  # (N, 1)
        std = node("Max", [node("Sqrt", [var], "row_std"), const("eps", EPS)], "row_std_eps")
        inv_std = node("Reciprocal", [std], "row_inv_std")
        return node("Mul", [centred, inv_std], "normalised")  # (N, D)
    if preprocessor.mode == "per_channel":
        stats = preprocessor.stats
        plane = D // len(stats["mean"])  # values per channel: the rows are channel-first
        mean = np.asarray(stats["mean"], np.float64)  # (channels,)
        inv_std = 1.0 / np.maximum(np.asarray(stats["std"], np.float64), EPS)
        centred = node("Sub", [x, const("channel_mean", np.repeat(mean, plane))], "centred")
        return node("Mul", [centred, const("channel_inv_std", np.repeat(inv_std, plane))],
                    "normalised")  # (N, D)
    raise UserError(f"preprocessing {preprocessor.mode!r} has no ONNX export; use a per_image or "
                    f"per_channel model")


def export_onnx(run, path):
    """Write the model of ``run`` (a run folder or a model .npz) to ``path`` as ONNX, atomically.

    Returns:
        the Path written.
    Raises:
        ModelFileError: ``run`` is missing or holds no readable model.
        UserError: onnx is not installed, or ``path`` cannot be written (or is a file
        other than an .onnx, which is never written over).
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--onnx {path} is a folder; give a file name, e.g. {path / 'model.onnx'}")
    check_output_path(path, "--onnx")  # a device, a FIFO or a link: refused before any work
    if path.is_file() and path.suffix != ".onnx":  # e.g. the model.npz itself, by a slip
        raise UserError(f"--onnx {path} exists and is not an .onnx file; choose another name "
                        f"(an existing .onnx file is replaced)")
    model, preprocessor, class_names, geometry = _load_for_export(_model_path_of(run))
    onnx_model = build_onnx(model, preprocessor, class_names, geometry)
    data = onnx_model.SerializeToString()
    try:
        atomic_write(path, lambda f: f.write(data))
    except OSError as e:
        reason = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else str(e)
        raise UserError(f"cannot write --onnx {path} ({reason}); choose a file in a writable "
                        f"folder") from None
    return path
