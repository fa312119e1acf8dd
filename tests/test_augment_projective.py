"""Projective transforms: matrices, consistency of keypoints with pixels on real COCO data."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from weft.augment import (
    Affine,
    BoundingBoxes,
    FlipX,
    FlipY,
    Image,
    Keypoints,
    Mask,
    Maybe,
    Perspective,
    Polygon,
    Project,
    RandomResizedCrop,
    Resize,
    Rotate,
    Scale,
    ScaleKeepAspect,
    Sequence,
    Shear,
    Translate,
    Zoom,
)


def coco_annotation(shared_data, k=0):
    """A COCO image and its k-th person annotation."""
    root = shared_data / "coco_keypoints"
    meta = json.loads((root / "annotations.json").read_text())
    ann = meta["annotations"][k]
    info = next(i for i in meta["images"] if i["id"] == ann["image_id"])
    img = cv2.cvtColor(cv2.imread(str(root / info["file_name"])), cv2.COLOR_BGR2RGB)
    return img, ann


def coco_person(shared_data):
    """The first COCO image and the labelled keypoints of its first person."""
    img, ann = coco_annotation(shared_data)
    kp = np.array(ann["keypoints"], float).reshape(-1, 3)
    return img, kp[kp[:, 2] > 0, :2]


def fill(size, polygon):
    """Rasterise a continuous-frame polygon (pixel centres inside are set)."""
    out = np.zeros(size, np.uint8)
    cv2.fillPoly(out, [np.round((polygon - 0.5) * 16).astype(np.int32)], 1, shift=4)
    return out


def markers(size, points, sigma=2.0):
    """One float channel per point holding a Gaussian blob centred on it (continuous frame)."""
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    return np.stack(
        [np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in points], -1
    ).astype(np.float32)


def centroids(planes):
    h, w, _ = planes.shape
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    total = planes.sum(axis=(0, 1))
    return np.stack(
        [
            (planes * xs[..., None]).sum((0, 1)) / total,
            (planes * ys[..., None]).sum((0, 1)) / total,
        ],
        1,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("perspective", [False, True])
def test_keypoints_land_where_painted_markers_land(shared_data, seed, perspective):
    img, points = coco_person(shared_data)
    points = points[:8]
    steps = [
        Affine(rotate=25, scale=(0.9, 1.2), shear=5),
        RandomResizedCrop(256, scale=(0.6, 1.0)),
        Maybe(FlipX()),
    ]
    if perspective:
        steps.insert(1, Perspective((0.02, 0.05)))
    pipe = Sequence(*steps)
    marked = (Image(img), Image(markers(img.shape[:2], points)), Keypoints(points))
    _, blobs, moved = pipe(marked, rng=seed)
    inside = moved.visible.copy()
    # Only blobs that stayed whole inside the output give an unbiased centroid.
    p = moved.points
    inside &= (p[:, 0] > 8) & (p[:, 0] < 248) & (p[:, 1] > 8) & (p[:, 1] < 248)
    assert inside.sum() >= 3
    np.testing.assert_allclose(centroids(blobs.data)[inside], p[inside], atol=0.35)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_polygon_and_box_follow_the_pixels(shared_data, seed):
    img, ann = coco_annotation(shared_data, seed)
    polygon = np.array(ann["segmentation"][0], float).reshape(-1, 2)
    x, y, w, h = ann["bbox"]
    pipe = Sequence(Affine(rotate=20, scale=(0.8, 1.1)), Perspective((0.02, 0.04)), Maybe(FlipX()))
    sample = (
        Image(img),
        Mask(fill(img.shape[:2], polygon)),
        Polygon(polygon),
        BoundingBoxes([[x, y, x + w, y + h]]),
    )
    _, mask, moved, box = pipe(sample, rng=seed)
    redrawn = fill(mask.data.shape, moved.points)
    iou = (redrawn & mask.data).sum() / (redrawn | mask.data).sum()
    assert iou > 0.95
    # The box hull holds every vertex that stayed inside the frame.
    kept = moved.points[moved.visible]
    x0, y0, x1, y1 = box.boxes[0]
    assert (kept[:, 0] >= x0 - 1e-6).all() and (kept[:, 0] <= x1 + 1e-6).all()
    assert (kept[:, 1] >= y0 - 1e-6).all() and (kept[:, 1] <= y1 + 1e-6).all()


def test_rotate_by_90_degrees_is_exact():
    img = np.random.default_rng(0).integers(0, 256, (20, 20, 3), np.uint8)
    out = Rotate((90, 90))(Image(img)).data
    np.testing.assert_array_equal(out, np.rot90(img))
    kp = Rotate((90, 90))(Keypoints([[2.5, 5.5]], size=(20, 20)))
    np.testing.assert_allclose(kp.points, [[5.5, 17.5]])


def test_flips_resize_and_keep_aspect():
    img = np.random.default_rng(1).integers(0, 256, (12, 16), np.uint8)
    np.testing.assert_array_equal(FlipY()(Image(img)).data, img[::-1])
    np.testing.assert_array_equal(FlipX()(Image(img)).data, img[:, ::-1])
    assert Resize((6, 9))(Image(img)).data.shape == (6, 9)
    assert ScaleKeepAspect(6)(Image(img)).data.shape == (6, 8)
    kp = Resize((24, 8))(Keypoints([[4, 6]], size=(12, 16)))
    np.testing.assert_allclose(kp.points, [[2, 12]])


def test_project_uses_the_given_matrix():
    m = np.array([[2.0, 0, 1], [0, 2, 0], [0, 0, 1]])
    out = Project(m, (40, 40))(Keypoints([[3, 4]], size=(20, 20)))
    np.testing.assert_allclose(out.points, [[7, 8]])
    assert out.size == (40, 40)


def test_affine_family_keeps_the_frame_and_centre():
    centre = Keypoints([[40, 30]], size=(60, 80))
    for t in (Rotate(30), Scale((0.5, 2.0)), Zoom((1.0, 1.5)), Shear(10)):
        out = t(centre, rng=0)
        np.testing.assert_allclose(out.points, [[40, 30]], atol=1e-9)
        assert out.size == (60, 80)
    moved = Translate((0.25, 0.25))(centre, rng=0)
    np.testing.assert_allclose(moved.points, [[60, 45]])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Rotate((10, 5)),
            r"Rotate: rotate range \(10.0, 5.0\) must be finite with low <= high",
        ),
        (lambda: Scale((0.0, 1.0)), r"Scale: scale must be > 0, got range \(0.0, 1.0\)"),
        (lambda: Zoom((0.5, 1.0)), r"Zoom: factors must be >= 1 \(use Scale to zoom out\)"),
        (lambda: Shear(95), r"Shear: shear must stay within \(-90, 90\) degrees"),
        (
            lambda: Affine(rotate="a lot"),
            "Affine: rotate must be a number or a \\(low, high\\) pair, got 'a lot'",
        ),
        (lambda: Resize((0, 5)), r"Resize: size must be positive, got \(0, 5\)"),
        (lambda: ScaleKeepAspect(0), "ScaleKeepAspect: min_side must be positive, got 0"),
        (lambda: Perspective((0.1, 0.6)), "Perspective: scale must stay below 0.5"),
        (
            lambda: Project(np.zeros((3, 3))),
            "Project: matrix must be a finite, invertible 3x3 array",
        ),
    ],
)
def test_bad_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()
