"""Batches through shared memory: a pool of reused slots, and the encoding of a batch into one.

A batch is a tree (tuples, named tuples, dicts) of leaves. Array leaves travel in a slot, a
shared-memory segment laid out from the first batch; everything else (strings, lists, arrays that
do not fit the layout) travels pickled. Only the small description of the batch is pickled.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import weakref
from multiprocessing import shared_memory
from typing import Any, NamedTuple

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no /dev/shm to look in either
    fcntl = None

_ALIGN = 64  # cache-line aligned regions, so two leaves never share a line
# Where POSIX shared memory shows up as files (Linux); elsewhere stale slots are not looked for.
_SHM_DIR = "/dev/shm"
_SLOT_NAME = re.compile(r"weft-(\d+)-[0-9a-f]+-\d+")  # weft-<pid of the owner>-<tag>-<slot>
_IN_SLOT = "slot"
_PICKLED = "pickled"


class Region(NamedTuple):
    """Where one array leaf lives in a slot."""

    offset: int
    shape: tuple[int, ...]
    dtype: str


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
    """`count` shared-memory slots of one layout, owned (created and unlinked) by the main process.

    A decoded batch's arrays live in its slot, without a copy; the slot returns to the pool only
    when the last of those arrays (or anything viewing them) is garbage, so a worker never
    overwrites memory the program can still see. A consumer that keeps batches just makes the
    pool run dry, and later batches then travel pickled. Slots are reclaimed when one is needed
    (`acquire`), not by a callback when a batch is collected: a Ctrl-C landing in such a callback
    would be swallowed ("Exception ignored") and the loop would go on.
    """

    def __init__(self, layout: Layout, count: int):
        self.layout = layout
        tag = f"weft-{os.getpid()}-{secrets.token_hex(4)}"
        self.segments: list[shared_memory.SharedMemory] = []
        self.addresses: list[int] = []
        self.leases: dict[int, weakref.ref] = {}  # slot -> its batch's lease
        self.locks: list[int] = []
        try:
            for i in range(count):
                segment = shared_memory.SharedMemory(
                    name=f"{tag}-{i}", create=True, size=layout.size
                )
                self.segments.append(segment)
                self.locks.extend(_hold_lock(segment.name))
                anchor = ctypes.c_char.from_buffer(segment.buf)
                self.addresses.append(ctypes.addressof(anchor))
                del anchor  # keep no export: close() must be able to unmap
        except BaseException:
            self.close()
            raise
        self.free = list(range(count))

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.segments]

    def acquire(self) -> int | None:
        if not self.free:
            for slot, lease in list(self.leases.items()):
                if lease() is None:
                    del self.leases[slot]
                    self.free.append(slot)
        return self.free.pop() if self.free else None

    def release(self, slot: int) -> None:
        self.free.append(slot)

    def decode(self, payload: tuple, slot: int) -> Any:
        """The batch a worker encoded; its arrays stay in the slot, which the batch now leases."""
        spec, items = payload
        lease = _Lease()
        leaves = [
            _slot_array(self.addresses[slot], *item[1:], lease) if item[0] == _IN_SLOT else item[1]
            for item in items
        ]
        self.leases[slot] = weakref.ref(lease)
        return unflatten(spec, leaves)

    def _unmap(self, slot: int) -> None:
        self.segments[slot].close()

    def close(self) -> None:
        """Unlink every slot now; unmap those no batch still uses (the others when it goes)."""
        for slot, segment in enumerate(self.segments):
            with contextlib.suppress(FileNotFoundError):
                segment.unlink()
            ref = self.leases.get(slot)
            lease = None if ref is None else ref()
            if lease is None:
                self._unmap(slot)
            else:  # unmapped when its batch goes; at exit the process's mappings go anyway, and
                # unmapping then could pull memory from under arrays still referenced
                weakref.finalize(lease, self._unmap, slot).atexit = False
        for fd in self.locks:
            os.close(fd)
        self.locks = []


def _hold_lock(name: str) -> list[int]:
    """A shared lock on slot `name`, held while the returned descriptor is open: a process in
    another pid namespace (a container sharing /dev/shm) then still sees the slot as in use."""
    if fcntl is None:
        return []
    try:
        fd = os.open(os.path.join(_SHM_DIR, name.lstrip("/")), os.O_RDONLY)
    except OSError:
        return []  # no /dev/shm here: orphans are not looked for either
    fcntl.flock(fd, fcntl.LOCK_SH)
    return [fd]


def remove_orphaned_slots() -> list[str]:
    """Unlink the slots that main processes now gone left in /dev/shm; return their names.

    A main process's resource tracker unlinks its slots when it dies, but when both are killed
    at once (SIGKILL to the process group, the OOM killer) the slots would stay until reboot.
    A slot is removed only if the process named in it is gone and no one holds its lock.
    """
    try:
        names = os.listdir(_SHM_DIR) if fcntl is not None else []
    except OSError:
        return []
    removed = []
    for name in names:
        match = _SLOT_NAME.fullmatch(name)
        if match is None or _pid_alive(int(match[1])):
            continue
        path = os.path.join(_SHM_DIR, name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue  # gone already, or not ours to read
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(path)
            removed.append(name)
        except OSError:
            pass  # locked (in use from another pid namespace), or not ours to remove
        finally:
            os.close(fd)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


class _Lease:
    """Held by every array of one decoded batch: the slot is free when this is collected."""


class _SlotArray:
    # numpy makes an array over `__array_interface__` memory keep this object as its base, and
    # every view of the array keeps that base: the lease lives exactly as long as the data.
    __slots__ = ("__array_interface__", "lease")


def _slot_array(address: int, offset: int, shape: tuple, dtype: str, lease: _Lease) -> np.ndarray:
    holder = _SlotArray()
    holder.__array_interface__ = {
        "data": (address + offset, False),
        "shape": tuple(shape),
        "typestr": dtype,
        "version": 3,
    }
    holder.lease = lease
    return np.asarray(holder)


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
        if filled is not None and leaf is filled:  # written in place: nothing to check or copy
            items.append((_IN_SLOT, region.offset, region.shape, region.dtype))
        elif (
            filled is not None
            and _fits_a_slot(leaf)
            and leaf.dtype.str == region.dtype
            and leaf.nbytes <= filled.nbytes
        ):
            # a smaller last batch, or a leaf built outside the buffer
            dst = np.ndarray(leaf.shape, leaf.dtype, buffer=slot.segment.buf, offset=region.offset)
            dst[...] = leaf
            items.append((_IN_SLOT, region.offset, leaf.shape, region.dtype))
        else:
            items.append((_PICKLED, leaf))
    return spec, items
