"""Scheduler: set optimizer hyperparameters (lr, momentum, weight decay...) from schedules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from weft.train.callbacks.base import Callback, for_phases
from weft.train.permissions import READ, WRITE
from weft.train.phases import TrainingPhase
from weft.train.schedules import Schedule

__all__ = ["Scheduler"]


class Scheduler(Callback):
    """Before every training step, set each named hyperparameter of the optimizer to its
    schedule's value at t = (steps done in this fit) / `total_steps`.

    `Scheduler(lr=one_cycle(1e-2), momentum=cosine(0.95, 0.85), weight_decay=constant(0))`.
    A list of schedules sets each param group on its own. `momentum` also drives Adam's first
    beta. `total_steps` defaults to epochs of the fit times the training data's `len()`.
    The schedule depends only on the step counter, so a resumed fit continues it exactly.

    Extending: a schedule is any function of t in [0, 1] (see `weft.train.schedules`).
    """

    access = {"optimizer": WRITE, "data": READ}  # noqa: RUF012

    def __init__(self, total_steps: int | None = None, **schedules: Schedule | Sequence[Schedule]):
        if not schedules:
            raise ValueError(
                "Scheduler needs at least one schedule, e.g. Scheduler(lr=cosine(1e-2, 0))"
            )
        for name, s in schedules.items():
            items = s if isinstance(s, (list, tuple)) else [s]
            if not all(callable(x) for x in items):
                raise TypeError(
                    f"Scheduler({name}=...) must be a schedule (a function of t) or a list of them"
                )
        self.schedules = dict(schedules)
        self.total_steps = total_steps
        self._total = total_steps or 0

    def on_fit_begin(self, learner: Any) -> None:
        if self.total_steps is None:
            self._total = fit_steps(learner, "Scheduler", "; pass Scheduler(total_steps=...)")
        groups = learner.optimizer.param_groups
        for name, s in self.schedules.items():
            if isinstance(s, (list, tuple)) and len(s) != len(groups):
                raise ValueError(
                    f"Scheduler({name}=[...]) has {len(s)} schedules but the optimizer has "
                    f"{len(groups)} param groups"
                )
            if not _has(groups[0], name):
                raise ValueError(
                    f"Scheduler({name}=...): the optimizer {type(learner.optimizer).__name__} "
                    f"has no hyperparameter {name!r}; it has {sorted(k for k in groups[0] if k != 'params')}"
                )

    @for_phases(TrainingPhase)
    def on_step_begin(self, learner: Any) -> None:
        p = learner.progress
        t = min((p.step - p.fit_start_step) / max(self._total, 1), 1.0)
        groups = learner.optimizer.param_groups
        for name, s in self.schedules.items():
            if isinstance(s, (list, tuple)):
                for group, si in zip(groups, s, strict=True):
                    _set(group, name, si(t))
            else:
                value = s(t)
                for group in groups:
                    _set(group, name, value)

    def state_dict(self) -> dict[str, Any]:
        return {"total": self._total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._total = int(state["total"])


def _has(group: dict, name: str) -> bool:
    return name in group or (name == "momentum" and "betas" in group)


def _set(group: dict, name: str, value: float) -> None:
    if name == "momentum" and "momentum" not in group:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group[name] = value


def fit_steps(learner: Any, who: str, hint: str = "") -> int:
    """The training steps of the current fit: its epochs times the training data's len().
    For callbacks that place something along the fit (schedules, averaging)."""
    train = learner.data.get("train")
    if not hasattr(train, "__len__"):
        raise ValueError(
            f"{who} cannot tell how many steps the fit has: the training data has no len(){hint}"
        )
    return learner.progress.fit_epochs * len(train)
