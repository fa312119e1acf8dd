"""The observation protocol: `numobs(data)` and `getobs(data, idx)`.

Any container answers two questions: how many observations it holds, and which observations sit
at some indices. numpy arrays (first axis), lists, tuples/dicts of containers, and anything with
`__len__`/`__getitem__` (torch Datasets, HF datasets) work without wrapping.

Extending: give your type `__numobs__`/`__getobs__` (and optionally `__getobs_into__`) methods, or
call `register(MyType, numobs=..., getobs=...)` for a type you do not own.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from functools import singledispatch
from typing import Any

import numpy as np

__all__ = ["as_indices", "copy_into", "getobs", "getobs_into", "numobs", "obs_source", "register"]


def as_indices(idx: Any, n: int, where: str = "container") -> int | np.ndarray:
    """Validate `idx` against `n` observations; return an int or a 1-d int64 array.

    Negative indices count from the end, as in Python. Out-of-range indices raise an IndexError
    that names the offending index and the container.
    """
    if isinstance(idx, numbers.Integral) and not isinstance(idx, bool):
        i = int(idx)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for {where} with {n} observations")
        return i + n if i < 0 else i
    if isinstance(idx, slice):
        return np.arange(n, dtype=np.int64)[idx]
    arr = np.asarray(idx)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise IndexError(
                f"boolean mask of shape {arr.shape} does not match {where} with {n} observations"
            )
        return np.flatnonzero(arr)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise IndexError(
            f"indices for {where} must be an int, a slice, a bool mask or a 1-d integer array; got {_describe(idx)}"
        )
    arr = arr.astype(np.int64, copy=False)
    bad = (arr < -n) | (arr >= n)
    if bad.any():
        first = int(arr[np.argmax(bad)])
        raise IndexError(f"index {first} is out of range for {where} with {n} observations")
    return np.where(arr < 0, arr + n, arr)


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"[:120]


# --- numobs -------------------------------------------------------------------------------------


@singledispatch
def numobs(data: Any) -> int:
    """The number of observations in `data`."""
    method = getattr(type(data), "__numobs__", None)
    if method is not None:
        return method(data)
    if hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        return len(data)
    raise TypeError(
        f"{type(data).__name__} is not a data container: give it __len__/__getitem__ or "
        "__numobs__/__getobs__, or call weft.data.register()"
    )


@numobs.register
def _(data: np.ndarray) -> int:
    if data.ndim == 0:
        raise TypeError("a 0-d array holds no observations (the first axis indexes observations)")
    return data.shape[0]


@numobs.register(tuple)
def _(data: tuple) -> int:
    return _common_numobs(enumerate(data), "tuple")


@numobs.register(Mapping)
def _(data: Mapping) -> int:
    return _common_numobs(data.items(), "dict")


def _common_numobs(members, kind: str) -> int:
    counts = {key: numobs(value) for key, value in members}
    if not counts:
        raise TypeError(f"an empty {kind} holds no observations")
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"[{k!r}]: {n}" for k, n in counts.items())
        raise ValueError(
            f"members of a {kind} container must have the same number of observations; got {listed}"
        )
    return next(iter(counts.values()))


# --- getobs -------------------------------------------------------------------------------------


@singledispatch
def getobs(data: Any, idx: Any = None) -> Any:
    """The observation(s) of `data` at `idx` (all of them when `idx` is None).

    An int gives one observation; an index array gives the container's batch form: a stacked
    array for arrays (one gather, not a loop), a list for lists and generic sequences, and the
    same structure of batches for tuples and dicts.
    """
    method = getattr(type(data), "__getobs__", None)
    if idx is None:
        idx = slice(None)
    if method is not None:
        return method(data, as_indices(idx, numobs(data), type(data).__name__))
    n = numobs(data)
    i = as_indices(idx, n, type(data).__name__)
    if isinstance(i, int):
        return data[i]
    getitems = getattr(data, "__getitems__", None)  # torch Datasets may fetch a batch at once
    if getitems is not None:
        return list(getitems(i.tolist()))
    return [data[int(j)] for j in i]


@getobs.register
def _(data: np.ndarray, idx: Any = None) -> Any:
    if idx is None:
        return data
    i = as_indices(idx, numobs(data), "array")
    return data[i] if isinstance(i, int) else data.take(i, axis=0)


@getobs.register(tuple)
def _(data: tuple, idx: Any = None) -> tuple:
    numobs(data)  # checks equal lengths
    return tuple(getobs(member, idx) for member in data)


@getobs.register(Mapping)
def _(data: Mapping, idx: Any = None) -> dict:
    numobs(data)
    return {key: getobs(value, idx) for key, value in data.items()}


# --- getobs_into --------------------------------------------------------------------------------


def getobs_into(buffer: Any, data: Any, idx: Any) -> Any:
    """Write the observations of `data` at `idx` into `buffer`; return the filled buffer.

    The loader reuses buffers (shared memory, pinned memory) rather than allocating a batch per
    step. Arrays gather straight into the buffer; other containers fall back to `getobs` plus a
    copy. When the result does not fit the buffer (other shape, dtype or structure) the fresh
    result is returned instead, so callers always use the return value.
    """
    return _getobs_into(data, buffer, idx)


@singledispatch
def _getobs_into(data: Any, buffer: Any, idx: Any) -> Any:
    method = getattr(type(data), "__getobs_into__", None)
    if method is not None:
        return method(data, buffer, idx)
    return copy_into(buffer, getobs(data, idx))


@_getobs_into.register
def _(data: np.ndarray, buffer: Any, idx: Any) -> Any:
    i = as_indices(idx, numobs(data), "array")
    shape = data.shape[1:] if isinstance(i, int) else (len(i), *data.shape[1:])
    if not (
        isinstance(buffer, np.ndarray) and buffer.shape == shape and buffer.dtype == data.dtype
    ):
        return getobs(data, i)
    if isinstance(i, int):
        buffer[...] = data[i]
        return buffer
    return data.take(i, axis=0, out=buffer)


@_getobs_into.register(tuple)
def _(data: tuple, buffer: Any, idx: Any) -> Any:
    if not (isinstance(buffer, tuple) and len(buffer) == len(data)):
        return getobs(data, idx)
    numobs(data)
    return tuple(getobs_into(b, d, idx) for b, d in zip(buffer, data, strict=True))


@_getobs_into.register(Mapping)
def _(data: Mapping, buffer: Any, idx: Any) -> Any:
    if not (isinstance(buffer, Mapping) and buffer.keys() == data.keys()):
        return getobs(data, idx)
    numobs(data)
    return {k: getobs_into(buffer[k], v, idx) for k, v in data.items()}


def copy_into(buffer: Any, value: Any) -> Any:
    """Copy `value` into the matching leaves of `buffer`; leaves that do not fit come back fresh."""
    if value is buffer:
        return buffer
    if isinstance(buffer, np.ndarray):
        if (
            isinstance(value, np.ndarray)
            and value.shape == buffer.shape
            and value.dtype == buffer.dtype
        ):
            buffer[...] = value
            return buffer
        return value
    if isinstance(buffer, tuple) and isinstance(value, tuple) and len(buffer) == len(value):
        return tuple(copy_into(b, v) for b, v in zip(buffer, value, strict=True))
    if isinstance(buffer, Mapping) and isinstance(value, Mapping) and buffer.keys() == value.keys():
        return {k: copy_into(buffer[k], value[k]) for k in value}
    return value


# --- provenance ---------------------------------------------------------------------------------


def obs_source(data: Any, idx: int) -> str | None:
    """Where observation `idx` comes from (a file, a zip member), for error messages; None if
    the container does not know.

    Extending: a container that reads files implements `__obs_source__(self, idx) -> str`;
    views forward the question to the container beneath with the index mapped.
    """
    method = getattr(type(data), "__obs_source__", None)
    return None if method is None else method(data, idx)


# --- registration -------------------------------------------------------------------------------


def register(
    cls: type,
    *,
    numobs: Callable[[Any], int],
    getobs: Callable[[Any, Any], Any],
    getobs_into: Callable[[Any, Any, Any], Any] | None = None,
) -> None:
    """Make `cls` a container for types you do not own: `numobs(x)`, `getobs(x, idx)`, and
    optionally `getobs_into(buffer, x, idx)`.

    `getobs` and `getobs_into` receive either an int or a validated 1-d int64 array.
    """
    count = numobs

    def checked_getobs(data, idx=None):
        return getobs(data, _checked(data, idx))

    _numobs_dispatch.register(cls, count)
    _getobs_dispatch.register(cls, checked_getobs)
    if getobs_into is not None:
        _getobs_into.register(
            cls, lambda data, buffer, idx: getobs_into(buffer, data, _checked(data, idx))
        )

    def _checked(data, idx):
        return as_indices(slice(None) if idx is None else idx, count(data), cls.__name__)


_numobs_dispatch = numobs
_getobs_dispatch = getobs
