"""One registry of ONNX op converters: each turns a graph node into a PyTorch callable.

A converter sees the node once, at load time (`NodeSpec`: attributes, opset, the values of its
constant inputs) and returns the function that runs it. Integer arguments such as shapes, axes
and indices are read from constants at load time whenever they are constant, so the runtime
graph holds plain Python ints and traces cleanly through `torch.export`.

Shape arithmetic (`Shape` -> `Gather` -> `Concat` -> `Reshape`) whose values depend on the input
size runs on small numpy object arrays of Python ints (SymInts while tracing), never on tensors:
ops that support this register a `shape` builder next to their tensor builder.

Extending: write `def build(node: NodeSpec) -> Callable` (and optionally a numpy `shape`
builder), then `register("OpType", build, ...)`. Raise `NotImplementedError` with a sentence
for attribute values you do not handle; the loader turns it into an error naming the node.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OPS", "NodeSpec", "Op", "int_list", "register", "supported_ops", "to_tensor"]

# ONNX TensorProto data types -> torch dtypes (the ones an exporter writes for these models).
TORCH_DTYPES: dict[int, torch.dtype] = {
    1: torch.float32,
    2: torch.uint8,
    3: torch.int8,
    5: torch.int16,
    6: torch.int32,
    7: torch.int64,
    9: torch.bool,
    10: torch.float16,
    11: torch.float64,
    16: torch.bfloat16,
}


@dataclass
class NodeSpec:
    """What a converter knows about one node at load time."""

    op_type: str
    name: str
    opset: int
    attrs: dict[str, Any]
    consts: list[np.ndarray | None]  # value of each input when constant at load time
    input_present: list[bool]  # False for optional inputs left empty ("")
    ranks: list[int | None]  # each input's rank when known at load time
    n_outputs: int

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def const(self, index: int) -> np.ndarray | None:
        return self.consts[index] if index < len(self.consts) else None

    def has_input(self, index: int) -> bool:
        return index < len(self.input_present) and self.input_present[index]


@dataclass(frozen=True)
class Op:
    """A converter: `build` makes the tensor function; `shape` (optional) the numpy one.

    `settings` are input slots that configure the op (shapes, axes, starts, scales, ratios):
    an initializer there is never a weight, and at run time a setting arrives as it is (a
    shape value stays Python ints) instead of being turned into a tensor.
    """

    build: Callable[[NodeSpec], Callable[..., Any]]
    shape: Callable[[NodeSpec], Callable[..., Any] | None] | None = None
    settings: tuple[int, ...] = ()


OPS: dict[str, Op] = {}


def register(
    op_type: str,
    build: Callable[[NodeSpec], Callable[..., Any]],
    shape: Callable[[NodeSpec], Callable[..., Any] | None] | None = None,
    settings: Sequence[int] = (),
) -> None:
    """Add (or replace) the converter for `op_type` in the default ONNX domain."""
    OPS[op_type] = Op(build, shape, tuple(settings))


def supported_ops() -> list[str]:
    """Sorted names of every op type `weft.onnx.load` converts."""
    return sorted(OPS)


def int_list(value: Any) -> list:
    """Integers from a constant, a shape value (numpy object array) or a tensor, as a list.

    SymInts are kept as they are, so dynamic sizes stay symbolic while tracing.
    """
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    flat = np.asarray(value, dtype=object).reshape(-1).tolist()
    return [v if isinstance(v, torch.SymInt) else int(v) for v in flat]


def to_tensor(value: Any) -> Any:
    """A shape value (numpy array) as an int64 tensor; anything else unchanged."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return torch.tensor(value.tolist(), dtype=torch.int64).reshape(value.shape)
        return torch.tensor(value)  # a copy on the default device, as the graph runs there
    return value


def _axes(node: NodeSpec, index: int, attr: str = "axes") -> list[int] | None:
    """Axes from an attribute (older opsets) or a constant input (newer ones)."""
    if attr in node.attrs:
        return [int(a) for a in node.attrs[attr]]
    if node.has_input(index):
        value = node.const(index)
        if value is None:
            raise NotImplementedError(f"input {index} ({attr}) must be a constant")
        return int_list(value)
    return None


