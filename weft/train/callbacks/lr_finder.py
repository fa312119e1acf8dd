"""LRFinder: the learning-rate range test (grow the lr exponentially, watch the loss)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from weft.train.callbacks.base import Callback, for_phases
from weft.train.graph import Incompatible, Resolution
from weft.train.permissions import READ, WRITE
from weft.train.phases import TrainingPhase
from weft.train.stop import StopReason

if TYPE_CHECKING:
    from weft.train.learner import Learner

__all__ = ["LRFinder", "LRFinderResult", "find_lr"]


@dataclass
class LRFinderResult:
    """The lrs tried, the smoothed losses, and the suggested lr (steepest descent)."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    suggestion: float | None = None

    def plot(self, ax: Any = None) -> Any:
        """Loss against lr (log scale), the suggestion marked; returns the matplotlib axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        ax.plot(self.lrs, self.losses)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss (smoothed)")
        if self.suggestion is not None:
            ax.axvline(self.suggestion, color="red", linestyle="--", label=f"{self.suggestion:.2e}")
            ax.legend()
        return ax


class LRFinder(Callback):
    """Set the lr from `start` to `end` exponentially over `steps` training steps, recording
    the smoothed loss; stop early when it exceeds `diverge` times its minimum. The suggestion
    is the lr where the smoothed loss falls fastest. Use `find_lr`, which restores the model
    and optimizer afterwards.
    """

    access = {"optimizer": WRITE, "step.loss": READ}  # noqa: RUF012

    def __init__(
        self, start: float = 1e-7, end: float = 10.0, steps: int = 100, diverge: float = 4.0,
        smoothing: float = 0.05,
    ) -> None:  # fmt: skip
        if not 0 < start < end:
            raise ValueError(f"LRFinder needs 0 < start < end, got start={start}, end={end}")
        if steps < 2:
            raise ValueError(f"LRFinder needs steps >= 2, got {steps}")
        self.start, self.end, self.steps = start, end, steps
        self.diverge, self.smoothing = diverge, smoothing
        self.result = LRFinderResult()
        self._avg = 0.0
        self._i = 0

    def resolve(self, other: Callback) -> Resolution | None:
        from weft.train.callbacks.scheduler import Scheduler

        if isinstance(other, Scheduler):
            return Incompatible("LRFinder sets the learning rate itself; remove the Scheduler")
        return None

    def _lr(self, i: int) -> float:
        return self.start * (self.end / self.start) ** (i / (self.steps - 1))

    @for_phases(TrainingPhase)
    def on_step_begin(self, learner: Any) -> None:
        for group in learner.optimizer.param_groups:
            group["lr"] = self._lr(self._i)

    @for_phases(TrainingPhase)
    def on_step_end(self, learner: Any) -> None:
        loss = learner.step.loss.item()
        self._avg = self._avg + self.smoothing * (loss - self._avg) if self._i else loss
        r = self.result
        r.lrs.append(self._lr(self._i))
        r.losses.append(self._avg)
        self._i += 1
        if not math.isfinite(loss) or self._avg > self.diverge * min(r.losses):
            learner.request_stop(StopReason.REQUESTED, "LR range test: the loss diverged")
        elif self._i >= self.steps:
            learner.request_stop(StopReason.REQUESTED, "LR range test: done")

    def on_fit_end(self, learner: Any) -> None:
        self.result.suggestion = _steepest(self.result.lrs, self.result.losses)


def _steepest(lrs: list[float], losses: list[float]) -> float | None:
    if len(lrs) < 3:
        return None
    slopes = [
        (losses[i + 1] - losses[i - 1]) / (math.log(lrs[i + 1]) - math.log(lrs[i - 1]))
        for i in range(1, len(lrs) - 1)
    ]
    return lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)]


def find_lr(
    learner: Learner, start: float = 1e-7, end: float = 10.0, steps: int = 100
) -> LRFinderResult:
    """Run the LR range test on `learner`'s training data and put the model, the optimizer and
    the RNG back as they were. Callbacks that shape a step (ToDevice, MixedPrecision, GradClip,
    GradAccumulation) take part; the others do not."""
    from weft.train import checkpoint
    from weft.train.callbacks.grad_accumulation import GradAccumulation
    from weft.train.callbacks.grad_clip import GradClip
    from weft.train.callbacks.mixed_precision import MixedPrecision
    from weft.train.callbacks.to_device import ToDevice
    from weft.train.learner import Learner

    shaping = (ToDevice, MixedPrecision, GradClip, GradAccumulation)
    finder = LRFinder(start, end, steps)
    probe = Learner(
        learner.model, learner.loss_fn, learner.optimizer, data=(learner.data.get("train"), None),
        callbacks=[finder, *(copy.deepcopy(cb) for cb in learner.callbacks if isinstance(cb, shaping))],
        defaults=False, batch_keys=learner.batch_keys, check_access=learner.check_access,
    )  # fmt: skip
    saved = {
        "model": copy.deepcopy(learner.model.state_dict()),
        "optimizer": copy.deepcopy(learner.optimizer.state_dict()),
        "rng": checkpoint.rng_state(),
        "data": learner.data_state(),
    }
    train = learner.data.get("train")
    try:
        epochs = (
            math.ceil(steps / len(train)) if hasattr(train, "__len__") and len(train) else steps
        )
        probe.fit(epochs)
    finally:
        learner.model.load_state_dict(saved["model"])
        learner.optimizer.load_state_dict(saved["optimizer"])
        checkpoint.set_rng_state(saved["rng"])
        learner.load_data_state(saved["data"])
    return finder.result
