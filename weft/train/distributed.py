"""Training on several processes with `torch.distributed`: the process group, the DDP model,
sharded data, and the collectives the Learner and its callbacks agree through.

A run launched by `torchrun` (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR in the environment) is
detected; `Learner(..., distributed=True)` requires one, `False` ignores it. Every collective
here has a deadline: a rank that dies or stalls makes the others raise `DistributedError`
within `timeout` seconds instead of hanging.

Extending: a callback that must run on one process sets `rank_zero_only = True`; one that
combines per-rank numbers calls `Context.sum` in a handler every rank runs.
"""

from __future__ import annotations

import atexit
import datetime
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["ENV_VARS", "Context", "DistributedError", "launched", "setup"]

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_REMAINDERS = ("drop", "pad")


class DistributedError(RuntimeError):
    """A collective failed: another rank died, stalled past the timeout, or diverged."""


def launched() -> bool:
    """True in a process started by `torchrun` (or anything that sets its environment)."""
    return all(v in os.environ for v in ENV_VARS)


@dataclass
class Context:
    """This process's place in the run: `rank` of `world`, its device, the collective timeout
    and how a data remainder that does not split evenly is handled (`"drop"` or `"pad"`)."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    timeout: float
    remainder: str = "pad"

    @property
    def is_zero(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float], what: str) -> list[float]:
        """`values` summed over all ranks (float64, so counts stay exact)."""
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        with self.guard(what):
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def gather(self, obj: Any, what: str) -> list[Any]:
        """Every rank's `obj` (picklable), in rank order."""
        out: list[Any] = [None] * self.world
        with self.guard(what):
            dist.all_gather_object(out, obj)
        return out

    def barrier(self, what: str) -> None:
        """Wait until every rank is here."""
        with self.guard(what):
            if dist.get_backend() == "gloo":
                # names the ranks that did not arrive, rather than a bare timeout
                dist.monitored_barrier(timeout=datetime.timedelta(seconds=self.timeout))
            else:
                dist.barrier()

    @contextmanager
    def guard(self, what: str, *, backend_only: bool = False) -> Iterator[None]:
        """Turn a failed collective into a `DistributedError` that says where and why;
        `backend_only` leaves errors that do not come from the backend (a user's bug in a
        step) as they are."""
        try:
            yield
        except DistributedError:
            raise
        except RuntimeError as err:  # gloo raises plain RuntimeErrors, nccl DistErrors
            if backend_only and not _from_backend(err):
                raise
            raise DistributedError(
                f"rank {self.rank}/{self.world}: {what} failed: another rank died, stalled for "
                f"more than {self.timeout:g} s, or ran a different number of steps; look for "
                f"the first error in the other ranks' output ({type(err).__name__}: "
                f"{str(err).strip().splitlines()[0] if str(err).strip() else err!r})"
            ) from err

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """`model` in DistributedDataParallel (parameters broadcast from rank 0)."""
        from torch.nn.parallel import DistributedDataParallel

        params = list(model.parameters())
        device = params[0].device if params else self.device
        ids = [device.index] if device.type == "cuda" else None
        with self.guard("wrapping the model in DistributedDataParallel"):
            return DistributedDataParallel(model, device_ids=ids)

    def shard(self, data: Any, role: str) -> Any:
        """This rank's share of `data`: a weft `Loader` shards its samples (`Loader.shard`),
        a list or tuple of batches its batches; a torch DataLoader must bring its own
        DistributedSampler."""
        if data is None:
            return None
        if hasattr(data, "shard") and callable(data.shard):
            return data.shard(self.rank, self.world, remainder=self.remainder)
        if isinstance(data, (list, tuple)):
            from weft.data import shardobs

            return list(shardobs(data, self.rank, self.world, remainder=self.remainder))
        sampler = getattr(data, "sampler", None)
        if type(sampler).__name__ == "DistributedSampler":
            return data
        raise ValueError(
            f"distributed training cannot shard the {role} data ({type(data).__name__}) by "
            f"rank; use a weft Loader/DataLoader, a list of batches, or a torch DataLoader with "
            f"a DistributedSampler"
        )


def _from_backend(err: RuntimeError) -> bool:
    text = str(err)
    return isinstance(err, dist.DistError) or any(
        mark in text for mark in ("gloo", "NCCL", "c10d", "ProcessGroup")
    )


_active: Context | None = None  # the context to shut down at exit
_owned = False  # whether weft created the process group (and so destroys it at exit)


def setup(
    distributed: bool | None = None, *, timeout: float = 300.0, remainder: str = "pad"
) -> Context | None:
    """Join (or create) the process group when `distributed` is True, or None and launched
    by torchrun; return this process's `Context`, or None for a single-process run.

    The backend is nccl when CUDA is available, gloo otherwise. A group weft creates is
    destroyed at interpreter exit after a barrier (so no rank tears down while another still
    talks to it).
    """
    global _active, _owned
    if remainder not in _REMAINDERS:
        raise ValueError(f"distributed remainder must be one of {_REMAINDERS}; got {remainder!r}")
    if distributed is False:
        return None
    initialized = dist.is_available() and dist.is_initialized()
    if distributed is None and not (initialized or launched()):
        return None
    if not initialized:
        if not launched():
            missing = [v for v in ENV_VARS if v not in os.environ]
            raise DistributedError(
                f"distributed=True, but this process was not launched by torchrun (missing "
                f"{', '.join(missing)}); start it with `torchrun --nproc-per-node N script.py` "
                f"or `weft train CONFIG --nproc N`"
            )
        cuda = torch.cuda.is_available()
        local_rank = int(os.environ["LOCAL_RANK"])
        if cuda:
            torch.cuda.set_device(local_rank)
        try:
            dist.init_process_group(
                "nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout)
            )
        except Exception as err:
            raise DistributedError(
                f"rank {os.environ['RANK']}: could not join the process group at "
                f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} within {timeout:g} s "
                f"({type(err).__name__}: {err}); check that every rank was started and can reach "
                f"that address"
            ) from err
        _owned = True
        atexit.register(_shutdown)
    local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    cuda = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    _active = Context(
        dist.get_rank(), dist.get_world_size(), local_rank, device, timeout, remainder
    )
    return _active


def _shutdown() -> None:
    """At exit: barrier, then destroy the group weft created. After an uncaught error the
    barrier is skipped (the other ranks fail on their own collectives, within the timeout)."""
    global _active, _owned
    context, _active = _active, None
    if not (_owned and dist.is_initialized()):
        return
    _owned = False
    failed = getattr(sys, "last_value", None) is not None
    try:
        if context is not None and not failed:
            context.barrier("the barrier before shutting down the process group")
    finally:
        dist.destroy_process_group()
