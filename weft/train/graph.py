"""The callback dependency graph: order derived from declared accesses and `run_after`,
checked whenever the callback set changes.

Rules, for each pair of callbacks whose paths overlap ('cbstate' overlaps 'cbstate.metrics'):
both write -> a conflict that one of them must resolve (`RunFirst`, `NoConflict`,
`Incompatible`); one writes what the other reads -> the writer runs first. A callback that reads
`cbstate.<x>` needs another callback that writes it. Cycles are errors that print the whole cycle.
"""

from __future__ import annotations

import graphlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from weft.train.permissions import WRITE, Access, overlaps

if TYPE_CHECKING:
    from weft.train.callbacks.base import Callback

__all__ = [
    "NO_CONFLICT",
    "GraphError",
    "Incompatible",
    "NoConflict",
    "Resolution",
    "RunFirst",
    "order_callbacks",
    "resolve",
]


class GraphError(ValueError):
    """The callbacks cannot be ordered: an unresolved conflict, a cycle, or an unwritten read."""


class Resolution:
    """How two callbacks that touch the same state relate; returned by `Callback.resolve`."""


@dataclass(frozen=True, eq=False)
class RunFirst(Resolution):
    """`callback` runs before the other one."""

    callback: Callback

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunFirst) and other.callback is self.callback

    def __hash__(self) -> int:
        return id(self.callback)


