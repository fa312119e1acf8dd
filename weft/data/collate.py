"""Turning a container's batch form into arrays: the default collate.

`getobs(data, indices)` returns a container's batch form: arrays stay arrays, tuples and dicts
keep their structure, and lists (or generic sequences) give a list of observations. `collate`
stacks what is still a list of observations, recursing through tuples and dicts, so it is a
no-op on what is already batched.

Arrays are stacked row by row: each observation's arrays are copied into their rows of the batch
as soon as it arrives, and it can then be dropped, so the memory its successor allocates is the
memory it freed, still in cache. Collecting a batch's fresh results before stacking them touches
new memory for every sample (part of the ~1.4 µs per sample, of ~12, that the in-memory loader
benchmark saved with this and a cheaper per-sample generator).
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from weft.data.containers import copy_into

__all__ = ["collate", "collate_into", "collate_rows"]


def collate(batch: Any) -> Any:
    """Stack a batch form into arrays: numbers and arrays stack, tuples/dicts recurse, strings
    and other objects stay a list. Torch tensors stack with torch (torch is never imported here).
    """
    if isinstance(batch, np.ndarray):
        return batch
    if isinstance(batch, tuple):
        return tuple(collate(member) for member in batch)
    if isinstance(batch, Mapping):
        return {key: collate(value) for key, value in batch.items()}
    if isinstance(batch, list):
        return collate_rows(batch, len(batch))
    return batch


def collate_into(buffer: Any, batch: Any) -> Any:
    """`collate(batch)` written straight into the matching arrays of `buffer` (the loader's
    reused shared-memory slots); parts that do not fit the buffer come back freshly collated.
    """
    if isinstance(batch, list):
        return collate_rows(batch, len(batch), buffer)
    return copy_into(buffer, collate(batch))


def collate_rows(observations: Iterable, count: int, buffer: Any = None) -> Any:
    """`collate` of the `count` observations that `observations` yields, each copied into its
    row of the batch as it arrives: into `buffer`'s arrays where they fit, else new ones.

    Give it an iterator that computes observations as they are consumed (`MapView.each`), and
    no more than two of them are alive at a time: the one being computed and the one before.
    """
    rows = iter(observations)
    if count == 0:
        return []
    first = next(rows)
    spec = _spec(first)
    leaves_of = _leaf_reader(spec)
    rooms = _matching(spec, buffer)
    columns = [
        _column(leaf, count, room) for leaf, room in zip(leaves_of(first, 0), rooms, strict=True)
    ]
    del first  # nothing keeps an observation once it is copied
    puts, j = [put for put, _ in columns], 0
    if _is_flat(spec) and len(puts) == 2:
        # The (input, target) pair, by far the most common observation: unrolled, as a loop
        # over the fields costs ~0.6 µs a sample (of ~10 in the loader benchmark)
        put_input, put_target = puts
        for j, observation in enumerate(rows, 1):
            if len(observation) != 2:
                _fields_of(observation, j, 2)
            put_input(j, observation[0])
            put_target(j, observation[1])
    elif _is_flat(spec):  # a tuple of leaves: no call per observation to split it
        width = len(puts)
        for j, observation in enumerate(rows, 1):
            if len(observation) != width:
                _fields_of(observation, j, width)
            for put, leaf in zip(puts, observation):  # noqa: B905 (lengths checked above)
                put(j, leaf)
    else:
        for j, observation in enumerate(rows, 1):
            for put, leaf in zip(puts, leaves_of(observation, j), strict=True):
                put(j, leaf)
    if j + 1 != count:
        raise ValueError(f"collate_rows: expected {count} observations, got {j + 1}")
    stacked = [result() for _, result in columns]
    return _build(spec, iter(stacked))


# --- the structure of one observation ----------------------------------------------------------
# A spec is None for a leaf, (tuple, length, children) or (dict, keys, children): the structure
# of the first observation, which `_stack` would recurse through.


def _spec(observation: Any) -> Any:
    if isinstance(observation, tuple):
        return (tuple, len(observation), tuple(_spec(x) for x in observation))
    if isinstance(observation, Mapping):
        return (dict, tuple(observation), tuple(_spec(v) for v in observation.values()))
    return None


def _leaf_reader(spec: Any) -> Callable[[Any, int], Sequence]:
    """A function giving the leaves of observation `j` in the order of `spec`; built once per
    batch, since it runs per observation. A tuple of plain leaves is its own leaf sequence."""
    if spec is None:
        return lambda observation, j: (observation,)
    kind, keys, children = spec
    readers = [_leaf_reader(child) for child in children]
    if kind is tuple:
        return lambda observation, j: [
            leaf
            for read, member in zip(readers, _fields_of(observation, j, keys), strict=True)
            for leaf in read(member, j)
        ]
    return lambda observation, j: [
        leaf for read, key in zip(readers, keys, strict=True) for leaf in read(observation[key], j)
    ]


def _is_flat(spec: Any) -> bool:
    return spec is not None and spec[0] is tuple and all(child is None for child in spec[2])


def _fields_of(observation: Any, j: int, width: int) -> Any:
    """Observation `j`, checked to have the `width` fields of the first."""
    if len(observation) != width:
        raise ValueError(
            f"observation {j} of the batch has {len(observation)} fields, the first has {width}"
        )
    return observation


def _matching(spec: Any, buffer: Any) -> list:
    """`buffer`'s arrays in the leaf order of `spec`, None where the buffer has no such part."""
    if spec is None:
        return [buffer if isinstance(buffer, np.ndarray) else None]
    kind, keys, children = spec
    if kind is tuple and isinstance(buffer, tuple) and len(buffer) == keys:
        parts = buffer
    elif kind is dict and isinstance(buffer, Mapping) and buffer.keys() == set(keys):
        parts = [buffer[key] for key in keys]
    else:
        parts = [None] * len(children)
    return [
        room for child, part in zip(children, parts, strict=True) for room in _matching(child, part)
    ]


