"""The callback contract. Read this before writing a callback.

A callback is an object with:

- `access`: a dict from state path to READ or WRITE, e.g.
  `{"step.loss": READ, "cbstate.metrics": WRITE, "optimizer": WRITE}`. Paths start with one of
  `model`, `optimizer`, `loss_fn`, `data`, `step` (`step.inputs`, `step.targets`,
  `step.predictions`, `step.loss`, `step.update`, `step.batch`), `cbstate` (state callbacks
  publish for each other: `cbstate.<name>`), `callbacks`. `phase` and `progress` are always
  readable. Set it as a class attribute or in `__init__` when it depends on arguments.
- handlers `on_<event>(self, learner)` for the events it acts on (`on_step_end`,
  `on_epoch_begin`...; see `weft.train.events`). `learner` is a view that allows exactly the
  declared access and raises `AccessError` otherwise. Limit a handler to phases with
  `@for_phases(TrainingPhase)`.
- optional `run_after = (OtherCallback, "Name")`: run after those callbacks when present;
  `("*",)` runs after every callback that does not say so itself (Checkpointer does this).
- optional `resolve(self, other) -> Resolution | None`: how to order against a callback that
  writes the same state (`RunFirst(self)`, `NO_CONFLICT`, `Incompatible("why")`). Defining it
  on one side is enough; None means "no opinion".
- optional `asynchronous = True` for callbacks that only read (loggers, printers): handlers run
  on a background worker with a snapshot of the declared paths; slow I/O never stalls a step.
  Errors surface at the next event; `fit` waits for pending work before it returns.
  `snapshot_reads(event_name)` may narrow what is copied for one event (e.g. only
  `step.loss` per step); a snapshot of `model` is a copy of its state_dict.
- optional `rank_zero_only = True` for callbacks whose work belongs to one process of a
  distributed run (loggers, progress bars, checkpoint writes): the learner runs their handlers
  on rank 0 only, so they must not take part in collectives. `learner.dist` is the run's
  `weft.train.distributed.Context` (None when not distributed), e.g. to sum values over ranks.
- optional `attach(learner)` to set up `cbstate.<name>` it writes (called when it is added),
  `state_dict()` / `load_state_dict(state)` for what a checkpoint must restore (plain Python
  values and tensors only; a fit resumed mid-epoch loads it after `on_epoch_begin`, so
  per-epoch accumulators reset there come back), and `wrap_data(batches, phase)` to wrap the
  batch iterator of each epoch (how ToDevice prefetches).

The order in which callbacks run is derived once, when the Learner is built or a callback is
added/removed: a writer runs before its readers, `run_after` is honoured, and conflicts or
cycles are errors then, not at the first event.

Stop training from a handler with `learner.request_stop(StopReason.X, "why")`;
`learner.stopping` tells whether a stop is under way (e.g. at `on_fit_end`).

Example:

    class PrintLoss(Callback):
        access = {"step.loss": READ}

        @for_phases(TrainingPhase)
        def on_step_end(self, learner):
            if learner.progress.step % 100 == 0:
                print(learner.progress.step, learner.step.loss.item())
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from weft.train.permissions import Access, normalize_access

if TYPE_CHECKING:
    from weft.train.graph import Resolution
    from weft.train.phases import Phase

__all__ = ["Callback", "for_phases"]

F = TypeVar("F", bound=Callable[..., Any])


def for_phases(*phases: type[Phase]) -> Callable[[F], F]:
    """Decorate a handler so it runs only while one of `phases` (classes) is active.

    Fit events (`on_fit_begin`, `on_fit_end`) run outside any phase and ignore this.
    """

    def mark(fn: F) -> F:
        fn.__weft_phases__ = tuple(phases)  # type: ignore[attr-defined]
        return fn

    return mark


class Callback:
    """Base class for callbacks; see the module docstring for the whole contract.

    Extending: subclass, set `access`, define `on_<event>` handlers; add `state_dict` /
    `load_state_dict` when a resumed run must continue where it left off.
    """

    access: ClassVar[Mapping[str, Access]] = MappingProxyType({})
    run_after: ClassVar[tuple[type | str, ...]] = ()
    asynchronous: ClassVar[bool] = False
    rank_zero_only: ClassVar[bool] = False

    @property
    def name(self) -> str:
        """How errors and checkpoints name this callback."""
        return type(self).__name__

    def declared_access(self) -> dict[str, Access]:
        """`access`, validated."""
        return normalize_access(self.name, self.access)

    def resolve(self, other: Callback) -> Resolution | None:
        """How to order against `other` when both touch the same state; None: no opinion."""
        return None

    def snapshot_reads(self, event: str) -> Sequence[str] | None:
        """For asynchronous callbacks: the declared paths to copy for `event` (its name, e.g.
        "step_end"); None copies every declared READ."""
        return None

    def attach(self, learner: Any) -> None:
        """Called when added to a learner, with its view: initialise `cbstate` fields here."""

    def wrap_data(self, batches: Iterable, phase: Phase) -> Iterable:
        """Wrap the batch iterator of an epoch (e.g. to prefetch to a device); default: as is."""
        return batches

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores for this callback (plain values and tensors)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def __repr__(self) -> str:
        return f"{self.name}()"
