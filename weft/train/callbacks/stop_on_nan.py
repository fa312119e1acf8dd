"""StopOnNaN: stop training when the training loss is not finite."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from weft.train.callbacks.base import Callback, for_phases
from weft.train.permissions import READ
from weft.train.phases import TrainingPhase
from weft.train.stop import StopReason

__all__ = ["StopOnNaN"]


class StopOnNaN(Callback):
    """Stop with `StopReason.NAN_LOSS` after a step whose loss is NaN or infinite.

    Checking reads the loss back from the device; on CUDA `every=N` checks every N steps.
    """

    access: ClassVar = {"step.loss": READ}

    def __init__(self, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"StopOnNaN(every=...) must be >= 1, got {every}")
        self.every = every

    @for_phases(TrainingPhase)
    def on_step_end(self, learner: Any) -> None:
        if learner.progress.step % self.every:
            return
        loss = learner.step.loss.item()
        if not math.isfinite(loss):
            learner.request_stop(
                StopReason.NAN_LOSS,
                f"training loss is {loss} at step {learner.progress.step} "
                f"(epoch {learner.progress.epoch}, batch {learner.progress.batch})",
            )
