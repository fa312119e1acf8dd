"""The embedded "shapes" data set: coloured shapes drawn on noisy backgrounds, no download.

Observation `i` is generated from (seed, i) alone, on demand, so the set is deterministic,
costs no memory until read, and any worker can produce any observation. Each observation
carries a class label, a segmentation mask and keypoints, so classification, segmentation and
keypoint tasks all work out of the box.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from weft.datasets._reader import Reader

__all__ = ["SHAPES", "Shapes"]

SHAPES = ("circle", "square", "triangle", "star", "cross")
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel vertices


def _regular(n: int, start: float, radii: tuple[float, ...] = (1.0,)) -> np.ndarray:
    """Vertices of a regular n-gon (a star when radii alternate) on the unit circle."""
    angles = start + np.arange(n) * 2 * np.pi / n
    r = np.resize(np.asarray(radii), n)
    return np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)


# vertices in units of the shape's radius, before rotation
_UNIT_POLYGONS = {
    "square": _regular(4, np.pi / 4),
    "triangle": _regular(3, -np.pi / 2),
    "star": _regular(10, -np.pi / 2, (1.0, 0.45)),
    "cross": np.array(
        [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3),
         (0.3, 1), (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)]
    ),
}  # fmt: skip


class Shapes(Reader):
    """`n` images of one shape each: a dict with `image` (size x size x 3 uint8), `label` (index
    into `classes`), `mask` (size x size uint8: 0 background, label + 1 on the shape) and
    `keypoints` (5 x 2 float32, x y: the centre, then the ends of the shape's rotated axes).

    `noise` is the largest standard deviation of the added pixel noise; sizes are radii as
    fractions of the image size.
    """

    def __init__(
        self,
        n: int = 4000,
        seed: int = 0,
        *,
        size: int = 32,
        classes: Sequence[str] = SHAPES,
        radius: tuple[float, float] = (0.2, 0.4),
        noise: float = 12.0,
    ):
        unknown = [c for c in classes if c not in SHAPES]
        if unknown:
            raise ValueError(f"Shapes: unknown classes {unknown}; choose from {list(SHAPES)}")
        if n < 0 or size < 8:
            raise ValueError(f"Shapes needs n >= 0 and size >= 8, got n={n}, size={size}")
        self.n, self.seed, self.size = int(n), int(seed), int(size)
        self.classes, self.radius, self.noise = list(classes), radius, float(noise)

    def __numobs__(self) -> int:
        return self.n

    def __getobs__(self, idx: int | np.ndarray) -> dict[str, Any]:
        if isinstance(idx, int):
            return self._get(idx)
        samples = [self._get(int(i)) for i in idx]
        batch = {k: np.stack([s[k] for s in samples]) for k in ("image", "mask", "keypoints")}
        batch["label"] = np.array([s["label"] for s in samples], np.int64)
        return batch

    def __obs_source__(self, idx: int) -> str:
        return f"shapes(seed={self.seed}) #{idx}"

    def __repr__(self) -> str:
        return f"Shapes(n={self.n}, seed={self.seed}, size={self.size}, classes={self.classes})"

    def _get(self, i: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, i])
        u = rng.random(15)  # every scalar parameter in one draw
        s = self.size
        label = int(u[0] * len(self.classes))
        kind = self.classes[label]
        r = (self.radius[0] + u[1] * (self.radius[1] - self.radius[0])) * s
        cx, cy = r + u[2:4] * (s - 2 * r)
        angle = u[4] * 2 * np.pi
        sigma = u[5] * self.noise
        background = (u[6:9] * 256).astype(np.int64)
        # a foreground 100-155 levels away from the background in every channel (mod 256)
        offset = (100 + u[9:12] * 56).astype(np.int64) * np.where(u[12:15] < 0.5, -1, 1)
        colour = (background + offset) % 256
        image = np.empty((s, s, 3), np.uint8)
        image[:] = background
        mask = np.zeros((s, s), np.uint8)
        centre = np.array([cx, cy])
        if kind == "circle":
            c = tuple(np.round(centre * (1 << _SHIFT)).astype(int).tolist())
            radius = round(r * (1 << _SHIFT))
            cv2.circle(image, c, radius, colour.tolist(), -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(mask, c, radius, label + 1, -1, cv2.LINE_8, _SHIFT)
        else:
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            points = centre + r * _UNIT_POLYGONS[kind] @ rot.T
            fixed = [np.round(points * (1 << _SHIFT)).astype(np.int32)]
            cv2.fillPoly(image, fixed, colour.tolist(), cv2.LINE_AA, _SHIFT)
            cv2.fillPoly(mask, fixed, label + 1, cv2.LINE_8, _SHIFT)
        if sigma > 0:  # float32 noise, added with saturation by cv2: ~3x faster than float64
            noise = rng.standard_normal(image.shape, dtype=np.float32)
            noise *= sigma
            image = cv2.add(image.astype(np.float32), noise, dtype=cv2.CV_8U)
        axes = r * np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
        keypoints = np.array(
            [centre, centre + axes[0], centre + axes[1], centre - axes[0], centre - axes[1]],
            np.float32,
        )
        return {"image": image, "label": label, "mask": mask, "keypoints": keypoints}