def _norm(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _prod(values: Sequence[Any]) -> Any:
    return reduce(operator.mul, values, 1)


# ---- elementwise -------------------------------------------------------------------------


def _bound(value: Any) -> Any:
    """A constant bound as a Python number; a tensor bound stays a tensor."""
    return value.item() if isinstance(value, np.ndarray) else value


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[NodeSpec], Callable]:
    return lambda node: fn


def _div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.is_floating_point():
        return a / b
    return torch.div(a, b, rounding_mode="trunc")  # ONNX integer Div truncates


def _mod(node: NodeSpec) -> Callable:
    return torch.fmod if node.attr("fmod", 0) else torch.remainder


def _shape_div(a: Any, b: Any) -> Any:
    # shape values are non-negative sizes, so floor equals ONNX's truncation
    return a // b


def _numpy_binary(fn: Callable[[Any, Any], Any]) -> Callable[[NodeSpec], Callable]:
    return lambda node: lambda a, b: np.asarray(fn(np.asarray(a), np.asarray(b)), dtype=object)


for _name, _fn, _np in [
    ("Add", torch.add, operator.add),
    ("Sub", torch.sub, operator.sub),
    ("Mul", torch.mul, operator.mul),
    ("Div", _div, _shape_div),
    ("Equal", torch.eq, operator.eq),
    ("Less", torch.lt, operator.lt),
    ("Greater", torch.gt, operator.gt),
]:
    register(_name, _unary(_fn), _numpy_binary(_np))
register("Mod", _mod, _numpy_binary(operator.mod))
register("Pow", _unary(lambda a, b: torch.pow(a, b).to(a.dtype)))
register("Where", _unary(torch.where), lambda node: lambda c, a, b: np.where(c, a, b))
register("Not", _unary(torch.logical_not))
register("Min", _unary(lambda *xs: reduce(torch.minimum, xs)))
register("Max", _unary(lambda *xs: reduce(torch.maximum, xs)))
register(
    "Clip",
    _unary(lambda x, lo=None, hi=None: torch.clamp(x, _bound(lo), _bound(hi))),
    settings=[1, 2],
)
for _name, _fn in [
    ("Sqrt", torch.sqrt),
    ("Erf", torch.erf),
    ("Exp", torch.exp),
    ("Log", torch.log),
    ("Neg", torch.neg),
    ("Abs", torch.abs),
    ("Reciprocal", torch.reciprocal),
    ("Relu", F.relu),
    ("Sigmoid", torch.sigmoid),
    ("Tanh", torch.tanh),
    ("Sin", torch.sin),
    ("Cos", torch.cos),
    ("Floor", torch.floor),
    ("Ceil", torch.ceil),
    ("Softplus", F.softplus),
    ("HardSwish", F.hardswish),
    ("And", torch.logical_and),
    ("Or", torch.logical_or),
    ("Xor", torch.logical_xor),
    ("LessOrEqual", torch.le),
    ("GreaterOrEqual", torch.ge),
]:
    register(_name, _unary(_fn))
register(
    "HardSigmoid",
    lambda node: lambda x: torch.clamp(node.attr("alpha", 0.2) * x + node.attr("beta", 0.5), 0, 1),
)
register("Identity", _unary(lambda x: x), lambda node: lambda x: x)
register("LeakyRelu", lambda node: lambda x: F.leaky_relu(x, node.attr("alpha", 0.01)))
register("Gelu", lambda node: lambda x: F.gelu(x, approximate=node.attr("approximate", "none")))
register("Softmax", lambda node: lambda x: torch.softmax(x, node.attr("axis", -1)))
register("LogSoftmax", lambda node: lambda x: torch.log_softmax(x, node.attr("axis", -1)))


def _cast(node: NodeSpec) -> Callable:
    to = node.attr("to")
    if to not in TORCH_DTYPES:
        raise NotImplementedError(f"casting to ONNX data type {to} is not supported")
    return lambda x: x.to(TORCH_DTYPES[to])


def _cast_shape(node: NodeSpec) -> Callable | None:
    # Shape values are integers; a cast to another integer type keeps them shape values.
    if node.attr("to") in (6, 7):
        return lambda x: x
    return None


register("Cast", _cast, _cast_shape)


# ---- linear algebra and layers ------------------------------------------------------------


