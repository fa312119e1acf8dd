"""`load`: read an ONNX file into a trainable `OnnxModule`.

The file is parsed and passed through `onnx.checker` first; nothing in it is executed, only
interpreted by the converters in `weft.onnx.ops`. Initializers become:

- Parameters: floating-point with more than one element, or feeding a layer's weight slot
  (Conv, ConvTranspose, Gemm, MatMul, normalisation scale and bias), unless an op reads it
  as a setting (Resize scales, Pad value, Clip bounds: see `Op.settings`),
- persistent buffers: BatchNormalization running mean and variance,
- constants: everything else (shapes, axes, scalar scales), folded at load time together with
  every node whose inputs are all constant.

Values computed from input sizes (`Shape` and the arithmetic on it) run as Python ints.

Exporters store equal-valued tensors once. The legacy exporter aliases the copies with
`Identity`, which `load` undoes; the dynamo exporter's optimizer points every user at one
initializer, which `load` cannot tell from deliberate weight tying, so such weights stay
shared. This only bites untrained models (fresh LayerNorm scales, zero biases).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weft.onnx.module import OnnxModule, Step
from weft.onnx.ops import OPS, NodeSpec, supported_ops

__all__ = ["MAX_OPSET", "MIN_OPSET", "OnnxImportError", "load", "read_model", "trainable_names"]

MIN_OPSET, MAX_OPSET = 13, 20
# Inputs 3 and 4 of BatchNormalization are running statistics: state, not weights.
_STATISTICS = {("BatchNormalization", 3), ("BatchNormalization", 4)}
# Input slots that hold a layer's weights, so even a one-element tensor there is trainable.
_LAYER_WEIGHTS = {
    *((op, i) for op in ("Conv", "ConvTranspose", "Gemm") for i in (1, 2)),
    ("MatMul", 0),
    ("MatMul", 1),
    ("LayerNormalization", 1),
    ("LayerNormalization", 2),
    ("BatchNormalization", 1),
    ("BatchNormalization", 2),
}
# Ops that depend on train/eval mode are never folded.
_NEVER_FOLD = {"Dropout", "BatchNormalization"}


class OnnxImportError(ValueError):
    """The file cannot be read or converted; the message says where and what to do."""


def read_model(path: str | Path) -> Any:
    """Parse and check an ONNX file, with local functions inlined; raise `OnnxImportError`."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise OnnxImportError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as error:
        raise OnnxImportError(
            f"{path} is not a readable ONNX model ({type(error).__name__}: {error}); "
            "the file is damaged or in another format"
        ) from None
    if not model.graph.node and not model.graph.output:
        raise OnnxImportError(f"{path} holds no ONNX graph; the file is damaged or not ONNX")
    try:
        # The checker follows external-data references itself and rejects paths that leave
        # the model's folder, so it runs on the path before any external data is read.
        onnx.checker.check_model(str(path))
        onnx.load_external_data_for_model(model, str(path.parent))
    except (onnx.checker.ValidationError, ValueError, OSError) as error:
        raise OnnxImportError(f"{path} fails the ONNX checker: {error}") from None
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    return model


def _opset(model: Any, path: Path) -> int:
    versions = {o.domain: o.version for o in model.opset_import}
    opset = versions.get("", versions.get("ai.onnx"))
    if opset is None:
        raise OnnxImportError(f"{path} declares no default-domain opset")
    if opset < MIN_OPSET:
        raise OnnxImportError(
            f"{path} uses opset {opset}; weft imports opsets {MIN_OPSET}-{MAX_OPSET}. Convert "
            f"it first: onnx.version_converter.convert_version(model, {MIN_OPSET})"
        )
    if opset > MAX_OPSET:
        warnings.warn(
            f"{path} uses opset {opset}; weft's converters follow opsets {MIN_OPSET}-"
            f"{MAX_OPSET}, compare the outputs with onnxruntime before relying on them",
            stacklevel=3,
        )
    return opset


def _array(tensor: Any) -> np.ndarray:
    from onnx import numpy_helper

    return np.array(numpy_helper.to_array(tensor))  # a writable copy


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    attrs = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if a.type == a.TENSOR:
            value = _array(value)
        elif isinstance(value, bytes):
            value = value.decode()
        attrs[a.name] = value
    return attrs


def _constant_value(node: Any) -> np.ndarray:
    attrs = _attributes(node)
    for key, dtype in [
        ("value", None),
        ("value_float", np.float32),
        ("value_floats", np.float32),
        ("value_int", np.int64),
        ("value_ints", np.int64),
    ]:
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise NotImplementedError(f"Constant with {sorted(attrs)} is not supported")


