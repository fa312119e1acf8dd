"""The transform protocol: draw parameters, project the geometry, apply to items.

A transform first draws its random parameters from a numpy Generator into plain values (the
recordable state), then applies them. Projective transforms also say which 3x3 matrix and output
size their parameters mean, so a run of them composes into one matrix and one warp.

Steps that only mirror and move by whole pixels (crops, pads, flips) are `Lattice` steps: a run
of them composes in integers and moves images by slicing, with the same result as the warp.

Extending: subclass `Projective` and implement `draw` and `project` for a geometric step, or
`Pixel` and implement `draw` and `apply_image` for a step that only changes image values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from weft.augment.items import (
    Image,
    Item,
    LatticeMap,
    Mask,
    Size,
    items_of,
    lattice_matrix,
    replace_items,
)

__all__ = [
    "Lattice",
    "Pixel",
    "Projective",
    "State",
    "Transform",
    "as_generator",
    "compose_lattice",
    "lattice_items",
    "warp_items",
]

IDENTITY = np.eye(3)
UNMOVED: LatticeMap = (1, 0, 1, 0)


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A numpy Generator from a Generator, an int seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


@dataclass(frozen=True)
class State:
    """Everything one application drew: replaying it reproduces the output exactly.

    `matrix` is the composed geometric transform (continuous pixel frame) from the input frame
    of `input_size` to the output frame of `output_size`; `invert` uses it.
    """

    params: Any
    input_size: Size
    output_size: Size
    matrix: np.ndarray


class Transform:
    """One augmentation step. Call it as `t(sample, rng=None)` on an item or a tuple/dict of items.

    Extending: implement `draw(rng, size)` returning plain values, and either `project` (if
    `projective`) or `apply(items, params, size)`.
    """

    projective: bool = False
    lattice: bool = False  # projective, and every draw only mirrors and moves by whole pixels

    def draw(self, rng: np.random.Generator, size: Size) -> Any:
        """Draw this step's random parameters for an input frame of `size` (h, w)."""
        return None

    def project(self, params: Any, size: Size) -> tuple[np.ndarray, Size]:
        """The 3x3 matrix and output size these parameters mean (identity for pixel steps)."""
        return IDENTITY, size

    def lattice_map(self, params: Any, size: Size) -> tuple[LatticeMap, Size]:
        """`project` as a mirror-and-whole-pixel map; only called when `lattice` is true."""
        raise NotImplementedError(f"{self!r} is not a lattice step")

    def apply(self, items: list[Item], params: Any, size: Size) -> list[Item]:
        """Apply drawn parameters to the items of one sample, all in a frame of `size`."""
        matrix, out = self.project(params, size)
        return warp_items(items, matrix, out)

    def __call__(
        self,
        sample: Any,
        rng: np.random.Generator | int | None = None,
        *,
        state: State | None = None,
    ) -> Any:
        """Augment `sample` with fresh parameters from `rng`, or replay a recorded `state`."""
        items, size, source = self._prepare(sample)
        if state is None:
            params = self._draw(as_generator(rng), size, source)
        elif state.input_size != size:
            raise ValueError(
                f"{self!r}: the recorded state is for a {state.input_size} frame but this sample's "
                f"frame is {size}; replay a state only on the sample it was drawn for"
            )
        else:
            params = state.params
        return replace_items(sample, iter(self.apply(items, params, size)))

    def draw_state(self, sample: Any, rng: np.random.Generator | int | None = None) -> State:
        """Draw (without applying) the parameters for `sample`; pass them back as `state=`."""
        _, size, source = self._prepare(sample)
        return self._draw_state(as_generator(rng), size, source)

    def invert(self, sample: Any, state: State) -> Any:
        """Map items in the output frame (e.g. predicted masks, keypoints, boxes) back to the input.

        Only the geometry is inverted; pixel steps (colour, noise) are not undone.
        """
        items, size, _ = self._prepare(sample, default=state.output_size)
        if size != state.output_size:
            raise ValueError(
                f"{self!r}.invert: items have a {size} frame but the state's output is "
                f"{state.output_size}"
            )
        back = np.linalg.inv(state.matrix)
        return replace_items(sample, iter(warp_items(items, back, state.input_size)))

    def _draw(self, rng: np.random.Generator, size: Size, source: str) -> Any:
        try:
            return self.draw(rng, size)
        except ValueError as e:
            raise ValueError(f"{e} (the frame is that of {source})") from None

    def _draw_state(self, rng: np.random.Generator, size: Size, source: str) -> State:
        params = self._draw(rng, size, source)
        matrix, out = self.project(params, size)
        return State(params, size, out, matrix)

    def _prepare(self, sample: Any, default: Size | None = None) -> tuple[list[Item], Size, str]:
        """Check every item, naming it and this transform on failure; find the common frame."""
        found = items_of(sample)
        if not found:
            raise ValueError(
                f"{self!r}: the sample holds no items to augment; wrap arrays as Image(...), "
                f"Mask(...), Keypoints(...) or BoundingBoxes(...)"
            )
        size, source = default, None
        for path, item in found:
            try:
                item.check()
            except ValueError as e:
                raise ValueError(f"{self!r}: bad {item.kind} at {path}: {e}") from None
            frame = item.frame()
            if frame is None:
                continue
            if size is not None and source is not None and frame != size:
                raise ValueError(
                    f"{self!r}: {item.kind} at {path} has frame {frame} (h, w) but {source} has "
                    f"{size}; all items of a sample must share one frame"
                )
            if source is None:
                size, source = frame, f"{item.kind} at {path}"
        if size is None:
            path, item = found[0]
            raise ValueError(
                f"{self!r}: {item.kind} at {path} has no frame; give size=(h, w) or put an "
                f"Image or Mask in the same sample"
            )
        return [item.with_frame(size) for _, item in found], size, source or "the recorded state"

    def __repr__(self) -> str:
        fields = getattr(self, "__dataclass_fields__", {})
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in fields)
        return f"{type(self).__name__}({args})"


