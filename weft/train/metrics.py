"""Metric functions for `Metrics`: each maps (predictions, targets) to a batch mean.

Extending: any function `f(predictions, targets) -> tensor | float` is a metric (named by its
`__name__`), and so is any object with `update(predictions, targets)`, `compute()` and
`reset()` (the torchmetrics protocol).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["accuracy", "top_k"]


def _class_targets(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # one-hot or soft targets shaped like the predictions: compare class indices
    return targets.argmax(-1) if targets.shape == predictions.shape else targets


def accuracy(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of samples whose highest-scoring class is the target class."""
    return (predictions.argmax(-1) == _class_targets(predictions, targets)).float().mean()


def top_k(k: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Fraction of samples whose target class is among the `k` highest scores (`top{k}`)."""
    if k < 1:
        raise ValueError(f"top_k needs k >= 1, got {k}")

    def topk_accuracy(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        best = predictions.topk(k, dim=-1).indices
        return (best == _class_targets(predictions, targets).unsqueeze(-1)).any(-1).float().mean()

    topk_accuracy.__name__ = f"top{k}"
    return topk_accuracy
