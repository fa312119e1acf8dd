"""Randomness as a function of (seed, epoch, index): the same samples whatever the workers.

The loader sets the (seed, epoch) context around every fetch; views and mapped functions draw
from `sample_rng(index)`, a Philox stream keyed by (seed, epoch) at counter (index, stream).
Resetting a cached generator's counter costs ~2 µs, where building a new Generator costs ~12.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

__all__ = [
    "current_epoch",
    "current_seed",
    "epoch_context",
    "sample_rng",
    "sample_rng_source",
    "seed_rng",
]

_MASK64 = (1 << 64) - 1
_local = threading.local()


def current_seed() -> int:
    """The seed of the enclosing `epoch_context` (0 outside any)."""
    return getattr(_local, "seed", 0)


def current_epoch() -> int:
    """The epoch of the enclosing `epoch_context` (0 outside any)."""
    return getattr(_local, "epoch", 0)


@contextmanager
def epoch_context(seed: int, epoch: int) -> Iterator[None]:
    """Run the enclosed fetches as epoch `epoch` of a run seeded with `seed`."""
    saved = current_seed(), current_epoch()
    _local.seed, _local.epoch = int(seed), int(epoch)
    try:
        yield
    finally:
        _local.seed, _local.epoch = saved


def seed_rng(seed: int, epoch: int = 0, stream: int = 0) -> np.random.Generator:
    """A fresh generator for a whole-container draw (a shuffle, a split) keyed by its arguments."""
    return np.random.Generator(np.random.Philox(key=_key(seed, epoch), counter=[0, 0, stream, 1]))


def sample_rng(index: int, stream: int = 0) -> np.random.Generator:
    """The generator of observation `index` in the current (seed, epoch) context.

    The generator is shared by the thread and reset on every call: use it within the call that
    received it, do not keep it. Different `stream`s give independent draws for the same index.
    """
    return sample_rng_source()(index, stream)


def sample_rng_source() -> Callable[[int, int], np.random.Generator]:
    """`sample_rng` bound to the current (seed, epoch) context, for a loop over a batch's
    indices: the context is looked up once, not per observation."""
    key = (current_seed(), current_epoch())
    cached = getattr(_local, "cached", None)
    if cached is None or cached.key != key:
        cached = _local.cached = _Resettable(key)
    return cached.at


class _Resettable:
    """A Philox generator keyed by (seed, epoch) whose counter is reset per sample.

    This is the hot path of every random transform. numpy's state setter validates a dict
    (~2 µs); writing the counter and buffer position in place through the bit generator's
    C state costs ~0.5 µs. The in-place path is checked once against the setter and used only
    if both give the same draws, so a change of numpy's layout falls back instead of breaking.
    """

    def __init__(self, key: tuple[int, int]):
        self.key = key
        self.bitgen = np.random.Philox(key=_key(*key))
        self.generator = np.random.Generator(self.bitgen)
        self.state = self.bitgen.state
        fields = _philox_fields(self.bitgen)
        self.in_place = fields if fields is not None and self._agrees(fields) else None

    def at(self, index: int, stream: int) -> np.random.Generator:
        if self.in_place is None:
            state = self.state
            state["state"]["counter"][:] = (0, index & _MASK64, stream & _MASK64, 0)
            state["buffer_pos"] = 4
            state["has_uint32"] = 0
            self.bitgen.state = state
        else:
            counter, buffer_pos, has_uint32 = self.in_place
            counter[:] = (0, index, stream, 0)  # ctypes keeps the low 64 bits, as the mask does
            buffer_pos.value = 4  # the 4-word output buffer is spent: the next draw computes
            has_uint32.value = 0
        return self.generator

    def _agrees(self, fields) -> bool:
        draws = []
        for in_place in (fields, None):
            self.in_place = in_place
            g = self.at(12345, 7)
            g.integers(0, 2**32, dtype=np.uint32)  # leaves half a word buffered
            g = self.at(3, 2)
            draws.append(
                (g.random(5).tolist(), g.integers(0, 2**32, size=3, dtype=np.uint32).tolist())
            )
        return draws[0] == draws[1]


def _philox_fields(bitgen: np.random.Philox):
    """ctypes views of the counter, buffer position and half-word flag of numpy's Philox state
    (`struct philox_state {ctr *, key *, int buffer_pos, uint64 buffer[4], int has_uint32, ...}`),
    or None where that layout cannot be read."""
    try:
        address = bitgen.ctypes.state_address
        counter_address = ctypes.c_void_p.from_address(address).value
        counter = (ctypes.c_uint64 * 4).from_address(counter_address)
        pointer = ctypes.sizeof(ctypes.c_void_p)
        buffer_pos = ctypes.c_int.from_address(address + 2 * pointer)
        has_uint32 = ctypes.c_int.from_address(address + 2 * pointer + 8 + 4 * 8)
    except Exception:
        return None
    return counter, buffer_pos, has_uint32


def _key(seed: int, epoch: int) -> np.ndarray:
    return np.array([seed & _MASK64, epoch & _MASK64], dtype=np.uint64)