def _gemm(node: NodeSpec) -> Callable:
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    trans_a, trans_b = node.attr("transA", 0), node.attr("transB", 0)

    def gemm(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if trans_a:
            a = a.t()
        if alpha == 1.0 and beta == 1.0 and trans_b:
            return F.linear(a, b, c)  # the common nn.Linear case, one fused call
        y = alpha * (a @ (b.t() if trans_b else b))
        return y if c is None else y + beta * c

    return gemm


register("Gemm", _gemm)
register("MatMul", _unary(torch.matmul))


def _spatial(node: NodeSpec, rank: int) -> dict[str, Any]:
    """Stride, dilation and padding attributes common to Conv and the pools.

    `same` is "SAME_UPPER"/"SAME_LOWER" when pads depend on the input size (then computed at
    run time by `_same_pads`), else None with the pads in `begin`/`end`.
    """
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise NotImplementedError(f"auto_pad={auto_pad} is not supported")
    pads = list(node.attr("pads", [0] * 2 * rank)) if auto_pad == "NOTSET" else [0] * 2 * rank
    return {
        "stride": list(node.attr("strides", [1] * rank)),
        "dilation": list(node.attr("dilations", [1] * rank)),
        "begin": pads[:rank],
        "end": pads[rank:],
        "same": auto_pad if auto_pad.startswith("SAME") else None,
    }


def _same_pads(s: dict[str, Any], sizes: Sequence[int], kernel: Sequence[int]) -> list[int]:
    """F.pad amounts that make the output size ceil(input / stride), as auto_pad=SAME_* asks;
    the odd pixel goes at the end for SAME_UPPER, at the start for SAME_LOWER."""
    begin, end = [], []
    for n, k, stride, d in zip(sizes, kernel, s["stride"], s["dilation"], strict=True):
        total = max((-(-n // stride) - 1) * stride + (k - 1) * d + 1 - n, 0)
        small = total // 2
        begin.append(small if s["same"] == "SAME_UPPER" else total - small)
        end.append(total - begin[-1])
    return _torch_pad(begin, end)


def _torch_pad(begin: list[int], end: list[int]) -> list[int]:
    # F.pad wants (last_begin, last_end, second_last_begin, ...)
    return [p for b, e in zip(reversed(begin), reversed(end), strict=True) for p in (b, e)]


def _kernel_rank(node: NodeSpec) -> int:
    if "kernel_shape" in node.attrs:
        return len(node.attrs["kernel_shape"])
    if len(node.ranks) > 1 and node.ranks[1] is not None:
        return node.ranks[1] - 2
    raise NotImplementedError("needs a kernel_shape attribute or a weight of known rank")


def _conv(node: NodeSpec) -> Callable:
    rank = _kernel_rank(node)
    s, group = _spatial(node, rank), node.attr("group", 1)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank]
    padding, pre_pad = s["begin"], None
    if s["begin"] != s["end"]:
        padding, pre_pad = 0, _torch_pad(s["begin"], s["end"])

    def run(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        if s["same"]:
            x = F.pad(x, _same_pads(s, x.shape[2:], w.shape[2:]))
        elif pre_pad is not None:
            x = F.pad(x, pre_pad)
        return conv(x, w, b, s["stride"], padding, s["dilation"], group)

    return run


def _conv_transpose(node: NodeSpec) -> Callable:
    rank = _kernel_rank(node)
    s, group = _spatial(node, rank), node.attr("group", 1)
    if "output_shape" in node.attrs or s["same"]:
        raise NotImplementedError("output_shape and auto_pad=SAME_* are not supported")
    conv = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[rank]
    out_pad = list(node.attr("output_padding", [0] * rank))
    symmetric = s["begin"] == s["end"]

    def run(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        padding = s["begin"] if symmetric else 0
        y = conv(x, w, b, s["stride"], padding, out_pad, group, s["dilation"])
        if not symmetric:  # crop what asymmetric pads remove
            index = [slice(None), slice(None)]
            index += [
                slice(b, y.shape[2 + i] - e)
                for i, (b, e) in enumerate(zip(s["begin"], s["end"], strict=True))
            ]
            y = y[tuple(index)]
        return y

    return run


register("Conv", _conv)
register("ConvTranspose", _conv_transpose)


def _pool(node: NodeSpec, kind: str) -> Callable:
    kernel = list(node.attr("kernel_shape"))
    rank = len(kernel)
    s, ceil = _spatial(node, rank), bool(node.attr("ceil_mode", 0))
    if node.n_outputs > 1:
        raise NotImplementedError("the Indices output is not supported")
    if s["begin"] != s["end"]:
        raise NotImplementedError(f"asymmetric pads {s['begin'] + s['end']} are not supported")
    if kind == "max":
        pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[rank]
        if s["same"]:
            return lambda x: pool(
                F.pad(x, _same_pads(s, x.shape[2:], kernel), value=-math.inf),
                kernel, s["stride"], 0, s["dilation"], ceil,
            )  # fmt: skip
        return lambda x: pool(x, kernel, s["stride"], s["begin"], s["dilation"], ceil)
    if any(d != 1 for d in s["dilation"]) or s["same"]:
        raise NotImplementedError("dilated or auto_pad=SAME_* AveragePool is not supported")
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[rank]
    include_pad = bool(node.attr("count_include_pad", 0))
    return lambda x: pool(x, kernel, s["stride"], s["begin"], ceil, include_pad)


register("MaxPool", lambda node: _pool(node, "max"))
register("AveragePool", lambda node: _pool(node, "avg"))
register(
    "GlobalAveragePool",
    _unary(lambda x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True)),
)
register(
    "GlobalMaxPool",
    _unary(lambda x: x.amax(dim=tuple(range(2, x.dim())), keepdim=True)),
)


def _layer_norm(node: NodeSpec) -> Callable:
    axis, eps = node.attr("axis", -1), node.attr("epsilon", 1e-5)
    if node.n_outputs > 1:
        raise NotImplementedError("the Mean and InvStdDev outputs are not supported")

    def run(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        return F.layer_norm(x, tuple(x.shape[_norm(axis, x.dim()) :]), w, b, eps)

    return run


class BatchNorm(nn.Module):
    """ONNX BatchNormalization that follows `.train()`: batch statistics while training."""

    def __init__(self, eps: float, momentum: float) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum

    def forward(
        self,
        x: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor,
        mean: torch.Tensor,
        var: torch.Tensor,
    ) -> torch.Tensor:
        # ONNX momentum weighs the old statistic, torch's the new batch statistic.
        return F.batch_norm(x, mean, var, scale, bias, self.training, 1.0 - self.momentum, self.eps)


def _batch_norm(node: NodeSpec) -> Callable:
    if node.n_outputs > 1:
        raise NotImplementedError("the running-statistics outputs are not supported")
    return BatchNorm(node.attr("epsilon", 1e-5), node.attr("momentum", 0.9))


register("LayerNormalization", _layer_norm)
register("BatchNormalization", _batch_norm)


class Dropout(nn.Dropout):
    """ONNX Dropout that follows `.train()`; the ratio is fixed at load time."""

    def forward(self, x: torch.Tensor, *_: Any) -> torch.Tensor:  # ratio, training_mode
        return super().forward(x)


def _dropout(node: NodeSpec) -> Callable:
    if node.n_outputs > 1:
        raise NotImplementedError("the mask output is not supported")
    ratio = node.const(1)
    if node.has_input(1) and ratio is None:
        raise NotImplementedError("the ratio must be a constant")
    return Dropout(0.5 if ratio is None else float(ratio))


register("Dropout", _dropout, settings=[1, 2])


# ---- reductions --------------------------------------------------------------------------


def _reduce(fn: Callable[..., torch.Tensor]) -> Callable[[NodeSpec], Callable]:
    def build(node: NodeSpec) -> Callable:
        axes, keep = _axes(node, 1), bool(node.attr("keepdims", 1))
        if not axes and node.attr("noop_with_empty_axes", 0):
            return lambda x, *_: x

        def run(x: torch.Tensor, *_: Any) -> torch.Tensor:
            dims = tuple(axes) if axes else tuple(range(x.dim()))
            return fn(x, dim=dims, keepdim=keep)

        return run

    return build


register("ReduceMean", _reduce(torch.mean), settings=[1])
register("ReduceSum", _reduce(torch.sum), settings=[1])
register("ReduceMax", _reduce(torch.amax), settings=[1])
register("ReduceMin", _reduce(torch.amin), settings=[1])


# ---- shapes and indexing -----------------------------------------------------------------
# Builders below take integer inputs from constants when they are constant, else at runtime.


def _static_or_runtime(node: NodeSpec, index: int) -> Callable[[Any], list]:
    value = node.const(index)
    if value is not None:
        fixed = int_list(value)
        return lambda runtime: fixed
    return int_list


def _shape(node: NodeSpec) -> Callable:
    # The tensor form only serves load-time folding; at runtime Shape yields a shape value.
    start, end = node.attr("start", 0), node.attr("end")
    return lambda x: torch.tensor(list(x.shape)[start:end], dtype=torch.int64)


def _shape_shape(node: NodeSpec) -> Callable:
    start, end = node.attr("start", 0), node.attr("end")
    return lambda x: np.array(list(x.shape)[start:end], dtype=object)


def _reshape_dims(shape: list, input_shape: Sequence[Any], allowzero: bool) -> list:
    if allowzero:
        return shape
    return [input_shape[i] if d == 0 else d for i, d in enumerate(shape)]


def _reshape(node: NodeSpec) -> Callable:
    shape_of, allowzero = _static_or_runtime(node, 1), bool(node.attr("allowzero", 0))
    return lambda x, shape: x.reshape(_reshape_dims(shape_of(shape), x.shape, allowzero))


def _reshape_shape(node: NodeSpec) -> Callable:
    shape_of, allowzero = _static_or_runtime(node, 1), bool(node.attr("allowzero", 0))
    return lambda x, shape: np.reshape(x, _reshape_dims(shape_of(shape), x.shape, allowzero))


def _flatten(node: NodeSpec) -> Callable:
    axis = node.attr("axis", 1)

    def run(x: torch.Tensor) -> torch.Tensor:
        a = _norm(axis, x.dim())
        return x.reshape(_prod(x.shape[:a]), _prod(x.shape[a:]))

    return run


def _transpose(node: NodeSpec) -> Callable:
    perm = node.attr("perm")
    return lambda x: x.permute(perm if perm is not None else list(reversed(range(x.dim()))))


def _concat(node: NodeSpec) -> Callable:
    return lambda *xs: torch.cat(xs, node.attr("axis"))


def _concat_shape(node: NodeSpec) -> Callable:
    return lambda *xs: np.concatenate([np.asarray(x, dtype=object) for x in xs], node.attr("axis"))


def _split(node: NodeSpec) -> Callable:
    axis, parts = node.attr("axis", 0), node.n_outputs
    sizes_of = _static_or_runtime(node, 1) if node.has_input(1) else None
    if "split" in node.attrs:
        sizes = list(node.attrs["split"])
        sizes_of = lambda runtime: sizes  # noqa: E731 - a tiny adapter

    def run(x: torch.Tensor, split: Any = None) -> tuple[torch.Tensor, ...]:
        if sizes_of is not None:
            return tuple(torch.split(x, sizes_of(split), axis))
        return tuple(torch.split(x, math.ceil(x.shape[axis] / parts), axis))

    return run


def _slices(node: NodeSpec) -> Callable[..., tuple[list, list, list, list]]:
    starts_of, ends_of = _static_or_runtime(node, 1), _static_or_runtime(node, 2)
    axes_of = _static_or_runtime(node, 3) if node.has_input(3) else None
    steps_of = _static_or_runtime(node, 4) if node.has_input(4) else None

    def resolve(rank: int, starts: Any, ends: Any, axes: Any = None, steps: Any = None) -> list:
        s, e = starts_of(starts), ends_of(ends)
        a = axes_of(axes) if axes_of else list(range(len(s)))
        st = steps_of(steps) if steps_of else [1] * len(s)
        if any(not isinstance(v, int) or v < 0 for v in st):
            raise NotImplementedError("Slice with negative or dynamic steps is not supported")
        index = [slice(None)] * rank
        for start, end, axis, step in zip(s, e, a, st, strict=True):
            index[_norm(axis, rank)] = slice(start, end, step)
        return index

    return resolve


def _slice(node: NodeSpec) -> Callable:
    resolve = _slices(node)
    return lambda x, *args: x[tuple(resolve(x.dim(), *args))]


def _slice_shape(node: NodeSpec) -> Callable:
    resolve = _slices(node)
    return lambda x, *args: x[tuple(resolve(x.ndim, *args))]


def _gather(node: NodeSpec) -> Callable:
    axis, fixed = node.attr("axis", 0), node.const(1)
    if fixed is not None and fixed.ndim == 0:
        index = int(fixed)
        return lambda x, _: x.select(axis, index)

    def run(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        a = _norm(axis, x.dim())
        indices = torch.where(indices < 0, indices + x.shape[a], indices)
        picked = x.index_select(a, indices.reshape(-1))
        return picked.reshape((*x.shape[:a], *indices.shape, *x.shape[a + 1 :]))

    return run


def _gather_shape(node: NodeSpec) -> Callable:
    return lambda x, indices: np.take(x, np.asarray(indices).astype(np.int64), node.attr("axis", 0))


def _unsqueeze_axes(node: NodeSpec) -> Callable[[int, Any], list[int]]:
    axes_of = _static_or_runtime(node, 1) if "axes" not in node.attrs else None
    fixed = list(node.attrs.get("axes", []))

    def resolve(rank: int, axes: Any) -> list[int]:
        listed = axes_of(axes) if axes_of else fixed
        return sorted(_norm(a, rank + len(listed)) for a in listed)

    return resolve


def _unsqueeze(node: NodeSpec) -> Callable:
    resolve = _unsqueeze_axes(node)

    def run(x: torch.Tensor, axes: Any = None) -> torch.Tensor:
        for a in resolve(x.dim(), axes):
            x = x.unsqueeze(a)
        return x

    return run


def _unsqueeze_shape(node: NodeSpec) -> Callable:
    resolve = _unsqueeze_axes(node)
    return lambda x, axes=None: np.expand_dims(x, tuple(resolve(np.ndim(x), axes)))


def _squeeze_axes(node: NodeSpec) -> Callable[[Sequence[Any], Any], tuple[int, ...]]:
    axes_of = _static_or_runtime(node, 1) if node.has_input(1) else None
    fixed = node.attrs.get("axes")

    def resolve(shape: Sequence[Any], axes: Any) -> tuple[int, ...]:
        listed = axes_of(axes) if axes_of else fixed
        if listed is None:
            return tuple(i for i, d in enumerate(shape) if d == 1)
        return tuple(_norm(a, len(shape)) for a in listed)

    return resolve


def _squeeze(node: NodeSpec) -> Callable:
    resolve = _squeeze_axes(node)
    return lambda x, axes=None: x.squeeze(resolve(x.shape, axes))


def _squeeze_shape(node: NodeSpec) -> Callable:
    resolve = _squeeze_axes(node)
    return lambda x, axes=None: np.squeeze(x, resolve(np.shape(x), axes))


def _expand(node: NodeSpec) -> Callable:
    shape_of = _static_or_runtime(node, 1)
    return lambda x, shape: x.expand(torch.broadcast_shapes(x.shape, tuple(shape_of(shape))))


def _constant_of_shape(node: NodeSpec) -> Callable:
    value = node.attr("value")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    dtype = torch.from_numpy(fill.copy()).dtype
    return lambda shape: torch.full(int_list(shape), fill[0].item(), dtype=dtype)


def _scalar(value: Any) -> Any:
    """A 0-d constant, shape value or tensor as a Python number (a SymInt stays one)."""
    item = value.item() if isinstance(value, (np.ndarray, torch.Tensor)) else value
    return item.item() if isinstance(item, np.generic) else item


def _range(node: NodeSpec) -> Callable:
    return lambda start, limit, delta: torch.arange(_scalar(start), _scalar(limit), _scalar(delta))


def _tile(node: NodeSpec) -> Callable:
    repeats_of = _static_or_runtime(node, 1)
    return lambda x, repeats: x.repeat(repeats_of(repeats))


def _trilu(node: NodeSpec) -> Callable:
    triangle = torch.triu if node.attr("upper", 1) else torch.tril
    return lambda x, k=None: triangle(x, 0 if k is None else int(_scalar(k)))


def _cumsum(node: NodeSpec) -> Callable:
    exclusive, reverse = node.attr("exclusive", 0), node.attr("reverse", 0)

    def run(x: torch.Tensor, axis: Any) -> torch.Tensor:
        dim = int(_scalar(axis))
        if reverse:
            x = x.flip(dim)
        y = x.cumsum(dim)
        if exclusive:
            y = y - x
        return y.flip(dim) if reverse else y

    return run


def _arg(fn: Callable[..., torch.Tensor]) -> Callable[[NodeSpec], Callable]:
    def build(node: NodeSpec) -> Callable:
        if node.attr("select_last_index", 0):
            raise NotImplementedError("select_last_index=1 is not supported")
        axis, keep = node.attr("axis", 0), bool(node.attr("keepdims", 1))
        return lambda x: fn(x, axis, keep)

    return build


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}


def _pad(node: NodeSpec) -> Callable:
    mode = node.attr("mode", "constant")
    if mode not in _PAD_MODES:
        raise NotImplementedError(f"mode={mode} is not supported")
    pads_of = _static_or_runtime(node, 1)
    axes_of = _static_or_runtime(node, 3) if node.has_input(3) else None

    def run(x: torch.Tensor, pads: Any, value: Any = None, axes: Any = None) -> torch.Tensor:
        listed = pads_of(pads)
        dims = [_norm(a, x.dim()) for a in axes_of(axes)] if axes_of else list(range(x.dim()))
        begin, end = [0] * x.dim(), [0] * x.dim()
        for i, d in enumerate(dims):
            begin[d], end[d] = listed[i], listed[i + len(dims)]
        torch_pads = _torch_pad(begin, end)
        if mode == "constant":
            return F.pad(x, torch_pads, "constant", 0.0 if value is None else _scalar(value))
        # torch reflects and replicates the trailing (spatial) axes only
        kept = 2 * max(x.dim() - 2, 1)
        if any(p != 0 for p in torch_pads[kept:]):
            raise NotImplementedError(f"{mode} padding of the batch or channel axis")
        return F.pad(x, torch_pads[:kept], _PAD_MODES[mode])

    return run


register("Shape", _shape, _shape_shape)
register("Reshape", _reshape, _reshape_shape, settings=[1])
register("Flatten", _flatten)
register("Transpose", _transpose)
register("Concat", _concat, _concat_shape)
register("Split", _split, settings=[1])
register("Slice", _slice, _slice_shape, settings=[1, 2, 3, 4])
register("Gather", _gather, _gather_shape)
register("Unsqueeze", _unsqueeze, _unsqueeze_shape, settings=[1])
register("Squeeze", _squeeze, _squeeze_shape, settings=[1])
register("Expand", _expand, settings=[1])
register("ConstantOfShape", _constant_of_shape, settings=[0])


def _resize(node: NodeSpec) -> Callable:
    mode = node.attr("mode", "nearest")
    transform = node.attr("coordinate_transformation_mode", "half_pixel")
    if node.attr("antialias", 0) or "axes" in node.attrs:
        raise NotImplementedError("antialias and axes are not supported")
    if mode == "nearest":
        if transform != "asymmetric" or node.attr("nearest_mode", "round_prefer_floor") != "floor":
            raise NotImplementedError(
                "nearest mode is supported with asymmetric coordinates and floor rounding "
                "(what torch exports), not " + f"{transform}/{node.attr('nearest_mode')}"
            )
        options: dict[str, Any] = {"mode": "nearest"}
    elif mode in ("linear", "cubic") and transform in ("half_pixel", "pytorch_half_pixel"):
        options = {"align_corners": False}
    elif mode in ("linear", "cubic") and transform == "align_corners":
        options = {"align_corners": True}
    else:
        raise NotImplementedError(f"mode={mode} with {transform} coordinates is not supported")
    if mode == "cubic" and node.attr("cubic_coeff_a", -0.75) != -0.75:
        raise NotImplementedError("cubic_coeff_a other than -0.75 (torch's) is not supported")
    scales = node.const(2) if node.has_input(2) else None
    if scales is not None and scales.size == 0:
        scales = None

    def run(x: torch.Tensor, roi: Any = None, _scales: Any = None, sizes: Any = None) -> Any:
        spatial = x.dim() - 2
        if mode != "nearest":
            interpolation = {1: "linear", 2: "bilinear", 3: "trilinear"}[spatial]
            options["mode"] = "bicubic" if mode == "cubic" else interpolation
        if scales is not None:
            factors = [float(f) for f in scales.reshape(-1)[2:]]
            return F.interpolate(x, scale_factor=factors, **options)
        return F.interpolate(x, size=int_list(sizes)[2:], **options)

    return run


register("Resize", _resize, settings=[1, 2, 3])
register("Range", _range, settings=[0, 1, 2])
register("Tile", _tile, settings=[1])
register("Trilu", _trilu, settings=[1])
register("CumSum", _cumsum, settings=[1])
register("ArgMax", _arg(torch.argmax))
register("ArgMin", _arg(torch.argmin))
register("Pad", _pad, settings=[1, 2, 3])
# Constant has no inputs, so the loader always folds it at load time (see load.py).
register("Constant", _unary(None))