def _live_nodes(graph: Any) -> list[Any]:
    """Nodes that contribute to a graph output, in graph order."""
    needed = {o.name for o in graph.output}
    live = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            live.append(node)
            needed.update(i for i in node.input if i)
    return live[::-1]


def _check_supported(nodes: list[Any], opset: int, path: Path) -> None:
    unknown = [n for n in nodes if n.op_type not in OPS or n.domain not in ("", "ai.onnx")]
    if unknown:
        listed = "; ".join(
            f"{n.op_type} (domain {n.domain!r}, node {n.name!r})"
            if n.domain not in ("", "ai.onnx")
            else f"{n.op_type} (node {n.name!r})"
            for n in unknown[:10]
        )
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise OnnxImportError(
            f"{path} (opset {opset}) uses ops weft cannot convert: {listed}{more}. "
            f"Supported: {', '.join(supported_ops())}. To add one, see weft.onnx.ops.register."
        )


def trainable_names(model: Any) -> list[str]:
    """Initializers that `load` turns into Parameters (see the module docstring for the rule)."""
    fixed, layer_inputs = set(), set()  # never trainable / trainable even when tiny
    for node in model.graph.node:
        op = OPS.get(node.op_type)
        for i, name in enumerate(node.input):
            if (node.op_type, i) in _STATISTICS or (op is not None and i in op.settings):
                fixed.add(name)
            elif (node.op_type, i) in _LAYER_WEIGHTS:
                layer_inputs.add(name)
    return [
        init.name
        for init in model.graph.initializer
        if init.data_type in (1, 10, 11, 16)  # float, float16, double, bfloat16
        and init.name not in fixed
        and len(init.dims) >= 1
        and (int(np.prod(init.dims)) > 1 or init.name in layer_inputs)
    ]


class _Unknown:
    """A size that is only known at run time; arithmetic on it stays unknown."""

    def _same(self, *_: Any) -> _Unknown:
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _same
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __eq__ = __lt__ = __gt__ = _same
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise ValueError("a decision on an unknown size")  # the value stays a runtime one

    def __repr__(self) -> str:
        return "?"


UNKNOWN = _Unknown()


@dataclass
class _Sized:
    """Stands in for a tensor whose shape inference gave a rank (and maybe some sizes)."""

    shape: tuple[Any, ...]


