"""The logger backend protocol: where logged values go (TensorBoard, CSV; MLflow, W&B later).

Extending: subclass `Backend` and implement `log_scalars`; override `log_hparams`,
`log_histogram`, `log_image`, `flush` and `close` when the destination supports them (the
defaults do nothing). Backends are called from the asynchronous logger's worker thread, one
call at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Backend"]


class Backend:
    """A destination for logged values; see the module docstring."""

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Record scalar `values` (tag -> number) at `step`."""
        raise NotImplementedError(f"{type(self).__name__} must implement log_scalars")

    def log_hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Record the run's hyperparameters with its final metrics."""

    def log_histogram(self, tag: str, values: Any, step: int) -> None:
        """Record the distribution of `values` (a tensor or array) at `step`."""

    def log_image(self, tag: str, image: Any, step: int) -> None:
        """Record an image (CHW tensor or array, values in [0, 1]) at `step`."""

    def flush(self) -> None:
        """Make everything logged so far durable."""

    def close(self) -> None:
        """Release files or connections; the backend is not used afterwards."""
