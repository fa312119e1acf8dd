"""Why `fit` stopped, as a value: `fit` returns a `FitResult`, never leaks an exception to stop.

Extending: a callback stops training with `learner.request_stop(StopReason.X, "why")`; the
current step finishes, the end events run, and `fit` returns with that reason.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FitResult", "Stop", "StopReason"]


class StopReason(enum.Enum):
    """The typed reasons a fit ends."""

    COMPLETED = "completed"
    EARLY_STOPPING = "early stopping"
    NAN_LOSS = "NaN loss"
    TIME_LIMIT = "time limit"
    USER_INTERRUPT = "user interrupt"
    REQUESTED = "requested"


@dataclass(frozen=True)
class Stop:
    """A stop: its reason, a sentence for people, and which callback asked (None: the loop)."""

    reason: StopReason
    message: str = ""
    source: str | None = None

    def __str__(self) -> str:
        by = f" (by {self.source})" if self.source else ""
        return (
            f"{self.reason.value}{by}: {self.message}" if self.message else self.reason.value + by
        )


@dataclass
class FitResult:
    """What `fit` returns: the epoch records of this fit, the stop, and the counters at the end."""

    stop: Stop
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs: int = 0
    steps: int = 0

    @property
    def completed(self) -> bool:
        return self.stop.reason is StopReason.COMPLETED
