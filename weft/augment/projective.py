"""Geometric transforms that keep or rescale the whole frame: affine family, flips, resizes, perspective.

Each one only says which 3x3 matrix (continuous pixel frame) and output size its parameters
mean; `Sequence` multiplies consecutive ones together and warps every item once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from weft.augment.items import LatticeMap, Size
from weft.augment.transform import Lattice, Projective

__all__ = [
    "Affine",
    "FlipX",
    "FlipY",
    "Perspective",
    "Project",
    "Resize",
    "Rotate",
    "Scale",
    "ScaleKeepAspect",
    "Shear",
    "Translate",
    "Zoom",
]

Range = float | tuple[float, float]


def span(
    value: Range, center: float, name: str, owner: str, low: float | None = None
) -> tuple[float, float]:
    """A (lo, hi) range from a half-width around `center` or an explicit pair, validated."""
    if isinstance(value, (int, float)):
        lo, hi = center - abs(value), center + abs(value)
    else:
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(
                f"{owner}: {name} must be a number or a (low, high) pair, got {value!r}"
            ) from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{owner}: {name} range ({lo}, {hi}) must be finite with low <= high")
    if low is not None and lo < low:
        raise ValueError(f"{owner}: {name} must stay >= {low}, got range ({lo}, {hi})")
    return lo, hi


def translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0, tx], [0, 1, ty], [0, 0, 1]])


def scaling(sx: float, sy: float) -> np.ndarray:
    return np.array([[sx, 0, 0], [0, sy, 0], [0, 0, 1.0]])


def about_center(linear: np.ndarray, size: Size, shift: tuple[float, float] = (0, 0)) -> np.ndarray:
    """`linear` applied around the frame centre, then shifted by `shift` pixels."""
    h, w = size
    return translation(w / 2 + shift[0], h / 2 + shift[1]) @ linear @ translation(-w / 2, -h / 2)


@dataclass(repr=False)
class Affine(Projective):
    """Random rotation (degrees, counter-clockwise), uniform scale, translation (fraction of the
    frame) and shear (degrees) about the frame centre; the frame size is kept.
    """

    rotate: Range = 0.0
    scale: Range = (1.0, 1.0)
    translate: Range = 0.0
    shear: Range = 0.0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        self._rotate = span(self.rotate, 0, "rotate", owner)
        self._scale = span(self.scale, 1, "scale", owner)
        if self._scale[0] <= 0:
            raise ValueError(f"{owner}: scale must be > 0, got range {self._scale}")
        self._translate = span(self.translate, 0, "translate", owner)
        self._shear = span(self.shear, 0, "shear", owner)
        if max(abs(v) for v in self._shear) >= 90:
            raise ValueError(
                f"{owner}: shear must stay within (-90, 90) degrees, got {self._shear}"
            )
        ranges = (
            self._rotate,
            self._scale,
            self._translate,
            self._translate,
            self._shear,
            self._shear,
        )
        self._bounds = np.array(ranges).T

    def draw(self, rng: np.random.Generator, size: Size) -> dict[str, float]:
        lo, hi = self._bounds
        angle, scale, tx, ty, shear_x, shear_y = rng.uniform(lo, hi).tolist()
        return {
            "angle": angle,
            "scale": scale,
            "tx": tx,
            "ty": ty,
            "shear_x": shear_x,
            "shear_y": shear_y,
        }

    def project(self, params: dict[str, float], size: Size) -> tuple[np.ndarray, Size]:
        a = math.radians(params["angle"])
        s = params["scale"]
        cos, sin = math.cos(a) * s, math.sin(a) * s
        shx, shy = (
            math.tan(math.radians(params["shear_x"])),
            math.tan(math.radians(params["shear_y"])),
        )
        # rotation @ shear @ scale, written out: this runs once per sample.
        l00, l01 = cos + sin * shy, cos * shx + sin
        l10, l11 = -sin + cos * shy, -sin * shx + cos
        h, w = size
        cx, cy = w / 2, h / 2
        tx = cx + params["tx"] * w - (l00 * cx + l01 * cy)
        ty = cy + params["ty"] * h - (l10 * cx + l11 * cy)
        return np.array([[l00, l01, tx], [l10, l11, ty], [0.0, 0.0, 1.0]]), size


class Rotate(Affine):
    """Rotate by a random angle in degrees (a number d means (-d, d)), about the centre."""

    def __init__(self, degrees: Range) -> None:
        super().__init__(rotate=degrees)

    def __repr__(self) -> str:
        return f"Rotate(degrees={self.rotate!r})"


class Scale(Affine):
    """Scale about the centre by a random factor in (low, high); the frame size is kept."""

    def __init__(self, factors: Range) -> None:
        super().__init__(scale=factors)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(factors={self.scale!r})"


class Zoom(Scale):
    """Zoom in about the centre by a random factor >= 1, keeping the frame (DataAugmentation.jl)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self._scale[0] < 1:
            raise ValueError(
                f"Zoom: factors must be >= 1 (use Scale to zoom out), got {self._scale}"
            )


