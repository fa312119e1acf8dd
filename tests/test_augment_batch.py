"""Batches: independent per-sample parameters, preallocated buffers, grouping independence."""

from __future__ import annotations

import numpy as np
import pytest

from weft.augment import (
    Affine,
    ColorJitter,
    FlipX,
    Image,
    Keypoints,
    Mask,
    Maybe,
    Normalize,
    RandomResizedCrop,
    Sequence,
    allocate_batch,
    apply_batch,
    on_arrays,
    sample_generators,
)
from weft.data import getobs, mapobs
from weft.data.rng import epoch_context, sample_rng

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (6, 40, 50, 3), np.uint8)
MASKS = RNG.integers(0, 4, (6, 40, 50), np.uint8)

PIPE = Sequence(
    Affine(rotate=15, scale=(0.9, 1.1)),
    RandomResizedCrop(24, scale=(0.5, 1.0)),
    Maybe(FlipX()),
    ColorJitter(0.2, 0.2, 0.2, 0.05),
    Normalize(),
)


def samples():
    return [
        {
            "image": Image(IMAGES[i]),
            "mask": Mask(MASKS[i]),
            "points": Keypoints([[5, 5], [45, 30]]),
            "y": i,
        }
        for i in range(6)
    ]


def test_batch_matches_per_sample_calls_with_the_same_generators():
    out = allocate_batch(PIPE, samples()[0], 6)
    assert out["image"].shape == (6, 3, 24, 24) and out["image"].dtype == np.float32
    assert out["mask"].shape == (6, 24, 24) and out["points"].shape == (6, 2, 2)
    result = apply_batch(PIPE, samples(), out, rng=7)
    assert result is out
    for i, gen in enumerate(sample_generators(7, 6)):
        single = PIPE(samples()[i], rng=gen)
        np.testing.assert_array_equal(out["image"][i], single["image"].data)
        np.testing.assert_array_equal(out["mask"][i], single["mask"].data)
        np.testing.assert_array_equal(out["points"][i], single["points"].points)
    assert out["y"].tolist() == list(range(6))
    # Parameters are independent per sample: no two augmented images are alike.
    assert len({out["image"][i].tobytes() for i in range(6)}) == 6


def test_grouping_into_batches_does_not_change_results():
    def per_index(first):
        return lambda i: sample_rng(first + i)

    with epoch_context(seed=3, epoch=1):
        whole = apply_batch(
            PIPE, samples(), allocate_batch(PIPE, samples()[0], 6), rng=per_index(0)
        )
        halves = [
            apply_batch(
                PIPE, samples()[k : k + 3], allocate_batch(PIPE, samples()[0], 3), rng=per_index(k)
            )
            for k in (0, 3)
        ]
    np.testing.assert_array_equal(whole["image"], np.concatenate([h["image"] for h in halves]))
    np.testing.assert_array_equal(whole["mask"], np.concatenate([h["mask"] for h in halves]))


def test_pipeline_plugs_into_mapobs_with_per_sample_generators():
    data = mapobs(PIPE, samples())
    with epoch_context(seed=5, epoch=0):
        forward = [getobs(data, i)["image"].data for i in range(6)]
        backward = [getobs(data, i)["image"].data for i in reversed(range(6))][::-1]
    with epoch_context(seed=5, epoch=1):
        next_epoch = getobs(data, 0)["image"].data
    for a, b in zip(forward, backward, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(forward[0], next_epoch)


def test_on_arrays_serves_plain_array_containers():
    labels = np.arange(6)
    data = mapobs(on_arrays(PIPE, (Image, Mask, None)), (IMAGES, MASKS, labels))
    with epoch_context(seed=1, epoch=0):
        x, m, y = getobs(data, 2)
        again = getobs(data, 2)[0]
    assert x.shape == (3, 24, 24) and x.dtype == np.float32 and m.shape == (24, 24)
    assert y == 2
    np.testing.assert_array_equal(x, again)
    with pytest.raises(
        ValueError,
        match=r"on_arrays: obs should be a sequence of 2 members like the wrap spec, got tuple of length 3",
    ):
        on_arrays(PIPE, (Image, Mask))((IMAGES[0], MASKS[0], 0))
    with pytest.raises(ValueError, match=r"on_arrays: obs should be a dict with keys \['image'\]"):
        on_arrays(PIPE, {"image": Image})((IMAGES[0],))


def test_buffer_errors():
    out = allocate_batch(PIPE, samples()[0], 2)
    with pytest.raises(
        ValueError, match=r"apply_batch: out\['image'\] holds 2 samples but 6 were given"
    ):
        apply_batch(PIPE, samples(), out, rng=0)
    with pytest.raises(ValueError, match="apply_batch: 2 generators for 6 samples"):
        apply_batch(
            PIPE, samples(), allocate_batch(PIPE, samples()[0], 6), rng=sample_generators(0, 2)
        )
    wrong = allocate_batch(Sequence(RandomResizedCrop(20), Normalize()), samples()[0], 6)
    with pytest.raises(
        ValueError,
        match=r"sample 0 gave out\['image'\] of shape \(3, 24, 24\), but the buffer is \(6, 3, 20, 20\)",
    ):
        apply_batch(PIPE, samples(), wrong, rng=0)


def test_on_arrays_runs_in_spawned_loader_workers():
    # spawn (macOS, and Linux from Python 3.14) pickles the pipeline into each worker.
    from weft.augment import FlipX, Image, Sequence, on_arrays
    from weft.data import Loader, batchview, mapobs

    images = np.arange(4 * 8 * 8 * 3, dtype=np.uint8).reshape(4, 8, 8, 3)
    data = mapobs(on_arrays(Sequence(FlipX()), (Image, None)), (images, np.arange(4)))
    with Loader(batchview(data, 2), workers=1, backend="process", start_method="spawn") as loader:
        spawned = list(loader)
    serial = list(Loader(batchview(data, 2)))
    for (xs, ys), (xe, ye) in zip(spawned, serial, strict=True):
        np.testing.assert_array_equal(xs, xe)
        np.testing.assert_array_equal(ys, ye)
    np.testing.assert_array_equal(serial[0][0][0], images[0][:, ::-1])
