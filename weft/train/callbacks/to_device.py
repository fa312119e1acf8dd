"""ToDevice: the model and every batch on one device, with overlapped host-to-device copies."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from weft.train.callbacks.base import Callback
from weft.train.graph import Resolution, RunFirst
from weft.train.permissions import WRITE
from weft.train.phases import Phase

__all__ = ["ToDevice"]


class ToDevice(Callback):
    """Move the model to `device` (default: CUDA when available, else CPU) and feed batches
    through `weft.data.device.prefetch`, which pins memory and copies the next batch on a side
    stream while the current one computes (a plain tensor conversion on the CPU).

    It runs before every callback it shares state with: everything after it sees the device.
    """

    access = {"model": WRITE}  # noqa: RUF012

    def __init__(self, device: str | torch.device | None = None, non_blocking: bool = True):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.non_blocking = non_blocking

    def resolve(self, other: Callback) -> Resolution | None:
        return RunFirst(self)

    def attach(self, learner: Any) -> None:
        learner.model.to(self.device)

    def on_fit_begin(self, learner: Any) -> None:
        learner.model.to(self.device)

    def wrap_data(self, batches: Iterable, phase: Phase) -> Iterable:
        from weft.data.device import prefetch

        return prefetch(batches, self.device, non_blocking=self.non_blocking)

    def __repr__(self) -> str:
        return f"ToDevice({str(self.device)!r})"
