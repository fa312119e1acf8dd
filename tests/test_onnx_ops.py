"""Each converter in weft.onnx.ops against onnxruntime, on small hand-built graphs.

The exported models in test_onnx_load.py cover the common paths; these cases cover the
attributes and ops those models do not emit (ConvTranspose, asymmetric pads, Split forms,
allowzero, Where/Equal, pools with ceil_mode, older- and newer-opset input forms).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import weft.onnx

ort = pytest.importorskip("onnxruntime")
rng = np.random.default_rng(0)

F32 = TensorProto.FLOAT
_ids = itertools.count()


def rand(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def ints(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def node(op: str, inputs: list[str], outputs: list[str] | None = None, **attrs) -> onnx.NodeProto:
    name = f"{op.lower()}_{next(_ids)}"
    return helper.make_node(op, inputs, outputs or ["y"], name=name, **attrs)


# id -> (nodes, inputs, initializers, outputs {name: (type, rank)}, opset)
CASES = {
    "conv_transpose": (
        [node("ConvTranspose", ["x", "w", "b"], strides=[2, 2], pads=[1, 1, 1, 1],
              output_padding=[1, 1])],
        {"x": rand(2, 2, 5, 5)}, {"w": rand(2, 3, 3, 3), "b": rand(3)}, {"y": (F32, 4)}, 17,
    ),
    "conv_transpose_asymmetric_pads": (
        [node("ConvTranspose", ["x", "w"], strides=[2, 2], pads=[0, 1, 1, 0], group=2)],
        {"x": rand(2, 4, 4, 4)}, {"w": rand(4, 1, 3, 3)}, {"y": (F32, 4)}, 17,
    ),
    "conv_asymmetric_pads_groups": (
        [node("Conv", ["x", "w", "b"], pads=[1, 0, 0, 1], strides=[2, 1], group=2)],
        {"x": rand(2, 4, 7, 7)}, {"w": rand(6, 2, 3, 3), "b": rand(6)}, {"y": (F32, 4)}, 13,
    ),
    "conv1d_dilated": (
        [node("Conv", ["x", "w"], dilations=[2], pads=[2, 2])],
        {"x": rand(2, 3, 9)}, {"w": rand(4, 3, 3)}, {"y": (F32, 3)}, 13,
    ),
    "conv_and_max_pool_auto_pad_same": (
        [
            node("Conv", ["x", "w"], ["c"], auto_pad="SAME_UPPER", strides=[2, 2]),
            node("MaxPool", ["c"], kernel_shape=[3, 2], auto_pad="SAME_LOWER", strides=[1, 2]),
        ],
        {"x": rand(2, 3, 7, 8)}, {"w": rand(4, 3, 3, 3)}, {"y": (F32, 4)}, 13,
    ),
    "gemm_transposes_alpha_beta": (
        [node("Gemm", ["a", "w", "c"], transA=1, alpha=0.5, beta=2.0)],
        {"a": rand(4, 2)}, {"w": rand(4, 3), "c": rand(3)}, {"y": (F32, 2)}, 13,
    ),
    "activations": (
        [
            node("LeakyRelu", ["x"], ["a"], alpha=0.2),
            node("Erf", ["a"], ["b"]),
            node("Sigmoid", ["b"], ["c"]),
            node("Tanh", ["x"], ["d"]),
            node("Add", ["c", "d"], ["e"]),
            node("LogSoftmax", ["e"], ["y"], axis=1),
        ],
        {"x": rand(3, 5)}, {}, {"y": (F32, 2)}, 13,
    ),
    "gelu_exact_and_tanh": (
        [node("Gelu", ["x"], ["a"]), node("Gelu", ["a"], ["y"], approximate="tanh")],
        {"x": rand(3, 5)}, {}, {"y": (F32, 2)}, 20,
    ),
    "softmax_axis_0": ([node("Softmax", ["x"], axis=0)], {"x": rand(3, 5)}, {}, {"y": (F32, 2)}, 13),
    "arithmetic": (
        [
            node("Abs", ["x"], ["a"]),
            node("Sqrt", ["a"], ["b"]),
            node("Pow", ["x", "three"], ["c"]),
            node("Sub", ["b", "c"], ["d"]),
            node("Div", ["d", "two"], ["e"]),
            node("Mul", ["e", "x"], ["y"]),
        ],
        {"x": rand(3, 4)},
        {"three": np.array(3.0, np.float32), "two": np.array(2.0, np.float32)},
        {"y": (F32, 2)}, 13,
    ),
    "average_pool_ceil_exclude_pad": (
        [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
              ceil_mode=1)],
        {"x": rand(2, 3, 8, 8)}, {}, {"y": (F32, 4)}, 19,
    ),
    "average_pool_include_pad": (
        [node("AveragePool", ["x"], kernel_shape=[2, 2], pads=[1, 1, 1, 1],
              count_include_pad=1)],
        {"x": rand(2, 3, 5, 5)}, {}, {"y": (F32, 4)}, 13,
    ),
    "max_pool_dilated_ceil": (
        [node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2], dilations=[2, 2],
              ceil_mode=1)],
        {"x": rand(2, 3, 9, 9)}, {}, {"y": (F32, 4)}, 13,
    ),
    "global_pools": (
        [node("GlobalAveragePool", ["x"], ["a"]), node("GlobalMaxPool", ["x"], ["b"]),
         node("Add", ["a", "b"], ["y"])],
        {"x": rand(2, 3, 5, 4)}, {}, {"y": (F32, 4)}, 13,
    ),
    "split_sizes_input_opset13": (
        [node("Split", ["x", "sizes"], ["y", "z"], axis=1)],
        {"x": rand(2, 5)}, {"sizes": ints(2, 3)}, {"y": (F32, 2), "z": (F32, 2)}, 13,
    ),
    "split_num_outputs_uneven_opset18": (
        [node("Split", ["x"], ["y", "z"], axis=1, num_outputs=2)],
        {"x": rand(2, 5)}, {}, {"y": (F32, 2), "z": (F32, 2)}, 18,
    ),
    "expand_bidirectional": (
        [node("Expand", ["x", "shape"])],
        {"x": rand(3, 1)}, {"shape": ints(2, 1, 4)}, {"y": (F32, 3)}, 13,
    ),
    "where_equal_cast": (
        [
            node("Equal", ["a", "b"], ["same"]),
            node("Where", ["same", "x", "zero"], ["w"]),
            node("Cast", ["same"], ["s"], to=F32),
            node("Add", ["w", "s"], ["y"]),
        ],
        {"a": rng.integers(0, 2, (4, 3)), "b": rng.integers(0, 2, (4, 3)), "x": rand(4, 3)},
        {"zero": np.array(0.0, np.float32)}, {"y": (F32, 2)}, 13,
    ),
    "constant_of_shape_from_dynamic_shape": (
        [
            node("Shape", ["x"], ["s"], start=0, end=2),
            node("ConstantOfShape", ["s"], ["c"],
                 value=numpy_helper.from_array(np.array([1.5], np.float32))),
            node("Unsqueeze", ["c", "last"], ["u"]),
            node("Add", ["x", "u"], ["y"]),
        ],
        {"x": rand(3, 2, 4)}, {"last": ints(-1)}, {"y": (F32, 3)}, 15,
    ),
    "reductions_axes_as_attribute_and_input": (
        [
            node("ReduceMean", ["x"], ["m"], axes=[-1], keepdims=1),
            node("ReduceSum", ["x", "ax2"], ["s"], keepdims=0),
            node("ReduceMax", ["x"], ["mx"], axes=[1, 2], keepdims=0),
            node("Squeeze", ["m", "ax2"], ["m2"]),
            node("Add", ["m2", "s"], ["ms"]),
            node("ReduceSum", ["ms", "ax1"], ["t"], keepdims=0),
            node("Add", ["t", "mx"], ["y"]),
        ],
        {"x": rand(2, 3, 4)}, {"ax1": ints(1), "ax2": ints(2)}, {"y": (F32, 1)}, 13,
    ),
    "reduce_mean_axes_input_opset18": (
        [node("ReduceMean", ["x", "axes"], keepdims=0)],
        {"x": rand(2, 3, 4)}, {"axes": ints(0, 2)}, {"y": (F32, 1)}, 18,
    ),
    "cast_truncates": (
        [node("Cast", ["x"], ["i"], to=TensorProto.INT32), node("Cast", ["i"], to=F32)],
        {"x": rand(3, 4) * 3}, {}, {"y": (F32, 2)}, 13,
    ),
    "flatten_axis_2": ([node("Flatten", ["x"], axis=2)], {"x": rand(2, 3, 4, 5)}, {},
                       {"y": (F32, 2)}, 13),
    "slice_steps_negative_starts": (
        [node("Slice", ["x", "starts", "ends", "axes", "steps"])],
        {"x": rand(4, 10)}, {"starts": ints(-8), "ends": ints(1000), "axes": ints(-1),
                             "steps": ints(3)},
        {"y": (F32, 2)}, 13,
    ),
    "gather_matrix_of_indices": (
        [node("Gather", ["x", "idx"], axis=1)],
        {"x": rand(2, 4, 3)}, {"idx": np.array([[0, 2], [1, -1]], np.int64)}, {"y": (F32, 4)}, 13,
    ),
    "gather_embedding_rows": (
        [node("Gather", ["table", "ids"], axis=0)],
        {"ids": rng.integers(0, 6, (2, 3))}, {"table": rand(6, 4)}, {"y": (F32, 3)}, 13,
    ),
    "reshape_zero_copies_dim": (
        [node("Reshape", ["x", "shape"])],
        {"x": rand(2, 3, 4)}, {"shape": ints(0, -1)}, {"y": (F32, 2)}, 13,
    ),
    "reshape_allowzero_opset14": (
        [node("Reshape", ["x", "shape"], allowzero=1)],
        {"x": rand(2, 3, 4)}, {"shape": ints(3, -1)}, {"y": (F32, 2)}, 14,
    ),
    "squeeze_all_unsqueeze_two": (
        [node("Squeeze", ["x"], ["s"]), node("Unsqueeze", ["s", "axes"])],
        {"x": rand(1, 3, 1, 2)}, {"axes": ints(0, -1)}, {"y": (F32, 4)}, 13,
    ),
    "concat_transpose_identity": (
        [node("Transpose", ["x"], ["t"]), node("Identity", ["t"], ["i"]),
         node("Concat", ["t", "i"], axis=-1)],
        {"x": rand(2, 3, 4)}, {}, {"y": (F32, 3)}, 13,
    ),
    "layer_norm_two_axes": (
        [node("LayerNormalization", ["x", "g", "b"], axis=-2, epsilon=1e-3)],
        {"x": rand(2, 3, 4)}, {"g": rand(3, 4), "b": rand(3, 4)}, {"y": (F32, 3)}, 17,
    ),
    "batch_norm_inference": (
        [node("BatchNormalization", ["x", "g", "b", "mean", "var"], epsilon=1e-3)],
        {"x": rand(2, 3, 4, 4)},
        {"g": rand(3), "b": rand(3), "mean": rand(3), "var": np.abs(rand(3)) + 0.5},
        {"y": (F32, 4)}, 15,
    ),
    "dropout_is_identity_in_eval": (
        [node("Dropout", ["x", "ratio"])],
        {"x": rand(3, 4)}, {"ratio": np.array(0.3, np.float32)}, {"y": (F32, 2)}, 13,
    ),
    "mod_clip_min_max_neg_exp": (
        [
            node("Mod", ["x", "three"], ["m"], fmod=1),
            node("Clip", ["m", "lo", "hi"], ["c"]),
            node("Neg", ["c"], ["n"]),
            node("Exp", ["n"], ["e"]),
            node("Max", ["e", "x"], ["y"]),
        ],
        {"x": rand(3, 4) * 5},
        {"three": np.array(3.0, np.float32), "lo": np.array(-1.0, np.float32),
         "hi": np.array(1.5, np.float32)},
        {"y": (F32, 2)}, 13,
    ),
    "shape_arithmetic_at_run_time": (
        [
            node("Shape", ["x"], ["s"]),
            node("Gather", ["s", "zero"], ["n"], axis=0),
            node("Unsqueeze", ["n", "zero_axis"], ["n1"]),
            node("Div", ["twelve", "two"], ["six"]),
            node("Concat", ["n1", "six", "two"], ["shape"], axis=0),
            node("Reshape", ["x", "shape"]),
        ],
        {"x": rand(3, 3, 4)},
        {"zero": np.array(0, np.int64), "zero_axis": ints(0), "twelve": ints(12),
         "two": ints(2)},
        {"y": (F32, 3)}, 13,
    ),
    "resize_nearest_scales": (
        [node("Resize", ["x", "", "scales"], mode="nearest",
              coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
        {"x": rand(2, 3, 4, 5)}, {"scales": np.array([1, 1, 2, 3], np.float32)},
        {"y": (F32, 4)}, 13,
    ),
    "resize_linear_sizes_from_shape": (
        [
            node("Shape", ["x"], ["s"]),
            node("Mul", ["s", "factor"], ["sizes"]),
            node("Resize", ["x", "", "", "sizes"], mode="linear",
                 coordinate_transformation_mode="half_pixel"),
        ],
        {"x": rand(2, 3, 4, 5)}, {"factor": ints(1, 1, 2, 2)}, {"y": (F32, 4)}, 19,
    ),
    "resize_cubic_align_corners": (
        [node("Resize", ["x", "", "scales"], mode="cubic",
              coordinate_transformation_mode="align_corners")],
        {"x": rand(1, 2, 4, 4)}, {"scales": np.array([1, 1, 2, 2], np.float32)},
        {"y": (F32, 4)}, 13,
    ),
    "pad_constant_reflect_edge": (
        [
            node("Pad", ["x", "p1", "fill"], ["a"]),
            node("Pad", ["a", "p2"], ["b"], mode="reflect"),
            node("Pad", ["b", "p3"], mode="edge"),
        ],
        {"x": rand(2, 3, 4, 4)},
        {"p1": ints(0, 0, 1, 0, 0, 0, 2, 1), "fill": np.array(0.5, np.float32),
         "p2": ints(0, 0, 2, 1, 0, 0, 1, 2), "p3": ints(0, 0, 0, 3, 0, 0, 0, 0)},
        {"y": (F32, 4)}, 13,
    ),
    "tile_trilu_cumsum_argmax": (
        [
            node("Tile", ["x", "reps"], ["t"]),
            node("Trilu", ["t", "k"], ["l"], upper=0),
            node("CumSum", ["l", "axis"], ["c"], exclusive=1, reverse=1),
            node("ArgMax", ["c"], ["am"], axis=1, keepdims=1),
            node("Cast", ["am"], ["amf"], to=F32),
            node("Add", ["c", "amf"], ["y"]),
        ],
        {"x": rand(3, 4)}, {"reps": ints(2, 1), "k": np.array(1, np.int64),
                            "axis": np.array(1, np.int64)},
        {"y": (F32, 2)}, 14,
    ),
    "more_activations": (
        [
            node("HardSigmoid", ["x"], ["a"], alpha=0.3, beta=0.4),
            node("HardSwish", ["x"], ["b"]),
            node("Softplus", ["x"], ["c"]),
            node("Sin", ["a"], ["d"]),
            node("Cos", ["b"], ["e"]),
            node("Floor", ["c"], ["f"]),
            node("Ceil", ["x"], ["g"]),
            node("Add", ["d", "e"], ["de"]),
            node("Add", ["f", "g"], ["fg"]),
            node("Add", ["de", "fg"], ["y"]),
        ],
        {"x": rand(3, 5) * 4}, {}, {"y": (F32, 2)}, 14,
    ),
    "logic_and_comparisons": (
        [
            node("LessOrEqual", ["x", "zero"], ["le"]),
            node("GreaterOrEqual", ["x", "minus"], ["ge"]),
            node("And", ["le", "ge"], ["both"]),
            node("Or", ["le", "ge"], ["either"]),
            node("Xor", ["both", "either"], ["one"]),
            node("Where", ["one", "x", "zero"]),
        ],
        {"x": rand(4, 5)},
        {"zero": np.array(0.0, np.float32), "minus": np.array(-0.5, np.float32)},
        {"y": (F32, 2)}, 16,
    ),
    "range_over_dynamic_length": (
        [
            node("Shape", ["x"], ["s"], start=1, end=2),
            node("Squeeze", ["s", "zero_axis"], ["n"]),
            node("Range", ["start", "n", "step"], ["r"]),
            node("Cast", ["r"], ["rf"], to=F32),
            node("Add", ["x", "rf"], ["y"]),
        ],
        {"x": rand(3, 6)},
        {"zero_axis": ints(0), "start": np.array(0, np.int64), "step": np.array(1, np.int64)},
        {"y": (F32, 2)}, 15,
    ),
}  # fmt: skip


def _model_file(case: str, folder: Path) -> Path:
    nodes, inputs, inits, outputs, opset = CASES[case]
    graph = helper.make_graph(
        nodes,
        case,
        [
            helper.make_tensor_value_info(
                name,
                helper.np_dtype_to_tensor_dtype(a.dtype),
                ["N", *a.shape[1:]],  # a dynamic first dimension, as exporters write
            )
            for name, a in inputs.items()
        ],
        [
            helper.make_tensor_value_info(name, t, [f"d{i}" for i in range(rank)])
            for name, (t, rank) in outputs.items()
        ],
        initializer=[numpy_helper.from_array(v, name) for v, name in _named(inits)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = folder / f"{case}.onnx"
    onnx.save(model, str(path))
    return path


def _named(inits: dict[str, np.ndarray]) -> list[tuple[np.ndarray, str]]:
    return [(value, name) for name, value in inits.items()]


@pytest.mark.parametrize("case", list(CASES))
def test_converter_matches_onnxruntime(case, tmp_path):
    path = _model_file(case, tmp_path)
    inputs = CASES[case][1]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, inputs)
    module = weft.onnx.load(path).eval()
    with torch.no_grad():
        got = module(*[torch.from_numpy(a) for a in inputs.values()])
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-5, atol=1e-5)


def test_dropout_drops_and_rescales_in_training(tmp_path):
    module = weft.onnx.load(_model_file("dropout_is_identity_in_eval", tmp_path)).train()
    x = torch.ones(200, 50)
    y = module(x)
    kept = y != 0
    assert 0.6 < kept.float().mean().item() < 0.8
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))


def test_run_time_shapes_follow_the_batch(tmp_path):
    module = weft.onnx.load(_model_file("shape_arithmetic_at_run_time", tmp_path))
    assert module(torch.randn(5, 3, 4)).shape == (5, 6, 2)
    assert [s.op_type for s in module.steps if s.shape_step] == ["Shape", "Gather", "Unsqueeze",
                                                                 "Concat"]  # fmt: skip


def test_supported_ops_cover_the_issue_list():
    listed = {
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Sqrt",
        "Erf",
        "Relu",
        "LeakyRelu",
        "Gelu",
        "Sigmoid",
        "Tanh",
        "Softmax",
        "LogSoftmax",
        "LayerNormalization",
        "BatchNormalization",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "Reshape",
        "Flatten",
        "Transpose",
        "Concat",
        "Split",
        "Slice",
        "Gather",
        "Unsqueeze",
        "Squeeze",
        "ReduceMean",
        "ReduceSum",
        "Cast",
        "Shape",
        "Constant",
        "ConstantOfShape",
        "Expand",
        "Where",
        "Equal",
        "Dropout",
        "Identity",
    }
    assert listed <= set(weft.onnx.supported_ops())


@pytest.mark.parametrize("case", ["constant_of_shape_from_dynamic_shape", "where_equal_cast"])
def test_tensors_the_graph_creates_follow_the_input_device(case, tmp_path):
    # "meta" stands in for an accelerator: a CPU-made tensor mixed in would raise.
    module = weft.onnx.load(_model_file(case, tmp_path)).to("meta")
    inputs = [torch.from_numpy(a).to("meta") for a in CASES[case][1].values()]
    assert module(*inputs).device.type == "meta"


def test_initializers_read_as_settings_are_not_weights(tmp_path):
    # Resize scales and Pad values are float tensors of several elements, but not weights.
    for case in ("resize_nearest_scales", "pad_constant_reflect_edge"):
        assert list(weft.onnx.load(_model_file(case, tmp_path)).parameters()) == []
    conv = weft.onnx.load(_model_file("conv_transpose", tmp_path))
    assert sorted(n for n, _ in conv.named_parameters()) == ["b", "w"]
