"""Pixel transforms: colour, gamma, noise, blur, cutout, grayscale, and the final Normalize.

Brightness, contrast, saturation, hue and grayscale are all linear maps of the colour vector, so
`ColorJitter` multiplies them into one 3x4 matrix and applies it in a single `cv2.transform`
pass (no HSV round trip, no clipping between the steps). Colours are assumed RGB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from weft.augment.items import Image, Size
from weft.augment.projective import Range, span
from weft.augment.transform import Pixel

__all__ = [
    "Blur",
    "Brightness",
    "ColorJitter",
    "Contrast",
    "Cutout",
    "Gamma",
    "GaussianNoise",
    "Grayscale",
    "Hue",
    "Normalize",
    "Saturation",
]

LUMA = np.array([0.299, 0.587, 0.114])
YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
YIQ_INV = np.linalg.inv(YIQ)
STEPS = ("brightness", "contrast", "saturation", "hue")


def _peak(image: Image) -> float:
    """The value of full intensity: 255 for uint8, 1 for float images."""
    return 255.0 if image.data.dtype == np.uint8 else 1.0


def _finish(image: Image, out: np.ndarray) -> Image:
    """Clip float results to [0, 1] (uint8 saturates on its own) and keep the image's shape."""
    if out.dtype.kind == "f":
        np.clip(out, 0, 1, out=out)
    return image.replace(out.reshape(image.data.shape))


def _need_rgb(owner: Any, image: Image) -> None:
    if image.channels != 3 or image.layout != "hwc":
        raise ValueError(
            f"{owner!r}: needs an HxWx3 RGB Image, got shape {image.data.shape} "
            f"(layout {image.layout!r}); put colour steps before Normalize"
        )


@dataclass(repr=False)
class ColorJitter(Pixel):
    """Random brightness, contrast, saturation (factors around 1; a number x means (1-x, 1+x))
    and hue (a fraction of a full turn; h means (-h, h)), applied in a random order as one matrix.
    """

    brightness: Range = 0.0
    contrast: Range = 0.0
    saturation: Range = 0.0
    hue: Range = 0.0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        self._ranges = {
            name: span(
                getattr(self, name),
                0 if name == "hue" else 1,
                name,
                owner,
                low=None if name == "hue" else 0,
            )
            for name in STEPS
        }
        if max(abs(v) for v in self._ranges["hue"]) > 0.5:
            raise ValueError(
                f"{owner}: hue must stay within (-0.5, 0.5) turns, got {self._ranges['hue']}"
            )
        neutral = {"brightness": (1, 1), "contrast": (1, 1), "saturation": (1, 1), "hue": (0, 0)}
        self._active = [s for s in STEPS if self._ranges[s] != neutral[s]]

    def draw(self, rng: np.random.Generator, size: Size) -> dict[str, Any]:
        order = [self._active[i] for i in rng.permutation(len(self._active))]
        return {"order": order, **{s: rng.uniform(*self._ranges[s]) for s in order}}

    def apply_image(self, image: Image, params: dict[str, Any]) -> Image:
        if not params["order"]:
            return image
        rgb = image.channels == 3
        if not rgb and ({"saturation", "hue"} & set(params["order"]) or image.layout != "hwc"):
            _need_rgb(self, image)
        c = image.channels
        weights = LUMA if rgb else np.full(c, 1 / c)
        a, t = np.eye(c), np.zeros(c)
        mean = None
        for step in params["order"]:
            f = params[step]
            if step == "brightness":
                a, t = f * a, f * t
            elif step == "contrast":
                if mean is None:
                    mean = np.array(cv2.mean(image.data)[:c])
                gray = weights @ (a @ mean + t)
                a, t = f * a, f * t + (1 - f) * gray
            else:
                if step == "saturation":
                    m = f * np.eye(3) + (1 - f) * np.outer(np.ones(3), LUMA)
                else:
                    r = 2 * math.pi * f
                    rot = np.array(
                        [[1, 0, 0], [0, math.cos(r), -math.sin(r)], [0, math.sin(r), math.cos(r)]]
                    )
                    m = YIQ_INV @ rot @ YIQ
                a, t = m @ a, m @ t
        matrix = np.concatenate([a, t[:, None]], axis=1).astype(np.float32)
        return _finish(image, cv2.transform(image.data, matrix))


