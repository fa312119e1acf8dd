"""Lookahead: every few steps, average the weights into a slow copy and continue from it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from weft.train.callbacks.base import Callback, for_phases
from weft.train.callbacks.scheduler import fit_steps
from weft.train.graph import NO_CONFLICT, Resolution
from weft.train.permissions import READ, WRITE
from weft.train.phases import TrainingPhase
from weft.train.schedules import constant

__all__ = ["Lookahead"]


class Lookahead(Callback):
    """The lookahead/EMA scheme of the CIFAR-10 speedruns (hlb-cifar10, airbench): every `every`
    optimizer updates after `start` of the fit, the slow copy moves towards the model's
    floating-point state (weights and batch-norm statistics), `slow += (1 - decay) * (model -
    slow)`, and the model continues from the slow copy; at the end of each training epoch the
    model is set to the slow copy.

    `decay` is a number or a schedule of t in [0, 1] (the fit's progress), e.g. airbench's
    `lambda t: 0.95**5 * t**3`: the average is loose early and strong at the end. The slow copy
    is checkpointed, so a resumed fit continues it exactly.
    """

    access: ClassVar = {"model": WRITE, "step.update": READ, "data": READ}

    def __init__(
        self, every: int = 5, decay: float | Callable[[float], float] = 0.95**5, start: float = 0.0
    ):
        if every < 1:
            raise ValueError(f"Lookahead(every=...) must be >= 1, got {every}")
        if not 0 <= start < 1:
            raise ValueError(
                f"Lookahead(start=...) is a fraction of the fit in [0, 1), got {start}"
            )
        if not callable(decay) and not 0 <= decay <= 1:
            raise ValueError(f"Lookahead(decay=...) must be in [0, 1], got {decay}")
        self.every, self.start = every, start
        self.decay = decay if callable(decay) else constant(decay)
        self.slow: list[torch.Tensor] | None = None
        self._updates = 0
        self._total = 0

    def resolve(self, other: Callback) -> Resolution | None:
        from weft.train.callbacks.grad_accumulation import GradAccumulation
        from weft.train.callbacks.grad_clip import GradClip
        from weft.train.callbacks.mixed_precision import MixedPrecision

        # It moves the weights between optimizer updates; these write gradients within one.
        if isinstance(other, GradAccumulation | GradClip | MixedPrecision):
            return NO_CONFLICT
        return None  # e.g. ToDevice, which runs first

    def on_fit_begin(self, learner: Any) -> None:
        self._total = fit_steps(learner, "Lookahead")

    @for_phases(TrainingPhase)
    def on_step_end(self, learner: Any) -> None:
        if not learner.step.update:
            return  # gradients are still accumulating
        p = learner.progress
        t = (p.step - p.fit_start_step) / max(self._total, 1)
        if t < self.start:
            return
        self._updates += 1
        if self._updates % self.every:
            return
        current = _floating_state(learner.model)
        if self.slow is None:
            self.slow = [x.detach().clone() for x in current]
            return
        decay = float(self.decay(min(t, 1.0)))
        with torch.no_grad():
            for slow, x in zip(self.slow, current, strict=True):
                slow.lerp_(x, 1 - decay)
                x.copy_(slow)

    @for_phases(TrainingPhase)
    def on_epoch_end(self, learner: Any) -> None:
        if self.slow is None:
            return
        with torch.no_grad():
            for slow, x in zip(self.slow, _floating_state(learner.model), strict=True):
                x.copy_(slow)

    def state_dict(self) -> dict[str, Any]:
        return {"slow": self.slow, "updates": self._updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.slow, self._updates = state["slow"], int(state["updates"])


def _floating_state(model: torch.nn.Module) -> list[torch.Tensor]:
    """The model's floating-point parameters and buffers, in state-dict order."""
    return [x for x in model.state_dict(keep_vars=True).values() if x.is_floating_point()]
