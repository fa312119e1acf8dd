"""Full training state in one file: capture, atomic save, safe load, restore.

A checkpoint holds the model, the optimizer, every callback's `state_dict`, the shared callback
state, the loop's counters and position, the RNG states (python, numpy, torch, CUDA) and the
training data's position when the data has `state_dict()`. Files are written to a temporary
name and renamed, so a crash mid-write leaves the previous file intact; loading uses
`torch.load(weights_only=True)`, which never runs code from the file.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from weft.train.learner import Learner

__all__ = [
    "FORMAT",
    "CheckpointError",
    "capture",
    "load",
    "read",
    "restore",
    "restore_callbacks",
    "restore_training",
    "save",
]

FORMAT = "weft-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or does not match the learner it is loaded into."""


def capture(learner: Learner) -> dict[str, Any]:
    """Everything needed to continue `learner`'s training exactly where it is now."""
    names = callback_keys(learner.callbacks)
    return {
        "format": FORMAT,
        "model": learner.model.state_dict(),
        "optimizer": learner.optimizer.state_dict(),
        "callbacks": {
            k: _encode(cb.state_dict()) for k, cb in zip(names, learner.callbacks, strict=True)
        },
        "cbstate": _encode(learner.cbstate.as_dict()),
        "progress": learner.progress.state_dict(),
        "position": learner.position(),
        "rng": rng_state(),
        "data": _encode(learner.data_state()),
        "world": learner.world,  # positions are per rank: a resume on other ranks rescales them
    }


def restore(learner: Learner, state: dict[str, Any], where: str = "checkpoint") -> None:
    """Load `state` (from `capture`) into `learner`; errors say which part does not fit."""
    restore_training(learner, state, where)
    restore_callbacks(learner, state, where)


def restore_training(learner: Learner, state: dict[str, Any], where: str = "checkpoint") -> None:
    """The model, optimizer, counters and data position of `state`."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{where} is not a weft checkpoint (expected format {FORMAT!r})")
    names = callback_keys(learner.callbacks)
    if set(state["callbacks"]) != set(names):
        raise CheckpointError(
            f"{where} was saved with callbacks {sorted(state['callbacks'])} but the learner has "
            f"{sorted(names)}; build the learner with the same callbacks to resume"
        )
    try:
        learner.model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(
            f"{where}: the model does not match the saved weights: {err}"
        ) from None
    learner.optimizer.load_state_dict(state["optimizer"])
    learner.progress.load_state_dict(state["progress"])
    learner.load_data_state(_decode(state["data"]), int(state.get("world", 1)))


def restore_callbacks(learner: Learner, state: dict[str, Any], where: str = "checkpoint") -> None:
    """Every callback's state, the shared callback state and the RNG states of `state`.

    A fit resumed mid-epoch applies this after the epoch-begin event, so per-epoch
    accumulators reset there are restored to their mid-epoch values.
    """
    names = callback_keys(learner.callbacks)
    for key, cb in zip(names, learner.callbacks, strict=True):
        cb.load_state_dict(_decode(state["callbacks"][key]))
    for name, value in _decode(state["cbstate"]).items():
        setattr(learner.cbstate, name, value)
    set_rng_state(state["rng"])


def callback_keys(callbacks: list[Any]) -> list[str]:
    """Stable keys for callbacks: their names, numbered when a name repeats."""
    keys, counts = [], {}
    for cb in callbacks:
        n = counts.get(cb.name, 0)
        counts[cb.name] = n + 1
        keys.append(cb.name if n == 0 else f"{cb.name}#{n}")
    return keys


def save(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write atomically: to a temporary file in the same folder, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read(path: str | os.PathLike) -> Any:
    """Whatever a torch file holds, read safely: `weights_only=True` (no code runs), on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {type(err).__name__}: {err}"
        ) from None


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a weft checkpoint with `weights_only=True` onto the CPU."""
    state = read(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a weft checkpoint (expected format {FORMAT!r})")
    return state


def rng_state() -> dict[str, Any]:
    """The python, numpy, torch (and CUDA) random states, in a weights_only-safe form."""
    _kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    npst = state["numpy"]
    keys = npst["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, npst["pos"], npst["has_gauss"], npst["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


# numpy values are stored as tensors with a marker, since weights_only refuses numpy objects.
_ND = "__weft_ndarray__"


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {_ND: torch.from_numpy(np.ascontiguousarray(obj)).clone(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_encode(v) for v in obj)
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if _ND in obj:
            return obj[_ND].numpy().astype(obj["dtype"], copy=False)
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_decode(v) for v in obj)
    return obj
