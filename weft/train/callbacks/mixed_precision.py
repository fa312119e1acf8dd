"""MixedPrecision: autocast the forward pass; on CUDA with float16, scale the loss."""

from __future__ import annotations

from typing import Any

import torch

from weft.train.callbacks.base import Callback, for_phases
from weft.train.graph import Resolution, RunFirst
from weft.train.permissions import READ, WRITE
from weft.train.phases import TrainingPhase

__all__ = ["MixedPrecision"]


class MixedPrecision(Callback):
    """Run forward and loss under `torch.autocast`: float16 with a GradScaler on CUDA, bfloat16
    on the CPU (no scaler needed). With the scaler, the backward pass runs on the scaled loss,
    gradients are unscaled before anything else touches them (so GradClip clips true values),
    and a step whose gradients overflowed is skipped. `step.loss` stays the unscaled loss.
    """

    access = {"model": WRITE, "optimizer": READ, "step.loss": WRITE, "step.update": WRITE}  # noqa: RUF012

    def __init__(self, dtype: torch.dtype | None = None, device_type: str | None = None) -> None:
        self.device_type = device_type or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = dtype or (torch.float16 if self.device_type == "cuda" else torch.bfloat16)
        self.scaler: torch.amp.GradScaler | None = None
        self._autocast: Any = None
        self._loss: Any = None

    def resolve(self, other: Callback) -> Resolution | None:
        from weft.train.callbacks.grad_accumulation import GradAccumulation
        from weft.train.callbacks.grad_clip import GradClip

        if isinstance(other, GradClip):
            return RunFirst(self)  # unscale before clipping
        if isinstance(other, GradAccumulation):
            return RunFirst(other)  # its update decision comes first
        return None

    def on_fit_begin(self, learner: Any) -> None:
        if self.scaler is None and self.device_type == "cuda" and self.dtype == torch.float16:
            self.scaler = torch.amp.GradScaler("cuda")

    def on_step_begin(self, learner: Any) -> None:
        self._autocast = torch.autocast(self.device_type, dtype=self.dtype)
        self._autocast.__enter__()

    def _leave_autocast(self) -> None:
        if self._autocast is not None:
            self._autocast.__exit__(None, None, None)
            self._autocast = None

    @for_phases(TrainingPhase)
    def on_backward_begin(self, learner: Any) -> None:
        self._leave_autocast()  # the backward pass runs outside autocast
        if self.scaler is not None:
            self._loss = learner.step.loss
            learner.step.loss = self.scaler.scale(self._loss)

    @for_phases(TrainingPhase)
    def on_backward_end(self, learner: Any) -> None:
        if self.scaler is None:
            return
        step = learner.step
        step.loss, self._loss = self._loss, None
        if not step.update:
            return
        self.scaler.unscale_(learner.optimizer)
        before = self.scaler.get_scale()
        self.scaler.update()
        if self.scaler.get_scale() < before:  # the scale backs off only after inf/NaN gradients
            step.update = False
            learner.optimizer.zero_grad(set_to_none=True)

    def on_step_end(self, learner: Any) -> None:
        self._leave_autocast()

    def state_dict(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict() if self.scaler is not None else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is None and state["scaler"]:
            self.scaler = torch.amp.GradScaler("cuda")
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])

    def __repr__(self) -> str:
        return f"MixedPrecision({self.device_type}, {self.dtype})"
