"""TimeLimit: stop training after a wall-clock budget."""

from __future__ import annotations

import time
from typing import Any

from weft.train.callbacks.base import Callback, for_phases
from weft.train.phases import TrainingPhase
from weft.train.stop import StopReason

__all__ = ["TimeLimit"]


class TimeLimit(Callback):
    """Stop with `StopReason.TIME_LIMIT` after the first training step that ends more than
    `seconds` after the fit began (time of earlier sessions of a resumed fit not counted)."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"TimeLimit needs seconds > 0, got {seconds}")
        self.seconds = seconds
        self._deadline = 0.0

    def on_fit_begin(self, learner: Any) -> None:
        self._deadline = time.monotonic() + self.seconds

    @for_phases(TrainingPhase)
    def on_step_end(self, learner: Any) -> None:
        if time.monotonic() > self._deadline:
            learner.request_stop(StopReason.TIME_LIMIT, f"time limit of {self.seconds:g} s reached")
