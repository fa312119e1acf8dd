"""Phases: what one step does. Training computes loss, gradients and the update; validation
and evaluation only predictions and loss.

Extending: subclass `Phase`, give it a `name` (it prefixes metric names: `train_loss`), set
`training`, and implement `step(learner, step)`, firing the events your callbacks need
(`learner.fire(LossBegin)` ...). Run it with `learner.epoch(MyPhase(), data)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from weft.train.events import BackwardBegin, BackwardEnd, LossBegin

if TYPE_CHECKING:
    from weft.train.learner import Learner
    from weft.train.state import Step

__all__ = ["EvaluationPhase", "Phase", "TrainingPhase", "ValidationPhase"]


class Phase:
    """One kind of pass over data. `training` switches train mode and gradients on."""

    name: ClassVar[str] = "phase"
    training: ClassVar[bool] = False

    def step(self, learner: Learner, step: Step) -> None:
        """Compute one step on `step.inputs`/`step.targets`, writing results into `step`."""
        raise NotImplementedError(f"{type(self).__name__} must implement step(learner, step)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class TrainingPhase(Phase):
    """Forward, loss, backward, optimizer step (skipped when `step.update` is False). The
    forward goes through `learner.train_model`, which syncs gradients in a distributed run."""

    name = "train"
    training = True

    def step(self, learner: Learner, step: Step) -> None:
        step.predictions = learner.train_model(step.inputs)
        learner.fire(LossBegin)
        step.loss = learner.loss_fn(step.predictions, step.targets)
        learner.fire(BackwardBegin)
        step.loss.backward()
        learner.fire(BackwardEnd)
        if step.update:
            learner.optimizer.step()
            learner.optimizer.zero_grad(set_to_none=True)


class ValidationPhase(Phase):
    """Forward and loss without gradients, on the validation data of `fit`."""

    name = "valid"

    def step(self, learner: Learner, step: Step) -> None:
        step.predictions = learner.model(step.inputs)
        learner.fire(LossBegin)
        step.loss = learner.loss_fn(step.predictions, step.targets)


class EvaluationPhase(Phase):
    """What `Learner.evaluate` runs: a validation step under its own name, so callbacks that
    act on validation epochs (early stopping, checkpoints) are not triggered."""

    name = "eval"
    step = ValidationPhase.step
