"""Lazy views over containers: each is itself a container, so views compose.

Nothing is loaded when a view is built; `getobs` on the outermost view pulls exactly the
observations it needs through the chain. Index views collapse (a view of a view is one view).
Views are also Python sequences (`len`, `[]`, iteration), so a torch DataLoader can read them.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from weft.data.collate import collate as default_collate
from weft.data.collate import collate_into, collate_rows
from weft.data.containers import as_indices, copy_into, getobs, getobs_into, numobs, obs_source
from weft.data.rng import current_epoch, current_seed, sample_rng, sample_rng_source, seed_rng

__all__ = [
    "BatchView",
    "JoinView",
    "MapView",
    "ObsView",
    "ShuffleView",
    "View",
    "batchview",
    "filterobs",
    "joinobs",
    "kfolds",
    "mapobs",
    "obsview",
    "oversample",
    "randobs",
    "shardobs",
    "shuffleobs",
    "splitobs",
    "undersample",
]


def _stream_over(data: Any) -> int:
    """The stream of a new random view over `data`: one past every random view beneath it.

    Nested random views draw independently, and a pipeline's draws depend on its structure
    alone: building the same pipeline twice (a resumed run, the two spellings of a loader) gives
    the same samples, whatever else the program built before.
    """
    if isinstance(data, tuple | dict):
        members = data.values() if isinstance(data, dict) else data
        return max((_stream_over(member) for member in members), default=1)
    if not isinstance(data, View):
        return 1
    if getattr(data, "stream", 0):
        return data.stream + 1
    beneath = [data.data] if hasattr(data, "data") else list(getattr(data, "parts", ()))
    return max((_stream_over(member) for member in beneath), default=1)


class View:
    """Base of the lazy views: a container (`__numobs__`/`__getobs__`) that is also a sequence."""

    def __numobs__(self) -> int:
        raise NotImplementedError

    def __getobs__(self, idx: int | np.ndarray) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.__numobs__()

    def __getitem__(self, idx: Any) -> Any:
        return getobs(self, idx)

    def __iter__(self):
        for i in range(len(self)):
            yield getobs(self, i)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({numobs(self)} observations)"


# --- index views --------------------------------------------------------------------------------


class ObsView(View):
    """The observations of `data` at fixed `indices`, in that order."""

    def __init__(self, data: Any, indices: np.ndarray):
        self.data, self.indices = data, indices

    def __numobs__(self) -> int:
        return len(self.indices)

    def __getobs__(self, idx):
        return getobs(self.data, self.indices[idx])

    def __getobs_into__(self, buffer, idx):
        return getobs_into(buffer, self.data, self.indices[as_indices(idx, len(self), "ObsView")])

    def __obs_source__(self, idx: int) -> str | None:
        return obs_source(self.data, int(self.indices[idx]))


def obsview(data: Any, indices: Any = None) -> ObsView:
    """A lazy view of `data` at `indices` (all when None); a view of a view collapses to one."""
    n = numobs(data)
    idx = np.arange(n, dtype=np.int64) if indices is None else as_indices(indices, n, _name(data))
    idx = np.atleast_1d(idx)
    if isinstance(data, ObsView):
        return ObsView(data.data, data.indices[idx])
    return ObsView(data, idx)


def _name(data: Any) -> str:
    return type(data).__name__


# --- mapobs -------------------------------------------------------------------------------------


class MapView(View):
    """`f` applied lazily to each observation (or to each batch form, when `batched`)."""

    def __init__(self, f: Callable, data: Any, batched: bool = False):
        self.f, self.data, self.batched = f, data, batched
        self.wants_rng = _accepts_rng(f)
        self.stream = _stream_over(data)

    def __numobs__(self) -> int:
        return numobs(self.data)

    def __getobs__(self, idx):
        if self.batched:
            batch_idx = np.atleast_1d(idx)
            out = self._call(
                getobs(self.data, batch_idx), int(batch_idx[0]) if len(batch_idx) else 0
            )
            return getobs(out, 0) if isinstance(idx, int) else out
        if isinstance(idx, int):
            return self._call(getobs(self.data, idx), idx)
        return list(self.each(idx))

    def each(self, indices: np.ndarray) -> Iterator[Any]:
        """`f` of the observations at `indices` (validated), computed one at a time as the
        iterator is consumed (`collate_rows` copies each into its row before the next exists).
        For a per-observation `f` (not `batched`).
        """
        # One gather for the whole batch, then cheap per-observation views of it: the Python
        # cost per sample is then little more than the call of `f` itself.
        observations = _one_by_one(self.data, indices)
        f, positions = self.f, indices.tolist()
        if not self.wants_rng:
            for x in observations:
                yield f(x)
            return
        rng_at, stream = sample_rng_source(), self.stream
        for x, i in zip(observations, positions, strict=True):
            yield f(x, rng=rng_at(i, stream))

    def __obs_source__(self, idx: int) -> str | None:
        return obs_source(self.data, idx)

    def _call(self, x: Any, index: int) -> Any:
        if self.wants_rng:
            return self.f(x, rng=sample_rng(index, self.stream))
        return self.f(x)

    def __repr__(self) -> str:
        return f"MapView({getattr(self.f, '__name__', self.f)!s}, {numobs(self)} observations)"


def _computed_one_by_one(data: Any) -> bool:
    """Whether `data`'s observations are computed one by one (a map beneath index views): a
    batch of them is then best stacked as they come, not gathered first."""
    while isinstance(data, ObsView | ShuffleView):
        data = data.data
    return isinstance(data, MapView) and not data.batched


def _one_by_one(data: Any, indices: np.ndarray) -> Iterable[Any]:
    """The observations of `data` at `indices` (validated), in order, each on its own: computed
    as they are consumed beneath index views and maps, else split from one gather.
    """
    while isinstance(data, ObsView | ShuffleView):
        mapping = data.indices if isinstance(data, ObsView) else data.permutation()
        data, indices = data.data, mapping[indices]
    if isinstance(data, MapView) and not data.batched:
        return data.each(indices)
    observations = _split(getobs(data, indices), len(indices))
    if observations is None:
        return (getobs(data, i) for i in indices.tolist())
    return observations


def _split(batch: Any, n: int) -> Iterable[Any] | None:
    """The `n` observations of a batch form (arrays, lists, tuples and dicts of them) as an
    iterable, or None for a batch form of another kind. An array iterates by rows: no list of
    them is built."""
    if isinstance(batch, np.ndarray | list) and len(batch) == n:
        return batch
    if type(batch) is tuple:
        members = [_split(member, n) for member in batch]
        return None if any(m is None for m in members) else zip(*members, strict=True)
    if type(batch) is dict:
        members = [_split(member, n) for member in batch.values()]
        if any(m is None for m in members):
            return None
        keys = list(batch)
        return (dict(zip(keys, values, strict=True)) for values in zip(*members, strict=True))
    return None


def _accepts_rng(f: Callable) -> bool:
    try:
        params = inspect.signature(f).parameters
    except (TypeError, ValueError):  # builtins without signatures
        return False
    return "rng" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def mapobs(f: Callable, data: Any, *, batched: bool = False) -> MapView:
    """Apply `f` lazily to each observation of `data`.

    If `f` accepts an `rng` keyword it receives the observation's generator, derived from
    (seed, epoch, index): random transforms then give the same samples whatever the number or
    kind of workers. With `batched=True`, `f` maps a whole batch form at once (vectorised).
    """
    if not callable(f):
        raise TypeError(f"mapobs needs a function as its first argument, got {_name(f)}")
    numobs(data)
    return MapView(f, data, batched)


# --- shuffle ------------------------------------------------------------------------------------


class ShuffleView(View):
    """`data` in an order drawn from (seed, epoch): reshuffled every epoch of a loader."""

    def __init__(self, data: Any, seed: int | None, epoch: int | None):
        self.data, self.seed, self.epoch = data, seed, epoch
        # An explicit seed alone fixes the order; views that follow the loader's seed draw
        # from their own stream so that two of them do not shuffle alike.
        self.stream = 0 if seed is not None else _stream_over(data)
        self._cached: tuple[tuple[int, int], np.ndarray] | None = None

    def __numobs__(self) -> int:
        return numobs(self.data)

    def permutation(self) -> np.ndarray:
        """The order of the current epoch (cached until the epoch changes)."""
        key = (
            current_seed() if self.seed is None else self.seed,
            current_epoch() if self.epoch is None else self.epoch,
        )
        if self._cached is None or self._cached[0] != key:
            perm = seed_rng(key[0], key[1], self.stream).permutation(numobs(self.data))
            self._cached = (key, perm)
        return self._cached[1]

    def __getobs__(self, idx):
        return getobs(self.data, self.permutation()[idx])

    def __getobs_into__(self, buffer, idx):
        return getobs_into(buffer, self.data, self.permutation()[as_indices(idx, len(self))])

    def __obs_source__(self, idx: int) -> str | None:
        return obs_source(self.data, int(self.permutation()[idx]))

    def __getstate__(self):
        return {**self.__dict__, "_cached": None}


def shuffleobs(data: Any, seed: int | None = None, epoch: int | None = None) -> ShuffleView:
    """A lazily shuffled view of `data`.

    The order depends on (seed, epoch). Left as None, they follow the loader that iterates the
    view (its seed, its current epoch), so every epoch sees a new order; fix them for one order.
    """
    numobs(data)
    return ShuffleView(data, seed, epoch)


# --- splits -------------------------------------------------------------------------------------


def splitobs(
    data: Any,
    at: float | Sequence[float] = 0.8,
    *,
    shuffle: bool = False,
    seed: int = 0,
    stratified: Any = None,
) -> tuple[ObsView, ...]:
    """Split `data` into consecutive parts: `at=0.8` gives (80%, 20%), `at=(0.7, 0.2)` gives
    (70%, 20%, 10%). `shuffle` draws one fixed order from `seed`; `stratified=labels` keeps each
    label's proportion in every part.
    """
    fractions = (at,) if isinstance(at, numbers.Real) else tuple(at)
    if not fractions or any(not 0 < f < 1 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(
            f"splitobs: `at` must be fractions in (0, 1) that sum to at most 1; got {at!r}"
        )
    n = numobs(data)
    order = seed_rng(seed).permutation(n) if shuffle else np.arange(n, dtype=np.int64)
    if stratified is None:
        groups = [order]
    else:
        labels = _labels(stratified, data, n, "splitobs")[order]
        groups = [order[labels == label] for label in np.unique(labels)]
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for group in groups:
        cuts = np.round(np.cumsum(fractions) * len(group)).astype(int)
        for part, piece in zip(parts, np.split(group, cuts), strict=True):
            part.append(piece)
    merged = [np.concatenate(p) for p in parts]
    if stratified is not None and not shuffle:
        merged = [np.sort(m) for m in merged]
    return tuple(obsview(data, m) for m in merged)


def kfolds(
    data: Any, k: int = 5, *, shuffle: bool = False, seed: int = 0
) -> list[tuple[ObsView, ObsView]]:
    """The `k` (train, validation) pairs of k-fold cross-validation; folds differ by at most one."""
    n = numobs(data)
    if not 2 <= k <= n:
        raise ValueError(
            f"kfolds: k must be between 2 and the number of observations ({n}); got {k}"
        )
    order = seed_rng(seed).permutation(n) if shuffle else np.arange(n, dtype=np.int64)
    folds = np.array_split(order, k)
    return [
        (obsview(data, np.concatenate(folds[:i] + folds[i + 1 :])), obsview(data, fold))
        for i, fold in enumerate(folds)
    ]


def _labels(labels: Any, data: Any, n: int, where: str) -> np.ndarray:
    values = (
        np.asarray([labels(getobs(data, i)) for i in range(n)])
        if callable(labels)
        else np.asarray(labels)
    )
    if values.ndim != 1 or len(values) != n:
        raise ValueError(
            f"{where}: labels must be one per observation ({n}); got shape {values.shape}"
        )
    return values


# --- class balancing ----------------------------------------------------------------------------


def oversample(
    data: Any, labels: Any, *, fraction: float = 1.0, shuffle: bool = True, seed: int = 0
) -> ObsView:
    """Repeat observations of rarer labels until each has `fraction` times the largest count.

    `labels` is one label per observation, or a function of an observation.
    """
    return _rebalance(
        data, labels, "oversample", lambda counts: max(counts) * fraction, shuffle, seed
    )


def undersample(data: Any, labels: Any, *, shuffle: bool = True, seed: int = 0) -> ObsView:
    """Drop observations of commoner labels until each label has the smallest label's count."""
    return _rebalance(data, labels, "undersample", min, shuffle, seed)


