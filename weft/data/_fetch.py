"""Computing one batch, and explaining a failure in terms a person can act on.

Every backend (serial, threads, processes) fetches through `fetch`, so a batch is the same
whoever computes it, and reports failures through `diagnose`, so errors read the same too.
"""

from __future__ import annotations

import pickle
import traceback
from dataclasses import dataclass
from typing import Any

from weft.data.containers import getobs, getobs_into, obs_source
from weft.data.rng import epoch_context
from weft.data.views import BatchView

__all__ = ["BatchFailure", "LoaderError", "diagnose", "fetch"]


class LoaderError(RuntimeError):
    """A batch could not be loaded; raised when the original exception type cannot be kept."""


def fetch(batches: Any, k: int, seed: int, epoch: int, buffer: Any = None) -> Any:
    """Batch `k` of `batches` as epoch `epoch` of a run seeded `seed` (into `buffer` if given)."""
    with epoch_context(seed, epoch):
        return getobs(batches, k) if buffer is None else getobs_into(buffer, batches, k)


@dataclass
class BatchFailure:
    """Why batch `batch` failed, in a picklable form that can cross from a worker."""

    batch: int
    epoch: int
    sample: int | None
    source: str | None
    where: str
    summary: str
    traceback: str
    exception: BaseException | None

    def message(self) -> str:
        place = f"batch {self.batch} of epoch {self.epoch}"
        if self.sample is not None:
            place += f", sample {self.sample}"
        if self.source is not None:
            place += f" ({self.source})"
        return (
            f"loading {place} failed in {self.where}: {self.summary}\n\n"
            f"Original traceback:\n{self.traceback.rstrip()}"
        )

    def error(self) -> BaseException:
        """The exception to raise in the main process: the original type when it can be built
        from a message, else a LoaderError; raise it `from self.exception`.
        """
        message = self.message()
        kind = type(self.exception) if self.exception is not None else LoaderError
        try:
            # KeyError shows the repr of its argument; a str whose repr is itself keeps the
            # message readable.
            return kind(_Verbatim(message) if issubclass(kind, KeyError) else message)
        except Exception:
            return LoaderError(message)


class _Verbatim(str):
    def __repr__(self) -> str:
        return str(self)


def diagnose(
    batches: Any, k: int, seed: int, epoch: int, exc: BaseException, where: str
) -> BatchFailure:
    """Explain why batch `k` raised `exc`. For a BatchView, the batch's samples are re-fetched
    one by one to name the failing one (and its file); this runs only after a failure.
    """
    sample = source = None
    if isinstance(batches, BatchView):
        with epoch_context(seed, epoch):
            for i in batches.batch_indices(k):
                try:
                    getobs(batches.data, int(i))
                except Exception as inner:
                    sample, exc = int(i), inner
                    break
        container, index = batches.data, sample
    else:
        container, index = batches, k
    if index is not None:
        try:
            source = obs_source(container, index)
        except Exception:  # provenance is a courtesy; never mask the real error with it
            source = None
    summary = f"{type(exc).__name__}: {exc}"
    if isinstance(batches, BatchView) and sample is None:
        summary += (
            " (every sample of the batch loads on its own: the failure is in collating the batch"
            " or in handing it over)"
        )
    return BatchFailure(
        batch=k,
        epoch=epoch,
        sample=sample,
        source=source,
        where=where,
        summary=summary,
        traceback="".join(traceback.format_exception(exc, chain=False)),
        exception=exc if _picklable(exc) else None,
    )


def _picklable(exc: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return False
    return True
