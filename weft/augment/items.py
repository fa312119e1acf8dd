"""Items: the things one sampled augmentation moves together (images, masks, points, boxes).

Every coordinate lives in one continuous frame: pixel (row r, column c) covers [c, c+1) x [r, r+1),
so its centre is at (c + 0.5, r + 0.5). This is the convention of COCO and PASCAL VOC boxes and
polygons, and it makes flips and resizes exact (x -> w - x, x -> s * x).

Extending: subclass `Item` and implement `frame`, `check` and `project`; every projective
transform then moves your item with the others, fused into the same single warp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import cv2
import numpy as np

__all__ = [
    "BoundingBoxes",
    "Image",
    "Item",
    "Keypoints",
    "LatticeMap",
    "Mask",
    "Polygon",
    "Size",
    "arrays",
    "items_of",
    "lattice_matrix",
    "replace_items",
]

Size = tuple[int, int]
"""A frame size as (height, width), like a numpy shape."""

LatticeMap = tuple[int, int, int, int]
"""(sx, tx, sy, ty): the map x -> sx * x + tx, y -> sy * y + ty of the continuous frame, with
sx, sy in {1, -1} and integer tx, ty: mirrors and whole-pixel moves, which never resample."""

INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
    "area": cv2.INTER_LINEAR,  # warps have no area mode; downscales are pre-filtered instead
}
BORDERS = {
    "constant": cv2.BORDER_CONSTANT,
    "replicate": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT_101,
    "wrap": cv2.BORDER_WRAP,
}


class Item:
    """One target of an augmentation; every item in a sample is moved by the same parameters.

    Extending: set `kind`, implement `frame()` (its (h, w) or None), `check()` (raise
    ValueError saying what is wrong), and `project(matrix, size)` returning a new item.
    """

    kind: ClassVar[str] = "Item"

    def frame(self) -> Size | None:
        raise NotImplementedError

    def check(self) -> None:
        raise NotImplementedError

    def project(self, matrix: np.ndarray, size: Size) -> Item:
        raise NotImplementedError

    def project_lattice(self, move: LatticeMap, size: Size) -> Item:
        """`project` for a mirror-and-whole-pixel map; override when that has a cheaper exact form."""
        return self.project(lattice_matrix(move), size)

    def with_frame(self, size: Size) -> Item:
        """This item placed in a frame of `size` (only coordinate items lack one)."""
        return self

    def evolve(self, **changes: Any) -> Item:
        """A copy with some attributes replaced; items are never changed in place."""
        new = object.__new__(type(self))
        new.__dict__ = self.__dict__ | changes
        return new


def _check_choice(value: str, table: dict, what: str, kind: str) -> None:
    if value not in table:
        raise ValueError(f"{kind}: unknown {what} {value!r}; choose one of {sorted(table)}")


class Image(Item):
    """An HxW or HxWxC image (any channel count), uint8 or float32 in [0, 1].

    `interp` is how warps resample it ("linear", "area", "cubic", "lanczos", "nearest");
    `border` and `fill` say what appears outside the source ("constant", "replicate",
    "reflect", "wrap"). `layout` is "hwc" until a transform such as Normalize makes it "chw".
    """

    kind = "Image"
    dtypes: ClassVar[tuple[type, ...]] = (np.uint8, np.float32)

    def __init__(
        self,
        data: np.ndarray,
        interp: str = "linear",
        border: str = "constant",
        fill: float | tuple[float, ...] = 0,
        layout: str = "hwc",
    ) -> None:
        _check_choice(interp, INTERPOLATIONS, "interp", self.kind)
        _check_choice(border, BORDERS, "border", self.kind)
        if layout not in ("hwc", "chw"):
            raise ValueError(f"{self.kind}: layout must be 'hwc' or 'chw', got {layout!r}")
        self.data = np.asarray(data)
        self.interp, self.border, self.fill, self.layout = interp, border, fill, layout

    def __repr__(self) -> str:
        return f"{self.kind}(shape={self.data.shape}, dtype={self.data.dtype})"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def replace(self, data: np.ndarray, layout: str | None = None) -> Image:
        """The same item (same settings) holding new pixels."""
        return self.evolve(data=data, layout=layout or self.layout)

    def frame(self) -> Size:
        shape = self.data.shape
        return (shape[1], shape[2]) if self.layout == "chw" else (shape[0], shape[1])

    @property
    def channels(self) -> int:
        d = self.data
        if d.ndim == 2:
            return 1
        return d.shape[0] if self.layout == "chw" else d.shape[2]

    def check(self) -> None:
        d = self.data
        if d.ndim not in (2, 3):
            raise ValueError(f"expected an HxW or HxWxC array, got shape {d.shape}")
        if d.dtype.type not in self.dtypes:
            names = " or ".join(np.dtype(t).name for t in self.dtypes)
            raise ValueError(f"dtype {d.dtype} is not supported; convert it to {names}")
        if d.size == 0:
            raise ValueError(f"it is empty (shape {d.shape})")
        if d.dtype.kind == "f" and not np.isfinite(d).all():
            raise ValueError("it contains NaN or inf values")

    def project(self, matrix: np.ndarray, size: Size) -> Image:
        self._need_hwc()
        return self.replace(
            warp(self.data, matrix, size, self.interp, self.border, self.fill), "hwc"
        )

    def project_lattice(self, move: LatticeMap, size: Size) -> Image:
        self._need_hwc()
        return self.replace(lattice_copy(self.data, move, size, self.border, self.fill), "hwc")

    def _need_hwc(self) -> None:
        if self.layout != "hwc":
            raise ValueError(
                f"{self.kind} has layout 'chw'; put geometric transforms before Normalize"
            )


class Mask(Image):
    """An HxW (or HxWxK) map of integer class ids; warps use nearest neighbour, so ids survive.

    `fill` is the class id given to pixels that come from outside the source (e.g. an ignore
    index such as 255).
    """

    kind = "Mask"
    dtypes = (np.uint8, np.uint16, np.int16, np.int32)

    def __init__(self, data: np.ndarray, border: str = "constant", fill: int = 0) -> None:
        super().__init__(data, interp="nearest", border=border, fill=fill)


class Keypoints(Item):
    """N x 2 points (x, y); points that leave the frame are kept, in order, and flagged invisible.

    `size` is the (h, w) frame the points live in; leave it None to take it from the sample's
    image or mask. `visible` (N bools) only ever goes from True to False.
    """

    kind = "Keypoints"
    min_points = 0

    def __init__(
        self, points: np.ndarray, size: Size | None = None, visible: np.ndarray | None = None
    ) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        n = self.points.shape[0] if self.points.ndim == 2 else 0
        self.visible = np.ones(n, bool) if visible is None else np.asarray(visible, bool)

    def __repr__(self) -> str:
        return f"{self.kind}(n={len(self.points)}, size={self.size})"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.points if dtype is None else self.points.astype(dtype)

    def frame(self) -> Size | None:
        return self.size

    def with_frame(self, size: Size) -> Keypoints:
        return self.evolve(size=size)

    def check(self) -> None:
        p = self.points
        if p.ndim != 2 or p.shape[1] != 2:
            raise ValueError(f"expected an N x 2 array of (x, y), got shape {p.shape}")
        if len(p) < self.min_points:
            raise ValueError(
                f"it has {len(p)} points; a {self.kind} needs at least {self.min_points}"
            )
        if not np.isfinite(p).all():
            bad = int(np.argmax(~np.isfinite(p).all(axis=1)))
            raise ValueError(f"point {bad} is not finite ({p[bad].tolist()})")
        if self.visible.shape != (len(p),):
            raise ValueError(f"visible has shape {self.visible.shape}, expected ({len(p)},)")

    def project(self, matrix: np.ndarray, size: Size) -> Keypoints:
        points = project_points(self.points, matrix)
        return self.evolve(points=points, size=size, visible=self.visible & inside(points, size))


class Polygon(Keypoints):
    """A closed polygon, N x 2 vertices (x, y); vertices move like keypoints (none are dropped)."""

    kind = "Polygon"
    min_points = 3


class BoundingBoxes(Item):
    """N x 4 axis-aligned boxes (x_min, y_min, x_max, y_max); each moves as the hull of its corners.

    `clip` is the explicit policy for boxes that leave the frame: "clip" clips them to the frame
    (boxes fully outside become empty and invisible), "none" leaves them as projected, "drop"
    clips and removes boxes keeping less than `min_visibility` of their area (with their
    `labels`). `visible` flags boxes with any area left inside the frame.
    """

    kind = "BoundingBoxes"
    policies = ("clip", "none", "drop")

    def __init__(
        self,
        boxes: np.ndarray,
        size: Size | None = None,
        labels: np.ndarray | None = None,
        clip: str = "clip",
        min_visibility: float = 0.0,
    ) -> None:
        if clip not in self.policies:
            raise ValueError(f"{self.kind}: clip must be one of {self.policies}, got {clip!r}")
        self.boxes = np.asarray(boxes, dtype=np.float64)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.labels = None if labels is None else np.asarray(labels)
        self.clip, self.min_visibility = clip, float(min_visibility)
        n = self.boxes.shape[0] if self.boxes.ndim == 2 else 0
        self.visible = np.ones(n, bool)

    def __repr__(self) -> str:
        return f"{self.kind}(n={len(self.boxes)}, size={self.size}, clip={self.clip!r})"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.boxes if dtype is None else self.boxes.astype(dtype)

    def frame(self) -> Size | None:
        return self.size

    def with_frame(self, size: Size) -> BoundingBoxes:
        return self.evolve(size=size)

    def check(self) -> None:
        b = self.boxes
        if b.ndim != 2 or b.shape[1] != 4:
            raise ValueError(f"expected an N x 4 array of xyxy boxes, got shape {b.shape}")
        if not np.isfinite(b).all():
            bad = int(np.argmax(~np.isfinite(b).all(axis=1)))
            raise ValueError(f"box {bad} is not finite ({b[bad].tolist()})")
        flipped = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
        if flipped.any():
            bad = int(np.argmax(flipped))
            raise ValueError(
                f"box {bad} {b[bad].tolist()} has max < min; boxes must be (x_min, y_min, x_max, y_max)"
            )
        if self.labels is not None and len(self.labels) != len(b):
            raise ValueError(f"{len(self.labels)} labels for {len(b)} boxes")

    def project(self, matrix: np.ndarray, size: Size) -> BoundingBoxes:
        b = self.boxes
        corners = b[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 2)
        moved = project_points(corners, matrix).reshape(-1, 4, 2)
        boxes = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)
        h, w = size
        clipped = np.clip(boxes, 0, [w, h, w, h])
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        kept = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        visible = self.visible & (kept > 0)
        labels = self.labels
        if self.clip == "drop":
            frac = np.divide(kept, area, out=(kept > 0).astype(float), where=area > 0)
            keep = visible & (frac >= self.min_visibility)
            clipped, visible = clipped[keep], visible[keep]
            labels = None if labels is None else labels[keep]
        boxes = boxes if self.clip == "none" else clipped
        return self.evolve(boxes=boxes, size=size, visible=visible, labels=labels)


def project_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 3x3 projective matrix to N x 2 points (perspective divide included)."""
    out = points @ matrix[:2, :2].T + matrix[:2, 2]
    if matrix[2, 0] or matrix[2, 1] or matrix[2, 2] != 1:
        den = points @ matrix[2, :2] + matrix[2, 2]
        out = out / den[:, None]
    return out