class Brightness(ColorJitter):
    """Multiply intensities by a random factor (a number x means (1-x, 1+x))."""

    def __init__(self, factor: Range = 0.2) -> None:
        super().__init__(brightness=factor)


class Contrast(ColorJitter):
    """Blend with the mean gray level by a random factor (a number x means (1-x, 1+x))."""

    def __init__(self, factor: Range = 0.2) -> None:
        super().__init__(contrast=factor)


class Saturation(ColorJitter):
    """Blend with the grayscale image by a random factor (a number x means (1-x, 1+x))."""

    def __init__(self, factor: Range = 0.2) -> None:
        super().__init__(saturation=factor)


class Hue(ColorJitter):
    """Rotate hues about the gray axis (YIQ) by a random fraction of a turn (h means (-h, h))."""

    def __init__(self, shift: Range = 0.1) -> None:
        super().__init__(hue=shift)


class Grayscale(ColorJitter):
    """Replace colours by their luma, keeping three channels (wrap in Maybe for a random one)."""

    def __init__(self) -> None:
        super().__init__(saturation=(0.0, 0.0))

    def __repr__(self) -> str:
        return "Grayscale()"


@dataclass(repr=False)
class Gamma(Pixel):
    """Raise normalised intensities to a random power from `gamma`."""

    gamma: Range = (0.8, 1.25)

    def __post_init__(self) -> None:
        self._gamma = span(self.gamma, 1, "gamma", "Gamma", low=1e-3)

    def draw(self, rng: np.random.Generator, size: Size) -> float:
        return rng.uniform(*self._gamma)

    def apply_image(self, image: Image, params: float) -> Image:
        d = image.data
        if d.dtype == np.uint8:
            lut = np.round(255 * (np.arange(256) / 255) ** params).astype(np.uint8)
            return image.replace(cv2.LUT(d, lut).reshape(d.shape))
        return _finish(image, np.power(np.clip(d, 0, 1), params, dtype=np.float32))


@dataclass(repr=False)
class GaussianNoise(Pixel):
    """Add zero-mean Gaussian noise with a random std from `std` (fraction of full intensity).

    The state records a seed, not the noise field, so states stay small and still replay exactly.
    """

    std: Range = (0.01, 0.05)

    def __post_init__(self) -> None:
        self._std = span(self.std, 0, "std", "GaussianNoise", low=0)

    def draw(self, rng: np.random.Generator, size: Size) -> dict[str, Any]:
        return {"std": rng.uniform(*self._std), "seed": int(rng.integers(2**63))}

    def apply_image(self, image: Image, params: dict[str, Any]) -> Image:
        d = image.data
        noise = np.random.default_rng(params["seed"]).standard_normal(d.shape, dtype=np.float32)
        noise *= params["std"] * _peak(image)
        out = cv2.add(d.astype(np.float32), noise).reshape(d.shape)
        if d.dtype == np.uint8:
            return image.replace(np.clip(np.rint(out), 0, 255).astype(np.uint8))
        return _finish(image, out)


@dataclass(repr=False)
class Blur(Pixel):
    """Gaussian blur with a random sigma (pixels) from `sigma`."""

    sigma: Range = (0.1, 2.0)

    def __post_init__(self) -> None:
        self._sigma = span(self.sigma, 0, "sigma", "Blur", low=0)

    def draw(self, rng: np.random.Generator, size: Size) -> float:
        return rng.uniform(*self._sigma)

    def apply_image(self, image: Image, params: float) -> Image:
        if params <= 0:
            return image
        return image.replace(cv2.GaussianBlur(image.data, (0, 0), params).reshape(image.data.shape))


