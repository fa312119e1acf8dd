"""Iterating a container of batches, in parallel: the `Loader`, and its torch-like spelling
`DataLoader`.

Batch k of an epoch is `getobs(batches, k)` computed inside `epoch_context(seed, epoch)`, by
whichever worker gets it. Randomness comes from (seed, epoch, index), so the batches are the
same whatever the number or kind of workers, and an epoch can resume at any batch.
"""

from __future__ import annotations

import itertools
import numbers
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from weft.data._fetch import LoaderError, diagnose, fetch
from weft.data._workers import ProcessWorkers, ThreadWorkers, WorkerDiedError
from weft.data.containers import numobs
from weft.data.packed import pack_lists
from weft.data.views import BatchView, batchview, shardobs, shuffleobs

__all__ = ["DataLoader", "Loader", "LoaderError", "WorkerDiedError"]

_BACKENDS = ("process", "thread")


class Loader:
    """Iterate `batches` (any container; each observation is one batch, typically a
    `batchview`) one epoch per `iter()`, with `workers` threads or processes.

    - `workers=0` computes batches in this process. Batches come in order (`in_order=False`:
      as they are ready); at most `workers * prefetch` are in flight. Process workers persist
      across epochs and hand batches over in shared memory without a copy (a batch's slot is
      reused once the batch is garbage); stop them with `close()` or a `with` block (they also
      go with the loader).
    - Each finished epoch advances `epoch`; `set_epoch(e)` picks one; an epoch left unfinished
      runs again from its start. `state_dict()` taken mid-epoch and given to
      `load_state_dict()` makes the next `iter()` resume at exactly the next batch.
    - A failing batch raises in this process, naming the batch, the sample and its file, with
      the original traceback; a worker killed by the OS raises `WorkerDiedError`.

    Extending: a new data source is a new container, new behaviour a new view; the loader only
    ever calls `numobs` and `getobs`.
    """

    def __init__(
        self,
        batches: Any,
        *,
        workers: int = 0,
        backend: str = "process",
        prefetch: int = 2,
        in_order: bool = True,
        seed: int = 0,
        start_method: str | None = None,
    ):
        if not isinstance(workers, numbers.Integral) or workers < 0:
            raise ValueError(f"Loader: workers must be an integer >= 0; got {workers!r}")
        if backend not in _BACKENDS:
            raise ValueError(f"Loader: backend must be one of {_BACKENDS}; got {backend!r}")
        if not isinstance(prefetch, numbers.Integral) or prefetch < 1:
            raise ValueError(f"Loader: prefetch must be an integer >= 1; got {prefetch!r}")
        numobs(batches)  # fail now, not in a worker, if this is not a container
        self.batches, self.workers, self.backend = batches, int(workers), backend
        self.prefetch, self.in_order, self.start_method = int(prefetch), in_order, start_method
        self.seed, self.epoch = int(seed), 0
        self._resume: tuple[int, frozenset[int]] | None = None
        self._progress: _Progress | None = None
        self._pool: ThreadWorkers | ProcessWorkers | None = None
        self._closer: weakref.finalize | None = None
        self._generation = 0
        self._tasks = itertools.count()  # task ids tell batches of an abandoned epoch apart

    def __len__(self) -> int:
        return numobs(self.batches)

    def __repr__(self) -> str:
        return (
            f"Loader({len(self)} batches, workers={self.workers}, backend={self.backend!r}, "
            f"epoch={self.epoch})"
        )

    # --- epochs and resumption ------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Make the next `iter()` run epoch `epoch` from its first batch."""
        self.epoch, self._resume = int(epoch), None

    def state_dict(self) -> dict[str, Any]:
        """Where the loader stands: seed, epoch and the batches consumed of that epoch."""
        progress = self._progress
        done = 0 if progress is None else progress.prefix
        state = {"seed": self.seed, "epoch": self.epoch, "batches": done}
        if progress is not None and progress.beyond:
            state["also_done"] = sorted(progress.beyond)  # only with in_order=False
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()`: the next `iter()` resumes at the next batch."""
        missing = {"seed", "epoch", "batches"} - set(state)
        if missing:
            raise KeyError(
                f"Loader.load_state_dict: the state lacks {sorted(missing)}; pass what "
                "Loader.state_dict() returned"
            )
        if not 0 <= state["batches"] <= len(self):
            raise ValueError(
                f"Loader.load_state_dict: the state has consumed {state['batches']} batches, "
                f"but this loader has {len(self)} per epoch; was it saved from another data set?"
            )
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])
        self._resume = (int(state["batches"]), frozenset(state.get("also_done", ())))
        self._progress = _Progress(*self._resume)

    def shard(self, rank: int, world: int, *, remainder: str = "drop") -> Loader:
        """A loader like this one over rank `rank`'s share among `world` (see `shardobs`).

        Batches of samples (a `batchview`) are split by sample after the shuffle, so with the
        same seed every rank's epoch order comes from one permutation and each sample goes to
        one rank; other containers are split by batch. Every rank gets as many batches.
        """
        batches = self.batches
        if isinstance(batches, BatchView):
            part = shardobs(batches.data, rank, world, remainder=remainder)
            batches = BatchView(part, batches.batch_size, batches.partial, batches.collate)
        else:
            batches = shardobs(batches, rank, world, remainder=remainder)
        shard = Loader(
            batches,
            workers=self.workers,
            backend=self.backend,
            prefetch=self.prefetch,
            in_order=self.in_order,
            seed=self.seed,
            start_method=self.start_method,
        )
        shard.epoch = self.epoch
        return shard

    # --- iteration ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        start, skip = self._resume or (0, frozenset())
        self._resume = None
        self._generation += 1
        self._progress = _Progress(start, skip)
        todo = [k for k in range(start, len(self)) if k not in skip]
        if self.workers == 0:
            return self._serial(todo, self._generation)
        return self._parallel(todo, self._generation)

    def _serial(self, todo: list[int], generation: int) -> Iterator[Any]:
        seed, epoch = self.seed, self.epoch
        for k in todo:
            self._check_current(generation)
            try:
                batch = fetch(self.batches, k, seed, epoch)
            except Exception as exc:
                failure = diagnose(self.batches, k, seed, epoch, exc, "the main process")
                raise failure.error() from failure.exception
            self._progress.mark(k)
            yield batch
        self._finish(generation)

    def _parallel(self, todo: list[int], generation: int) -> Iterator[Any]:
        seed, epoch = self.seed, self.epoch
        capacity = self.workers * self.prefetch
        in_flight: dict[int, int] = {}  # task -> batch index
        # Finished batches not handed out yet, as (ok, batch or failure): in order, a failure
        # waits for its turn like a batch, so the batches before it are still delivered.
        ready: dict[int, tuple[bool, Any]] = {}
        submitted = 0
        try:
            pool = self._start_pool()
            for position in range(len(todo)):
                self._check_current(generation)
                while submitted < len(todo) and len(in_flight) + len(ready) < capacity:
                    task = next(self._tasks)
                    in_flight[task] = todo[submitted]
                    pool.submit(task, todo[submitted], seed, epoch)
                    submitted += 1
                k = todo[position] if self.in_order else None
                while (k not in ready) if self.in_order else not ready:
                    task, ok, value = pool.next_done()
                    ready[in_flight.pop(task)] = ok, value
                if k is None:
                    k = next(iter(ready))
                ok, batch = ready.pop(k)
                if not ok:
                    raise batch.error() from batch.exception
                self._progress.mark(k)
                yield batch
        except (KeyboardInterrupt, WorkerDiedError):
            self.close()
            raise
        self._finish(generation)

    def _start_pool(self) -> ThreadWorkers | ProcessWorkers:
        if self._pool is None:
            if self.backend == "thread":
                self._pool = ThreadWorkers(self.batches, self.workers)
            else:
                self._pool = ProcessWorkers(
                    pack_lists(self.batches),
                    self.workers,
                    # a slot per batch in flight, plus the one being consumed and the one before
                    self.workers * self.prefetch + 2,
                    self.start_method,
                )
            self._closer = weakref.finalize(self, self._pool.close)
        else:
            self._drain(self._pool)
        return self._pool

    @staticmethod
    def _drain(pool: ThreadWorkers | ProcessWorkers) -> None:
        # Batches still in flight from an abandoned epoch: wait for them and drop them, so
        # their slots come back and no stale batch is mistaken for a new one.
        while pool.pending():
            pool.next_done()

    def _check_current(self, generation: int) -> None:
        if generation != self._generation:
            raise RuntimeError(
                "this Loader iterator was superseded by a newer iter() or a close() of its "
                "loader; a Loader runs one epoch at a time"
            )

    def _finish(self, generation: int) -> None:
        if generation == self._generation:
            self.epoch += 1
            self._progress = None

    # --- shutdown -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the workers and free their shared memory; iterating again restarts them."""
        self._generation += 1  # an iterator still open would wait on workers that are gone
        if self._closer is not None:
            self._closer()
        self._pool = self._closer = None

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class _Progress:
    """The batches of the current epoch handed out so far: all below `prefix`, and `beyond`."""

    def __init__(self, prefix: int, beyond: frozenset[int] = frozenset()):
        self.prefix, self.beyond = prefix, set(beyond)

    def mark(self, k: int) -> None:
        self.beyond.add(k)
        while self.prefix in self.beyond:
            self.beyond.remove(self.prefix)
            self.prefix += 1


def DataLoader(
    data: Any,
    batch_size: int = 32,
    shuffle: bool = False,
    drop_last: bool = False,
    collate: Callable[[list], Any] | None = None,
    parallel: str | None = None,
    workers: int = 0,
    seed: int = 0,
    prefetch: int = 2,
    in_order: bool = True,
) -> Loader:
    """The torch-like spelling of a loader, defined as the composition
    `Loader(batchview(shuffleobs(data) if shuffle else data, batch_size, ...), ...)`.

    `parallel` is "process" (the default when `workers` > 0) or "thread". With `shuffle`, each
    epoch has its own order, drawn from (seed, epoch).
    """
    if parallel not in (None, *_BACKENDS):
        raise ValueError(
            f"DataLoader: parallel must be 'process', 'thread' or None; got {parallel!r}"
        )
    source = shuffleobs(data) if shuffle else data
    batches = batchview(source, batch_size, partial=not drop_last, collate=collate)
    return Loader(
        batches,
        workers=workers,
        backend=parallel or "process",
        prefetch=prefetch,
        in_order=in_order,
        seed=seed,
    )
