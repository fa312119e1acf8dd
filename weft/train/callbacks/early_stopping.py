"""EarlyStopping: stop when a monitored metric stops improving, or once it reaches a target."""

from __future__ import annotations

import math
from typing import Any

from weft.train.callbacks.base import Callback
from weft.train.permissions import READ
from weft.train.stop import StopReason

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Stop with `StopReason.EARLY_STOPPING` when `monitor` (a `cbstate.metrics` key such as
    `valid_loss`) has not improved by more than `min_delta` for `patience` epochs, or as soon as
    it reaches `stop_at` (time-to-accuracy runs: nothing after the target is needed).
    `mode` is "min" (lower is better) or "max"; `patience=None` keeps only the `stop_at` rule.
    """

    access = {"cbstate.metrics": READ}  # noqa: RUF012

    def __init__(
        self,
        monitor: str = "valid_loss",
        patience: int | None = 3,
        min_delta: float = 0.0,
        mode: str = "min",
        stop_at: float | None = None,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping mode must be 'min' or 'max', got {mode!r}")
        if patience is not None and patience < 1:
            raise ValueError(f"EarlyStopping patience must be >= 1 or None, got {patience}")
        if patience is None and stop_at is None:
            raise ValueError("EarlyStopping with patience=None needs stop_at, or it never stops")
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, min_delta, mode
        self.stop_at = stop_at
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.wait = 0

    def on_epoch_end(self, learner: Any) -> None:
        if not self.monitor.startswith(learner.phase.name + "_"):
            return
        metrics = learner.cbstate.metrics
        if self.monitor not in metrics:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r}, but the metrics are {sorted(metrics)}; "
                f"pass monitor= one of them"
            )
        value = metrics[self.monitor]
        if self.stop_at is not None and (
            value <= self.stop_at if self.mode == "min" else value >= self.stop_at
        ):
            learner.request_stop(
                StopReason.EARLY_STOPPING,
                f"{self.monitor} reached {value:.6g} (stop_at {self.stop_at:.6g}) "
                f"at epoch {learner.progress.epoch}",
            )
        better = (
            value < self.best - self.min_delta
            if self.mode == "min"
            else value > self.best + self.min_delta
        )
        if better:
            self.best, self.best_epoch, self.wait = value, learner.progress.epoch, 0
            return
        self.wait += 1
        if self.patience is not None and self.wait >= self.patience:
            learner.request_stop(
                StopReason.EARLY_STOPPING,
                f"{self.monitor} did not improve for {self.wait} epochs "
                f"(best {self.best:.6g} at epoch {self.best_epoch})",
            )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = (
            float(state["best"]),
            int(state["best_epoch"]),
            int(state["wait"]),
        )
