"""Loggers: the asynchronous `Logger` callback and its backends (TensorBoard, CSV).

Extending: a new destination (MLflow, W&B...) is a `Backend` subclass; see `base`.
"""

from weft.train.loggers.base import Backend
from weft.train.loggers.csv import CSVBackend
from weft.train.loggers.logger import Logger
from weft.train.loggers.tensorboard import TensorBoardBackend

__all__ = ["Backend", "CSVBackend", "Logger", "TensorBoardBackend"]
