"""`export`: write a model to one self-contained ONNX file and check it against onnxruntime."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import weft

__all__ = ["ExportMismatchError", "ExportReport", "export", "metadata_props"]


class ExportMismatchError(RuntimeError):
    """onnxruntime's outputs differ from the PyTorch model's by more than the tolerance."""


@dataclass(frozen=True)
class ExportReport:
    """Where the file went and how closely onnxruntime reproduces the model."""

    path: Path
    opset: int
    batch_sizes: tuple[int, ...]
    max_abs_diff: float  # over every output and batch size checked
    external_data: bool = False  # True only for models too large for one protobuf file

    def __str__(self) -> str:
        return (
            f"wrote {self.path} (opset {self.opset}); onnxruntime matches PyTorch at batch "
            f"sizes {list(self.batch_sizes)}, max abs difference {self.max_abs_diff:.3g}"
            + ("; weights over 2 GiB are in a data file beside it" if self.external_data else "")
        )


def metadata_props(
    sample: Sequence[torch.Tensor],
    input_layout: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The `weft.*` metadata properties stored in an exported file; lists are JSON."""
    if input_layout is None and len(sample) == 1 and sample[0].dim() == 4:
        input_layout = "NCHW"  # what every torch image model takes
    props = {
        "weft.version": weft.__version__,
        "weft.input_shapes": json.dumps([["N", *s.shape[1:]] for s in sample]),
    }
    for key, value in [
        ("input_layout", input_layout),
        ("mean", None if mean is None else [float(v) for v in mean]),
        ("std", None if std is None else [float(v) for v in std]),
        ("class_names", None if class_names is None else list(class_names)),
    ]:
        if value is not None:
            props[f"weft.{key}"] = value if isinstance(value, str) else json.dumps(value)
    props.update(extra or {})
    return props


def export(
    model_or_learner: Any,
    sample_input: torch.Tensor | Sequence[torch.Tensor],
    path: str | Path,
    dynamic_batch: bool = True,
    *,
    input_layout: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
    metadata: Mapping[str, str] | None = None,
    opset: int | None = None,
    verify_batch_sizes: Sequence[int] = (1, 2, 5),
    atol: float = 1e-4,
) -> ExportReport:
    """Export with torch's dynamo exporter to ONE file and verify it with onnxruntime.

    The file is self-contained unless the weights exceed protobuf's 2 GiB limit (then they go
    to a data file beside it, and the report says so). The model runs in eval mode (its mode
    is restored afterwards). With `dynamic_batch` the
    first dimension of every input is dynamic and the file is checked at each of
    `verify_batch_sizes` (random normal inputs; integer inputs repeat the sample's rows);
    otherwise at the sample's own size.
    `input_layout`, `mean`/`std` (the input normalisation) and `class_names` go into the
    file's metadata properties as `weft.*` keys, with `metadata` added as given.
    Raises `ExportMismatchError` when outputs differ by more than `atol`.

    Extending: models whose forward takes keyword arguments or returns dicts need a small
    wrapper module that takes and returns tensors.
    """
    model = model_or_learner
    if not isinstance(model, nn.Module):  # a Learner, or anything else holding one
        model = getattr(model_or_learner, "model", None)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"export needs a torch.nn.Module or an object with a .model module, got "
            f"{type(model_or_learner).__name__}"
        )
    sample = (sample_input,) if isinstance(sample_input, torch.Tensor) else tuple(sample_input)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        program = _torch_export(model, sample, dynamic_batch, opset)
        program.model.metadata_props.update(
            metadata_props(sample, input_layout, mean, std, class_names, metadata)
        )
        # protobuf caps one file at 2 GiB; only larger models get a weights file beside it
        external = _state_bytes(model) > _SINGLE_FILE_LIMIT
        program.save(str(path), external_data=external)
        opset_used = program.model.opset_imports[""]
        sizes = tuple(verify_batch_sizes) if dynamic_batch else (sample[0].shape[0],)
        diff = _verify(model, sample, path, sizes)
    finally:
        model.train(was_training)
    if not diff <= atol:  # also catches NaN
        raise ExportMismatchError(
            f"{path}: onnxruntime's outputs differ from PyTorch's by up to {diff:.3g} "
            f"(tolerance {atol}); check for ops that behave differently in eval mode or "
            "data-dependent control flow, which the exporter records for one path only"
        )
    return ExportReport(path, opset_used, sizes, diff, external)


def _torch_export(
    model: nn.Module, sample: tuple[torch.Tensor, ...], dynamic_batch: bool, opset: int | None
) -> Any:
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch")
        dynamic_shapes = tuple({0: batch} for _ in sample)
        if _takes_varargs(model):  # forward(*inputs): the tuple is one argument
            dynamic_shapes = (dynamic_shapes,)
    # The exporter's notices about optional packages (torchvision ops it skips) go through
    # both warnings and torch's logger; neither concerns a model that does not use them.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.onnx.export(
                model,
                sample,
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
        finally:
            exporter_log.setLevel(level)


_SINGLE_FILE_LIMIT = 1_900_000_000  # bytes; leaves room under protobuf's 2 GiB for the graph


def _state_bytes(model: nn.Module) -> int:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _takes_varargs(model: nn.Module) -> bool:
    import inspect

    params = list(inspect.signature(model.forward).parameters.values())
    return bool(params) and params[0].kind is inspect.Parameter.VAR_POSITIONAL


def _outputs(value: Any) -> list[np.ndarray]:
    if isinstance(value, torch.Tensor):
        return [value.detach().cpu().numpy()]
    if isinstance(value, (tuple, list)):
        return [array for item in value for array in _outputs(item)]
    raise TypeError(f"export supports models returning tensors or tuples, got {type(value)}")


def _verification_input(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """`size` rows like `x`: random normal for float inputs (a zero sample would check
    nothing), rows of `x` repeated for integer inputs (token ids, indices stay valid)."""
    if x.is_floating_point():
        noise = torch.randn((size, *x.shape[1:]), generator=generator)
        return noise.to(device=x.device, dtype=x.dtype)
    return x[torch.arange(size, device=x.device) % x.shape[0]]


def _verify(
    model: nn.Module, sample: tuple[torch.Tensor, ...], path: Path, batch_sizes: Sequence[int]
) -> float:
    """Largest |onnxruntime - torch| over all outputs and batch sizes."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    diff = 0.0
    generator = torch.Generator().manual_seed(0)
    for size in batch_sizes:
        inputs = tuple(_verification_input(x, size, generator) for x in sample)
        with torch.no_grad():
            expected = _outputs(model(*inputs))
        got = session.run(None, {n: x.cpu().numpy() for n, x in zip(names, inputs, strict=False)})
        for e, g in zip(expected, got, strict=True):
            diff = max(diff, float(np.max(np.abs(e.astype(np.float64) - g), initial=0.0)))
    return diff
