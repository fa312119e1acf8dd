"""ONNX interchange: export a model to one self-contained file, import one back to train it."""

from weft.onnx.load import OnnxImportError, load
from weft.onnx.module import OnnxModule
from weft.onnx.ops import register, supported_ops

__all__ = ["OnnxImportError", "OnnxModule", "load", "register", "supported_ops"]
