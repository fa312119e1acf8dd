"""GradClip: clip gradients by global norm or by value before the optimizer step."""

from __future__ import annotations

from typing import Any

import torch

from weft.train.callbacks.base import Callback, for_phases
from weft.train.permissions import READ, WRITE
from weft.train.phases import TrainingPhase

__all__ = ["GradClip"]


class GradClip(Callback):
    """Clip the gradients of the model's parameters before each optimizer update: to a global
    norm of at most `max_norm` (`norm_type`), or elementwise to [-value, value].
    `last_norm` holds the norm before clipping of the last update (norm clipping only).
    """

    access = {"model": WRITE, "step.update": READ}  # noqa: RUF012

    def __init__(
        self, max_norm: float | None = None, *, value: float | None = None, norm_type: float = 2.0
    ):
        if (max_norm is None) == (value is None):
            raise ValueError("GradClip needs exactly one of max_norm=... or value=...")
        self.max_norm, self.value, self.norm_type = max_norm, value, norm_type
        self.last_norm: torch.Tensor | None = None

    @for_phases(TrainingPhase)
    def on_backward_end(self, learner: Any) -> None:
        if not learner.step.update:
            return  # gradients are still accumulating
        params = learner.model.parameters()
        if self.max_norm is not None:
            self.last_norm = torch.nn.utils.clip_grad_norm_(params, self.max_norm, self.norm_type)
        else:
            torch.nn.utils.clip_grad_value_(params, self.value)
