"""The transform protocol: calling on samples, replaying states, inverting, bad-input messages."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from weft.augment import (
    Affine,
    BoundingBoxes,
    ColorJitter,
    FlipX,
    Image,
    Keypoints,
    Mask,
    Maybe,
    RandomResizedCrop,
    Rotate,
    Sequence,
    State,
)
from weft.augment.transform import as_generator


def test_importing_weft_augment_never_imports_torch():
    code = "import sys, weft.augment; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


RNG_IMAGE = np.random.default_rng(0).integers(0, 256, (60, 80, 3), np.uint8)


def pipeline():
    return Sequence(
        Affine(rotate=20, scale=(0.8, 1.2), translate=0.05),
        RandomResizedCrop(48, scale=(0.4, 1.0)),
        Maybe(FlipX()),
        ColorJitter(0.3, 0.3, 0.3, 0.05),
    )


def sample():
    return {
        "image": Image(RNG_IMAGE),
        "mask": Mask((RNG_IMAGE[..., 0] > 128).astype(np.uint8)),
        "points": Keypoints([[10, 10], [70, 50], [40, 30]]),
        "boxes": BoundingBoxes([[5, 5, 30, 25]], labels=[7]),
        "label": 3,
    }


def test_as_generator_accepts_generators_seeds_and_none():
    g = np.random.default_rng(1)
    assert as_generator(g) is g
    assert as_generator(5).random() == np.random.default_rng(5).random()
    assert isinstance(as_generator(None), np.random.Generator)
    with pytest.raises(
        TypeError, match="rng must be a numpy Generator, an int seed or None, got str"
    ):
        as_generator("5")


def test_same_seed_same_output_and_non_items_pass_through():
    a, b = pipeline()(sample(), rng=11), pipeline()(sample(), rng=11)
    np.testing.assert_array_equal(a["image"].data, b["image"].data)
    np.testing.assert_array_equal(a["points"].points, b["points"].points)
    assert a["label"] == 3
    c = pipeline()(sample(), rng=12)
    assert not np.array_equal(a["image"].data, c["image"].data)


def test_recorded_state_replays_exactly():
    pipe = pipeline()
    state = pipe.draw_state(sample(), rng=np.random.default_rng(3))
    assert (
        isinstance(state, State) and state.input_size == (60, 80) and state.output_size == (48, 48)
    )
    replayed = pipe(sample(), state=state)
    direct = pipe(sample(), rng=np.random.default_rng(3))
    for key in ("image", "mask"):
        np.testing.assert_array_equal(replayed[key].data, direct[key].data)
    np.testing.assert_array_equal(replayed["boxes"].boxes, direct["boxes"].boxes)


def test_state_for_another_frame_is_refused():
    pipe = pipeline()
    state = pipe.draw_state(sample(), rng=0)
    with pytest.raises(
        ValueError,
        match=r"the recorded state is for a \(60, 80\) frame but this sample's frame is \(30, 30\)",
    ):
        pipe(Image(np.zeros((30, 30, 3), np.uint8)), state=state)


def test_invert_maps_points_and_boxes_back_exactly():
    pipe = Sequence(
        Affine(rotate=30, scale=(0.9, 1.1)), RandomResizedCrop(50, scale=(0.9, 1.0)), FlipX()
    )
    src = sample()
    state = pipe.draw_state(src, rng=4)
    out = pipe(src, state=state)
    back = pipe.invert({"points": out["points"]}, state)
    np.testing.assert_allclose(back["points"].points, src["points"].points, atol=1e-9)


def test_invert_mask_round_trip_on_the_interior():
    pipe = Sequence(Rotate(10), RandomResizedCrop(60, scale=(0.9, 1.0)))
    mask = np.zeros((60, 80), np.uint8)
    mask[15:45, 20:60] = 2
    state = pipe.draw_state(Mask(mask), rng=2)
    restored = pipe.invert(pipe(Mask(mask), state=state), state).data
    assert restored.dtype == np.uint8 and set(np.unique(restored)) <= {0, 2}
    assert (restored[20:40, 25:55] == 2).all()


def test_invert_needs_items_in_the_output_frame():
    pipe = pipeline()
    state = pipe.draw_state(sample(), rng=0)
    with pytest.raises(
        ValueError,
        match=r"invert: items have a \(10, 10\) frame but the state's output is \(48, 48\)",
    ):
        pipe.invert(Mask(np.zeros((10, 10), np.uint8)), state)


def test_bad_item_is_named_with_its_path_and_the_transform():
    bad = sample()
    bad["mask"] = Mask(np.zeros((60, 80), np.float32))
    with pytest.raises(
        ValueError,
        match=r"Sequence\(Affine\(.*\): bad Mask at sample\['mask'\]: dtype float32 is not supported",
    ):
        pipeline()(bad, rng=0)


def test_mismatched_item_sizes():
    bad = (Image(np.zeros((60, 80, 3), np.uint8)), Mask(np.zeros((60, 81), np.uint8)))
    with pytest.raises(
        ValueError,
        match=r"Mask at sample\[1\] has frame \(60, 81\) \(h, w\) but Image at sample\[0\] has \(60, 80\)",
    ):
        FlipX()(bad)


def test_keypoints_without_a_frame():
    with pytest.raises(ValueError, match=r"Keypoints at sample has no frame; give size=\(h, w\)"):
        FlipX()(Keypoints([[1, 2]]))
    out = FlipX()(Keypoints([[1, 2]], size=(4, 10)))
    np.testing.assert_allclose(out.points, [[9, 2]])


def test_sample_without_items():
    with pytest.raises(
        ValueError, match=r"FlipX\(\): the sample holds no items to augment; wrap arrays as Image"
    ):
        FlipX()(np.zeros((4, 4, 3), np.uint8))
