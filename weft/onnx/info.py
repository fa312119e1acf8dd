"""`describe`: what an ONNX file holds (inputs, outputs, opset, ops, parameters, metadata)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from weft.onnx.load import read_model, trainable_names

__all__ = ["OnnxInfo", "describe"]

_TYPE_NAMES = {1: "float32", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}


@dataclass(frozen=True)
class OnnxInfo:
    """A summary of one ONNX file; `str()` gives the report `weft onnx-info` prints."""

    path: Path
    opsets: dict[str, int]
    inputs: list[tuple[str, str, list[int | str]]]  # name, element type, shape (names = dynamic)
    outputs: list[tuple[str, str, list[int | str]]]
    ops: Counter
    parameters: int  # elements that weft.onnx.load makes trainable
    constants: int  # elements of every other initializer
    metadata: dict[str, str]
    producer: str

    def __str__(self) -> str:
        def values(rows: list[tuple[str, str, list[int | str]]]) -> list[str]:
            return [f"  {name}: {dtype} {shape}" for name, dtype, shape in rows]

        opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(self.opsets.items()))
        lines = [
            f"{self.path}",
            f"producer: {self.producer}",
            f"opset: {opsets}",
            "inputs:",
            *values(self.inputs),
            "outputs:",
            *values(self.outputs),
            f"parameters: {self.parameters:,} trainable elements, {self.constants:,} constant",
            f"ops ({sum(self.ops.values())} nodes):",
            *[f"  {op:<24}{n}" for op, n in self.ops.most_common()],
        ]
        if self.metadata:
            lines += ["metadata:", *[f"  {k}: {v}" for k, v in sorted(self.metadata.items())]]
        return "\n".join(lines)


def _value_info(value: Any) -> tuple[str, str, list[int | str]]:
    tensor = value.type.tensor_type
    dims = [
        d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in tensor.shape.dim
    ]
    return value.name, _TYPE_NAMES.get(tensor.elem_type, f"type {tensor.elem_type}"), dims


def describe(path: str | Path) -> OnnxInfo:
    """Read and check `path` (raises `OnnxImportError` when damaged) and summarise it."""
    path = Path(path)
    model = read_model(path)
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    trainable = set(trainable_names(model))
    sizes = {init.name: int(np.prod(init.dims)) for init in graph.initializer}
    return OnnxInfo(
        path=path,
        opsets={o.domain: o.version for o in model.opset_import},
        inputs=[_value_info(v) for v in graph.input if v.name not in initializers],
        outputs=[_value_info(v) for v in graph.output],
        ops=Counter(node.op_type for node in graph.node),
        parameters=sum(n for name, n in sizes.items() if name in trainable),
        constants=sum(n for name, n in sizes.items() if name not in trainable),
        metadata={p.key: p.value for p in model.metadata_props},
        producer=f"{model.producer_name} {model.producer_version}".strip() or "unknown",
    )
