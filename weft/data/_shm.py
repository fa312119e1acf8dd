"""Batches through shared memory: a pool of reused slots, and the encoding of a batch into one.

A batch is a tree (tuples, named tuples, dicts) of leaves. Array leaves travel in a slot, a
shared-memory segment laid out from the first batch; everything else (strings, lists, arrays that
do not fit the layout) travels pickled. Only the small description of the batch is pickled.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from multiprocessing import shared_memory
from typing import Any, NamedTuple

import numpy as np

_ALIGN = 64  # cache-line aligned regions, so two leaves never share a line
_IN_SLOT = "slot"
_PICKLED = "pickled"


class Region(NamedTuple):
    """Where one array leaf lives in a slot."""

    offset: int
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


class Layout(NamedTuple):
    """The tree structure of a batch and, per leaf, its region in a slot (None: pickled)."""

    spec: Any
    regions: tuple[Region | None, ...]
    size: int


# --- trees --------------------------------------------------------------------------------------


def flatten(tree: Any) -> tuple[Any, list]:
    """(structure, leaves) of a batch; tuples, named tuples and dicts are structure."""
    leaves: list = []
    return _flatten(tree, leaves), leaves


def _flatten(tree: Any, leaves: list) -> Any:
    if isinstance(tree, tuple):
        kind = type(tree) if hasattr(tree, "_fields") else tuple
        return (kind, tuple(_flatten(x, leaves) for x in tree))
    if type(tree) is dict:
        return (dict, tuple(tree), tuple(_flatten(v, leaves) for v in tree.values()))
    leaves.append(tree)
    return None


def unflatten(spec: Any, leaves: list) -> Any:
    """The inverse of `flatten`."""
    return _unflatten(spec, iter(leaves))


def _unflatten(spec: Any, leaves) -> Any:
    if spec is None:
        return next(leaves)
    if spec[0] is dict:
        return {k: _unflatten(s, leaves) for k, s in zip(spec[1], spec[2], strict=True)}
    children = [_unflatten(s, leaves) for s in spec[1]]
    return tuple(children) if spec[0] is tuple else spec[0](*children)


def _fits_a_slot(leaf: Any) -> bool:
    return isinstance(leaf, np.ndarray) and not leaf.dtype.hasobject and leaf.nbytes > 0


def layout_of(batch: Any) -> Layout | None:
    """The slot layout that holds `batch`'s array leaves; None when it has none."""
    spec, leaves = flatten(batch)
    regions, offset = [], 0
    for leaf in leaves:
        if _fits_a_slot(leaf):
            regions.append(Region(offset, leaf.shape, leaf.dtype.str))
            offset += -(-leaf.nbytes // _ALIGN) * _ALIGN
        else:
            regions.append(None)
    return Layout(spec, tuple(regions), offset) if offset else None


# --- the main process's side --------------------------------------------------------------------


class SlotPool:
    """`count` shared-memory slots of one layout, owned (created and unlinked) by the main process."""

    def __init__(self, layout: Layout, count: int):
        self.layout = layout
        tag = f"weft-{os.getpid()}-{secrets.token_hex(4)}"
        self.segments: list[shared_memory.SharedMemory] = []
        try:
            for i in range(count):
                self.segments.append(
                    shared_memory.SharedMemory(name=f"{tag}-{i}", create=True, size=layout.size)
                )
        except BaseException:
            self.close()
            raise
        self.free = list(range(count))

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.segments]

    def acquire(self) -> int | None:
        return self.free.pop() if self.free else None

    def release(self, slot: int) -> None:
        self.free.append(slot)

    def decode(self, payload: tuple, slot: int | None) -> Any:
        """The batch a worker encoded, copied out of its slot so the slot can be reused at once."""
        spec, items = payload
        leaves = []
        for item in items:
            if item[0] == _IN_SLOT:
                _, offset, shape, dtype = item
                view = np.ndarray(shape, dtype, buffer=self.segments[slot].buf, offset=offset)
                leaves.append(view.copy())
                del view  # no export of the segment's buffer may outlive this call
            else:
                leaves.append(item[1])
        return unflatten(spec, leaves)

    def close(self) -> None:
        for segment in self.segments:
            try:
                segment.close()
            finally:
                with contextlib.suppress(FileNotFoundError):
                    segment.unlink()
        self.segments = []


def decode_pickled(payload: tuple) -> Any:
    """A batch that travelled without a slot."""
    spec, items = payload
    return unflatten(spec, [item[1] for item in items])


# --- the worker's side --------------------------------------------------------------------------


class AttachedSlot:
    """A worker's view of one slot: the buffer tree that `getobs_into` fills."""

    def __init__(self, name: str, layout: Layout):
        self.segment = shared_memory.SharedMemory(name=name)
        self.layout = layout
        self.arrays = [
            None
            if r is None
            else np.ndarray(r.shape, r.dtype, buffer=self.segment.buf, offset=r.offset)
            for r in layout.regions
        ]
        self.tree = unflatten(layout.spec, self.arrays)

    def close(self) -> None:
        self.arrays, self.tree = [], None
        # A batch may still view the slot; its mapping then goes when the process exits.
        with contextlib.suppress(BufferError):
            self.segment.close()


def encode(batch: Any, slot: AttachedSlot | None) -> tuple:
    """Describe `batch` for the main process: array leaves that fit `slot` are written there
    (a leaf `getobs_into` already filled is not copied again); the rest is pickled.
    """
    spec, leaves = flatten(batch)
    if slot is None or spec != slot.layout.spec:
        return spec, [(_PICKLED, leaf) for leaf in leaves]
    items = []
    for leaf, region, filled in zip(leaves, slot.layout.regions, slot.arrays, strict=True):
        if (
            region is not None
            and _fits_a_slot(leaf)
            and leaf.dtype.str == region.dtype
            and leaf.nbytes <= region.nbytes
        ):
            if leaf is not filled:  # a smaller last batch, or a leaf built outside the buffer
                dst = np.ndarray(
                    leaf.shape, leaf.dtype, buffer=slot.segment.buf, offset=region.offset
                )
                dst[...] = leaf
            items.append((_IN_SLOT, region.offset, leaf.shape, leaf.dtype.str))
        else:
            items.append((_PICKLED, leaf))
    return spec, items