def inside(points: np.ndarray, size: Size) -> np.ndarray:
    """Which points fall inside a frame of (h, w)."""
    h, w = size
    x, y = points[:, 0], points[:, 1]
    return (x >= 0) & (x < w) & (y >= 0) & (y < h)


_SHIFT = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
_UNSHIFT = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])


def _index_matrix(matrix: np.ndarray) -> np.ndarray:
    """The continuous-frame matrix expressed on pixel indices, as OpenCV expects."""
    return _UNSHIFT @ matrix @ _SHIFT


def warp(
    data: np.ndarray,
    matrix: np.ndarray,
    size: Size,
    interp: str = "linear",
    border: str = "constant",
    fill: float | tuple[float, ...] = 0,
) -> np.ndarray:
    """Resample `data` through `matrix` (continuous frame) into an array of `size`, once.

    Integer translations (pure crops and pads) become slices; everything else is one
    cv2.warpAffine or cv2.warpPerspective evaluated only over the output pixels.
    """
    h, w = size
    m = _index_matrix(matrix)
    m = m / m[2, 2]
    (a, b, tx), (c, d, ty), (p, q, _) = m.tolist()
    affine = abs(p) < 1e-12 and abs(q) < 1e-12
    if (
        affine
        and abs(a - 1) < 1e-9
        and abs(d - 1) < 1e-9
        and abs(b) < 1e-9
        and abs(c) < 1e-9
        and abs(tx - round(tx)) < 1e-6
        and abs(ty - round(ty)) < 1e-6
    ):
        return _shift(data, -round(tx), -round(ty), size, border, fill)
    flags = INTERPOLATIONS[interp]
    if data.ndim == 3 and data.shape[2] > 4 and interp in ("cubic", "lanczos"):
        # OpenCV's cubic and Lanczos kernels take at most 4 channels: warp in groups of 4.
        groups = [data[..., k : k + 4] for k in range(0, data.shape[2], 4)]
        return np.concatenate([warp(g, matrix, size, interp, border, fill) for g in groups], axis=2)
    if interp == "area" and affine:
        data, m = _prefilter(data, m)
    if isinstance(fill, (int, float)):
        fill = (fill,) * 4
    # OpenCV's vectorised warp kernels cover 1 and 4 channels; 3-channel images warp about twice
    # as fast padded to 4 and trimmed back (measured in benchmarks/augment.py).
    src = data
    padded = data.ndim == 3 and data.shape[2] == 3 and flags == cv2.INTER_LINEAR
    if padded:
        src = cv2.cvtColor(data, cv2.COLOR_RGB2RGBA)
        fill = (*fill[:3], 0)
    border_mode = BORDERS[border]
    if affine:
        out = cv2.warpAffine(
            src, m[:2], (w, h), flags=flags, borderMode=border_mode, borderValue=fill
        )
    else:
        out = cv2.warpPerspective(
            src, m, (w, h), flags=flags, borderMode=border_mode, borderValue=fill
        )
    if padded:
        out = cv2.cvtColor(out, cv2.COLOR_RGBA2RGB)
    return out.reshape(h, w, *data.shape[2:])


