"""Runtime permissions: each callback sees the learner through a view limited to what it declared.

A callback declares `access = {"step.loss": READ, "cbstate.metrics": WRITE}`. Its handlers get a
view where declared paths are reachable and everything else raises `AccessError` naming the
callback and the field. READ hands out read-only views of mappings and sequences; tensors,
modules and optimizers cannot be made read-only in PyTorch, so a READ of them returns the object
itself (an in-place change to a READ tensor is not detected). `phase` and `progress` are always
readable, and so are `stopping` (the stop requested, or None), `batch_keys` and `dist` (the
distributed `Context`, or None);
`request_stop` and `fire` are always callable.

Checks cost a property call per access (measured in `benchmarks/loop.py`); turn them off with
`Learner(..., check_access=False)`, which hands callbacks the learner itself.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from weft.train.state import STEP_FIELDS, Progress, Step

__all__ = [
    "READ",
    "ROOT_FIELDS",
    "WRITE",
    "Access",
    "AccessError",
    "ReadOnlyMapping",
    "ReadOnlySequence",
    "make_view",
    "normalize_access",
    "overlaps",
    "readonly",
    "snapshot",
]


class Access(enum.Enum):
    """What a callback may do with a path: READ it, or WRITE it (which includes reading)."""

    READ = "read"
    WRITE = "write"

    def __repr__(self) -> str:
        return self.name


READ = Access.READ
WRITE = Access.WRITE

# Learner fields a callback can declare, and what they hold.
ROOT_FIELDS: dict[str, str] = {
    "model": "the torch.nn.Module",
    "optimizer": "the torch optimizer (hyperparameters live in its param_groups)",
    "loss_fn": "the loss function",
    "data": "the data of fit, a dict {'train': ..., 'valid': ...}",
    "step": f"the per-step state ({', '.join(STEP_FIELDS)})",
    "cbstate": "state callbacks share with each other (cbstate.<name>)",
    "callbacks": "the list of callbacks (to save their state)",
    "progress": "the loop's counters (always readable)",
    "phase": "the current phase (always readable)",
}
_ALWAYS_READABLE = ("progress", "phase")
_STATE_OBJECTS = ("step", "cbstate")
# Reading these everywhere is what saving a checkpoint needs.
CHECKPOINT_READS = ("model", "optimizer", "data", "cbstate", "callbacks")


class AccessError(PermissionError):
    """A callback touched learner state it did not declare (or wrote what it declared READ)."""


def overlaps(a: str, b: str) -> bool:
    """Whether two paths name the same state or one contains the other."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def normalize_access(owner: str, access: Mapping[str, Access]) -> dict[str, Access]:
    """Validate a callback's declared access; errors name the callback and the bad path."""
    if not isinstance(access, Mapping):
        raise TypeError(
            f"{owner}.access must be a dict of path -> READ/WRITE, got {type(access).__name__}"
        )
    out: dict[str, Access] = {}
    for path, mode in access.items():
        if not isinstance(mode, Access):
            raise TypeError(
                f"{owner}.access[{path!r}] must be READ or WRITE (from weft.train), got {mode!r}"
            )
        parts = path.split(".") if isinstance(path, str) else [""]
        if not all(parts):
            raise ValueError(f"{owner}.access has a malformed path {path!r}; use e.g. 'step.loss'")
        root = parts[0]
        if root not in ROOT_FIELDS:
            known = ", ".join(ROOT_FIELDS)
            raise ValueError(
                f"{owner}.access names unknown field {root!r} in {path!r}; the learner has: {known}"
            )
        if root == "step" and len(parts) > 1 and parts[1] not in STEP_FIELDS:
            raise ValueError(
                f"{owner}.access names unknown step field {parts[1]!r} in {path!r}; "
                f"step has: {', '.join(STEP_FIELDS)}"
            )
        if root in _ALWAYS_READABLE and mode is WRITE:
            raise ValueError(f"{owner}.access declares WRITE on {path!r}; the loop alone writes it")
        out[path] = mode
    return out


# ---- read-only wrappers ---------------------------------------------------------------------

_AS_IS = (int, float, bool, str, bytes, type(None), torch.Tensor, torch.nn.Module)


