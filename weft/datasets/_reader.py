"""What every reader shares: a lazy container whose observations come from files.

A reader answers `numobs`/`getobs` and says which file is behind each observation
(`__obs_source__`), so errors from deep inside a loader can name it.

Extending: subclass `Reader`, implement `__numobs__`, `_get(i)` (one observation) and
`__obs_source__(i)`; errors raised from `_get` are re-raised naming the index and the file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from weft.data.containers import as_indices

__all__ = ["DataError", "Reader"]


class DataError(ValueError):
    """A data file is missing, truncated or corrupt; the message names the file."""


class Reader:
    """Base of the file readers: a container that decodes one observation at a time."""

    def __numobs__(self) -> int:
        raise NotImplementedError

    def __obs_source__(self, idx: int) -> str:
        raise NotImplementedError

    def _get(self, i: int) -> Any:
        raise NotImplementedError

    def __getobs__(self, idx: int | np.ndarray) -> Any:
        if isinstance(idx, int):
            return self._checked_get(idx)
        return [self._checked_get(int(i)) for i in idx]

    def _checked_get(self, i: int) -> Any:
        try:
            return self._get(i)
        except DataError as err:
            raise DataError(f"{type(self).__name__} observation {i}: {err}") from None

    def __len__(self) -> int:
        return self.__numobs__()

    def __getitem__(self, idx: Any) -> Any:
        return self.__getobs__(as_indices(idx, len(self), type(self).__name__))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} observations)"
