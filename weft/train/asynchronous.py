"""The background worker that runs asynchronous callbacks on snapshots, in graph order."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["AsyncCallbackError", "AsyncWorker"]

Job = tuple[Callable[[Any], Any], str, Any]  # handler, callback name, snapshot


class AsyncCallbackError(RuntimeError):
    """An asynchronous callback failed on the background worker."""


class AsyncWorker:
    """One thread that runs submitted handler batches in order; the first error is kept.

    `max_pending` bounds the queue: when the loop outruns slow callbacks by that many events,
    `submit` waits, so memory stays bounded.
    """

    def __init__(self, max_pending: int = 1024) -> None:
        self._queue: queue.Queue[tuple[str, Sequence[Job]] | None] = queue.Queue(max_pending)
        self.error: AsyncCallbackError | None = None
        self._thread = threading.Thread(target=self._run, name="weft-async-callbacks", daemon=True)
        self._thread.start()

    def submit(self, event_name: str, jobs: Sequence[Job]) -> None:
        self._queue.put((event_name, jobs))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    event_name, jobs = item
                    for handler, owner, snap in jobs:
                        try:
                            handler(snap)
                        except BaseException as exc:
                            self.error = AsyncCallbackError(
                                f"asynchronous callback {owner} failed in on_{event_name} "
                                f"(on the background worker): {type(exc).__name__}: {exc}"
                            )
                            self.error.__cause__ = exc
                            break
            finally:
                self._queue.task_done()

    def raise_error(self) -> None:
        """Raise the kept error once (later calls do nothing)."""
        error, self.error = self.error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Wait for pending handlers, stop the thread, then raise a kept error if any."""
        self._queue.join()
        self._queue.put(None)
        self._thread.join()
        self.raise_error()
