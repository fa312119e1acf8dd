"""Throttle: run another callback's per-step handlers only every N steps or every T seconds."""

from __future__ import annotations

import time
from typing import Any

from weft.train.callbacks.base import Callback
from weft.train.graph import Resolution

__all__ = ["Throttle"]

_STEP_EVENTS = frozenset(
    ("on_step_begin", "on_loss_begin", "on_backward_begin", "on_backward_end", "on_step_end")
)


class Throttle(Callback):
    """Wrap `callback` so its step handlers run on every `every`-th step (counted over all
    phases) or at most once per `seconds`; its epoch and fit handlers always run. The wrapper
    declares what the wrapped callback declares.
    """

    def __init__(
        self, callback: Callback, every: int | None = None, seconds: float | None = None
    ) -> None:
        if (every is None) == (seconds is None):
            raise ValueError("Throttle needs exactly one of every=... or seconds=...")
        if every is not None and every < 1:
            raise ValueError(f"Throttle every must be >= 1, got {every}")
        self.callback, self.every, self.seconds = callback, every, seconds
        self.access = callback.access
        self.run_after = callback.run_after
        self.asynchronous = callback.asynchronous
        self._count = 0
        self._next = 0.0
        self._open = False

    @property
    def name(self) -> str:
        return f"Throttle[{self.callback.name}]"

    def resolve(self, other: Callback) -> Resolution | None:
        return self.callback.resolve(other)

    def attach(self, learner: Any) -> None:
        self.callback.attach(learner)

    def snapshot_reads(self, event: str) -> Any:
        return self.callback.snapshot_reads(event)

    def wrap_data(self, batches: Any, phase: Any) -> Any:
        return self.callback.wrap_data(batches, phase)

    def on_step_begin(self, learner: Any) -> None:
        if self.every is not None:
            self._count += 1
            self._open = self._count % self.every == 0
        else:
            now = time.monotonic()
            self._open = now >= self._next
            if self._open:
                self._next = now + self.seconds
        inner = getattr(self.callback, "on_step_begin", None)
        if self._open and inner is not None and _in_phase(inner, learner):
            inner(learner)

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("on_") or name == "on_step_begin":
            raise AttributeError(name)
        inner = getattr(self.callback, name)
        if name not in _STEP_EVENTS:
            return inner

        def gated(learner: Any) -> None:
            if self._open:
                inner(learner)

        gated.__weft_phases__ = getattr(inner, "__weft_phases__", None)  # type: ignore[attr-defined]
        return gated

    def state_dict(self) -> dict[str, Any]:
        return {"count": self._count, "callback": self.callback.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._count = int(state["count"])
        self.callback.load_state_dict(state["callback"])

    def __repr__(self) -> str:
        how = f"every={self.every}" if self.every is not None else f"seconds={self.seconds}"
        return f"Throttle({self.callback!r}, {how})"


def _in_phase(handler: Any, learner: Any) -> bool:
    allowed = getattr(handler, "__weft_phases__", None)
    return not allowed or isinstance(learner.phase, allowed)
