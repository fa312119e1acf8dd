"""History: one record per epoch with counters, wall time, metrics and hyperparameters."""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

from weft.train.callbacks.base import Callback
from weft.train.permissions import READ, WRITE
from weft.train.phases import EvaluationPhase

__all__ = ["History", "hyperparameters", "is_hyperparameter"]

_HPARAMS = ("lr", "momentum", "weight_decay")
_HPARAM_KEY = re.compile(r"(lr|momentum|beta1|weight_decay)(_\d+)?")


class History(Callback):
    """Append to `cbstate.history` a dict per epoch: `epoch`, `step`, `time` (seconds of
    training so far, across resumes), each phase's metrics, and the optimizer's
    hyperparameters (`lr`, `momentum`, `beta1`, `weight_decay`; `_<i>` for groups i > 0).

    `fit` returns the records of that fit as `FitResult.history`.
    """

    access: ClassVar = {"cbstate.metrics": READ, "optimizer": READ, "cbstate.history": WRITE}

    def __init__(self) -> None:
        self._elapsed = 0.0
        self._started = 0.0

    def attach(self, learner: Any) -> None:
        learner.cbstate.history = []

    def on_fit_begin(self, learner: Any) -> None:
        self._started = time.perf_counter() - self._elapsed

    def on_epoch_end(self, learner: Any) -> None:
        phase = learner.phase
        if isinstance(phase, EvaluationPhase):
            return
        rows = learner.cbstate.history
        epoch = learner.progress.epoch
        if not rows or rows[-1]["epoch"] != epoch:
            rows.append({"epoch": epoch})
        row = rows[-1]
        self._elapsed = time.perf_counter() - self._started
        row.update(step=learner.progress.step, time=self._elapsed)
        prefix = phase.name + "_"
        row.update({k: v for k, v in learner.cbstate.metrics.items() if k.startswith(prefix)})
        row.update(hyperparameters(learner.optimizer))

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed": self._elapsed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._elapsed = float(state["elapsed"])
        self._started = time.perf_counter() - self._elapsed


def hyperparameters(optimizer: Any) -> dict[str, float]:
    """The scalar hyperparameters of each param group, named `lr`, `lr_1`, ..."""
    out: dict[str, float] = {}
    for i, group in enumerate(optimizer.param_groups):
        suffix = f"_{i}" if i else ""
        for key in _HPARAMS:
            if isinstance(group.get(key), (int, float)):
                out[key + suffix] = float(group[key])
        betas = group.get("betas")
        if isinstance(betas, (tuple, list)) and betas:
            out["beta1" + suffix] = float(betas[0])
    return out


def is_hyperparameter(key: str) -> bool:
    """Whether a history key names a hyperparameter (`lr`, `beta1_1`...), not a metric."""
    return _HPARAM_KEY.fullmatch(key) is not None
