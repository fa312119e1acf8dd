"""SanityCheck: one batch through model and loss before training, with errors that say why."""

from __future__ import annotations

import math
from typing import Any

import torch

from weft.train.batches import split_batch
from weft.train.callbacks.base import Callback
from weft.train.checkpoint import rng_state, set_rng_state
from weft.train.permissions import READ

__all__ = ["SanityCheck", "SanityCheckError"]


class SanityCheckError(ValueError):
    """The first training batch does not go through the model and the loss."""


class SanityCheck(Callback):
    """At fit begin, run the first training batch through the model (eval mode, no update)
    and the loss, and fail with a readable error when shapes, dtypes or the loss are wrong.

    It leaves no trace: RNG states and the data position are restored, gradients untouched.
    """

    access = {"model": READ, "loss_fn": READ, "data": READ}  # noqa: RUF012

    def on_fit_begin(self, learner: Any) -> None:
        model, train = learner.model, learner.data["train"]
        batch = _first_batch(train)
        if batch is None:
            raise SanityCheckError("SanityCheck: the training data yielded no batch")
        inputs, targets = split_batch(batch, learner.batch_keys)
        device = next((p.device for p in model.parameters()), None)
        if device is not None:
            from weft.data.device import to_tensor

            inputs, targets = to_tensor(inputs, device), to_tensor(targets, device)
        was_training = model.training
        model.eval()
        try:
            with torch.enable_grad():
                _check(model, learner.loss_fn, inputs, targets)
        finally:
            model.train(was_training)
            model.zero_grad(set_to_none=True)


def _first_batch(data: Any) -> Any:
    rng = rng_state()
    position = data.state_dict() if hasattr(data, "state_dict") else None
    try:
        return next(iter(data), None)
    finally:
        if position is not None:
            data.load_state_dict(position)
        set_rng_state(rng)


def _check(model: Any, loss_fn: Any, inputs: Any, targets: Any) -> None:
    try:
        predictions = model(inputs)
    except Exception as err:
        raise SanityCheckError(
            f"SanityCheck: the model failed on the first training batch (inputs "
            f"{describe(inputs)}): {type(err).__name__}: {err}"
        ) from err
    if (
        isinstance(predictions, torch.Tensor)
        and isinstance(targets, torch.Tensor)
        and predictions.dim()
        and targets.dim()
        and predictions.shape[0] != targets.shape[0]
    ):
        raise SanityCheckError(
            f"SanityCheck: predictions {describe(predictions)} and targets "
            f"{describe(targets)} disagree on the batch size"
        )
    try:
        loss = loss_fn(predictions, targets)
    except Exception as err:
        raise SanityCheckError(
            f"SanityCheck: loss_fn(predictions {describe(predictions)}, targets "
            f"{describe(targets)}) failed: {type(err).__name__}: {err}{_hint(predictions, targets)}"
        ) from err
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        got = describe(loss) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise SanityCheckError(
            f"SanityCheck: the loss must be a scalar tensor, got {got}; reduce it (e.g. .mean())"
        )
    if not math.isfinite(loss.item()):
        raise SanityCheckError(f"SanityCheck: the loss of the first batch is {loss.item()}")
    if any(p.requires_grad for p in model.parameters()) and not loss.requires_grad:
        raise SanityCheckError(
            "SanityCheck: the loss does not depend on any trainable parameter; is the output "
            "detached or computed without gradients?"
        )


def describe(x: Any) -> str:
    """`shape (32, 10) float32` for tensors, the structure for tuples/dicts."""
    if isinstance(x, torch.Tensor):
        return f"shape {tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}"
    if isinstance(x, (tuple, list)):
        return "(" + ", ".join(describe(v) for v in x) + ")"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k}: {describe(v)}" for k, v in x.items()) + "}"
    return type(x).__name__


def _hint(predictions: Any, targets: Any) -> str:
    if not (isinstance(predictions, torch.Tensor) and isinstance(targets, torch.Tensor)):
        return ""
    if targets.is_floating_point() and predictions.dim() == targets.dim() + 1:
        return "; class-index targets must be integers: convert them with targets.long()"
    if not targets.is_floating_point() and predictions.shape == targets.shape:
        return "; this loss may expect float targets: convert them with targets.float()"
    if predictions.shape != targets.shape and predictions.dim() == targets.dim():
        return f"; shapes differ: {tuple(predictions.shape)} vs {tuple(targets.shape)}"
    return ""