def _rebalance(data, labels, where, target_of, shuffle, seed) -> ObsView:
    n = numobs(data)
    values = _labels(labels, data, n, where)
    rng = seed_rng(seed)
    groups = [np.flatnonzero(values == label) for label in np.unique(values)]
    target = math.ceil(target_of([len(g) for g in groups]))
    chosen = []
    for group in groups:
        if len(group) >= target:
            chosen.append(
                rng.choice(group, target, replace=False) if len(group) > target else group
            )
        else:
            extra = rng.choice(group, target - len(group), replace=True)
            chosen.append(np.concatenate([group, extra]))
    indices = np.concatenate(chosen)
    return obsview(data, rng.permutation(indices) if shuffle else np.sort(indices))


# --- batches ------------------------------------------------------------------------------------


class BatchView(View):
    """`data` seen as batches of `batch_size` observations: observation b is batch b."""

    def __init__(self, data: Any, batch_size: int, partial: bool, collate: Callable | None):
        self.data, self.batch_size, self.partial, self.collate = data, batch_size, partial, collate

    def __numobs__(self) -> int:
        n = numobs(self.data)
        return math.ceil(n / self.batch_size) if self.partial else n // self.batch_size

    def batch_indices(self, b: int) -> np.ndarray:
        """The observation indices that make up batch `b`."""
        start = b * self.batch_size
        return np.arange(start, min(start + self.batch_size, numobs(self.data)), dtype=np.int64)

    def __getobs__(self, idx):
        if isinstance(idx, int):
            return self._batch(idx)
        return [self._batch(int(b)) for b in idx]

    def _batch(self, b: int, buffer: Any = None) -> Any:
        indices = self.batch_indices(b)
        if self.collate is not None:
            batch = self.collate([getobs(self.data, int(i)) for i in indices])
            return batch if buffer is None else copy_into(buffer, batch)
        if _computed_one_by_one(self.data):
            return collate_rows(_one_by_one(self.data, indices), len(indices), buffer)
        if buffer is None:
            return default_collate(getobs(self.data, indices))
        return collate_into(buffer, getobs_into(buffer, self.data, indices))

    def __getobs_into__(self, buffer, idx):
        b = as_indices(idx, len(self), "BatchView")
        if not isinstance(b, int):
            return getobs(self, b)
        return self._batch(b, buffer)