def _build(spec: Any, stacked: Any) -> Any:
    if spec is None:
        return next(stacked)
    kind, keys, children = spec
    members = [_build(child, stacked) for child in children]
    return tuple(members) if kind is tuple else dict(zip(keys, members, strict=True))


# --- one leaf position of a batch ---------------------------------------------------------------


def _column(first: Any, count: int, room: np.ndarray | None) -> tuple[Callable, Callable]:
    """`(put, result)` for the values of one leaf position: `put(j, value)` stores row `j`,
    `result()` gives the collated column.

    Arrays go into rows of a batch array (`room` when it fits) while each has the first one's
    dtype and shape, so stacking would give that array; anything else (numbers, strings, an
    array that does not fit) is listed and collated at the end by `_stack`, which a few bytes
    per observation cost nothing to keep. Closures, not a class: `put` runs per observation.
    """
    listed: list | None = None

    def append(j: int, value: Any) -> None:
        listed.append(value)

    if type(first) is not np.ndarray or first.dtype.hasobject:
        listed = [first]
        put = append
    else:
        dtype, shape = first.dtype, first.shape
        fits = room is not None and room.shape == (count, *shape) and room.dtype == dtype
        array = room if fits else np.empty((count, *shape), dtype)
        array[0] = first

        def put(j: int, value: Any) -> None:
            nonlocal listed
            if listed is None:
                if type(value) is np.ndarray and value.shape == shape and value.dtype == dtype:
                    array[j] = value
                    return
                listed = list(array[:j])  # the rows so far hold exact copies of their arrays
            listed.append(value)

    def result() -> Any:
        if listed is None:
            return array
        stacked = _stack(listed)
        return stacked if room is None else copy_into(room, stacked)

    return put, result


def _stack(observations: list) -> Any:
    if not observations:
        return observations
    first = observations[0]
    if isinstance(first, np.ndarray | np.generic | numbers.Number) and not isinstance(
        first, bool | np.bool_
    ):
        try:
            return (
                np.stack(observations)
                if isinstance(first, np.ndarray)
                else np.asarray(observations)
            )
        except ValueError as err:
            shapes = sorted({str(np.shape(x)) for x in observations})
            raise ValueError(
                f"cannot stack observations of different shapes {', '.join(shapes)} into one batch; "
                "resize them to one shape, or pass collate=list to keep a list"
            ) from err
    if isinstance(first, bool | np.bool_):
        return np.asarray(observations, dtype=bool)
    if type(first).__module__ == "torch" and "torch" in sys.modules:
        return sys.modules["torch"].stack(observations)
    return observations