class Shear(Affine):
    """Shear by random angles in degrees along x and y, about the centre."""

    def __init__(self, degrees: Range) -> None:
        super().__init__(shear=degrees)

    def __repr__(self) -> str:
        return f"Shear(degrees={self.shear!r})"


class Translate(Affine):
    """Shift by a random fraction of the frame in x and y (a number f means (-f, f))."""

    def __init__(self, fraction: Range) -> None:
        super().__init__(translate=fraction)

    def __repr__(self) -> str:
        return f"Translate(fraction={self.translate!r})"


@dataclass(repr=False)
class FlipX(Lattice):
    """Mirror left-right (always; wrap in Maybe for a random flip)."""

    def lattice_map(self, params: Any, size: Size) -> tuple[LatticeMap, Size]:
        return (-1, size[1], 1, 0), size


@dataclass(repr=False)
class FlipY(Lattice):
    """Mirror top-bottom (always; wrap in Maybe for a random flip)."""

    def lattice_map(self, params: Any, size: Size) -> tuple[LatticeMap, Size]:
        return (1, 0, -1, size[0]), size


def _check_size(size: Any, name: str, owner: str) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(
            f"{owner}: {name} must be an int or (height, width), got {size!r}"
        ) from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{owner}: {name} must be positive, got {(h, w)}")
    return h, w


@dataclass(repr=False)
class Resize(Projective):
    """Stretch the frame to exactly `size` (height, width)."""

    size: int | tuple[int, int]

    def __post_init__(self) -> None:
        self._size = _check_size(self.size, "size", "Resize")

    def project(self, params: Any, size: Size) -> tuple[np.ndarray, Size]:
        h, w = self._size
        return scaling(w / size[1], h / size[0]), self._size


@dataclass(repr=False)
class ScaleKeepAspect(Projective):
    """Resize keeping the aspect ratio so the shorter side becomes `min_side` pixels."""

    min_side: int

    def __post_init__(self) -> None:
        if self.min_side <= 0:
            raise ValueError(f"ScaleKeepAspect: min_side must be positive, got {self.min_side}")

    def project(self, params: Any, size: Size) -> tuple[np.ndarray, Size]:
        h, w = size
        r = self.min_side / min(h, w)
        out = (max(1, round(h * r)), max(1, round(w * r)))
        return scaling(out[1] / w, out[0] / h), out


@dataclass(repr=False)
class Perspective(Projective):
    """Move each frame corner by a random fraction (drawn from `scale`) of the frame, keeping size."""

    scale: Range = (0.05, 0.1)

    def __post_init__(self) -> None:
        self._scale = span(self.scale, 0, "scale", "Perspective", low=0)
        if self._scale[1] >= 0.5:
            raise ValueError(f"Perspective: scale must stay below 0.5, got {self._scale}")

    def draw(self, rng: np.random.Generator, size: Size) -> list[list[float]]:
        s = rng.uniform(*self._scale)
        return (rng.uniform(-s, s, size=(4, 2))).tolist()

    def project(self, params: list[list[float]], size: Size) -> tuple[np.ndarray, Size]:
        h, w = size
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        dst = src + np.array(params, np.float32) * np.array([w, h], np.float32)
        return cv2.getPerspectiveTransform(src, dst).astype(np.float64), size


class Project(Projective):
    """A fixed, user-given 3x3 matrix (continuous pixel frame) into an output of `size`."""

    def __init__(self, matrix: np.ndarray, size: tuple[int, int] | None = None) -> None:
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (3, 3) or not np.isfinite(m).all() or abs(np.linalg.det(m)) < 1e-12:
            raise ValueError(
                f"Project: matrix must be a finite, invertible 3x3 array, got {m.shape}"
            )
        self.matrix = m
        self.size = None if size is None else _check_size(size, "size", "Project")

    def __repr__(self) -> str:
        return f"Project(matrix={self.matrix.tolist()}, size={self.size})"

    def project(self, params: Any, size: Size) -> tuple[np.ndarray, Size]:
        return self.matrix, self.size or size