def warp_items(items: list[Item], matrix: np.ndarray, size: Size) -> list[Item]:
    """Move every item through one 3x3 matrix into a frame of `size`."""
    if size == _frame(items) and not (matrix - IDENTITY).any():
        return items
    return [item.project(matrix, size) for item in items]


def lattice_items(items: list[Item], move: LatticeMap, size: Size) -> list[Item]:
    """`warp_items` for a mirror-and-whole-pixel map: the same result, by slicing."""
    if move == UNMOVED and size == _frame(items):
        return items
    return [item.project_lattice(move, size) for item in items]


def compose_lattice(after: LatticeMap, before: LatticeMap) -> LatticeMap:
    """The map `before`, then `after` (the integer form of `matrix(after) @ matrix(before)`)."""
    sa, ta, sb, tb = after
    sc, tc, sd, td = before
    return sa * sc, sa * tc + ta, sb * sd, sb * td + tb


def _frame(items: list[Item]) -> Size | None:
    return items[0].frame() if items else None


class Projective(Transform):
    """A geometric step: its effect is fully described by `project(params, size)`.

    Extending: implement `draw` and `project`; never override `apply`, so fusion stays exact.
    """

    projective = True


class Lattice(Projective):
    """A geometric step that only mirrors and moves by whole pixels (crops, pads, flips).

    Extending: implement `draw` and `lattice_map`; `project` and `apply` follow from it.
    """

    lattice = True

    def project(self, params: Any, size: Size) -> tuple[np.ndarray, Size]:
        move, out = self.lattice_map(params, size)
        return lattice_matrix(move), out

    def apply(self, items: list[Item], params: Any, size: Size) -> list[Item]:
        move, out = self.lattice_map(params, size)
        return lattice_items(items, move, out)


class Pixel(Transform):
    """A step that changes image values only; masks, points and boxes pass through.

    Extending: implement `draw(rng, size)` and `apply_image(image, params)`.
    """

    def apply_image(self, image: Image, params: Any) -> Image:
        raise NotImplementedError

    def apply(self, items: list[Item], params: Any, size: Size) -> list[Item]:
        return [
            self.apply_image(item, params)
            if isinstance(item, Image) and not isinstance(item, Mask)
            else item
            for item in items
        ]
