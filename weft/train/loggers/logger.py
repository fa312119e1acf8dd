"""Logger: an asynchronous callback that sends losses, metrics, hyperparameters, weight
histograms and sample images to one or more backends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from weft.train.callbacks.base import Callback, for_phases
from weft.train.callbacks.history import is_hyperparameter
from weft.train.loggers.base import Backend
from weft.train.permissions import READ
from weft.train.phases import EvaluationPhase, TrainingPhase

__all__ = ["Logger"]


class Logger(Callback):
    """Log to `backends` on the background worker, so slow writes never stall a step:

    - the training loss every `every` steps (`train/loss_step`);
    - each phase's epoch metrics (`train/loss`, `valid/accuracy`...) and the optimizer's
      hyperparameters (`hparams/lr`...) at the end of each epoch, at the global step;
    - with `histograms=True`, every parameter's distribution at the end of each training epoch;
    - with `images=n`, the first n inputs of the last validation batch (CHW, 1 or 3 channels);
    - at fit end, `hparams` (your run configuration) with the final metrics.

    Extending: a new destination is a `Backend` subclass.
    """

    asynchronous = True
    rank_zero_only = True  # one writer in a distributed run

    def __init__(
        self,
        *backends: Backend,
        every: int = 1,
        histograms: bool = False,
        images: int = 0,
        hparams: Mapping[str, Any] | None = None,
    ) -> None:
        if not backends:
            raise ValueError(
                "Logger needs at least one backend, e.g. Logger(CSVBackend('log.csv'))"
            )
        for b in backends:
            if not isinstance(b, Backend):
                raise TypeError(
                    f"Logger backends must be weft.train.loggers.Backend objects, got {type(b).__name__}"
                )
        if every < 1:
            raise ValueError(f"Logger every must be >= 1, got {every}")
        self.backends: Sequence[Backend] = backends
        self.every, self.histograms, self.images = every, histograms, images
        self.hparams = dict(hparams or {})
        self.access = {"step.loss": READ, "cbstate.metrics": READ, "cbstate.history": READ}
        if histograms:
            self.access["model"] = READ
        if images:
            self.access["step.inputs"] = READ

    def snapshot_reads(self, event: str) -> Sequence[str] | None:
        # copy only what each handler uses: the loss per step, the rest per epoch
        if event == "step_end":
            return ("step.loss",)
        if event == "epoch_end":
            return tuple(p for p in self.access if p != "step.loss")
        return ("cbstate.metrics", "cbstate.history")

    def _scalars(self, values: Mapping[str, float], step: int) -> None:
        for b in self.backends:
            b.log_scalars(values, step)

    @for_phases(TrainingPhase)
    def on_step_end(self, learner: Any) -> None:
        step = learner.progress.step
        if step % self.every == 0:
            self._scalars({"train/loss_step": float(learner.step.loss)}, step)

    def on_epoch_end(self, learner: Any) -> None:
        phase, step = learner.phase, learner.progress.step
        if isinstance(phase, EvaluationPhase):
            return
        prefix = phase.name + "_"
        metrics = learner.cbstate.metrics
        values = {
            f"{phase.name}/{k[len(prefix) :]}": v
            for k, v in metrics.items()
            if k.startswith(prefix)
        }
        history = learner.cbstate.history
        if history:
            row = history[-1]
            values.update({f"hparams/{k}": v for k, v in row.items() if is_hyperparameter(k)})
        self._scalars(values, step)
        if self.histograms and isinstance(phase, TrainingPhase):
            for name, tensor in learner.model.items():
                for b in self.backends:
                    b.log_histogram(f"weights/{name}", tensor, step)
        if self.images and phase.name == "valid":
            inputs = learner.step.inputs
            if getattr(inputs, "dim", lambda: 0)() == 4 and inputs.shape[1] in (1, 3):
                for i, image in enumerate(inputs[: self.images]):
                    low, high = image.min(), image.max()
                    scaled = (image - low) / (high - low + 1e-12)
                    for b in self.backends:
                        b.log_image(f"inputs/{i}", scaled.float(), step)
        for b in self.backends:
            b.flush()

    def on_fit_end(self, learner: Any) -> None:
        history = learner.cbstate.history
        hparams = dict(self.hparams)
        if history:
            first = history[0]
            hparams.update({k: v for k, v in first.items() if is_hyperparameter(k)})
        final = {k: v for k, v in learner.cbstate.metrics.items() if not k.startswith("eval_")}
        for b in self.backends:
            b.log_hparams(hparams, final)
            b.flush()

    def close(self) -> None:
        """Close every backend (after the last fit)."""
        for b in self.backends:
            b.close()