def _prefilter(data: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For strong downscales, shrink by an integer factor with area averaging first (no aliasing)."""
    scale = np.sqrt(abs(np.linalg.det(m[:2, :2])))
    factor = int(1 / scale) if scale > 0 else 1
    if factor < 2:
        return data, m
    h, w = data.shape[:2]
    small = cv2.resize(
        data, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA
    )
    sx, sy = w / small.shape[1], h / small.shape[0]
    up = np.array([[sx, 0, (sx - 1) / 2], [0, sy, (sy - 1) / 2], [0, 0, 1]])
    return small.reshape(*small.shape[:2], *data.shape[2:]), m @ up


def lattice_matrix(move: LatticeMap) -> np.ndarray:
    """The 3x3 matrix of a mirror-and-whole-pixel map."""
    sx, tx, sy, ty = move
    return np.array([[sx, 0.0, tx], [0.0, sy, ty], [0.0, 0.0, 1.0]])


def lattice_copy(
    data: np.ndarray, move: LatticeMap, size: Size, border: str = "constant", fill: Any = 0
) -> np.ndarray:
    """What `warp` gives for a mirror-and-whole-pixel map, by slicing: every output pixel is one
    source pixel (or the border's), so no resampling is needed and the result is exact.
    """
    sx, tx, sy, ty = move
    # Mirroring the source first leaves a pure shift; every border mode commutes with a mirror.
    x0, y0 = -tx, -ty
    if sx < 0:
        data, x0 = data[:, ::-1], data.shape[1] - tx
    if sy < 0:
        data, y0 = data[::-1], data.shape[0] - ty
    return _shift(data, x0, y0, size, border, fill)


def _shift(data: np.ndarray, x0: int, y0: int, size: Size, border: str, fill: Any) -> np.ndarray:
    """Output pixel (r, c) = data[r + y0, c + x0]; outside the source follows the border mode."""
    h, w = size
    sh, sw = data.shape[:2]
    if x0 >= 0 and y0 >= 0 and x0 + w <= sw and y0 + h <= sh:
        return data[y0 : y0 + h, x0 : x0 + w].copy()
    top, left = max(0, -y0), max(0, -x0)
    bottom, right = max(0, y0 + h - sh), max(0, x0 + w - sw)
    value = (
        (fill,) * 4 if isinstance(fill, (int, float)) else list(fill)
    )  # as `warp`: every channel
    if border == "constant" and top + bottom < h and left + right < w:
        # A constant border needs only the window's part of the source: pad just that, once.
        part = data[y0 + top : y0 + h - bottom, x0 + left : x0 + w - right]
        out = cv2.copyMakeBorder(part, top, bottom, left, right, cv2.BORDER_CONSTANT, value=value)
        return out.reshape(h, w, *data.shape[2:])
    padded = cv2.copyMakeBorder(data, top, bottom, left, right, BORDERS[border], value=value)
    padded = padded.reshape(*padded.shape[:2], *data.shape[2:])
    r, c = y0 + top, x0 + left
    return padded[r : r + h, c : c + w].copy()


def items_of(sample: Any, path: str = "sample") -> list[tuple[str, Item]]:
    """Every Item in a (nested) tuple/list/dict sample, with a path such as sample['mask']."""
    found: list[tuple[str, Item]] = []
    _find(sample, path, found)
    return found


_NESTED = (Item, dict, tuple, list)  # what may hold items; other values are passed by as they are


def _find(sample: Any, path: str, found: list[tuple[str, Item]]) -> None:
    if isinstance(sample, Item):
        found.append((path, sample))
    elif isinstance(sample, dict):
        for k, v in sample.items():
            if isinstance(v, _NESTED):
                _find(v, f"{path}[{k!r}]", found)
    elif isinstance(sample, (tuple, list)):
        for i, v in enumerate(sample):
            if isinstance(v, _NESTED):
                _find(v, f"{path}[{i}]", found)


def replace_items(sample: Any, new: Iterator[Item] | Callable[[Item], Item]) -> Any:
    """The same structure with each Item replaced, in `items_of` order; other values untouched."""
    return _replace(sample, new if callable(new) else (lambda _item: next(new)))


def _replace(sample: Any, take: Callable[[Item], Any]) -> Any:
    if isinstance(sample, Item):
        return take(sample)
    if isinstance(sample, dict):
        return {k: _replace(v, take) if isinstance(v, _NESTED) else v for k, v in sample.items()}
    if isinstance(sample, (tuple, list)):
        return type(sample)([_replace(v, take) if isinstance(v, _NESTED) else v for v in sample])
    return sample


def arrays(sample: Any) -> Any:
    """The same structure with each Item replaced by its array (pixels, points or boxes), ready
    for weft.data's collate; other values are untouched.
    """
    return replace_items(sample, np.asarray)
