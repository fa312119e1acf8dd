"""The loader's workers: a thread pool, or persistent processes that hand batches over in
shared memory.

Both answer the same small protocol: `submit(task, k, seed, epoch)` queues batch `k`, and
`next_done()` blocks until some task finishes and returns `(task, ok, batch_or_failure)`.
Scheduling, ordering and resumption live in the loader, once.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import os
import pickle
import selectors
import signal
import sys
import threading
from collections import deque
from multiprocessing import resource_tracker
from typing import Any

from weft.data._fetch import diagnose, fetch
from weft.data._shm import (
    AttachedSlot,
    SlotPool,
    decode_pickled,
    encode,
    layout_of,
    remove_orphaned_slots,
)

__all__ = ["ProcessWorkers", "ThreadWorkers", "WorkerDiedError"]


class WorkerDiedError(RuntimeError):
    """A worker process ended without being asked to (killed by the OS, or crashed in C code)."""


# --- threads ------------------------------------------------------------------------------------


class ThreadWorkers:
    """Batches computed by a pool of threads: no copies, no pickling. Pays off when the work
    releases the GIL (decoding with cv2/PIL, numpy on large arrays, reading files).
    """

    def __init__(self, batches: Any, count: int):
        self.batches = batches
        self.executor = cf.ThreadPoolExecutor(count, thread_name_prefix="weft-loader")
        self.running: dict[cf.Future, int] = {}

    def submit(self, task: int, k: int, seed: int, epoch: int) -> None:
        self.running[self.executor.submit(self._work, k, seed, epoch)] = task

    def _work(self, k: int, seed: int, epoch: int) -> tuple[bool, Any]:
        try:
            return True, fetch(self.batches, k, seed, epoch)
        except Exception as exc:
            where = f"loader thread {threading.current_thread().name}"
            return False, diagnose(self.batches, k, seed, epoch, exc, where)

    def next_done(self) -> tuple[int, bool, Any]:
        done, _ = cf.wait(self.running, return_when=cf.FIRST_COMPLETED)
        future = next(iter(done))
        return (self.running.pop(future), *future.result())

    def pending(self) -> int:
        return len(self.running)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.running.clear()


# --- processes ----------------------------------------------------------------------------------


class ProcessWorkers:
    """`count` persistent worker processes, one duplex pipe each.

    The first batch travels pickled and sizes a pool of `slots` shared-memory slots; later
    batches are gathered by the worker straight into a slot and handed out in place, without a
    copy: a slot is reused only once the batch that lives in it is garbage. A pipe carries only
    small messages; the process sentinels are waited on with the pipes, so a dead worker is
    noticed at once.
    """

    def __init__(self, batches: Any, count: int, slots: int, start_method: str | None):
        context = mp.get_context(start_method)
        remove_orphaned_slots()  # left by main processes killed with their resource tracker
        # Workers must share this process's resource tracker: one they started themselves
        # (on attaching a slot) would unlink the slots when its worker exits.
        resource_tracker.ensure_running()
        self.slot_count, self.pool, self.sized = slots, None, False
        self.processes: list[Any] = []
        self.pipes: list[Any] = []
        self.queued: list[deque] = []  # per worker: (task, k, epoch, slot) in the order sent
        # Registered once: building a selector per wait cost ~9 µs a batch, polling this one ~1
        self.selector = selectors.DefaultSelector()
        try:
            with _no_inherited_thread_pools(context.get_start_method()):
                self._start(context, batches, count)
        except BaseException as exc:
            self.close()
            if isinstance(exc, Exception) and "pickle" in str(exc).lower():
                raise TypeError(
                    f"cannot send the data to {start_method} worker processes: {exc}. Use "
                    "module-level functions instead of lambdas/closures, or start_method='fork', "
                    "or backend='thread'"
                ) from exc
            raise

    def _start(self, context: Any, batches: Any, count: int) -> None:
        for w in range(count):
            ours, theirs = context.Pipe(duplex=True)
            process = context.Process(
                target=_worker_main,
                args=(w, theirs, batches, os.getpid()),
                name=f"weft-loader-{w}",
                daemon=True,
            )
            self.processes.append(process)
            self.pipes.append(ours)
            self.queued.append(deque())
            process.start()
            theirs.close()
            self.selector.register(ours, selectors.EVENT_READ, (w, "pipe"))
            self.selector.register(process.sentinel, selectors.EVENT_READ, (w, "process"))

    def submit(self, task: int, k: int, seed: int, epoch: int) -> None:
        w = min(range(len(self.pipes)), key=lambda i: len(self.queued[i]))
        slot = self.pool.acquire() if self.pool is not None else None
        self.queued[w].append((task, k, epoch, slot))
        try:
            _send(self.pipes[w], ("task", task, k, seed, epoch, slot))
        except OSError:  # the worker is gone; name the batch it held, not this one
            self.queued[w].pop()
            raise self._died(w) from None

    def pending(self) -> int:
        return sum(len(q) for q in self.queued)

    def next_done(self) -> tuple[int, bool, Any]:
        while True:
            ready = sorted(key.data for key, _ in self.selector.select())
            for w, what in ready:
                if what == "pipe":  # results first: a worker may have answered, then died
                    try:
                        message = self.pipes[w].recv()
                    except (EOFError, OSError):
                        raise self._died(w) from None
                    return self._receive(w, message)
            if ready:
                raise self._died(ready[0][0])

    def _receive(self, w: int, message: tuple) -> tuple[int, bool, Any]:
        status, task, payload = message
        _, _, _, slot = self.queued[w].popleft()
        if status != "ok":
            if slot is not None:
                self.pool.release(slot)
            return task, False, payload
        if slot is None:
            batch = decode_pickled(payload)
            if not self.sized:
                self._size_slots(batch)
        else:
            batch = self.pool.decode(payload, slot)
        return task, True, batch

    def _size_slots(self, batch: Any) -> None:
        self.sized = True
        layout = layout_of(batch)
        if layout is None:
            return  # nothing array-like: every batch travels pickled
        self.pool = SlotPool(layout, self.slot_count)
        for pipe in self.pipes:
            _send(pipe, ("slots", self.pool.names, layout))

    def _died(self, w: int) -> WorkerDiedError:
        process = self.processes[w]
        process.join(timeout=1.0)
        code = process.exitcode
        if code is None:
            how = "closed its pipe"
        elif code < 0:
            how = f"was killed by signal {signal.Signals(-code).name}"
        else:
            how = f"exited with code {code}"
        held = self.queued[w]
        doing = f"while loading batch {held[0][1]} of epoch {held[0][2]}" if held else "while idle"
        self.close()
        return WorkerDiedError(
            f"loader worker {w} (pid {process.pid}) {how} {doing}. The OS may have killed it for "
            "lack of memory (see `dmesg`), or native code crashed; try fewer workers or a smaller "
            "prefetch. The workers were shut down; iterating the loader again restarts them."
        )

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                _send(pipe, None)
        for process in self.processes:
            if process.pid is None:
                continue
            process.join(timeout=2.0)
            if process.exitcode is None:
                process.kill()
                process.join()
        self.selector.close()
        for pipe in self.pipes:
            pipe.close()
        self.processes, self.pipes, self.queued = [], [], []
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def _worker_main(w: int, pipe: Any, batches: Any, parent: int) -> None:
    """A worker's loop: compute the batches it is sent until told to stop or orphaned."""
    # Ctrl-C in a terminal reaches the whole process group; the main process decides what to
    # do and shuts the workers down, so they must not die on their own with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _one_thread_per_worker()
    slots: list[AttachedSlot] = []
    where = f"loader worker {w} (pid {os.getpid()})"
    try:
        while True:
            if not pipe.poll(0.5):
                if os.getppid() != parent:
                    return  # the main process is gone
                continue
            message = pipe.recv()
            if message is None:
                return
            if message[0] == "slots":
                slots = [AttachedSlot(name, message[2]) for name in message[1]]
                continue
            _, task, k, seed, epoch, slot = message
            attached = None if slot is None else slots[slot]
            try:
                batch = fetch(batches, k, seed, epoch, None if attached is None else attached.tree)
                _send(pipe, ("ok", task, encode(batch, attached)))
            except Exception as exc:
                _send(pipe, ("failed", task, diagnose(batches, k, seed, epoch, exc, where)))
    except (EOFError, OSError):
        return  # the main process closed the pipe
    finally:
        for attached in slots:
            attached.close()


def _send(pipe: Any, message: Any) -> None:
    # Plain pickle: the messages hold no handles that need multiprocessing's own pickler,
    # which costs ~2 µs more per message.
    pipe.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))


@contextlib.contextmanager
def _no_inherited_thread_pools(start_method: str) -> Any:
    """Fork with OpenCV's thread pool shut down, then restore it.

    A forked child inherits the pool's locks and condition variables but none of its threads;
    OpenCV then hangs in the child the first time it touches the pool (seen here: a worker
    stuck in pthread_cond_destroy after the parent had warped images).
    """
    cv2 = sys.modules.get("cv2") if start_method == "fork" else None
    if cv2 is None:
        yield
        return
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


def _one_thread_per_worker() -> None:
    # Parallelism comes from the workers; libraries that also spread work over every core
    # would oversubscribe the machine.
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(1)
