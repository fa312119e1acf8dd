"""Schedules: values over the course of training, as functions of progress t in [0, 1].

A schedule is any callable `s(t) -> float`. The building blocks here compose: `chain` runs
schedules one after another over fractions of training, `warmup` prepends a linear ramp, and
`one_cycle` is a chain of two cosines.

Extending: any function of t is a schedule; no class needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "Schedule",
    "chain",
    "constant",
    "cosine",
    "linear",
    "one_cycle",
    "step",
    "warmup",
]

Schedule = Callable[[float], float]


@dataclass(frozen=True)
class _Constant:
    value: float

    def __call__(self, t: float) -> float:
        return self.value


@dataclass(frozen=True)
class _Linear:
    start: float
    end: float

    def __call__(self, t: float) -> float:
        return self.start + (self.end - self.start) * t


@dataclass(frozen=True)
class _Cosine:
    start: float
    end: float

    def __call__(self, t: float) -> float:
        return self.end + (self.start - self.end) * (1 + math.cos(math.pi * t)) / 2


@dataclass(frozen=True)
class _Step:
    values: tuple[float, ...]
    boundaries: tuple[float, ...]

    def __call__(self, t: float) -> float:
        i = sum(t >= b for b in self.boundaries)
        return self.values[i]


@dataclass(frozen=True)
class _Chain:
    parts: tuple[tuple[float, Schedule], ...]

    def __call__(self, t: float) -> float:
        start = 0.0
        for fraction, schedule in self.parts[:-1]:
            if t < start + fraction:
                return schedule((t - start) / fraction)
            start += fraction
        fraction, schedule = self.parts[-1]
        return schedule(min((t - start) / fraction, 1.0))


def constant(value: float) -> Schedule:
    """Always `value`."""
    return _Constant(float(value))


def linear(start: float, end: float) -> Schedule:
    """From `start` to `end` in a straight line."""
    return _Linear(float(start), float(end))


def cosine(start: float, end: float) -> Schedule:
    """From `start` to `end` along half a cosine (flat at both ends)."""
    return _Cosine(float(start), float(end))


def step(values: Sequence[float], boundaries: Sequence[float]) -> Schedule:
    """`values[i]` between `boundaries[i-1]` and `boundaries[i]` (fractions of training)."""
    if len(values) != len(boundaries) + 1:
        raise ValueError(
            f"step() needs one more value than boundaries; got {len(values)} values and "
            f"{len(boundaries)} boundaries"
        )
    if list(boundaries) != sorted(boundaries) or not all(0 < b < 1 for b in boundaries):
        raise ValueError(f"step() boundaries must increase within (0, 1); got {list(boundaries)}")
    return _Step(tuple(float(v) for v in values), tuple(float(b) for b in boundaries))


def chain(*parts: tuple[float, Schedule]) -> Schedule:
    """Run schedules one after another, each for its fraction of training (fractions sum to 1);
    each part sees its own t from 0 to 1."""
    if not parts:
        raise ValueError("chain() needs at least one (fraction, schedule) part")
    fractions = [f for f, _ in parts]
    if any(f <= 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
        raise ValueError(f"chain() fractions must be positive and sum to 1; got {fractions}")
    return _Chain(tuple((float(f), s) for f, s in parts))


def warmup(fraction: float, schedule: Schedule, start: float = 0.0) -> Schedule:
    """A linear ramp from `start` to `schedule(0)` over `fraction` of training, then
    `schedule` over the rest."""
    if not 0 < fraction < 1:
        raise ValueError(f"warmup() fraction must be in (0, 1); got {fraction}")
    return chain((fraction, linear(start, schedule(0.0))), (1 - fraction, schedule))


def one_cycle(
    peak: float, pct_start: float = 0.25, div: float = 25.0, final_div: float = 1e4
) -> Schedule:
    """Leslie Smith's one cycle: cosine up from `peak/div` to `peak` over `pct_start`, then
    cosine down to `peak/final_div`. For momentum use `one_cycle`-shaped `chain` of cosines
    going the other way (see `Learner.fit_one_cycle`)."""
    return chain(
        (pct_start, cosine(peak / div, peak)),
        (1 - pct_start, cosine(peak, peak / final_div)),
    )
