"""TensorBoard backend, through the writer of the `tensorboard` package (via torch)."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

from weft.train.loggers.base import Backend

__all__ = ["TensorBoardBackend"]


class TensorBoardBackend(Backend):
    """Write scalars, hyperparameters, histograms and images as TensorBoard event files in
    `log_dir` (view with `tensorboard --logdir <log_dir>`). The event file is created at the
    first write, so processes that never log (ranks other than 0) leave no empty file."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        self.log_dir = os.fspath(log_dir)

    @functools.cached_property
    def writer(self) -> Any:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(self.log_dir)

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def log_hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        clean = {
            k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()
        }
        self.writer.add_hparams(clean, {f"hparam/{k}": v for k, v in metrics.items()}, run_name=".")

    def log_histogram(self, tag: str, values: Any, step: int) -> None:
        self.writer.add_histogram(tag, values, step)

    def log_image(self, tag: str, image: Any, step: int) -> None:
        self.writer.add_image(tag, image, step, dataformats="CHW")

    def flush(self) -> None:
        if "writer" in self.__dict__:
            self.writer.flush()

    def close(self) -> None:
        if "writer" in self.__dict__:
            self.writer.close()
