"""The learner's mutable state that callbacks reach by path: `step.*`, `progress.*`, `cbstate.*`.

One `Step` object is reused for every batch, so views and snapshots built once stay valid.
"""

from __future__ import annotations

from typing import Any

__all__ = ["STEP_FIELDS", "CallbackState", "Progress", "Step"]

STEP_FIELDS = ("batch", "inputs", "targets", "predictions", "loss", "update")


class Step:
    """Per-step state: the batch, its inputs/targets, predictions, loss, and whether to update.

    `update` is True when the optimizer should step after the backward pass; gradient
    accumulation and mixed precision set it False to skip an update.
    """

    __slots__ = STEP_FIELDS

    def __init__(self) -> None:
        self.batch: Any = None
        self.inputs: Any = None
        self.targets: Any = None
        self.predictions: Any = None
        self.loss: Any = None
        self.update: bool = True

    def __repr__(self) -> str:
        return f"Step(inputs={_short(self.inputs)}, targets={_short(self.targets)}, loss={_short(self.loss)})"


class Progress:
    """Counters the loop maintains; every callback may read them.

    `epoch`: completed epochs (all phases) since the learner was built or restored;
    `step`: training steps done; `batch`: batches done in the current phase's epoch;
    `fit_epochs`/`fit_start_epoch`/`fit_start_step`: the span of the current `fit`.
    """

    __slots__ = ("batch", "epoch", "fit_epochs", "fit_start_epoch", "fit_start_step", "step")

    def __init__(self) -> None:
        self.epoch = 0
        self.step = 0
        self.batch = 0
        self.fit_epochs = 0
        self.fit_start_epoch = 0
        self.fit_start_step = 0

    def state_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def load_state_dict(self, state: dict[str, int]) -> None:
        for name in self.__slots__:
            setattr(self, name, int(state[name]))

    def copy(self) -> Progress:
        new = Progress()
        new.load_state_dict(self.state_dict())
        return new

    def __repr__(self) -> str:
        return f"Progress(epoch={self.epoch}, step={self.step}, batch={self.batch})"


class CallbackState:
    """Shared state callbacks publish for each other (`cbstate.metrics`, `cbstate.history`...)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"cbstate.{name} has not been written yet; the callback that writes it sets it "
            f"when it is attached or at fit begin"
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def __repr__(self) -> str:
        return f"CallbackState({', '.join(vars(self))})"


def _short(x: Any) -> str:
    shape = getattr(x, "shape", None)
    if shape is not None:
        return f"<{type(x).__name__} {tuple(shape)} {getattr(x, 'dtype', '')}>"
    return type(x).__name__ if x is not None else "None"
