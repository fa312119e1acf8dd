"""TensorBoard backend, through the writer of the `tensorboard` package (via torch)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from weft.train.loggers.base import Backend

__all__ = ["TensorBoardBackend"]


class TensorBoardBackend(Backend):
    """Write scalars, hyperparameters, histograms and images as TensorBoard event files in
    `log_dir` (view with `tensorboard --logdir <log_dir>`)."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = os.fspath(log_dir)
        self.writer = SummaryWriter(self.log_dir)

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
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
