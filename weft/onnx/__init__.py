"""ONNX interchange: export a model to one self-contained file, import one back to train it.

`export` writes with torch's dynamo exporter and checks the file with onnxruntime; `load`
turns an ONNX file into a trainable `OnnxModule`; `describe` summarises a file.
Needs the `onnx` extra (onnx, onnxscript, onnxruntime).
"""

from weft.onnx.export import ExportMismatchError, ExportReport, export
from weft.onnx.info import OnnxInfo, describe
from weft.onnx.load import OnnxImportError, load
from weft.onnx.module import OnnxModule
from weft.onnx.ops import register, supported_ops

__all__ = [
    "ExportMismatchError",
    "ExportReport",
    "OnnxImportError",
    "OnnxInfo",
    "OnnxModule",
    "describe",
    "export",
    "load",
    "register",
    "supported_ops",
]
