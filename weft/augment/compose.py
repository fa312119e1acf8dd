"""Composition: Sequence, OneOf, Maybe, SomeOf.

A combinator whose children are all projective is itself projective, so random choices never
break fusion: `Sequence(Rotate(15), OneOf(FlipX(), FlipY()), RandomResizedCrop(224))` is still
one matrix and one warp per sample. Likewise a combinator of `Lattice` steps (crops, pads, flips)
is a lattice step, so `Sequence(Pad(4, 4, 4, 4), RandomCrop(32), Maybe(FlipX()))` is one slice.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any

import numpy as np

from weft.augment.items import Item, LatticeMap, Size, lattice_matrix
from weft.augment.transform import (
    IDENTITY,
    UNMOVED,
    Transform,
    compose_lattice,
    lattice_items,
    warp_items,
)

__all__ = ["Maybe", "OneOf", "Sequence", "SomeOf"]


def _check_transforms(transforms: Seq[Any], owner: str) -> tuple[Transform, ...]:
    if not transforms:
        raise ValueError(f"{owner}: needs at least one transform")
    for i, t in enumerate(transforms):
        if not isinstance(t, Transform):
            raise TypeError(
                f"{owner}: argument {i} is a {type(t).__name__}, not a weft.augment Transform"
            )
    return tuple(transforms)


def _chain(steps: list[tuple[Transform, Any]], size: Size) -> tuple[np.ndarray, Size]:
    matrix = IDENTITY
    for t, p in steps:
        m, size = t.project(p, size)
        matrix = m @ matrix
    return matrix, size


def _chain_lattice(steps: list[tuple[Transform, Any]], size: Size) -> tuple[LatticeMap, Size]:
    move = UNMOVED
    for t, p in steps:
        m, size = t.lattice_map(p, size)
        move = compose_lattice(m, move)
    return move, size


def _size_after(t: Transform, params: Any, size: Size) -> Size:
    return (t.lattice_map(params, size) if t.lattice else t.project(params, size))[1]


def _apply_fused(steps: list[tuple[Transform, Any]], items: list[Item], size: Size) -> list[Item]:
    """Apply steps in order, multiplying runs of projective steps into one warp each.

    A run composes in integers while its steps are lattice steps (one slice, no resampling),
    and switches to the matrix at its first other step; the products are the same.
    """
    move, matrix, pending = UNMOVED, None, size
    for t, p in steps:
        if not t.projective:
            items, size = _move(items, move, matrix, pending), pending
            move, matrix = UNMOVED, None
            items = t.apply(items, p, size)
        elif matrix is None and t.lattice:
            m, pending = t.lattice_map(p, pending)
            move = compose_lattice(m, move)
        else:
            m, pending = t.project(p, pending)
            matrix = m @ (lattice_matrix(move) if matrix is None else matrix)
    return _move(items, move, matrix, pending)


def _move(items: list[Item], move: LatticeMap, matrix: np.ndarray | None, size: Size) -> list[Item]:
    return lattice_items(items, move, size) if matrix is None else warp_items(items, matrix, size)


class Sequence(Transform):
    """Apply transforms in order; every run of projective steps becomes one warp.

    The pipeline object: `Sequence(...)(sample, rng=seed)`.
    """

    def __init__(self, *transforms: Transform | list[Transform]) -> None:
        if len(transforms) == 1 and isinstance(transforms[0], (list, tuple)):
            transforms = tuple(transforms[0])  # Sequence([a, b]) as in Albumentations' Compose
        self.transforms = _check_transforms(transforms, "Sequence")
        self.projective = all(t.projective for t in self.transforms)
        self.lattice = all(t.lattice for t in self.transforms)

    def __repr__(self) -> str:
        return f"Sequence({', '.join(map(repr, self.transforms))})"

    def draw(self, rng: np.random.Generator, size: Size) -> list[Any]:
        params = []
        for t in self.transforms:
            p = t.draw(rng, size)
            size = _size_after(t, p, size)
            params.append(p)
        return params

    def project(self, params: list[Any], size: Size) -> tuple[np.ndarray, Size]:
        return _chain(list(zip(self.transforms, params, strict=True)), size)

    def lattice_map(self, params: list[Any], size: Size) -> tuple[LatticeMap, Size]:
        return _chain_lattice(list(zip(self.transforms, params, strict=True)), size)

    def apply(self, items: list[Item], params: list[Any], size: Size) -> list[Item]:
        return _apply_fused(list(zip(self.transforms, params, strict=True)), items, size)


class OneOf(Transform):
    """Apply exactly one of the transforms, chosen with probabilities `weights` (default equal)."""

    def __init__(self, *transforms: Transform, weights: Seq[float] | None = None) -> None:
        self.transforms = _check_transforms(transforms, "OneOf")
        self.projective = all(t.projective for t in self.transforms)
        self.lattice = all(t.lattice for t in self.transforms)
        w = np.ones(len(transforms)) if weights is None else np.asarray(weights, float)
        if w.shape != (len(transforms),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(
                f"OneOf: weights must be {len(transforms)} non-negative numbers with a positive "
                f"sum, got {weights!r}"
            )
        self.weights = w / w.sum()

    def __repr__(self) -> str:
        return f"OneOf({', '.join(map(repr, self.transforms))}, weights={self.weights.tolist()})"

    def draw(self, rng: np.random.Generator, size: Size) -> tuple[int, Any]:
        i = int(rng.choice(len(self.transforms), p=self.weights))
        return i, self.transforms[i].draw(rng, size)

    def project(self, params: tuple[int, Any], size: Size) -> tuple[np.ndarray, Size]:
        i, p = params
        return self.transforms[i].project(p, size)

    def lattice_map(self, params: tuple[int, Any], size: Size) -> tuple[LatticeMap, Size]:
        i, p = params
        return self.transforms[i].lattice_map(p, size)

    def apply(self, items: list[Item], params: tuple[int, Any], size: Size) -> list[Item]:
        i, p = params
        return self.transforms[i].apply(items, p, size)


class Maybe(Transform):
    """Apply `transform` with probability `p`, else leave the sample as it is."""

    def __init__(self, transform: Transform, p: float = 0.5) -> None:
        (self.transform,) = _check_transforms([transform], "Maybe")
        if not 0 <= p <= 1:
            raise ValueError(f"Maybe: p must be a probability in [0, 1], got {p}")
        self.p = float(p)
        self.projective, self.lattice = transform.projective, transform.lattice

    def __repr__(self) -> str:
        return f"Maybe({self.transform!r}, p={self.p})"

    def draw(self, rng: np.random.Generator, size: Size) -> Any:
        # A one-element list marks "applied", so a child whose parameters are None stays replayable.
        return [self.transform.draw(rng, size)] if rng.random() < self.p else None

    def project(self, params: Any, size: Size) -> tuple[np.ndarray, Size]:
        return (IDENTITY, size) if params is None else self.transform.project(params[0], size)

    def lattice_map(self, params: Any, size: Size) -> tuple[LatticeMap, Size]:
        return (UNMOVED, size) if params is None else self.transform.lattice_map(params[0], size)

    def apply(self, items: list[Item], params: Any, size: Size) -> list[Item]:
        return items if params is None else self.transform.apply(items, params[0], size)


class SomeOf(Transform):
    """Apply a random subset of `n` transforms (an int, or a (low, high) range), in given order."""

    def __init__(self, *transforms: Transform, n: int | tuple[int, int] = 1) -> None:
        self.transforms = _check_transforms(transforms, "SomeOf")
        self.projective = all(t.projective for t in self.transforms)
        self.lattice = all(t.lattice for t in self.transforms)
        lo, hi = (n, n) if isinstance(n, int) else n
        if not 0 <= lo <= hi <= len(transforms):
            raise ValueError(
                f"SomeOf: n must lie within 0..{len(transforms)} (the number of transforms), got {n!r}"
            )
        self.n = (lo, hi)

    def __repr__(self) -> str:
        return f"SomeOf({', '.join(map(repr, self.transforms))}, n={self.n})"

    def draw(self, rng: np.random.Generator, size: Size) -> list[tuple[int, Any]]:
        k = int(rng.integers(self.n[0], self.n[1] + 1))
        chosen = sorted(rng.choice(len(self.transforms), size=k, replace=False).tolist())
        params = []
        for i in chosen:
            p = self.transforms[i].draw(rng, size)
            size = _size_after(self.transforms[i], p, size)
            params.append((i, p))
        return params

    def _steps(self, params: list[tuple[int, Any]]) -> list[tuple[Transform, Any]]:
        return [(self.transforms[i], p) for i, p in params]

    def project(self, params: list[tuple[int, Any]], size: Size) -> tuple[np.ndarray, Size]:
        return _chain(self._steps(params), size)

    def lattice_map(self, params: list[tuple[int, Any]], size: Size) -> tuple[LatticeMap, Size]:
        return _chain_lattice(self._steps(params), size)

    def apply(self, items: list[Item], params: list[tuple[int, Any]], size: Size) -> list[Item]:
        return _apply_fused(self._steps(params), items, size)
