"""Events: the named moments of the loop at which callbacks run.

An event is a class; a callback handles it by defining a method `on_<name>(self, learner)`.
The standard events, in the order a training step fires them: `FitBegin`, `EpochBegin`,
`StepBegin`, `LossBegin`, `BackwardBegin`, `BackwardEnd`, `StepEnd`, `EpochEnd`, `FitEnd`.

Extending: subclass `Event` with a new `name`, fire it from a custom phase's step (or from a
callback) with `learner.fire(MyEvent)`, and handle it with `on_<name>`.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "STANDARD_EVENTS",
    "BackwardBegin",
    "BackwardEnd",
    "EpochBegin",
    "EpochEnd",
    "Event",
    "FitBegin",
    "FitEnd",
    "LossBegin",
    "StepBegin",
    "StepEnd",
]


class Event:
    """A moment of the loop; `name` picks the handler method `on_<name>`."""

    name: ClassVar[str] = "event"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            raise TypeError(
                f"event class {cls.__name__} must set a `name` (its handler is on_<name>)"
            )

    @classmethod
    def handler_name(cls) -> str:
        """The callback method that handles this event."""
        return "on_" + cls.name


class FitBegin(Event):
    """Before the first epoch of `fit`; no phase is active."""

    name = "fit_begin"


class FitEnd(Event):
    """After the last epoch of `fit`, also when training stopped early."""

    name = "fit_end"


class EpochBegin(Event):
    """Before the first batch of a phase's pass over its data."""

    name = "epoch_begin"


class EpochEnd(Event):
    """After the last batch of a phase's pass over its data (or after a stop)."""

    name = "epoch_end"


class StepBegin(Event):
    """A batch has been split into `step.inputs` / `step.targets`; nothing computed yet."""

    name = "step_begin"


class LossBegin(Event):
    """`step.predictions` are computed; the loss is next."""

    name = "loss_begin"


class BackwardBegin(Event):
    """`step.loss` is computed; the backward pass is next (training only)."""

    name = "backward_begin"


class BackwardEnd(Event):
    """Gradients are computed; the optimizer step is next (training only)."""

    name = "backward_end"


class StepEnd(Event):
    """The step is done: predictions, loss and (in training) the update."""

    name = "step_end"


STANDARD_EVENTS: tuple[type[Event], ...] = (
    FitBegin,
    EpochBegin,
    StepBegin,
    LossBegin,
    BackwardBegin,
    BackwardEnd,
    StepEnd,
    EpochEnd,
    FitEnd,
)