def batchview(
    data: Any, batch_size: int, *, partial: bool = True, collate: Callable | None = None
) -> BatchView:
    """View `data` as batches. The default collate gathers arrays in one call and stacks lists of
    observations; a custom `collate` receives a list of observations, as in torch.
    `partial=False` drops a last batch smaller than `batch_size`.
    """
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batchview: batch_size must be a positive integer; got {batch_size!r}")
    numobs(data)
    return BatchView(data, int(batch_size), partial, collate)


# --- join, filter, sample, shard ----------------------------------------------------------------


class JoinView(View):
    """Containers one after another, as one container."""

    def __init__(self, parts: Sequence[Any]):
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [numobs(p) for p in self.parts])

    def __numobs__(self) -> int:
        return int(self.offsets[-1])

    def __getobs__(self, idx):
        if isinstance(idx, int):
            part = int(np.searchsorted(self.offsets, idx, side="right")) - 1
            return getobs(self.parts[part], idx - int(self.offsets[part]))
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        pieces, positions = [], []
        for part in np.unique(which):
            mask = which == part
            pieces.append(getobs(self.parts[part], idx[mask] - self.offsets[part]))
            positions.append(np.flatnonzero(mask))
        if not pieces:
            return getobs(self.parts[0], idx)
        return getobs(_concat(pieces), np.argsort(np.concatenate(positions), kind="stable"))

    def __obs_source__(self, idx: int) -> str | None:
        part = int(np.searchsorted(self.offsets, idx, side="right")) - 1
        return obs_source(self.parts[part], idx - int(self.offsets[part]))


