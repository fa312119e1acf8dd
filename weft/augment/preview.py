"""Preview: a PNG grid of augmented samples with masks, keypoints, boxes and polygons drawn on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from weft.augment.items import BoundingBoxes, Image, Keypoints, Mask, Polygon, items_of
from weft.augment.transform import Transform, as_generator

__all__ = ["render", "show_grid"]

# A fixed palette (RGB) so class ids keep their colour across samples.
PALETTE = np.random.default_rng(7).integers(40, 256, size=(256, 3)).astype(np.uint8)
PALETTE[0] = 0


def _display(image: Image) -> np.ndarray:
    """Any Image (uint8/float, hwc/chw, normalized or not, any channels) as HxWx3 uint8 RGB."""
    d = np.asarray(image.data)
    if image.layout == "chw":
        d = np.moveaxis(d, 0, -1)
    if d.ndim == 2:
        d = d[..., None]
    d = d[..., :3]
    if d.shape[2] < 3:
        d = np.repeat(d[..., :1], 3, axis=2)
    if d.dtype != np.uint8:
        lo, hi = float(d.min()), float(d.max())
        scale = 255.0 if lo >= 0 and hi <= 1 else 255.0 / max(hi - lo, 1e-6)
        d = np.clip((d - (0 if lo >= 0 and hi <= 1 else lo)) * scale, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(d)


def render(sample: Any, alpha: float = 0.45) -> np.ndarray:
    """One augmented sample as an RGB uint8 picture: first image, masks blended, geometry drawn."""
    found = [item for _, item in items_of(sample)]
    images = [i for i in found if isinstance(i, Image) and not isinstance(i, Mask)]
    frame = next((i.frame() for i in found if i.frame() is not None), (64, 64))
    canvas = _display(images[0]) if images else np.zeros((*frame, 3), np.uint8)
    for item in found:
        if isinstance(item, Mask):
            ids = np.asarray(item.data).reshape(*frame, -1)[..., 0].astype(np.int64) % 256
            colour = PALETTE[ids]
            blend = cv2.addWeighted(canvas, 1 - alpha, colour, alpha, 0)
            canvas = np.where((ids > 0)[..., None], blend, canvas)
    canvas = np.ascontiguousarray(canvas)
    for item in found:
        if isinstance(item, Polygon):
            pts = np.round(item.points - 0.5).astype(np.int32)
            cv2.polylines(canvas, [pts], True, (255, 200, 0), 1, cv2.LINE_AA)
        elif isinstance(item, Keypoints):
            for (x, y), vis in zip(item.points, item.visible, strict=True):
                if vis:
                    cv2.circle(canvas, (int(x), int(y)), 2, (0, 255, 0), -1, cv2.LINE_AA)
        elif isinstance(item, BoundingBoxes):
            for box, vis in zip(item.boxes, item.visible, strict=True):
                if vis:
                    x0, y0, x1, y1 = np.round(box).astype(int)
                    cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), (255, 64, 64), 1)
    return canvas


def show_grid(
    pipeline: Transform,
    sample: Any,
    n: int = 8,
    path: str | Path | None = None,
    rng: np.random.Generator | int | None = 0,
    columns: int = 4,
) -> np.ndarray:
    """Render `n` augmentations of `sample` in a grid (RGB uint8); also write a PNG to `path`."""
    if n <= 0 or columns <= 0:
        raise ValueError(f"show_grid: n and columns must be positive, got n={n}, columns={columns}")
    gen = as_generator(rng)
    tiles = [render(pipeline(sample, rng=child)) for child in gen.spawn(n)]
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = -(-n // columns)
    grid = np.full((rows * (h + 2), min(n, columns) * (w + 2), 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        grid[
            r * (h + 2) : r * (h + 2) + tile.shape[0], c * (w + 2) : c * (w + 2) + tile.shape[1]
        ] = tile
    if path is not None and not cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"show_grid: could not write a PNG to {path}; check the folder exists")
    return grid
