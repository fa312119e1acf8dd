"""Crops and pads: steps that choose the output window. Crops only shrink the bounds that are
evaluated, so a crop after a rotation costs nothing extra: the single warp computes only the
pixels inside the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from weft.augment.items import LatticeMap, Size
from weft.augment.projective import _check_size, scaling, span, translation
from weft.augment.transform import Lattice, Projective

__all__ = ["CenterCrop", "Crop", "Pad", "PadDivisible", "RandomCrop", "RandomResizedCrop"]


@dataclass(repr=False)
class _Window(Lattice):
    """A `size` (h, w) window of the frame; subclasses say where its top-left pixel lies."""

    size: int | tuple[int, int]

    def __post_init__(self) -> None:
        self._size = _check_size(self.size, "size", type(self).__name__)

    def _fits(self, size: Size) -> None:
        h, w = self._size
        if h > size[0] or w > size[1]:
            raise ValueError(
                f"{self!r}: the {h}x{w} crop is larger than the {size[0]}x{size[1]} frame; "
                f"put Resize, ScaleKeepAspect or Pad before it"
            )

    def lattice_map(self, params: tuple[int, int], size: Size) -> tuple[LatticeMap, Size]:
        top, left = params
        return (1, -left, 1, -top), self._size


@dataclass(repr=False)
class Crop(_Window):
    """Cut a `size` (h, w) window whose top-left pixel is (`top`, `left`)."""

    top: int = 0
    left: int = 0

    def draw(self, rng: np.random.Generator, size: Size) -> tuple[int, int]:
        self._fits(size)
        h, w = self._size
        if self.top + h > size[0] or self.left + w > size[1] or min(self.top, self.left) < 0:
            raise ValueError(
                f"{self!r}: the window rows {self.top}..{self.top + h}, columns "
                f"{self.left}..{self.left + w} leaves the {size[0]}x{size[1]} frame"
            )
        return self.top, self.left


@dataclass(repr=False)
class CenterCrop(_Window):
    """Cut a `size` (h, w) window from the centre of the frame."""

    def draw(self, rng: np.random.Generator, size: Size) -> tuple[int, int]:
        self._fits(size)
        return (size[0] - self._size[0]) // 2, (size[1] - self._size[1]) // 2


@dataclass(repr=False)
class RandomCrop(_Window):
    """Cut a `size` (h, w) window at a uniformly random position."""

    def draw(self, rng: np.random.Generator, size: Size) -> tuple[int, int]:
        self._fits(size)
        return (
            int(rng.integers(0, size[0] - self._size[0] + 1)),
            int(rng.integers(0, size[1] - self._size[1] + 1)),
        )


@dataclass(repr=False)
class RandomResizedCrop(Projective):
    """Inception-style crop: a window of random area fraction `scale` and aspect ratio `ratio`
    (log-uniform), resized to `size`, all in the same single warp.
    """

    size: int | tuple[int, int]
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        owner = "RandomResizedCrop"
        self._size = _check_size(self.size, "size", owner)
        self._scale = span(self.scale, 0, "scale", owner, low=0)
        if self._scale[1] > 1 or self._scale[1] == 0:
            raise ValueError(f"{owner}: scale must lie in (0, 1], got {self._scale}")
        self._ratio = span(self.ratio, 0, "ratio", owner, low=1e-6)

    def draw(self, rng: np.random.Generator, size: Size) -> tuple[int, int, int, int]:
        H, W = size
        area = H * W
        log_ratio = (math.log(self._ratio[0]), math.log(self._ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self._scale)
            r = math.exp(rng.uniform(*log_ratio))
            w, h = round(math.sqrt(target * r)), round(math.sqrt(target / r))
            if 0 < w <= W and 0 < h <= H:
                return int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1)), h, w
        # Fallback (as torchvision): the largest central window with a ratio in range.
        r = min(max(W / H, self._ratio[0]), self._ratio[1])
        w, h = (W, round(W / r)) if r > W / H else (round(H * r), H)
        w, h = min(max(w, 1), W), min(max(h, 1), H)
        return (H - h) // 2, (W - w) // 2, h, w

    def project(self, params: tuple[int, int, int, int], size: Size) -> tuple[np.ndarray, Size]:
        top, left, h, w = params
        oh, ow = self._size
        return scaling(ow / w, oh / h) @ translation(-left, -top), self._size


@dataclass(repr=False)
class Pad(Lattice):
    """Add `top`, `bottom`, `left`, `right` pixels (filled by each item's border mode)."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    def __post_init__(self) -> None:
        if min(self.top, self.bottom, self.left, self.right) < 0:
            raise ValueError(f"{self!r}: padding must be >= 0; use a Crop to remove pixels")

    def lattice_map(self, params: Any, size: Size) -> tuple[LatticeMap, Size]:
        out = (size[0] + self.top + self.bottom, size[1] + self.left + self.right)
        return (1, self.left, 1, self.top), out


@dataclass(repr=False)
class PadDivisible(Lattice):
    """Pad the bottom and right so height and width become multiples of `divisor`."""

    divisor: int

    def __post_init__(self) -> None:
        if self.divisor <= 0:
            raise ValueError(f"PadDivisible: divisor must be positive, got {self.divisor}")

    def lattice_map(self, params: Any, size: Size) -> tuple[LatticeMap, Size]:
        d = self.divisor
        return (1, 0, 1, 0), (-(-size[0] // d) * d, -(-size[1] // d) * d)
