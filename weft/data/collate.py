"""Turning a container's batch form into arrays: the default collate.

`getobs(data, indices)` returns a container's batch form: arrays stay arrays, tuples and dicts
keep their structure, and lists (or generic sequences) give a list of observations. `collate`
stacks what is still a list of observations, recursing through tuples and dicts, so it is a
no-op on what is already batched.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from weft.data.containers import copy_into

__all__ = ["collate", "collate_into"]


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
        return _stack(batch)
    return batch


def collate_into(buffer: Any, batch: Any) -> Any:
    """`collate(batch)` written straight into the matching arrays of `buffer` (the loader's
    reused shared-memory slots); parts that do not fit the buffer come back freshly collated.
    """
    if isinstance(batch, list) and batch:
        first = batch[0]
        if isinstance(buffer, np.ndarray) and isinstance(first, np.ndarray):
            if buffer.shape == (len(batch), *first.shape) and buffer.dtype == first.dtype:
                try:
                    return np.stack(batch, out=buffer)
                except ValueError:
                    pass  # shapes differ within the batch: collate explains it below
        elif isinstance(first, tuple) and isinstance(buffer, tuple) and len(buffer) == len(first):
            _check_lengths(batch, len(first))
            return tuple(collate_into(b, [obs[k] for obs in batch]) for k, b in enumerate(buffer))
        elif (
            isinstance(first, Mapping)
            and isinstance(buffer, Mapping)
            and buffer.keys() == first.keys()
        ):
            return {key: collate_into(b, [obs[key] for obs in batch]) for key, b in buffer.items()}
    return copy_into(buffer, collate(batch))


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
    if isinstance(first, tuple):
        _check_lengths(observations, len(first))
        return tuple(_stack([obs[k] for obs in observations]) for k in range(len(first)))
    if isinstance(first, Mapping):
        return {key: _stack([obs[key] for obs in observations]) for key in first}
    if type(first).__module__ == "torch" and "torch" in sys.modules:
        return sys.modules["torch"].stack(observations)
    return observations


def _check_lengths(observations: list, length: int) -> None:
    for i, obs in enumerate(observations):
        if len(obs) != length:
            raise ValueError(
                f"observation {i} of the batch has {len(obs)} fields, the first has {length}"
            )
