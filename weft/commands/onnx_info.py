"""`weft onnx-info MODEL.onnx`: inputs, outputs, opset, op histogram, parameters, metadata."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "Describe an ONNX file: inputs, outputs, opset, ops, parameter count, metadata."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the .onnx file")


def run(args: argparse.Namespace) -> int:
    from weft.onnx import OnnxImportError, describe

    try:
        print(describe(args.model))
    except OnnxImportError as error:
        print(f"weft onnx-info: {error}", file=sys.stderr)
        return 1
    return 0
