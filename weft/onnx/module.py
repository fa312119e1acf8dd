"""The PyTorch module that runs an imported ONNX graph: one step per node, weights as Parameters.

Weights live at the dotted paths of their ONNX initializer names (`enc.layers.0.linear1.bias`
becomes `model.enc.layers[0]...` style attributes), so `state_dict()` keys read like the model
the file came from. Constants the graph needs at run time are non-persistent buffers under
`constants`, so `.to(device)` moves them and `state_dict()` holds only what training changes.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from weft.onnx.ops import to_tensor

__all__ = ["OnnxModule", "Step"]


class Step(nn.Module):
    """One ONNX node: reads its inputs from the value table, runs, writes its outputs.

    `static` holds the load-time constants passed as numpy values (all constants of a shape
    step, the integer-list slots of a tensor step); other constants come from the table as
    buffers. A tensor step gets shape values (numpy) as tensors, except in `settings`
    (see `weft.onnx.ops.Op`).
    """

    def __init__(
        self,
        op_type: str,
        name: str,
        inputs: Sequence[str],
        outputs: Sequence[str],
        fn: Callable[..., Any],
        static: dict[int, np.ndarray],
        shape_step: bool,
        settings: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.op_type, self.node_name = op_type, name
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.static, self.shape_step = static, shape_step
        self.settings = frozenset(settings)
        if isinstance(fn, nn.Module):
            self.op = fn  # a child, so .train()/.eval() reach it (BatchNorm, Dropout)
        else:
            self.fn = fn

    def forward(self, values: dict[str, Any]) -> None:
        args = []
        for i, name in enumerate(self.inputs):
            if i in self.static:
                args.append(self.static[i])
            elif not name:
                args.append(None)  # an optional input left empty
            elif self.shape_step or i in self.settings:
                args.append(values[name])
            else:
                args.append(to_tensor(values[name]))
        out = (self.op if hasattr(self, "op") else self.fn)(*args)
        if len(self.outputs) == 1:
            values[self.outputs[0]] = out
        else:
            for name, value in zip(self.outputs, out, strict=False):
                if name:
                    values[name] = value

    def extra_repr(self) -> str:
        return f"{self.op_type} {self.node_name!r}: {self.inputs} -> {self.outputs}"


class OnnxModule(nn.Module):
    """A converted ONNX graph; call it with the graph's inputs in order.

    Returns one tensor for a single-output graph, else a tuple in the graph's output order.
    """

    def __init__(self, input_names: Sequence[str], output_names: Sequence[str]) -> None:
        super().__init__()
        self.input_names, self.output_names = list(input_names), list(output_names)
        self.steps = nn.ModuleList()
        self.constants = nn.Module()
        self._sources: dict[str, tuple[nn.Module, str]] = {}  # ONNX name -> (owner, attribute)
        self._containers: set[int] = {id(self)}

    def add_weight(self, onnx_name: str, value: torch.Tensor, kind: str) -> None:
        """Register an initializer as a 'parameter', a persistent 'buffer' or a 'constant'."""
        if kind == "constant":
            owner, attr = self.constants, _identifier(onnx_name, self.constants)
            owner.register_buffer(attr, value, persistent=False)
        else:
            owner, attr = self._place(onnx_name)
            if kind == "parameter":
                owner.register_parameter(attr, nn.Parameter(value))
            else:
                owner.register_buffer(attr, value)
        self._sources[onnx_name] = (owner, attr)

    def _place(self, onnx_name: str) -> tuple[nn.Module, str]:
        """The owner module and attribute for a dotted name, creating containers on the way."""
        *path, leaf = [re.sub(r"\W", "_", part) or "_" for part in onnx_name.split(".")]
        owner: nn.Module = self
        for part in path:
            child = owner._modules.get(part)
            if child is None and not hasattr(owner, part):
                child = nn.Module()
                owner.add_module(part, child)
                self._containers.add(id(child))
            if child is None or id(child) not in self._containers:
                return self, _identifier(onnx_name, self)  # clashes with an attribute: go flat
            owner = child
        if hasattr(owner, leaf):
            return self, _identifier(onnx_name, self)
        return owner, leaf

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise TypeError(
                f"this ONNX model takes {len(self.input_names)} input(s) "
                f"{self.input_names}, got {len(inputs)}"
            )
        values: dict[str, Any] = {name: getattr(o, a) for name, (o, a) in self._sources.items()}
        values.update(zip(self.input_names, inputs, strict=True))
        # Tensors the graph creates (ConstantOfShape, Range, shape values) go where the
        # inputs are, so the module runs on any device it is moved to. The context costs
        # time on every torch call, so it is entered only when it changes something.
        device = inputs[0].device if inputs else None
        moved = device is not None and device != torch.get_default_device()
        with torch.device(device) if moved else contextlib.nullcontext():
            for step in self.steps:
                step(values)
            outputs = tuple(to_tensor(values[name]) for name in self.output_names)
        return outputs[0] if len(outputs) == 1 else outputs


def _identifier(onnx_name: str, owner: nn.Module) -> str:
    """A flat attribute name for `onnx_name` that is free on `owner`."""
    base = re.sub(r"\W", "_", onnx_name) or "_"
    attr, n = base, 1
    while hasattr(owner, attr) or attr in owner._modules:
        attr, n = f"{base}_{n}", n + 1
    return attr
