"""`weft export CHECKPOINT OUT.onnx --model NAME --input-shape C,H,W`: a checkpoint to ONNX.

A checkpoint stores weights, not the architecture, so the model is rebuilt from `--model` (a
zoo name or an import path "package.module:factory", with `--model-arg key=value` for its
constructor, as `weft.models.build_model` takes them) and the checkpoint's weights are loaded
into it. CHECKPOINT is a weft training checkpoint (its "model" entry is used) or a bare state
dict saved with `torch.save`; it is read with `weights_only=True`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HELP = "Export a checkpoint to one ONNX file, checked against onnxruntime."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="weft checkpoint or torch.save'd state dict")
    parser.add_argument("output", type=Path, help="the .onnx file to write")
    parser.add_argument(
        "--model", required=True, help="zoo model name or import path 'package.module:factory'"
    )
    parser.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="constructor argument (VALUE read as JSON when it parses, else as text); repeatable",
    )
    parser.add_argument(
        "--input-shape",
        required=True,
        help="one sample's shape without the batch dimension, e.g. 3,32,32",
    )
    parser.add_argument("--mean", help="input normalisation mean, e.g. 0.49,0.48,0.45 (metadata)")
    parser.add_argument("--std", help="input normalisation std (metadata)")
    parser.add_argument("--class-names", help="comma-separated class names (metadata)")
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    parser.add_argument(
        "--static-batch", action="store_true", help="fix the batch size instead of leaving it free"
    )


def _model_kwargs(pairs: list[str]) -> dict[str, Any]:
    kwargs = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--model-arg {pair!r}: expected KEY=VALUE, e.g. num_classes=10")
        try:
            kwargs[key] = json.loads(text)
        except json.JSONDecodeError:
            kwargs[key] = text
    return kwargs


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} {text!r}: expected comma-separated numbers") from None


def _state_dict(path: Path) -> dict[str, Any]:
    import torch

    from weft.train.checkpoint import read

    state = read(path)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        return state["model"]  # a weft training checkpoint
    if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
        return state
    raise ValueError(
        f"{path} holds neither a weft checkpoint (a dict with a 'model' state dict) nor a "
        "state dict of tensors"
    )


def _first_lines(error: Exception, n: int = 2, width: int = 160) -> str:
    """torch's state-dict mismatch lists every key; the first few lines tell the story."""
    lines = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
    shown = [line if len(line) <= width else line[: width - 3] + "..." for line in lines[:n]]
    more = f"; and {len(lines) - n} more" if len(lines) > n else ""
    return "; ".join(shown) + more


def run(args: argparse.Namespace) -> int:
    import torch

    from weft.models import build_model
    from weft.onnx import ExportMismatchError, export

    try:
        shape = [int(v) for v in args.input_shape.split(",")]
    except ValueError:
        print(
            f"weft export: --input-shape {args.input_shape!r}: expected e.g. 3,32,32",
            file=sys.stderr,
        )
        return 2
    try:
        model = build_model(args.model, **_model_kwargs(args.model_arg))
        state = _state_dict(args.checkpoint)
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(
                f"{args.checkpoint} does not fit model {args.model!r} ({_first_lines(error)}); "
                "pass the --model and --model-arg the checkpoint was trained with"
            ) from None
        report = export(
            model,
            torch.randn(2, *shape),
            args.output,
            dynamic_batch=not args.static_batch,
            mean=_floats(args.mean, "--mean"),
            std=_floats(args.std, "--std"),
            class_names=args.class_names.split(",") if args.class_names else None,
            opset=args.opset,
        )
    except (ValueError, TypeError, ExportMismatchError) as error:
        print(f"weft export: {error}", file=sys.stderr)
        return 1
    print(report)
    return 0
