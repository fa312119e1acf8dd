"""weft: a deep-learning training toolkit on PyTorch.

Subpackages are imported on use: `weft.data` and `weft.augment` need only numpy (and OpenCV),
`weft.train` and `weft.onnx` need torch.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
