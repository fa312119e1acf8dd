"""Metrics: the loss and metric values of each step, averaged over an epoch by batch size."""

from __future__ import annotations

from typing import Any

import torch

from weft.train.callbacks.base import Callback
from weft.train.permissions import READ, WRITE

__all__ = ["Metrics"]


class Metrics(Callback):
    """Track the loss and `metrics`; write epoch averages to `cbstate.metrics` as
    `<phase>_<name>` (`train_loss`, `valid_accuracy`...).

    Metrics are functions `f(predictions, targets)` returning a batch mean (averaged weighted
    by batch size) or objects with `update`/`compute`/`reset` (torchmetrics-like). Pass them
    positionally (named by `__name__`/`name`) or as keywords (`Metrics(acc=accuracy)`).
    On CUDA sums stay on the device, so tracking never forces a sync per step. In a
    distributed run the sums and counts are added over ranks at epoch end, so the values are
    those of the whole data; stateful metrics sync themselves (as torchmetrics does) or stay
    per rank.

    Extending: write a metric function; no subclass needed.
    """

    def __init__(self, *metrics: Any, **named: Any) -> None:
        self.metrics: dict[str, Any] = {}
        for m in metrics:
            self._add(_metric_name(m), m)
        for name, m in named.items():
            self._add(name, m)
        # targets give the batch size that weights the averages
        self.access = {"step.loss": READ, "step.targets": READ, "cbstate.metrics": WRITE}
        if self.metrics:
            self.access["step.predictions"] = READ
        self._sums: dict[str, Any] = {}
        self._count = 0

    def _add(self, name: str, metric: Any) -> None:
        if name == "loss" or name in self.metrics:
            raise ValueError(f"Metrics got two metrics named {name!r}; name them with keywords")
        if not (callable(metric) or _is_stateful(metric)):
            raise TypeError(
                f"metric {name!r} must be a function (predictions, targets) -> value or have "
                f"update/compute/reset; got {type(metric).__name__}"
            )
        self.metrics[name] = metric

    def attach(self, learner: Any) -> None:
        learner.cbstate.metrics = {}

    def on_epoch_begin(self, learner: Any) -> None:
        self._sums = {name: 0.0 for name in ("loss", *self.metrics)}
        self._count = 0
        for m in self.metrics.values():
            if _is_stateful(m):
                m.reset()

    def on_step_end(self, learner: Any) -> None:
        step = learner.step
        loss, targets = step.loss, step.targets
        n = (
            targets.shape[0]
            if isinstance(targets, torch.Tensor) and targets.dim()
            else _batch_size(targets)
        )
        self._count += n
        sums = self._sums
        cpu_tensor = isinstance(loss, torch.Tensor) and loss.is_cpu
        sums["loss"] += loss.item() * n if cpu_tensor else _scaled(loss, n)
        if self.metrics:
            predictions, targets = step.predictions.detach(), step.targets
            for name, m in self.metrics.items():
                if _is_stateful(m):
                    m.update(predictions, targets)
                else:
                    sums[name] += _scaled(m(predictions, targets), n)

    def on_epoch_end(self, learner: Any) -> None:
        if learner.dist is not None:  # global sums and counts, not an average of averages
            names = list(self._sums)
            totals = learner.dist.sum(
                [float(self._sums[k]) for k in names] + [float(self._count)],
                f"Metrics: summing the {learner.phase.name} metrics over ranks",
            )
            self._sums, self._count = dict(zip(names, totals[:-1], strict=True)), int(totals[-1])
        if self._count == 0:
            return
        out = learner.cbstate.metrics
        prefix = learner.phase.name + "_"
        for name, total in self._sums.items():
            m = self.metrics.get(name)
            value = m.compute() if m is not None and _is_stateful(m) else total / self._count
            out[prefix + name] = float(value)

    def state_dict(self) -> dict[str, Any]:
        sums = {k: float(v) for k, v in self._sums.items()}
        return {"sums": sums, "count": self._count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sums = dict(state["sums"])
        self._count = int(state["count"])

    def __repr__(self) -> str:
        return f"Metrics({', '.join(['loss', *self.metrics])})"


def _is_stateful(m: Any) -> bool:
    return all(hasattr(m, a) for a in ("update", "compute", "reset"))


def _metric_name(m: Any) -> str:
    return getattr(m, "name", None) or getattr(m, "__name__", None) or type(m).__name__.lower()


def _scaled(value: Any, n: int) -> Any:
    """`value * n` as a float on the CPU (cheap) or a device tensor elsewhere (no sync)."""
    if isinstance(value, torch.Tensor):
        if value.is_cpu:
            return value.item() * n
        return value.detach() * n
    return float(value) * n


def _batch_size(x: Any) -> int:
    if isinstance(x, torch.Tensor):
        return x.shape[0] if x.dim() else 1
    if isinstance(x, (list, tuple)):
        return _batch_size(x[0]) if x else 0
    if isinstance(x, dict):
        return _batch_size(next(iter(x.values()))) if x else 0
    return len(x)
