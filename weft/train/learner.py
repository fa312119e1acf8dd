"""The Learner: model, loss, optimizer, data and callbacks; `fit` -> `epoch` -> step.

Extending: behaviour goes in callbacks (see `weft.train.callbacks.base`); a new kind of step goes
in a `Phase` subclass run with `learner.epoch(phase, data)`.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from weft.train import checkpoint
from weft.train import distributed as _distributed
from weft.train.asynchronous import AsyncWorker
from weft.train.batches import inputs_of, split_batch
from weft.train.callbacks.base import Callback
from weft.train.events import EpochBegin, EpochEnd, Event, FitBegin, FitEnd, StepBegin, StepEnd
from weft.train.graph import order_callbacks
from weft.train.permissions import READ, AccessError, make_view, snapshot
from weft.train.phases import EvaluationPhase, Phase, TrainingPhase, ValidationPhase
from weft.train.state import CallbackState, Progress, Step
from weft.train.stop import FitResult, Stop, StopReason

__all__ = ["Learner", "default_callbacks"]


def default_callbacks() -> list[Callback]:
    """What every Learner has unless told otherwise: Metrics (loss), History, ProgressBar,
    StopOnNaN. A callback of the same class passed by the user replaces the default."""
    from weft.train.callbacks import History, Metrics, ProgressBar, StopOnNaN

    return [Metrics(), History(), ProgressBar(), StopOnNaN()]


class Learner:
    """Train `model` with `loss_fn` and `optimizer` on `data=(train, valid)`.

    `data` items are any iterables of batches (weft loaders, torch DataLoaders, lists); a batch
    is `(inputs, targets)` or a dict holding `batch_keys`; numpy arrays become tensors.
    `defaults=True` adds `default_callbacks()`; `check_access=False` turns runtime permission
    checks off (callbacks then see the learner itself).

    `distributed` (None: when launched by torchrun) joins the process group, trains through
    DistributedDataParallel and shards the data by rank (a remainder that does not split evenly
    is `dist_remainder` "pad"ded or "drop"ped); metrics are global, stops are agreed by all
    ranks, callbacks with `rank_zero_only` run on rank 0 only, and a collective that waits more
    than `dist_timeout` seconds raises `DistributedError` (see `weft.train.distributed`).

    Extending: add callbacks; subclass `Phase` for a new kind of step.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Any,
        optimizer: torch.optim.Optimizer,
        data: Any = None,
        callbacks: Sequence[Callback] = (),
        *,
        defaults: bool = True,
        check_access: bool = True,
        batch_keys: tuple[str, str] = ("inputs", "targets"),
        max_pending: int = 1024,
        distributed: bool | None = None,
        dist_timeout: float = 300.0,
        dist_remainder: str = "pad",
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.dist = _distributed.setup(distributed, timeout=dist_timeout, remainder=dist_remainder)
        self.data = _as_data(data)
        if self.dist is not None:
            self.data = {role: self.dist.shard(d, role) for role, d in self.data.items()}
        self._ddp: torch.nn.Module | None = None
        self.step = Step()
        self.progress = Progress()
        self.cbstate = CallbackState()
        self.phase: Phase | None = None
        self.check_access = check_access
        self.batch_keys = batch_keys
        self.max_pending = max_pending
        self.callbacks: list[Callback] = []
        self._order: list[Callback] = []
        self._views: dict[int, Any] = {}
        self._dispatch: dict[type[Event], tuple] = {}
        self._tables: dict[type | None, _Dispatch] = {}
        self._stop: Stop | None = None
        self._async: AsyncWorker | None = None
        self._positions: _Positions | None = None
        self._phase_index = 0
        self._phase_done = False
        self._pending_restore: tuple[dict[str, Any], str] | None = None
        self._in_session = False
        given = list(callbacks)
        if defaults:
            given += [d for d in default_callbacks() if not any(type(c) is type(d) for c in given)]
        self._set_callbacks(given)

    # ---- callbacks ------------------------------------------------------------------------

    def add_callback(self, callback: Callback) -> None:
        """Add a callback; the graph is re-checked now and the learner is unchanged on error."""
        self._set_callbacks([*self.callbacks, callback])

    def remove_callback(self, callback: Callback | type) -> Callback:
        """Remove a callback (the object, or the only one of a class); re-checks the graph."""
        if isinstance(callback, type):
            found = [cb for cb in self.callbacks if isinstance(cb, callback)]
            if len(found) != 1:
                raise ValueError(
                    f"remove_callback({callback.__name__}) matches {len(found)} callbacks; "
                    f"pass the callback object"
                )
            callback = found[0]
        if not any(cb is callback for cb in self.callbacks):
            raise ValueError(f"{callback.name} is not a callback of this learner")
        self._set_callbacks([cb for cb in self.callbacks if cb is not callback])
        return callback

    @property
    def order(self) -> list[Callback]:
        """Callbacks in the order they run."""
        return list(self._order)

    def _set_callbacks(self, callbacks: list[Callback]) -> None:
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks must be weft.train.Callback objects, got {type(cb).__name__}; "
                    f"subclass Callback"
                )
        order = order_callbacks(callbacks)  # raises before anything changes
        added = [cb for cb in callbacks if not any(cb is old for old in self.callbacks)]
        self.callbacks, self._order = callbacks, order
        self._views = {id(cb): self._view(cb) for cb in callbacks}
        self._tables.clear()
        for cb in added:
            cb.attach(self._views[id(cb)])

    def _view(self, cb: Callback) -> Any:
        if not self.check_access:
            return self
        return make_view(self, cb.name, cb.declared_access())

    # ---- events ---------------------------------------------------------------------------

    def fire(self, event: type[Event]) -> None:
        """Run the handlers of `event` for the current phase, in graph order."""
        for handler, arg in self._dispatch[event]:
            handler(arg)

    def _fire_checking_async(self, event: type[Event]) -> None:
        """`fire` while asynchronous callbacks run: first raise their error, if any."""
        if self._async is not None and self._async.error is not None:
            self._async.raise_error()
        for handler, arg in self._dispatch[event]:
            handler(arg)

    def _use_phase(self, phase: Phase | None) -> None:
        self.phase = phase
        key = type(phase) if phase is not None else None
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = _Dispatch(self, key)
        self._dispatch = table

    def request_stop(
        self, reason: StopReason, message: str = "", source: str | None = None
    ) -> None:
        """Stop after the current step; the end events still run. The first request wins."""
        if not isinstance(reason, StopReason):
            raise TypeError(f"request_stop needs a StopReason, got {reason!r}")
        if self._stop is None:
            self._stop = Stop(reason, message, source)

    def _agree_stop(self, where: str) -> None:
        """Adopt a stop requested on any rank (the lowest such rank's), so every rank leaves
        the loop at the same step and none is left waiting in a collective."""
        assert self.dist is not None
        if not self.dist.sum([float(self._stop is not None)], where)[0]:
            return
        stops = self.dist.gather(self._stop, where)  # every rank takes part, stopped or not
        if self._stop is None:
            rank, stop = next((r, s) for r, s in enumerate(stops) if s is not None)
            source = f"{stop.source or 'the loop'} on rank {rank}"
            self._stop = Stop(stop.reason, stop.message, source)

    @property
    def train_model(self) -> torch.nn.Module:
        """The module the training step calls: the model, or its DistributedDataParallel
        wrapper in a distributed run (built at the first training step, after callbacks such
        as ToDevice have placed the model)."""
        if self.dist is None:
            return self.model
        if self._ddp is None or self._ddp.module is not self.model:
            self._ddp = self.dist.wrap(self.model)
        return self._ddp

    @property
    def stopping(self) -> Stop | None:
        """The stop requested during this fit (or how it ended, after it ended); None before."""
        return self._stop

    # ---- the loop -------------------------------------------------------------------------

    def fit(self, n_epochs: int, *, resume: str | os.PathLike | None = None) -> FitResult:
        """Train for `n_epochs` epochs (training then validation each epoch).

        `resume` is a checkpoint file (or a folder: its newest checkpoint) from a run with the
        same learner setup; the fit continues exactly where that run was, including the RNG
        and the data position. Ctrl-C stops after the current step and still runs the end
        events; a second Ctrl-C interrupts at once.
        """
        phases = self._fit_phases()
        p = self.progress
        with self._session():
            self._stop = None
            p.fit_epochs, p.fit_start_epoch, p.fit_start_step = n_epochs, p.epoch, p.step
            self._use_phase(None)
            self.fire(FitBegin)
            first_phase, first_batch = 0, 0
            if resume is not None:
                first_phase, first_batch = self._resume(resume, phases)
            while self._stop is None and p.epoch < p.fit_start_epoch + p.fit_epochs:
                finished = True
                for i in range(first_phase, len(phases)):
                    self._phase_index = i
                    phase, data = phases[i]
                    finished = self.epoch(phase, data, start_batch=first_batch)
                    first_batch = 0
                    if not finished or self._stop is not None:
                        break
                first_phase = 0
                if finished and self._phase_index == len(phases) - 1:
                    p.epoch += 1
                    self._phase_index, self._phase_done, p.batch = 0, False, 0
            if self._stop is None:
                self._stop = Stop(StopReason.COMPLETED)
            self._use_phase(None)
            self.fire(FitEnd)
        return FitResult(
            stop=self._stop,
            history=[dict(r) for r in self._history() if r["epoch"] >= p.fit_start_epoch],
            epochs=p.epoch - p.fit_start_epoch,
            steps=p.step - p.fit_start_step,
        )

    def fit_one_cycle(
        self,
        n_epochs: int,
        lr_max: float,
        *,
        momentum: tuple[float, float] = (0.95, 0.85),
        pct_start: float = 0.25,
        resume: str | os.PathLike | None = None,
    ) -> FitResult:
        """`fit` with a one-cycle schedule: lr rises to `lr_max` over `pct_start` of training
        and anneals; momentum (Adam's beta1) moves the opposite way between `momentum` values.
        The scheduler is added for this fit only."""
        from weft.train.callbacks.scheduler import Scheduler
        from weft.train.schedules import chain, cosine, one_cycle

        hi, lo = momentum
        schedules: dict[str, Any] = {"lr": one_cycle(lr_max, pct_start=pct_start)}
        group = self.optimizer.param_groups[0]
        if "momentum" in group or "betas" in group:
            schedules["momentum"] = chain(
                (pct_start, cosine(hi, lo)), (1 - pct_start, cosine(lo, hi))
            )
        scheduler = Scheduler(**schedules)
        self.add_callback(scheduler)
        try:
            return self.fit(n_epochs, resume=resume)
        finally:
            self.remove_callback(scheduler)

    def epoch(self, phase: Phase, data: Iterable, *, start_batch: int = 0) -> bool:
        """One pass of `phase` over `data`; True when it ran to the end (no stop mid-way).

        Extending: call it with your own `Phase` to run custom steps with the callbacks.
        """
        if not self._in_session:
            with self._session():
                self._stop = None
                return self.epoch(phase, data, start_batch=start_batch)
        self._use_phase(phase)
        self.model.train(phase.training)
        p = self.progress
        p.batch = start_batch
        self._phase_done = False
        self.fire(EpochBegin)
        if self._pending_restore is not None:
            state, where = self._pending_restore
            self._pending_restore = None
            checkpoint.restore_callbacks(self, state, where)
        batches, positions = self._batches(phase, data)
        if phase.training:
            self._positions = positions
        finished = True
        with torch.set_grad_enabled(phase.training):
            for batch in batches:
                if positions is not None:
                    positions.consumed()
                if self.dist is None:
                    self._run_step(phase, batch)
                else:  # gradients are all-reduced inside the step: name a failure there too
                    with self.dist.guard(f"{phase.name} batch {p.batch}", backend_only=True):
                        self._run_step(phase, batch)
                    self._agree_stop(f"the stop check after {phase.name} batch {p.batch - 1}")
                if self._stop is not None:
                    finished = False
                    break
        self._phase_done = finished
        self.fire(EpochEnd)
        if self.dist is not None:
            self._agree_stop(f"the stop check after {phase.name} epoch {p.epoch}")
        return finished

    def _run_step(self, phase: Phase, batch: Any) -> None:
        step = self.step
        step.batch = batch
        step.inputs, step.targets = split_batch(batch, self.batch_keys)
        step.predictions = step.loss = None
        step.update = True
        self.fire(StepBegin)
        phase.step(self, step)
        p = self.progress
        p.batch += 1
        if phase.training:
            p.step += 1
        self.fire(StepEnd)

    def evaluate(self, data: Iterable) -> dict[str, float]:
        """Loss and metrics of the model on `data` (no training; `eval_` metrics, unprefixed)."""
        p = self.progress
        saved = (p.batch, self._phase_done)  # evaluating does not move the training position
        with self._session():
            self._stop = None
            self.epoch(EvaluationPhase(), data)
            self._use_phase(None)
        p.batch, self._phase_done = saved
        metrics = vars(self.cbstate).get("metrics", {})
        prefix = EvaluationPhase.name + "_"
        return {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}

    @torch.inference_mode()
    def predict(self, data: Iterable) -> Any:
        """The model's outputs on every batch of `data`, concatenated along the first axis.

        Batches may be inputs alone or `(inputs, targets)` / dicts (targets are ignored).
        """
        self.model.eval()
        phase = EvaluationPhase()
        batches, _ = self._batches(phase, data)
        outputs = [self.model(inputs_of(batch, self.batch_keys)) for batch in batches]
        if not outputs:
            raise ValueError("predict() got no batches from its data")
        if isinstance(outputs[0], torch.Tensor):
            return torch.cat(outputs)
        return outputs

    # ---- data -----------------------------------------------------------------------------

    def _fit_phases(self) -> list[tuple[Phase, Iterable]]:
        if self.data.get("train") is None:
            raise ValueError("fit() needs training data: Learner(..., data=(train, valid))")
        phases: list[tuple[Phase, Iterable]] = [(TrainingPhase(), self.data["train"])]
        if self.data.get("valid") is not None:
            phases.append((ValidationPhase(), self.data["valid"]))
        return phases

    def _batches(self, phase: Phase, data: Iterable) -> tuple[Iterable, _Positions | None]:
        """`data`, wrapped by the callbacks that wrap batches; tracks the data position when a
        wrapper may read ahead, so checkpoints record the batch the step consumed."""
        wrappers = [cb for cb in self._order if type(cb).wrap_data is not Callback.wrap_data]
        if not wrappers:
            return data, None
        positions = None
        batches: Iterable = data
        if phase.training and hasattr(data, "state_dict"):
            positions = _Positions(data)
            batches = positions.produce(data)
        for cb in wrappers:
            batches = cb.wrap_data(batches, phase)
        return batches, positions

    def data_state(self) -> dict[str, Any] | None:
        """The training data's position (its `state_dict()`), or None when it has none."""
        train = self.data.get("train")
        if train is None or not hasattr(train, "state_dict"):
            return None
        if self._positions is not None and not self._phase_done:
            return self._positions.current
        return train.state_dict()

    def load_data_state(self, state: dict[str, Any] | None, world: int | None = None) -> None:
        """Continue from `data_state()`, saved by a run of `world` ranks: on another number of
        ranks a batch position is rescaled (ranks split the shuffled epoch by sample, so k
        batches on each of `world` ranks are its first `k * world` batches of samples)."""
        train = self.data.get("train")
        if state is not None and train is not None and hasattr(train, "load_state_dict"):
            if world is not None and world != self.world and "batches" in state:
                state = {k: v for k, v in state.items() if k != "also_done"}
                state["batches"] = self.rescaled_batch(state["batches"], world)
            train.load_state_dict(state)

    @property
    def world(self) -> int:
        """The number of ranks training together (1 when not distributed)."""
        return 1 if self.dist is None else self.dist.world

    def rescaled_batch(self, batch: int, world: int) -> int:
        """Batch `batch` of an epoch run on `world` ranks, as a batch of this run (rounded
        down: a few samples may be seen twice)."""
        return batch * world // self.world

    # ---- checkpoints ----------------------------------------------------------------------

    def position(self) -> dict[str, int]:
        """Where a resumed fit continues: the phase (index in the fit's phases) and the
        batches already done in it."""
        if self._phase_done:
            return {"phase": self._phase_index + 1, "batch": 0}
        return {"phase": self._phase_index, "batch": self.progress.batch}

    def capture_state(self) -> dict[str, Any]:
        """The full training state (see `weft.train.checkpoint`)."""
        return checkpoint.capture(self)

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write the full training state to `path` atomically."""
        return checkpoint.save(self.capture_state(), path)

    def _resume(self, resume: str | os.PathLike, phases: list) -> tuple[int, int]:
        """Load a checkpoint; return (phase index, batch) to continue from. Callback states are
        applied now, or after the epoch-begin event when the fit continues mid-epoch."""
        path = _newest_checkpoint(Path(resume))
        state = checkpoint.load(path)
        n_epochs = self.progress.fit_epochs
        checkpoint.restore_training(self, state, where=str(path))
        if self.progress.fit_epochs != n_epochs:
            warnings.warn(
                f"resuming {path}, saved during fit({self.progress.fit_epochs}), with "
                f"fit({n_epochs}): training runs to epoch {self.progress.fit_start_epoch + n_epochs}",
                stacklevel=3,
            )
            self.progress.fit_epochs = n_epochs
        phase_i, batch = int(state["position"]["phase"]), int(state["position"]["batch"])
        if batch and int(state.get("world", 1)) != self.world:
            batch = self.rescaled_batch(batch, int(state.get("world", 1)))
        if phase_i >= len(phases):
            self.progress.epoch += 1
            phase_i, batch = 0, 0
        elif batch and not (phases[phase_i][0].training and state["data"] is not None):
            warnings.warn(
                f"{path} was saved mid-way through a {phases[phase_i][0].name} epoch whose data "
                f"cannot restore its position (no state_dict()); that pass restarts from its "
                f"first batch",
                stacklevel=3,
            )
            batch = 0
        if batch:
            self._pending_restore = (state, str(path))
        else:
            checkpoint.restore_callbacks(self, state, where=str(path))
        return phase_i, batch

    # ---- sessions -------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[None]:
        """Start the async worker and the Ctrl-C handler for one fit/evaluate; clean up after."""
        self._in_session = True
        need_worker = any(cb.asynchronous for cb in self._order)
        self._async = AsyncWorker(self.max_pending) if need_worker else None
        if need_worker:
            self.fire = self._fire_checking_async  # type: ignore[method-assign]
        self._tables.clear()
        restore_sigint = _install_sigint(self)
        ok = False
        try:
            yield
            ok = True
        finally:
            self._in_session = False
            vars(self).pop("fire", None)
            restore_sigint()
            worker, self._async = self._async, None
            self._tables.clear()
            if worker is not None:
                try:
                    worker.close()
                except Exception:
                    if ok:
                        raise

    def _submit_async(self, payload: tuple[type[Event], tuple]) -> None:
        event, jobs = payload
        assert self._async is not None
        self._async.submit(
            event.name, [(fn, name, snapshot(self, name, reads)) for fn, name, reads in jobs]
        )

    def _history(self) -> list[dict[str, Any]]:
        return vars(self.cbstate).get("history", [])

    def __repr__(self) -> str:
        cbs = ", ".join(cb.name for cb in self._order)
        return f"Learner({type(self.model).__name__}, callbacks=[{cbs}])"


class _Dispatch(dict):
    """event class -> ((handler, view), ...) for one phase class, built on first use."""

    def __init__(self, learner: Learner, phase_cls: type | None) -> None:
        super().__init__()
        self.learner = learner
        self.phase_cls = phase_cls

    def __missing__(self, event: type[Event]) -> tuple:
        learner, name = self.learner, event.handler_name()
        on_rank_zero = learner.dist is None or learner.dist.is_zero
        handlers: list[tuple[Any, Any]] = []
        jobs = []
        for cb in learner._order:
            fn = getattr(cb, name, None)
            if fn is None or (cb.rank_zero_only and not on_rank_zero):
                continue
            allowed = getattr(fn, "__weft_phases__", None)
            if allowed and self.phase_cls is not None and not issubclass(self.phase_cls, allowed):
                continue
            if cb.asynchronous:
                jobs.append((fn, cb.name, _snapshot_reads(cb, event)))
            else:
                handlers.append((fn, learner._views[id(cb)]))
        if jobs:
            handlers.append((learner._submit_async, (event, tuple(jobs))))
        self[event] = result = tuple(handlers)
        return result


def _snapshot_reads(cb: Callback, event: type[Event]) -> list[str]:
    declared = [p for p, m in cb.declared_access().items() if m is READ]
    wanted = cb.snapshot_reads(event.name)
    if wanted is None:
        return declared
    for path in wanted:
        if not any(path == d or path.startswith(d + ".") for d in declared):
            raise AccessError(
                f"{cb.name}.snapshot_reads({event.name!r}) asks for {path!r}, which it does not "
                f"declare READ; add it to {cb.name}.access"
            )
    return list(wanted)


class _Positions:
    """Records the data's state after each batch it yields, so the state that belongs to the
    batch a step consumed is known even when a wrapper reads ahead (prefetching)."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.pending: deque = deque()
        self.current: Any = None

    def produce(self, data: Iterable) -> Iterator:
        for batch in data:
            self.pending.append(self.data.state_dict())
            yield batch

    def consumed(self) -> None:
        self.current = self.pending.popleft()


def _as_data(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if isinstance(data, Mapping):
        unknown = set(data) - {"train", "valid"}
        if unknown:
            raise ValueError(f"data dict keys must be 'train' and 'valid', got {sorted(unknown)}")
        return dict(data)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return {"train": data[0], "valid": data[1]}
    raise ValueError(
        "data must be (train, valid) or {'train': ..., 'valid': ...} (valid may be None); "
        f"got {type(data).__name__}"
    )


def _newest_checkpoint(path: Path) -> Path:
    if path.is_dir():
        files = sorted(path.glob("*.pt"), key=lambda f: f.stat().st_mtime_ns)
        if not files:
            raise checkpoint.CheckpointError(f"no checkpoint (*.pt) in folder {path}")
        return files[-1]
    return path


def _install_sigint(learner: Learner) -> Any:
    """First Ctrl-C: stop after this step. Second: the usual KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        learner.request_stop(StopReason.USER_INTERRUPT, "Ctrl-C; stopping after this step")
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, on_sigint)
    return lambda: signal.signal(signal.SIGINT, previous)
