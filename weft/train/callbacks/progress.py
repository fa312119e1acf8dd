"""ProgressBar: a live tqdm bar with the loss on a terminal, one summary line per epoch."""

from __future__ import annotations

import sys
import time
from typing import Any, ClassVar, TextIO

from tqdm.auto import tqdm

from weft.train.callbacks.base import Callback
from weft.train.permissions import READ

__all__ = ["ProgressBar"]


class ProgressBar(Callback):
    """Show a progress bar with the live loss on a terminal, and print each phase's epoch
    metrics as one line. When `stream` is not a terminal there is no bar (no control
    characters in log files), only the summary lines; `quiet=True` prints nothing.

    The bar refreshes at most every `refresh` seconds, so it costs a clock read per step.
    """

    access: ClassVar = {"step.loss": READ, "cbstate.metrics": READ, "data": READ}
    rank_zero_only = True  # one writer in a distributed run

    def __init__(self, stream: TextIO | None = None, refresh: float = 0.2, quiet: bool = False):
        self.stream = stream
        self.refresh = refresh
        self.quiet = quiet
        self._bar: Any = None
        self._n = 0
        self._next = 0.0
        self._t0 = 0.0

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def on_epoch_begin(self, learner: Any) -> None:
        self._n, self._t0 = 0, time.perf_counter()
        self._next = self._t0 + self.refresh
        out = self._out()
        if self.quiet or not (hasattr(out, "isatty") and out.isatty()):
            return
        data = learner.data.get(learner.phase.name)
        total = len(data) if hasattr(data, "__len__") else None
        desc = f"epoch {learner.progress.epoch} {learner.phase.name}"
        self._bar = tqdm(total=total, desc=desc, file=out, leave=False, dynamic_ncols=True)

    def on_step_end(self, learner: Any) -> None:
        self._n += 1
        if self._bar is None:
            return
        now = time.perf_counter()
        if now >= self._next:
            self._next = now + self.refresh
            self._bar.update(self._n - self._bar.n)
            self._bar.set_postfix(loss=f"{learner.step.loss.item():.4f}", refresh=True)

    def on_epoch_end(self, learner: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.quiet or self._n == 0:
            return
        prefix = learner.phase.name + "_"
        values = "  ".join(
            f"{k[len(prefix) :]} {v:.4g}"
            for k, v in learner.cbstate.metrics.items()
            if k.startswith(prefix)
        )
        seconds = time.perf_counter() - self._t0
        line = f"epoch {learner.progress.epoch} {learner.phase.name}: {values}  ({seconds:.1f}s)"
        print(line, file=self._out(), flush=True)
