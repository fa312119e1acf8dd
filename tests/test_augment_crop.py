"""Crops and pads: windows equal slices; Pets trimaps and head boxes stay consistent."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from weft.augment import (
    BoundingBoxes,
    CenterCrop,
    Crop,
    FlipX,
    Image,
    Mask,
    Maybe,
    Pad,
    PadDivisible,
    RandomCrop,
    RandomResizedCrop,
    Rotate,
    Sequence,
)


def pet(shared_data, name="Abyssinian_1"):
    root = shared_data / "pets_subset"
    img = cv2.cvtColor(cv2.imread(str(root / "images" / f"{name}.jpg")), cv2.COLOR_BGR2RGB)
    trimap = cv2.imread(str(root / "annotations" / "trimaps" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
    xml = (root / "annotations" / "xmls" / f"{name}.xml").read_text()
    box = [
        float(re.search(f"<{k}>([0-9.]+)</{k}>", xml).group(1))
        for k in ("xmin", "ymin", "xmax", "ymax")
    ]
    return img, trimap, np.array([box])


def test_crops_equal_slices():
    img = np.random.default_rng(0).integers(0, 256, (30, 40, 3), np.uint8)
    np.testing.assert_array_equal(Crop((10, 12), top=3, left=5)(Image(img)).data, img[3:13, 5:17])
    np.testing.assert_array_equal(CenterCrop(10)(Image(img)).data, img[10:20, 15:25])
    state = RandomCrop((10, 12)).draw_state(Image(img), rng=3)
    top, left = state.params
    np.testing.assert_array_equal(
        RandomCrop((10, 12))(Image(img), state=state).data, img[top : top + 10, left : left + 12]
    )


def test_pad_and_pad_divisible():
    img = np.ones((5, 7), np.uint8)
    out = Pad(top=1, bottom=2, left=3, right=0)(Mask(img, fill=255)).data
    assert out.shape == (8, 10) and (out[1:6, 3:10] == 1).all() and (out[0] == 255).all()
    assert PadDivisible(4)(Image(img)).data.shape == (8, 8)


def test_random_resized_crop_windows_stay_inside_and_follow_the_ranges():
    rrc = RandomResizedCrop(32, scale=(0.2, 0.6), ratio=(0.5, 2.0))
    areas = []
    for seed in range(200):
        top, left, h, w = rrc.draw(np.random.default_rng(seed), (100, 150))
        assert top >= 0 and top + h <= 100 and left >= 0 and left + w <= 150
        areas.append(h * w / (100 * 150))
    assert min(areas) > 0.18 and max(areas) < 0.62


def test_random_resized_crop_falls_back_to_a_central_window():
    # A 1x100 frame cannot host any window with ratio <= 2; the fallback takes the widest legal one.
    _, left, h, w = RandomResizedCrop(8, scale=(0.9, 1.0), ratio=(0.5, 2.0)).draw(
        np.random.default_rng(0), (1, 100)
    )
    assert (h, w) == (1, 2) and left == 49


def test_pets_trimap_and_head_box_move_together(shared_data):
    img, trimap, box = pet(shared_data)
    pipe = Sequence(Rotate(10), RandomResizedCrop(224, scale=(0.6, 1.0)), Maybe(FlipX()))
    head_marker = np.zeros(trimap.shape, np.uint8)
    x0, y0, x1, y1 = box[0].astype(int)
    head_marker[y0:y1, x0:x1] = 1
    checked = 0
    for seed in range(5):
        _, out_tri, out_marker, out_box = pipe(
            (Image(img), Mask(trimap), Mask(head_marker), BoundingBoxes(box)), rng=seed
        )
        assert out_tri.data.dtype == np.uint8 and set(np.unique(out_tri.data)) <= {0, 1, 2, 3}
        ys, xs = np.nonzero(out_marker.data)
        if not out_box.visible[0] or len(xs) == 0:
            continue
        # The box is the hull of the rotated head rectangle (clipped): it contains every marker pixel.
        bx0, by0, bx1, by1 = out_box.boxes[0]
        assert bx0 - 1 <= xs.min() and xs.max() + 0.5 <= bx1 + 1
        assert by0 - 1 <= ys.min() and ys.max() + 0.5 <= by1 + 1
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: CenterCrop(300),
            r"CenterCrop\(size=300\): the 300x300 crop is larger than the 200x250 frame; put Resize, ScaleKeepAspect or Pad before it \(the frame is that of Image at sample\[0\]\)",
        ),
        (
            lambda: Crop(10, top=195),
            r"Crop\(size=10, top=195, left=0\): the window rows 195..205, columns 0..10 leaves the 200x250 frame",
        ),
        (
            lambda: RandomCrop((100, 260)),
            r"RandomCrop\(size=\(100, 260\)\): the 100x260 crop is larger",
        ),
    ],
)
def test_crop_larger_than_the_image(make, message):
    sample = (Image(np.zeros((200, 250, 3), np.uint8)), Mask(np.zeros((200, 250), np.uint8)))
    with pytest.raises(ValueError, match=message):
        make()(sample, rng=0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Crop((0, 5)), r"Crop: size must be positive, got \(0, 5\)"),
        (lambda: Crop("big"), "Crop: size must be an int or \\(height, width\\), got 'big'"),
        (
            lambda: RandomResizedCrop(10, scale=(0.5, 1.5)),
            r"RandomResizedCrop: scale must lie in \(0, 1\]",
        ),
        (lambda: Pad(top=-1), r"Pad\(top=-1, bottom=0, left=0, right=0\): padding must be >= 0"),
        (lambda: PadDivisible(0), "PadDivisible: divisor must be positive, got 0"),
    ],
)
def test_bad_crop_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()