def _inferred_shapes(model: Any) -> dict[str, _Sized]:
    """Tensor shapes from ONNX shape inference, unknown sizes as `UNKNOWN`."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference only enables folding; a model it cannot type still loads
        return {}
    shapes = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.input):
        tensor_type = info.type.tensor_type
        if tensor_type.HasField("shape"):
            dims = tensor_type.shape.dim
            shapes[info.name] = _Sized(
                tuple(d.dim_value if d.HasField("dim_value") else UNKNOWN for d in dims)
            )
    return shapes


def _evaluate_at_load(fn: Any, args: list[Any]) -> np.ndarray | None:
    """Run a shape function on what is known now: an int array, an object array with
    `UNKNOWN` entries, or None when even that cannot be told."""
    if any(a is None for a in args):
        return None
    try:
        value = np.asarray(fn(*args), dtype=object)
    except (ValueError, TypeError, IndexError):
        return None
    if any(v is UNKNOWN for v in value.reshape(-1).tolist()):
        return value
    known = np.array(value.tolist())
    return known.astype(np.int64) if known.dtype.kind in "iu" else known


def _note_reshape(
    node: Any,
    consts: dict[str, np.ndarray],
    shape_values: dict[str, np.ndarray | None],
    shapes: dict[str, _Sized],
) -> None:
    """Record a Reshape's output shape where shape inference could not (a computed target),
    so sizes read from it later fold."""
    target = consts.get(node.input[1], shape_values.get(node.input[1]))
    if target is not None and not any(v is not UNKNOWN and v <= 0 for v in target.tolist()):
        shapes[node.output[0]] = _Sized(tuple(target.tolist()))


def load(path: str | Path) -> OnnxModule:
    """Read an ONNX file (opsets 13-20) into a PyTorch module you can train and re-export.

    The module reproduces onnxruntime's outputs; BatchNormalization and Dropout follow
    `.train()`/`.eval()` like their torch counterparts. Raises `OnnxImportError` for damaged
    files and for ops without a converter (named, with the supported list).

    Extending: add converters with `weft.onnx.ops.register`.
    """
    path = Path(path)
    model = read_model(path)
    opset = _opset(model, path)
    graph = model.graph
    nodes = _live_nodes(graph)
    _check_supported(nodes, opset, path)

    initializers = {init.name: init for init in graph.initializer}
    trainable = set(trainable_names(model))
    statistics = {n.input[i] for n in nodes for op, i in _STATISTICS if n.op_type == op}
    inputs = [i.name for i in graph.input if i.name not in initializers]
    module = OnnxModule(inputs, [o.name for o in graph.output])

    consts: dict[str, np.ndarray] = {}  # values known at load time
    weights: dict[str, tuple[np.ndarray, str]] = {}  # runtime weights: value, kind
    # values computed from input sizes (Python ints at run time) -> what is known at load time
    shape_values: dict[str, np.ndarray | None] = {}
    for name, init in initializers.items():
        value = _array(init)
        if name in trainable:
            weights[name] = (value, "parameter")
        elif name in statistics:
            weights[name] = (value, "buffer")
        else:
            consts[name] = value
    shapes = _inferred_shapes(model)
    shapes.update((name, _Sized(value.shape)) for name, (value, _) in weights.items())

    runtime_consts: set[str] = set()
    for node in nodes:
        where = f"node {node.name!r} ({node.op_type}, opset {opset}) in {path}"
        try:
            step = _convert(node, opset, consts, weights, shape_values, shapes)
        except NotImplementedError as error:
            raise OnnxImportError(f"{where}: {error}") from None
        except Exception as error:
            raise OnnxImportError(f"{where} could not be converted: {error}") from error
        if step is not None:
            module.steps.append(step)
            if not step.shape_step:
                runtime_consts.update(
                    n for i, n in enumerate(node.input) if n in consts and i not in step.static
                )
    for name in runtime_consts | {o for o in module.output_names if o in consts}:
        module.add_weight(name, torch.from_numpy(consts[name]), "constant")
    for name, (value, kind) in weights.items():
        module.add_weight(name, torch.from_numpy(value), kind)
    return module


def _rank(
    name: str,
    consts: dict[str, np.ndarray],
    weights: dict[str, tuple[np.ndarray, str]],
    shapes: dict[str, _Sized],
) -> int | None:
    for known in (consts.get(name), weights.get(name, (None,))[0]):
        if known is not None:
            return known.ndim
    return len(shapes[name].shape) if name in shapes else None


def _convert(
    node: Any,
    opset: int,
    consts: dict[str, np.ndarray],
    weights: dict[str, tuple[np.ndarray, str]],
    shape_values: dict[str, np.ndarray | None],
    shapes: dict[str, _Sized],
) -> Step | None:
    """Fold `node` into `consts`, or return the step that runs it."""
    if node.op_type == "Constant":
        consts[node.output[0]] = _constant_value(node)
        return None
    if node.op_type == "Identity" and weights.get(node.input[0], ("", ""))[1] == "parameter":
        # Exporters write one initializer for equal-valued weights (fresh LayerNorm scales,
        # zero biases) and alias the others with Identity; separate copies keep them untied.
        weights[node.output[0]] = (weights[node.input[0]][0].copy(), "parameter")
        return None
    op = OPS[node.op_type]
    spec = NodeSpec(
        op_type=node.op_type,
        name=node.name,
        opset=opset,
        attrs=_attributes(node),
        consts=[consts.get(i) for i in node.input],
        input_present=[bool(i) for i in node.input],
        ranks=[_rank(i, consts, weights, shapes) for i in node.input],
        n_outputs=sum(1 for o in node.output if o),
    )
    present = [i for i in node.input if i]
    if all(i in consts for i in present) and node.op_type not in _NEVER_FOLD:
        with torch.no_grad():
            out = op.build(spec)(*[torch.from_numpy(consts[i]) if i else None for i in node.input])
        outs = out if isinstance(out, tuple) else (out,)
        for name, value in zip(node.output, outs, strict=False):
            consts[name] = np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value)
        return None

    const_slots = {i: consts[n] for i, n in enumerate(node.input) if n in consts}
    sized = node.op_type == "Shape" or (
        any(i in shape_values for i in present)
        and all(i in consts or i in shape_values for i in present)
    )
    shape_fn = op.shape(spec) if sized and op.shape is not None else None
    if shape_fn is not None:
        args = [
            const_slots[i] if i in const_slots else shape_values.get(n, shapes.get(n))
            for i, n in enumerate(node.input)
        ]
        value = _evaluate_at_load(shape_fn, args)
        if value is not None and value.dtype != object:
            consts[node.output[0]] = value  # every size it depends on is static: folded
            return None
        shape_values[node.output[0]] = value
        return Step(node.op_type, node.name, node.input, node.output, shape_fn, const_slots, True)
    static = {i: v for i, v in const_slots.items() if i in op.settings}
    if node.op_type == "Reshape":
        _note_reshape(node, consts, shape_values, shapes)
    return Step(
        node.op_type,
        node.name,
        node.input,
        node.output,
        op.build(spec),
        static,
        False,
        op.settings,
    )
