"""How the loop reads a batch: `(inputs, targets)` or a dict, numpy arrays made tensors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["as_tensors", "inputs_of", "split_batch"]


def split_batch(batch: Any, keys: tuple[str, str] = ("inputs", "targets")) -> tuple[Any, Any]:
    """(inputs, targets) of a batch that is a 2-tuple/list or a dict holding `keys`."""
    if isinstance(batch, (tuple, list)):
        if len(batch) != 2:
            raise ValueError(
                f"a batch must be (inputs, targets) or a dict; got a {type(batch).__name__} "
                f"of {len(batch)} items"
            )
        x, y = batch
    elif isinstance(batch, Mapping):
        kx, ky = keys
        if kx not in batch or ky not in batch:
            raise ValueError(
                f"a dict batch needs keys {kx!r} and {ky!r} (Learner(batch_keys=...)); "
                f"this one has {sorted(batch)}"
            )
        x, y = batch[kx], batch[ky]
    else:
        raise ValueError(f"a batch must be (inputs, targets) or a dict, got {type(batch).__name__}")
    return as_tensors(x), as_tensors(y)


def inputs_of(batch: Any, keys: tuple[str, str] = ("inputs", "targets")) -> Any:
    """The inputs of a batch that may also be inputs alone (for prediction)."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return as_tensors(batch[0])
    if isinstance(batch, Mapping):
        return as_tensors(batch[keys[0]])
    return as_tensors(batch)


def as_tensors(x: Any) -> Any:
    """`x` with numpy arrays turned into tensors (sharing memory); tensors pass through."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x if x.flags.writeable else x.copy())
    if isinstance(x, (tuple, list)):
        return type(x)(as_tensors(v) for v in x)
    if isinstance(x, Mapping):
        return {k: as_tensors(v) for k, v in x.items()}
    return x