def readonly(value: Any) -> Any:
    """A read-only view of `value` where its type allows one; otherwise `value` itself."""
    if isinstance(value, torch.Tensor) or isinstance(value, _AS_IS):  # noqa: SIM101 (fast path)
        return value
    if isinstance(value, Mapping):
        return ReadOnlyMapping(value)
    if isinstance(value, (list, Sequence)) and not isinstance(value, tuple):
        return ReadOnlySequence(value)
    return value


class ReadOnlyMapping(Mapping):
    """A live, read-only view of a mapping; nested containers come back read-only too."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping) -> None:
        self._data = data

    def __getitem__(self, key: Any) -> Any:
        return readonly(self._data[key])

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ReadOnlyMapping({self._data!r})"


class ReadOnlySequence(Sequence):
    """A live, read-only view of a list; nested containers come back read-only too."""

    __slots__ = ("_data",)

    def __init__(self, data: Sequence) -> None:
        self._data = data

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [readonly(v) for v in self._data[index]]
        return readonly(self._data[index])

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ReadOnlySequence({self._data!r})"


# ---- views ----------------------------------------------------------------------------------


class _Node:
    """The declared access at one path: `mode` for the whole object, `children` below it."""

    __slots__ = ("children", "mode")

    def __init__(self) -> None:
        self.mode: Access | None = None
        self.children: dict[str, _Node] = {}


def _tree(access: Mapping[str, Access]) -> _Node:
    root = _Node()
    for path, mode in access.items():
        node = root
        for part in path.split("."):
            node = node.children.setdefault(part, _Node())
        if node.mode is not WRITE:
            node.mode = mode
    return root


def _undeclared(owner: str, path: str, verb: str, mode: Access) -> AccessError:
    return AccessError(
        f"{owner} {verb} {path!r} but did not declare it; add {{{path!r}: {mode.name}}} to "
        f"{owner}.access (or run with check_access=False)"
    )


def _view_class(owner: str, prefix: str, node: _Node, inherited: Access | None) -> type:
    """A class whose properties expose exactly the declared children of `node`."""
    mode = node.mode or inherited
    writable = mode is WRITE
    ns: dict[str, Any] = {"__slots__": ("_t", "_c")}
    for name, child in node.children.items():
        path = f"{prefix}{name}"
        # the loop's own state objects get attribute-level views even when declared whole
        if child.children or (not prefix and name in _STATE_OBJECTS):
            ns[name] = _nested_property(
                name, _view_class(owner, path + ".", child, child.mode or mode)
            )
        else:
            ns[name] = _leaf_property(name, child.mode or mode)

    def __getattr__(self: Any, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if mode is None:
            raise _undeclared(owner, prefix + name, "read", READ)
        value = getattr(self._t, name)
        return value if writable else readonly(value)

    def __setattr__(self: Any, name: str, value: Any) -> None:
        prop = type(self).__dict__.get(name)
        if writable or (isinstance(prop, property) and prop.fset is not None):
            setattr(self._t, name, value)
        else:
            raise _undeclared(owner, prefix + name, "wrote", WRITE)

    ns["__getattr__"] = __getattr__
    ns["__setattr__"] = __setattr__
    ns["__repr__"] = lambda self: f"<view of {prefix.rstrip('.') or 'learner'} for {owner}>"
    return type(f"View[{owner}:{prefix.rstrip('.') or 'learner'}]", (), ns)


def _leaf_property(name: str, mode: Access | None) -> property:
    if mode is WRITE:
        return property(
            lambda self: getattr(self._t, name), lambda self, v: setattr(self._t, name, v)
        )
    return property(lambda self: readonly(getattr(self._t, name)))


def _nested_property(name: str, cls: type) -> property:
    def get(self: Any) -> Any:
        obj = getattr(self._t, name)
        cached = self._c.get(name)
        if cached is not None and cached[0] is obj:
            return cached[1]
        view = _new_view(cls, obj)
        self._c[name] = (obj, view)
        return view

    return property(get)


def _new_view(cls: type, target: Any) -> Any:
    view = object.__new__(cls)
    object.__setattr__(view, "_t", target)
    object.__setattr__(view, "_c", {})
    return view


def make_view(learner: Any, owner: str, access: Mapping[str, Access]) -> Any:
    """The learner as `owner` may see it: declared paths, `phase`, `progress`, and controls."""
    root = _tree(access)
    for name in _ALWAYS_READABLE:
        root.children.pop(name, None)
    cls = _view_class(owner, "", root, None)
    # the learner's `step` and `cbstate` objects live as long as it does: build their views
    # once, as class attributes, so reaching them costs no property call per access
    fixed = {}
    for name in _STATE_OBJECTS:
        prop = cls.__dict__.get(name)
        if isinstance(prop, property):
            fixed[name] = prop.fget(_new_view(cls, learner))
    can_checkpoint = all(access.get(p) is not None for p in CHECKPOINT_READS)

    def request_stop(self: Any, reason: Any, message: str = "") -> None:
        self._t.request_stop(reason, message, source=owner)

    def capture_state(self: Any) -> dict[str, Any]:
        if not can_checkpoint:
            missing = [p for p in CHECKPOINT_READS if p not in access]
            raise AccessError(
                f"{owner} called capture_state() but did not declare READ on {missing}; "
                f"saving a checkpoint reads {list(CHECKPOINT_READS)}"
            )
        return self._t.capture_state()

    extras = {
        "phase": property(lambda self: self._t.phase),
        "progress": property(lambda self: self._t.progress),
        "stopping": property(lambda self: self._t.stopping),
        "dist": property(lambda self: self._t.dist),
        "batch_keys": property(lambda self: self._t.batch_keys),
        "request_stop": request_stop,
        "capture_state": capture_state,
        "fire": lambda self, event: self._t.fire(event),
        "__slots__": (),
        **fixed,
    }
    return _new_view(type(cls.__name__, (cls,), extras), learner)


# ---- snapshots for asynchronous callbacks ---------------------------------------------------


class _Snapshot:
    """A frozen copy of the declared paths, handed to an asynchronous callback."""

    def __init__(self, owner: str, prefix: str) -> None:
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise _undeclared(self._owner, self._prefix + name, "read", READ)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AccessError(
            f"{self._owner} is asynchronous and tried to write {self._prefix + name!r}; "
            f"asynchronous callbacks only read"
        )

    def request_stop(self, *args: Any, **kwargs: Any) -> None:
        raise AccessError(
            f"{self._owner} is asynchronous and called request_stop(); only synchronous "
            f"callbacks can stop training"
        )


def _freeze(value: Any, owner: str) -> Any:
    """A copy that later steps cannot change: tensors detached, plain containers copied."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, Progress):
        return value.copy()
    if isinstance(value, torch.nn.Module):
        return {k: v.detach().clone() for k, v in value.state_dict().items()}
    if isinstance(value, Step):
        frozen = _Snapshot(owner, "step.")
        for name in STEP_FIELDS:
            object.__setattr__(frozen, name, _freeze(getattr(value, name), owner))
        return frozen
    if isinstance(value, Mapping):
        return {k: _freeze(v, owner) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return (
            type(value)(_freeze(v, owner) for v in value) if type(value) in (list, tuple) else value
        )
    return value


def snapshot(learner: Any, owner: str, reads: Sequence[str]) -> _Snapshot:
    """Copy the values at `reads` (plus `phase` and `progress`) out of the learner, now.

    Tensors are detached, not copied: the loop replaces step tensors every step rather than
    changing them in place. A module becomes a copy of its state_dict; optimizers and other
    objects are passed as they are (read them on the worker at your own risk).
    """
    snap = _Snapshot(owner, "")
    object.__setattr__(snap, "phase", learner.phase)
    object.__setattr__(snap, "progress", learner.progress.copy())
    for path in reads:
        parts = path.split(".")
        node, value = snap, learner
        for i, part in enumerate(parts):
            value = getattr(value, part)
            if i == len(parts) - 1:
                object.__setattr__(node, part, _freeze(value, owner))
            else:
                child = node.__dict__.get(part)
                if child is None:
                    child = _Snapshot(owner, ".".join(parts[: i + 1]) + ".")
                    object.__setattr__(node, part, child)
                node = child
    return snap