def _concat(pieces: list) -> Any:
    first = pieces[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(pieces)
    if isinstance(first, tuple):
        return tuple(_concat([p[k] for p in pieces]) for k in range(len(first)))
    if isinstance(first, dict):
        return {key: _concat([p[key] for p in pieces]) for key in first}
    return [obs for piece in pieces for obs in piece]


def joinobs(*parts: Any) -> JoinView:
    """Concatenate containers: `joinobs(a, b)` holds a's observations, then b's."""
    if not parts:
        raise ValueError("joinobs needs at least one container")
    return JoinView(parts)


def filterobs(predicate: Callable[[Any], bool], data: Any) -> ObsView:
    """The observations for which `predicate` is true (evaluated once, now, over all of `data`)."""
    n = numobs(data)
    keep = [i for i in range(n) if predicate(getobs(data, i))]
    return obsview(data, np.asarray(keep, dtype=np.int64))


def randobs(
    data: Any, n: int | None = None, *, seed: int | np.random.Generator | None = None
) -> Any:
    """One random observation, or the batch form of `n` drawn with replacement."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    total = numobs(data)
    if total == 0:
        raise ValueError("randobs: the container is empty")
    if n is None:
        return getobs(data, int(rng.integers(total)))
    return getobs(data, rng.integers(total, size=n))


def shardobs(data: Any, rank: int, world: int, *, remainder: str = "drop") -> ObsView:
    """Rank `rank`'s share of `data` among `world` ranks: every `world`-th observation.

    Shares are equal and disjoint: `remainder="drop"` leaves out the last `n % world`
    observations, `"pad"` repeats the first ones so nothing is left out (shares then overlap by
    those few).
    """
    if not 0 <= rank < world:
        raise ValueError(f"shardobs: rank must be in [0, {world}); got rank={rank}, world={world}")
    if remainder not in ("drop", "pad"):
        raise ValueError(f"shardobs: remainder must be 'drop' or 'pad'; got {remainder!r}")
    n = numobs(data)
    indices = np.arange(n, dtype=np.int64)
    if remainder == "drop":
        indices = indices[: n - n % world]
    elif n % world:
        indices = np.concatenate([indices, indices[: world - n % world]])
    return obsview(data, indices[rank::world])
