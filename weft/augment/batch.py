"""Batches: one pipeline applied to many samples, each with its own parameters, written into
preallocated arrays (which the loader may place in shared memory).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence as Seq
from typing import Any

import numpy as np

from weft.augment.items import arrays
from weft.augment.transform import Transform, as_generator

__all__ = ["allocate_batch", "apply_batch", "on_arrays", "sample_generators"]


def sample_generators(rng: np.random.Generator | int | None, n: int) -> list[np.random.Generator]:
    """`n` independent Generators spawned from `rng` (a Generator, a seed or None)."""
    return as_generator(rng).spawn(n)


def _leaves(value: Any, path: str = "out") -> list[tuple[str, Any]]:
    """The arrays of a batch (or the values of an augmented sample) in a fixed order."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{path}[{k!r}]")]
    if isinstance(value, (tuple, list)):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")]
    return [(path, value)]


def allocate_batch(pipeline: Transform, example: Any, n: int, rng: Any = 0) -> Any:
    """Zeroed arrays shaped (n, *leaf) for each value `pipeline(example)` returns, same structure.

    Items become arrays via np.asarray (Image: pixels, Keypoints: points, BoundingBoxes: boxes).

        Every sample must then produce the same shapes: end the pipeline with a fixed-size crop or
        resize.
    """
    out = pipeline(example, rng=rng)

    def alloc(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: alloc(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return type(value)(alloc(v) for v in value)
        a = np.asarray(value)
        return np.zeros((n, *a.shape), a.dtype)

    return alloc(out)


def apply_batch(
    pipeline: Transform,
    samples: Seq[Any],
    out: Any,
    rng: np.random.Generator
    | int
    | Seq[np.random.Generator]
    | Callable[[int], np.random.Generator]
    | None = None,
) -> Any:
    """Augment each sample with independent parameters and write it into `out[...][i]`; returns `out`.

    `rng` is one Generator or seed (children are spawned per sample), a sequence of distinct
    Generators, or a function of the sample's position returning its Generator (e.g.
    `lambda i: weft.data.rng.sample_rng(first + i)`, called just before that sample, since
    sample_rng reuses one generator), so results do not depend on how samples are grouped into
    batches or workers.
    """
    if callable(rng):
        pick = rng
    else:
        gens = list(rng) if isinstance(rng, Seq) else sample_generators(rng, len(samples))
        if len(gens) != len(samples):
            raise ValueError(f"apply_batch: {len(gens)} generators for {len(samples)} samples")
        pick = gens.__getitem__
    buffers = _leaves(out)
    for path, buf in buffers:
        if len(buf) < len(samples):
            raise ValueError(
                f"apply_batch: {path} holds {len(buf)} samples but {len(samples)} were given"
            )
    for i, sample in enumerate(samples):
        values = _leaves(pipeline(sample, rng=pick(i)))
        if len(values) != len(buffers):
            raise ValueError(
                f"apply_batch: sample {i} produced {len(values)} values but `out` holds "
                f"{len(buffers)} arrays; build it with allocate_batch"
            )
        for (path, buf), (_, value) in zip(buffers, values, strict=True):
            v = np.asarray(value)
            if buf.shape[1:] != v.shape:
                raise ValueError(
                    f"apply_batch: sample {i} gave {path} of shape {v.shape}, but the buffer is "
                    f"{buf.shape}; end the pipeline with a fixed-size crop or Resize"
                )
            buf[i] = v
    return out


class on_arrays:  # lower case: it is used like a function, mapobs(on_arrays(pipe, spec), data)
    """`f(obs, rng=None)`: wrap a plain-array observation as items, augment, return arrays.

    `wrap` mirrors the observation's tuple/dict structure with an item type (or any function
    array -> Item) per member and None for members that pass through, e.g.
    `mapobs(on_arrays(pipe, (Image, Mask, None)), data)` for (image, mask, label) observations.
    A class rather than a closure so that it pickles into spawned loader workers.
    """

    def __init__(self, pipeline: Transform, wrap: Any) -> None:
        self.pipeline, self.wrap = pipeline, wrap

    def __call__(self, obs: Any, rng: np.random.Generator | int | None = None) -> Any:
        return arrays(self.pipeline(_wrap(self.wrap, obs, "obs"), rng=rng))


def _wrap(wrap: Any, obs: Any, path: str) -> Any:
    if wrap is None:
        return obs
    if isinstance(wrap, dict):
        missing = sorted(set(wrap) - set(obs)) if isinstance(obs, dict) else None
        if missing is None or missing:
            raise ValueError(f"on_arrays: {path} should be a dict with keys {sorted(wrap)}")
        return {k: _wrap(wrap.get(k), v, f"{path}[{k!r}]") for k, v in obs.items()}
    if isinstance(wrap, (tuple, list)):
        if not isinstance(obs, (tuple, list)) or len(obs) != len(wrap):
            got = (
                f"{type(obs).__name__} of length {len(obs)}"
                if isinstance(obs, (tuple, list))
                else type(obs).__name__
            )
            raise ValueError(
                f"on_arrays: {path} should be a sequence of {len(wrap)} members like the wrap "
                f"spec, got {got}"
            )
        return type(obs)(
            [
                o if w is None else _wrap(w, o, f"{path}[{i}]")
                for i, (w, o) in enumerate(zip(wrap, obs, strict=True))
            ]
        )
    return wrap(obs)
