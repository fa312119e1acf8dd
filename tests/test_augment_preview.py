"""Preview: the grid PNG shows the image, coloured masks and drawn geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from weft.augment import (
    BoundingBoxes,
    CenterCrop,
    Image,
    Keypoints,
    Mask,
    Normalize,
    Polygon,
    Rotate,
    Sequence,
    render,
    show_grid,
)

GRAY = np.full((40, 60, 3), 128, np.uint8)


def test_render_draws_masks_points_boxes_and_polygons():
    mask = np.zeros((40, 60), np.uint8)
    mask[:10, :10] = 3
    picture = render(
        (
            Image(GRAY),
            Mask(mask),
            Keypoints([[30.5, 20.5]]),
            BoundingBoxes([[40, 25, 55, 38]]),
            Polygon([[5, 30], [20, 30], [12, 38]]),
        )
    )
    assert picture.shape == (40, 60, 3) and picture.dtype == np.uint8
    assert (picture[5, 5] != 128).any() and (
        picture[20, 20] == 128
    ).all()  # mask blended, rest kept
    assert tuple(picture[20, 30]) == (0, 255, 0)  # keypoint
    assert tuple(picture[25, 47]) == (255, 64, 64)  # box edge
    assert (picture[30, 12] != 128).any()  # polygon edge


def test_render_shows_normalized_chw_images():
    out = Normalize()(Image(GRAY))
    assert render(out).shape == (40, 60, 3)


def test_show_grid_writes_a_png(tmp_path):
    pipe = Sequence(Rotate(20), CenterCrop(30))
    path = tmp_path / "grid.png"
    grid = show_grid(pipe, (Image(GRAY), Keypoints([[30, 20]])), n=6, columns=4, path=path)
    assert grid.shape == (2 * 32, 4 * 32, 3)
    written = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(written, grid)


def test_show_grid_errors(tmp_path):
    with pytest.raises(ValueError, match="show_grid: n and columns must be positive, got n=0"):
        show_grid(Rotate(5), Image(GRAY), n=0)
    with pytest.raises(ValueError, match="show_grid: could not write a PNG to"):
        show_grid(Rotate(5), Image(GRAY), n=1, path=tmp_path / "missing" / "grid.png")
