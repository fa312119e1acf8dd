"""Checkpointer: save the full training state periodically; keep the last k and the best k."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from weft.train import checkpoint
from weft.train.callbacks.base import Callback, for_phases
from weft.train.permissions import READ
from weft.train.phases import TrainingPhase, ValidationPhase
from weft.train.stop import StopReason

__all__ = ["Checkpointer"]


class Checkpointer(Callback):
    """Write checkpoints into `folder` at the end of every `every_epochs` epochs and, if set,
    every `every_steps` training steps; on Ctrl-C also at fit end. Files are named
    `epoch{E}-step{S}.pt`; the newest `keep_last` (None: all) and the `keep_best` with the best
    `monitor` value (`mode` "min" or "max") are kept, the others it wrote are deleted.

    Each file holds the full state (see `weft.train.checkpoint`); resume with
    `learner.fit(n, resume=path_or_folder)`. Writes are atomic.
    """

    run_after = ("*",)  # the state of every other callback is final for this event
    rank_zero_only = True  # one writer in a distributed run
    access = {  # noqa: RUF012
        "model": READ,
        "optimizer": READ,
        "data": READ,
        "cbstate": READ,
        "callbacks": READ,
    }

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        every_epochs: int | None = 1,
        every_steps: int | None = None,
        keep_last: int | None = 1,
        keep_best: int = 0,
        monitor: str = "valid_loss",
        mode: str = "min",
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"Checkpointer mode must be 'min' or 'max', got {mode!r}")
        self.folder = Path(folder)
        self.every_epochs, self.every_steps = every_epochs, every_steps
        self.keep_last, self.keep_best = keep_last, keep_best
        self.monitor, self.mode = monitor, mode
        self.saved: list[dict[str, Any]] = []  # {"file", "score"} in save order

    @for_phases(TrainingPhase)
    def on_step_end(self, learner: Any) -> None:
        if self.every_steps and learner.progress.step % self.every_steps == 0:
            self.save(learner)

    def on_epoch_end(self, learner: Any) -> None:
        last_phase = isinstance(learner.phase, ValidationPhase) or (
            isinstance(learner.phase, TrainingPhase) and learner.data.get("valid") is None
        )
        if not last_phase or not self.every_epochs:
            return
        if (learner.progress.epoch + 1) % self.every_epochs == 0:
            metrics = getattr(learner.cbstate, "metrics", None) or {}
            self.save(learner, score=metrics.get(self.monitor))

    def on_fit_end(self, learner: Any) -> None:
        stop = learner.stopping
        if stop is not None and stop.reason is StopReason.USER_INTERRUPT:
            self.save(learner)

    def save(self, learner: Any, score: float | None = None) -> Path:
        """Write a checkpoint of `learner` now and prune old ones."""
        p = learner.progress
        path = self.folder / f"epoch{p.epoch}-step{p.step}.pt"
        self.saved = [r for r in self.saved if r["file"] != path.name]
        self.saved.append({"file": path.name, "score": score})
        checkpoint.save(learner.capture_state(), path)
        self._prune()
        return path

    def _prune(self) -> None:
        keep = set()
        if self.keep_last is None:
            keep.update(r["file"] for r in self.saved)
        elif self.keep_last:
            keep.update(r["file"] for r in self.saved[-self.keep_last :])
        scored = [r for r in self.saved if r["score"] is not None and math.isfinite(r["score"])]
        scored.sort(key=lambda r: r["score"], reverse=self.mode == "max")
        keep.update(r["file"] for r in scored[: self.keep_best])
        for r in [r for r in self.saved if r["file"] not in keep]:
            (self.folder / r["file"]).unlink(missing_ok=True)
        self.saved = [r for r in self.saved if r["file"] in keep]

    @property
    def best(self) -> Path | None:
        """The kept checkpoint with the best score, if any was scored."""
        scored = [r for r in self.saved if r["score"] is not None]
        if not scored:
            return None
        pick = min if self.mode == "min" else max
        return self.folder / pick(scored, key=lambda r: r["score"])["file"]

    @property
    def last(self) -> Path | None:
        """The newest checkpoint written."""
        return self.folder / self.saved[-1]["file"] if self.saved else None

    def state_dict(self) -> dict[str, Any]:
        return {"saved": [dict(r) for r in self.saved]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.saved = [dict(r) for r in state["saved"]]
