"""Batches onto a device: numpy to torch tensors, and host-to-device copies that overlap compute.

The only torch-aware module of `weft.data`, imported only when used. On CUDA, `prefetch` pins
each batch and copies the next one on a side stream while the current one computes (the role of
FluxML's CuIterator); on the CPU it is a cheap conversion to tensors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["prefetch", "to_tensor"]


def to_tensor(batch: Any, device: str | torch.device | None = None) -> Any:
    """`batch` with every numeric numpy array turned into a tensor (sharing memory when it
    stays on the CPU) and moved to `device`; tuples, lists and dicts keep their structure,
    strings and other leaves stay as they are.
    """
    return _map_arrays(batch, lambda a: _tensor(a).to(device) if device is not None else _tensor(a))


def _tensor(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array
    if not array.flags.writeable:  # torch would warn and then share memory it may not write
        array = array.copy()
    return torch.from_numpy(array)


def _map_arrays(tree: Any, f) -> Any:
    if isinstance(tree, torch.Tensor) or (
        isinstance(tree, np.ndarray) and tree.dtype.kind in "biufc"
    ):
        return f(tree)
    if isinstance(tree, tuple):
        mapped = [_map_arrays(x, f) for x in tree]
        return type(tree)(*mapped) if hasattr(tree, "_fields") else tuple(mapped)
    if isinstance(tree, list):
        return [_map_arrays(x, f) for x in tree]
    if isinstance(tree, Mapping):
        return {k: _map_arrays(v, f) for k, v in tree.items()}
    return tree


def prefetch(
    batches: Iterable[Any], device: str | torch.device, non_blocking: bool = True
) -> Iterator[Any]:
    """Iterate `batches` as tensors on `device`. On CUDA the next batch is pinned and copied on
    a side stream while the caller computes on the current one; elsewhere each batch is just
    converted (no copy on the CPU).
    """
    device = torch.device(device)
    if device.type != "cuda":
        target = None if device.type == "cpu" else device  # numpy arrays are on the CPU already
        for batch in batches:
            yield to_tensor(batch, target)
        return
    stream = torch.cuda.Stream(device)

    def start_copy(batch: Any) -> tuple[Any, torch.cuda.Event]:
        with torch.cuda.stream(stream):
            moved = _map_arrays(
                batch, lambda a: _tensor(a).pin_memory().to(device, non_blocking=non_blocking)
            )
            done = torch.cuda.Event()
            done.record(stream)
        return moved, done

    upcoming = None
    for batch in batches:
        following = start_copy(batch)  # queued before the caller computes on `upcoming`
        if upcoming is not None:
            yield _ready(*upcoming, device)
        upcoming = following
    if upcoming is not None:
        yield _ready(*upcoming, device)


def _ready(batch: Any, copied: torch.cuda.Event, device: torch.device) -> Any:
    # The caller's stream waits for this batch's copy only; record_stream tells the allocator
    # the tensors are now used there, so their memory is not reused while that stream reads them.
    compute = torch.cuda.current_stream(device)
    compute.wait_event(copied)

    def hand_over(t: torch.Tensor) -> torch.Tensor:
        t.record_stream(compute)
        return t

    return _map_arrays(batch, hand_over)