class NoConflict(Resolution):
    """The two callbacks touch the same state in ways that do not interfere; no order needed."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoConflict)

    def __hash__(self) -> int:
        return hash(NoConflict)

    def __repr__(self) -> str:
        return "NoConflict()"


NO_CONFLICT = NoConflict()


@dataclass(frozen=True)
class Incompatible(Resolution):
    """The two callbacks cannot be used together, for `reason`."""

    reason: str = ""


def resolve(a: Callback, b: Callback) -> Resolution | None:
    """The resolution between `a` and `b`, whichever of them defines it (symmetric)."""
    ra, rb = a.resolve(b), b.resolve(a)
    if ra is None:
        return rb
    if rb is None or rb == ra:
        return ra
    raise GraphError(
        f"{a.name} and {b.name} disagree on how they relate: {a.name}.resolve says {_say(ra)}, "
        f"{b.name}.resolve says {_say(rb)}; make them agree (defining it on one side is enough)"
    )


def _say(r: Resolution) -> str:
    return f"RunFirst({r.callback.name})" if isinstance(r, RunFirst) else repr(r)


def _contested(pa: str, pb: str) -> str:
    return pa if len(pa) >= len(pb) else pb


def order_callbacks(callbacks: Sequence[Callback]) -> list[Callback]:
    """Callbacks in a valid run order (ties keep list order), or a GraphError saying why not."""
    n = len(callbacks)
    seen: dict[int, int] = {}
    for i, cb in enumerate(callbacks):
        if id(cb) in seen:
            raise GraphError(
                f"{cb.name} appears twice in the callbacks (positions {seen[id(cb)]} and {i}); "
                f"pass each callback object once"
            )
        seen[id(cb)] = i
    accesses = [cb.declared_access() for cb in callbacks]
    names = [cb.name for cb in callbacks]
    for i, cb in enumerate(callbacks):
        if cb.asynchronous:
            writes = [p for p, m in accesses[i].items() if m is WRITE]
            if writes:
                raise GraphError(
                    f"{names[i]} is asynchronous but declares WRITE on {writes}; asynchronous "
                    f"callbacks run on a background worker and may only READ"
                )
    _check_unwritten_reads(names, accesses)

    edges: dict[tuple[int, int], str] = {}
    for i in range(n):
        for j in range(i + 1, n):
            _pair_edges(callbacks, names, accesses, i, j, edges)
    for j, cb in enumerate(callbacks):
        for i, other in enumerate(callbacks):
            if i != j and (
                _named_in(other, cb.run_after)
                or ("*" in cb.run_after and "*" not in other.run_after)
            ):
                edges.setdefault((i, j), f"{names[j]} declares run_after {other.name}")

    sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
    for i in range(n):
        sorter.add(i)
    for a, b in edges:
        sorter.add(b, a)
    try:
        sorter.prepare()
    except graphlib.CycleError as err:
        raise GraphError(_cycle_message(list(err.args[1]), names, edges)) from None
    order: list[int] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return [callbacks[i] for i in order]


def _named_in(cb: Callback, targets: Sequence[type | str]) -> bool:
    return any(
        (isinstance(t, str) and t in (type(cb).__name__, cb.name))
        or (isinstance(t, type) and isinstance(cb, t))
        for t in targets
    )


def _check_unwritten_reads(names: list[str], accesses: list[dict[str, Access]]) -> None:
    for i, acc in enumerate(accesses):
        for path in acc:
            if not path.startswith("cbstate.") or acc[path] is WRITE:
                continue
            writers = [
                j
                for j, other in enumerate(accesses)
                if j != i and any(m is WRITE and overlaps(p, path) for p, m in other.items())
            ]
            if not writers:
                raise GraphError(
                    f"{names[i]} reads {path!r}, but no callback writes it; add the callback "
                    f"that produces {path!r} (e.g. Metrics for cbstate.metrics, History for "
                    f"cbstate.history) or remove {names[i]}"
                )


def _pair_edges(
    callbacks: Sequence[Callback],
    names: list[str],
    accesses: list[dict[str, Access]],
    i: int,
    j: int,
    edges: dict[tuple[int, int], str],
) -> None:
    """Add the ordering edges between callbacks i and j, or raise on an unresolved conflict."""
    both_write = i_before_j = j_before_i = None
    for pa, ma in accesses[i].items():
        for pb, mb in accesses[j].items():
            if not overlaps(pa, pb):
                continue
            field = _contested(pa, pb)
            if ma is WRITE and mb is WRITE:
                both_write = both_write or field
            elif ma is WRITE:
                i_before_j = i_before_j or field
            elif mb is WRITE:
                j_before_i = j_before_i or field
    if not (both_write or i_before_j or j_before_i):
        return
    res = resolve(callbacks[i], callbacks[j])
    if isinstance(res, Incompatible):
        why = f": {res.reason}" if res.reason else ""
        raise GraphError(f"{names[i]} and {names[j]} cannot be used together{why}")
    if isinstance(res, NoConflict):
        return
    if isinstance(res, RunFirst):
        first = i if res.callback is callbacks[i] else j
        other = j if first == i else i
        field = both_write or i_before_j or j_before_i
        edges[(first, other)] = f"{names[first]} resolves to run before {names[other]} ({field!r})"
        return
    if both_write:
        raise GraphError(
            f"{names[i]} and {names[j]} both write {both_write!r} and neither says how to "
            f"order them; define resolve() on one of them returning RunFirst(...), NO_CONFLICT "
            f"or Incompatible(...), or remove one"
        )
    if i_before_j:
        edges[(i, j)] = f"{names[j]} reads {i_before_j!r}, which {names[i]} writes"
    if j_before_i:
        edges[(j, i)] = f"{names[i]} reads {j_before_i!r}, which {names[j]} writes"


def _cycle_message(cycle: list[int], names: list[str], edges: dict[tuple[int, int], str]) -> str:
    if any((a, b) not in edges for a, b in itertools.pairwise(cycle)):
        cycle = cycle[::-1]
    path = " -> ".join(names[i] for i in cycle)
    reasons = "; ".join(edges.get((a, b), "?") for a, b in itertools.pairwise(cycle))
    return (
        f"the callbacks form a cycle: {path} ({reasons}); break it by removing a run_after, "
        f"a declared read, or by a resolve() that returns NO_CONFLICT"
    )
