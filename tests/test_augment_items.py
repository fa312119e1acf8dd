"""Items: validation messages, coordinate conventions, box clip policies, the warp kernel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from weft.augment.items import (
    BoundingBoxes,
    Image,
    Keypoints,
    Mask,
    Polygon,
    arrays,
    items_of,
    lattice_copy,
    lattice_matrix,
    project_points,
    replace_items,
    warp,
)

FLIP_X_10 = np.array([[-1.0, 0, 10], [0, 1, 0], [0, 0, 1]])


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            Image(np.zeros((4, 4, 3), bool)),
            "dtype bool is not supported; convert it to uint8 or float32",
        ),
        (Image(np.zeros((4,), np.uint8)), r"expected an HxW or HxWxC array, got shape \(4,\)"),
        (Image(np.zeros((0, 4, 3), np.uint8)), r"it is empty \(shape \(0, 4, 3\)\)"),
        (Image(np.full((2, 2), np.nan, np.float32)), "it contains NaN or inf values"),
        (Mask(np.zeros((4, 4), np.float32)), "dtype float32 is not supported; convert it to uint8"),
        (Keypoints(np.zeros((3, 3))), r"expected an N x 2 array of \(x, y\), got shape \(3, 3\)"),
        (Keypoints([[1, 2], [np.inf, 3]]), r"point 1 is not finite \(\[inf, 3.0\]\)"),
        (Polygon([[0, 0], [1, 1]]), "it has 2 points; a Polygon needs at least 3"),
        (BoundingBoxes([[0, 0, 5]]), r"expected an N x 4 array of xyxy boxes, got shape \(1, 3\)"),
        (
            BoundingBoxes([[0, 0, 5, 5], [6, 0, 5, 5]]),
            r"box 1 \[6.0, 0.0, 5.0, 5.0\] has max < min",
        ),
        (BoundingBoxes([[0, 0, np.nan, 5]]), "box 0 is not finite"),
        (BoundingBoxes([[0, 0, 5, 5]], labels=[1, 2]), "2 labels for 1 boxes"),
    ],
)
def test_check_says_what_is_wrong(item, message):
    with pytest.raises(ValueError, match=message):
        item.check()


def test_constructor_rejects_unknown_settings():
    with pytest.raises(ValueError, match=r"Image: unknown interp 'bilinear'; choose one of"):
        Image(np.zeros((2, 2), np.uint8), interp="bilinear")
    with pytest.raises(ValueError, match=r"Mask: unknown border 'mirror'"):
        Mask(np.zeros((2, 2), np.uint8), border="mirror")
    with pytest.raises(
        ValueError, match=r"BoundingBoxes: clip must be one of \('clip', 'none', 'drop'\)"
    ):
        BoundingBoxes(np.zeros((0, 4)), clip="yes")


def test_empty_keypoints_and_boxes_are_valid_samples():
    # An image without objects is an ordinary sample, not bad input.
    Keypoints(np.zeros((0, 2)), size=(4, 4)).check()
    BoundingBoxes(np.zeros((0, 4)), size=(4, 4)).check()


def test_flip_is_exact_in_the_continuous_frame():
    img = np.arange(10, dtype=np.uint8).reshape(1, 10)
    flipped = Image(img).project(FLIP_X_10, (1, 10)).data
    np.testing.assert_array_equal(flipped, img[:, ::-1])
    kp = Keypoints([[0.5, 0.5], [9.5, 0.5], [10.0, 0.5]], size=(1, 10)).project(FLIP_X_10, (1, 10))
    np.testing.assert_allclose(kp.points, [[9.5, 0.5], [0.5, 0.5], [0.0, 0.5]])
    box = BoundingBoxes([[2, 0, 5, 1]], size=(1, 10)).project(FLIP_X_10, (1, 10))
    np.testing.assert_allclose(box.boxes, [[5, 0, 8, 1]])


def test_keypoints_leaving_the_frame_are_kept_in_order_and_flagged():
    shift = np.array([[1.0, 0, 6], [0, 1, 0], [0, 0, 1]])
    kp = Keypoints([[1, 1], [5, 1], [2, 2]], size=(10, 10)).project(shift, (10, 10))
    np.testing.assert_allclose(kp.points, [[7, 1], [11, 1], [8, 2]])
    np.testing.assert_array_equal(kp.visible, [True, False, True])
    back = kp.project(np.linalg.inv(shift), (10, 10))
    np.testing.assert_array_equal(back.visible, [True, False, True])  # visibility only goes down


def test_boxes_move_as_the_hull_of_their_corners():
    rot90 = np.array([[0.0, -1, 10], [1, 0, 0], [0, 0, 1]])
    out = BoundingBoxes([[1, 2, 4, 3]], size=(10, 10)).project(rot90, (10, 10))
    np.testing.assert_allclose(out.boxes, [[7, 1, 8, 4]])


@pytest.mark.parametrize(
    ("clip", "boxes", "visible", "labels"),
    [
        ("clip", [[0, 0, 4, 4], [6, 0, 10, 4], [10, 0, 12, 4]], [True, True, False], [1, 2, 3]),
        ("none", [[-4, 0, 0, 4], [2, 0, 6, 4], [6, 0, 8, 4]], [False, True, True], [1, 2, 3]),
        ("drop", [[2, 0, 6, 4], [6, 0, 8, 4]], [True, True], [2, 3]),
    ],
)
def test_clip_policies(clip, boxes, visible, labels):
    shift = np.array([[1.0, 0, -4], [0, 1, 0], [0, 0, 1]])
    src = BoundingBoxes(
        [[0, 0, 4, 4], [6, 0, 10, 4], [10, 0, 12, 4]],
        size=(8, 8),
        labels=[1, 2, 3],
        clip=clip,
        min_visibility=0.5,
    )
    out = src.project(shift, (8, 8))
    if clip == "clip":
        boxes = [[0, 0, 0, 4], [2, 0, 6, 4], [6, 0, 8, 4]]
        visible = [False, True, True]
    np.testing.assert_allclose(out.boxes, boxes)
    np.testing.assert_array_equal(out.visible, visible)
    np.testing.assert_array_equal(out.labels, labels)


def test_perspective_points_divide():
    m = np.array([[2.0, 0, 0], [0, 2, 0], [0, 0, 2]])
    np.testing.assert_allclose(project_points(np.array([[3.0, 4.0]]), m), [[3, 4]])


def test_integer_translation_is_a_slice_with_border_fill():
    img = np.arange(25, dtype=np.uint8).reshape(5, 5)
    inside = warp(img, np.array([[1.0, 0, -1], [0, 1, -2], [0, 0, 1]]), (2, 3))
    np.testing.assert_array_equal(inside, img[2:4, 1:4])
    padded = warp(img, np.array([[1.0, 0, 1], [0, 1, 0], [0, 0, 1]]), (5, 7), fill=9)
    np.testing.assert_array_equal(padded[:, 0], 9)
    np.testing.assert_array_equal(padded[:, 1:6], img)


def opencv_nearest(data, matrix, size, border, fill):
    """The reference warp: OpenCV, nearest neighbour, pixel-index convention."""
    index = (
        np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
        @ matrix
        @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    )
    modes = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}
    modes |= {"reflect": cv2.BORDER_REFLECT_101, "wrap": cv2.BORDER_WRAP}
    value = (fill,) * 4 if np.isscalar(fill) else fill
    out = cv2.warpAffine(
        data,
        index[:2],
        size[::-1],
        flags=cv2.INTER_NEAREST,
        borderMode=modes[border],
        borderValue=value,
    )
    return out.reshape(*size, *data.shape[2:])


@pytest.mark.parametrize("border", ["constant", "replicate", "reflect", "wrap"])
@pytest.mark.parametrize(
    ("shape", "dtype", "fill"),
    [
        ((9, 7), np.uint8, 5),
        ((9, 7, 3), np.uint8, (1, 2, 3)),
        ((9, 7, 2), np.float32, 0.5),
        ((9, 7, 1), np.int32, -1),
        ((9, 7, 4), np.uint8, (9, 8, 7, 6)),
    ],
)
def test_mirrors_and_whole_pixel_moves_are_exact_slices(border, shape, dtype, fill):
    rng = np.random.default_rng(0)
    data = (rng.random(shape) * 200).astype(dtype)
    # Windows inside, straddling and wholly outside the source, with and without mirrors.
    for sx, tx, sy, ty, size in [
        (1, -1, 1, -2, (5, 4)),
        (-1, 7, 1, 0, (9, 7)),
        (-1, 9, -1, 11, (12, 11)),
        (1, 3, -1, 4, (6, 8)),
        (-1, -2, 1, 20, (4, 4)),
        (1, 0, 1, 0, (9, 7)),
    ]:
        move = (sx, tx, sy, ty)
        got = lattice_copy(data, move, size, border, fill)
        want = opencv_nearest(data, lattice_matrix(move), size, border, fill)
        assert got.dtype == data.dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want, err_msg=f"{move} into {size}")
        if border == "constant" and dtype != np.int32:
            # The general warp (linear resampling) agrees exactly: every pixel is one source pixel.
            np.testing.assert_array_equal(got, warp(data, lattice_matrix(move), size, fill=fill))


def test_scalar_fill_covers_every_channel_of_a_whole_pixel_move():
    img = np.zeros((4, 4, 2), np.float32)
    moved = warp(img, np.array([[1.0, 0, 2], [0, 1, 0], [0, 0, 1]]), (4, 6), fill=0.5)
    np.testing.assert_array_equal(moved[:, :2], 0.5)
    rotated = warp(img, np.array([[0.0, -1, 4], [1, 0, 0], [0, 0, 1]]), (4, 6), fill=0.5)
    np.testing.assert_array_equal(rotated[:, 4:], 0.5)


def test_three_channel_fast_path_matches_opencv_directly():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 50, 3), np.uint8)
    m = np.array([[0.9, 0.2, 3.3], [-0.15, 1.1, -2.1], [0, 0, 1]])
    got = warp(img, m, (30, 35), fill=(10, 20, 30))
    index = (
        np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
        @ m
        @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    )
    want = cv2.warpAffine(img, index[:2], (35, 30), borderValue=(10, 20, 30))
    assert np.abs(got.astype(int) - want).max() <= 1


def test_area_interpolation_prefilters_strong_downscales():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)
    quarter = np.diag([0.25, 0.25, 1.0])
    area = warp(noise, quarter, (16, 16), interp="area")
    linear = warp(noise, quarter, (16, 16), interp="linear")
    # Area averages 16 pixels per output (std / 4); linear samples 4 and keeps most of the noise.
    assert area.std() < 25 < linear.std()


def test_single_channel_shape_is_kept():
    img = np.zeros((6, 6, 1), np.uint8)
    out = Image(img).project(np.diag([0.5, 0.5, 1.0]), (3, 3))
    assert out.data.shape == (3, 3, 1)


def test_items_of_and_replace_items_walk_nested_samples():
    a, b = Image(np.zeros((2, 2), np.uint8)), Mask(np.zeros((2, 2), np.uint8))
    sample = {"x": (a, 3), "y": [b, "label"]}
    assert [p for p, _ in items_of(sample)] == ["sample['x'][0]", "sample['y'][0]"]
    out = replace_items(sample, iter(["A", "B"]))
    assert out == {"x": ("A", 3), "y": ["B", "label"]}
    assert np.asarray(a).shape == (2, 2)


def test_arrays_unwraps_items_for_collate():
    sample = {"x": Image(np.zeros((2, 3), np.uint8)), "p": Keypoints([[1, 2]], size=(2, 3)), "y": 4}
    out = arrays(sample)
    assert isinstance(out["x"], np.ndarray) and out["x"].shape == (2, 3)
    np.testing.assert_array_equal(out["p"], [[1, 2]])
    assert out["y"] == 4


@pytest.mark.parametrize("interp", ["cubic", "lanczos"])
def test_many_channels_warp_with_high_order_kernels(interp):
    img = np.random.default_rng(2).random((20, 20, 6), dtype=np.float32)
    m = np.array([[0.9, 0.1, 1.0], [-0.1, 0.9, 2.0], [0, 0, 1]])
    out = warp(img, m, (15, 15), interp=interp)
    assert out.shape == (15, 15, 6)
    np.testing.assert_array_equal(out[..., 4:], warp(img[..., 4:], m, (15, 15), interp=interp))
