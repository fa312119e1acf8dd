"""Python objects packed into one byte buffer, so process workers do not copy them on read.

A forked worker shares its parent's memory until it writes to it, and merely reading a Python
object writes to it (the reference count, the garbage collector's header): over an epoch every
worker ends up with its own copy of a big list of paths or dicts. `packed(items)` stores the
items pickled in one numpy byte buffer plus offsets, two objects with no per-item headers, so
the pages stay shared. The loader packs plain lists inside weft views for process workers.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np

from weft.data.views import View

__all__ = ["Packed", "packed"]

# Lists shorter than this cost little to copy; packing them would only slow every read.
_PACK_AT_LEAST = 1000


class Packed(View):
    """A read-only sequence of Python objects stored pickled in one byte buffer."""

    def __init__(self, items: Sequence[Any]):
        blobs = [pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL) for x in items]
        self.offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in blobs], out=self.offsets[1:])
        self.buffer = np.frombuffer(b"".join(blobs), dtype=np.uint8)

    def __numobs__(self) -> int:
        return len(self.offsets) - 1

    def __getobs__(self, idx):
        if isinstance(idx, int):
            return self._item(idx)
        return [self._item(int(i)) for i in idx]

    def _item(self, i: int) -> Any:
        return pickle.loads(self.buffer[self.offsets[i] : self.offsets[i + 1]])


def packed(items: Sequence[Any]) -> Packed:
    """Pack `items` (any sequence of picklable objects) into one buffer; indexing unpickles.

    Use it for the lists your own containers or functions hold (file paths, annotation dicts)
    when they are read by process workers; lists inside weft views are packed for you.
    """
    return Packed(items)


def pack_lists(data: Any) -> Any:
    """`data` with every plain list of at least `_PACK_AT_LEAST` items that serves as a container
    (the data of a weft view, a member of a tuple or dict container) packed; views on the way are
    shallow-copied, so `data` itself is left untouched. Lists that cannot be pickled stay lists.
    """
    if type(data) is list:
        if len(data) < _PACK_AT_LEAST:
            return data
        try:
            return Packed(data)
        except Exception:  # unpicklable items: keep the list, and its copy-on-read cost
            return data
    if type(data) is tuple:
        return tuple(pack_lists(member) for member in data)
    if type(data) is dict:
        return {key: pack_lists(value) for key, value in data.items()}
    if isinstance(data, View):
        changed = {}
        if hasattr(data, "data"):
            inner = pack_lists(data.data)
            if inner is not data.data:
                changed["data"] = inner
        if hasattr(data, "parts"):
            parts = [pack_lists(part) for part in data.parts]
            if any(new is not old for new, old in zip(parts, data.parts, strict=True)):
                changed["parts"] = parts
        if changed:
            data = copy.copy(data)
            data.__dict__.update(changed)
    return data
