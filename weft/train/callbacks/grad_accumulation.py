"""GradAccumulation: update every n steps with the mean gradient of n batches."""

from __future__ import annotations

from typing import Any

from weft.train.callbacks.base import Callback, for_phases
from weft.train.graph import Resolution, RunFirst
from weft.train.permissions import WRITE
from weft.train.phases import TrainingPhase

__all__ = ["GradAccumulation"]


class GradAccumulation(Callback):
    """Accumulate gradients over `n` training steps and update once, with the gradients
    divided by `n` (the mean over the n batches, as one n-times-larger batch would give).

    It runs before other gradient writers (GradClip clips the averaged gradient). The count is
    the global step counter, so a resumed fit keeps the same update steps; gradients of an
    unfinished accumulation at the end of a fit stay in the model's `.grad`.
    """

    access = {"model": WRITE, "step.update": WRITE}  # noqa: RUF012

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"GradAccumulation needs n >= 1, got {n}")
        self.n = n

    def resolve(self, other: Callback) -> Resolution | None:
        from weft.train.callbacks.grad_clip import GradClip

        return RunFirst(self) if isinstance(other, GradClip) else None

    @for_phases(TrainingPhase)
    def on_backward_begin(self, learner: Any) -> None:
        learner.step.update = (learner.progress.step + 1) % self.n == 0

    @for_phases(TrainingPhase)
    def on_backward_end(self, learner: Any) -> None:
        if learner.step.update and self.n > 1:
            for p in learner.model.parameters():
                if p.grad is not None:
                    p.grad.div_(self.n)