@dataclass(repr=False)
class Cutout(Pixel):
    """Random erasing: fill `count` rectangles, each side a random fraction `size` of the frame."""

    count: int | tuple[int, int] = 1
    size: Range = (0.1, 0.3)
    fill: float = 0

    def __post_init__(self) -> None:
        lo, hi = (self.count, self.count) if isinstance(self.count, int) else self.count
        if not 0 <= lo <= hi:
            raise ValueError(
                f"Cutout: count must be >= 0 (or a (low, high) range), got {self.count!r}"
            )
        self._count = (lo, hi)
        self._size = span(self.size, 0, "size", "Cutout", low=0)
        if self._size[1] > 1:
            raise ValueError(
                f"Cutout: size is a fraction of the frame, at most 1, got {self._size}"
            )

    def draw(self, rng: np.random.Generator, size: Size) -> list[tuple[int, int, int, int]]:
        H, W = size
        boxes = []
        for _ in range(int(rng.integers(self._count[0], self._count[1] + 1))):
            h = max(1, round(H * rng.uniform(*self._size)))
            w = max(1, round(W * rng.uniform(*self._size)))
            boxes.append((int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1)), h, w))
        return boxes

    def apply_image(self, image: Image, params: list[tuple[int, int, int, int]]) -> Image:
        if not params:
            return image
        out = image.data.copy()
        chw = image.layout == "chw"
        for top, left, h, w in params:
            if chw:
                out[:, top : top + h, left : left + w] = self.fill
            else:
                out[top : top + h, left : left + w] = self.fill
        return image.replace(out)


@dataclass(repr=False)
class Normalize(Pixel):
    """(x / peak - mean) / std per channel, converted to `dtype` and laid out as `layout`
    ("chw" for PyTorch, "hwc" for JAX/TF) in one output pass.

    For uint8 input the whole map is a 256-entry table per channel, applied with cv2.LUT
    straight into the output planes.
    """

    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    layout: str = "chw"
    dtype: Any = np.float32

    def __post_init__(self) -> None:
        self._mean = np.asarray(self.mean, np.float64).ravel()
        self._std = np.asarray(self.std, np.float64).ravel()
        if self._mean.shape != self._std.shape or (self._std <= 0).any():
            raise ValueError(
                f"{self!r}: mean and std need one entry per channel and std must be > 0"
            )
        if self.layout not in ("chw", "hwc"):
            raise ValueError(f"Normalize: layout must be 'chw' or 'hwc', got {self.layout!r}")
        if np.dtype(self.dtype) not in (np.float32, np.float16):
            raise ValueError(f"Normalize: dtype must be float32 or float16, got {self.dtype!r}")
        self._half = np.dtype(self.dtype) == np.float16
        self._tables: dict[int, tuple[list[np.ndarray], np.ndarray]] = {}

    def _coeffs(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self._mean) not in (1, channels):
            raise ValueError(
                f"{self!r}: {len(self._mean)} mean/std values for an image with {channels} channels"
            )
        mean = np.broadcast_to(self._mean, (channels,))
        std = np.broadcast_to(self._std, (channels,))
        return 1 / std, -mean / std

    def _luts(self, channels: int) -> tuple[list[np.ndarray], np.ndarray]:
        """The uint8 -> float32 table of each channel, and all of them stacked for cv2.LUT."""
        if channels not in self._tables:
            scale, shift = self._coeffs(channels)
            ramp = np.arange(256) / 255.0
            planes = [(ramp * scale[i] + shift[i]).astype(np.float32) for i in range(channels)]
            self._tables[channels] = planes, np.stack(planes, axis=-1)[:, None, :]
        return self._tables[channels]

    def apply_image(self, image: Image, params: Any) -> Image:
        if image.layout != "hwc":
            raise ValueError(f"{self!r}: the image is already normalized (layout 'chw')")
        d = image.data
        h, w = d.shape[:2]
        c = image.channels
        if d.dtype == np.uint8:
            planes, stacked = self._luts(c)
            if c == 1:
                out = cv2.LUT(d, planes[0]).reshape(
                    (1, h, w) if self.layout == "chw" else (h, w, 1)
                )
            elif self.layout == "hwc":
                out = cv2.LUT(d, stacked)
            else:
                out = np.empty((c, h, w), np.float32)
                for i, plane in enumerate(cv2.split(d)):
                    cv2.LUT(plane, planes[i], dst=out[i])
        else:
            # x * scale + shift written straight into the output layout: one array, no copies.
            scale, shift = (v.astype(np.float32) for v in self._coeffs(c))
            planes = d.reshape(h, w, c)
            if self.layout == "chw":
                planes = planes.transpose(2, 0, 1)
                scale, shift = scale[:, None, None], shift[:, None, None]
            out = np.multiply(planes, scale, out=np.empty(planes.shape, np.float32))
            out += shift
        if self._half:
            out = out.astype(self.dtype)
        return image.replace(out, self.layout)
