"""Pixel transforms: the fused colour matrix against the textbook formulas, Normalize, the rest."""

from __future__ import annotations

import numpy as np
import pytest

from weft.augment import (
    Blur,
    BoundingBoxes,
    Brightness,
    ColorJitter,
    Contrast,
    Cutout,
    Gamma,
    GaussianNoise,
    Grayscale,
    Hue,
    Image,
    Mask,
    Normalize,
    Saturation,
)

IMG = np.random.default_rng(0).integers(30, 220, (16, 20, 3), np.uint8)
LUMA = np.array([0.299, 0.587, 0.114])


def test_brightness_multiplies():
    out = Brightness((1.5, 1.5))(Image(IMG)).data
    np.testing.assert_allclose(out, np.clip(np.rint(IMG * 1.5), 0, 255), atol=1)


def test_contrast_blends_with_the_mean_gray():
    f = 0.5
    out = Contrast((f, f))(Image(IMG)).data
    gray = IMG.reshape(-1, 3).mean(0) @ LUMA
    np.testing.assert_allclose(out, np.rint(f * IMG + (1 - f) * gray), atol=1)


def test_saturation_and_grayscale_blend_with_luma():
    gray = IMG @ LUMA
    np.testing.assert_allclose(
        Grayscale()(Image(IMG)).data, np.repeat(np.rint(gray)[..., None], 3, 2), atol=1
    )
    out = Saturation((0.5, 0.5))(Image(IMG)).data
    np.testing.assert_allclose(out, np.rint(0.5 * IMG + 0.5 * gray[..., None]), atol=1)


def test_hue_rotation_keeps_luma_and_a_full_turn_is_identity():
    muted = (0.4 + 0.2 * IMG / 255).astype(np.float32)  # far from 0 and 1, so nothing clips
    out = Hue((0.25, 0.25))(Image(muted)).data
    np.testing.assert_allclose(out @ LUMA, muted @ LUMA, atol=1e-5)
    assert np.abs(out - muted).max() > 0.02
    half = Hue((0.5, 0.5))
    np.testing.assert_allclose(half(Image(half(Image(muted)).data)).data, muted, atol=1e-5)


def test_color_jitter_replays_and_clips_floats():
    jitter = ColorJitter(0.9, 0.9, 0.9, 0.2)
    f = Image(IMG.astype(np.float32) / 255)
    a, b = jitter(f, rng=4).data, jitter(f, rng=4).data
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    order = jitter.draw(np.random.default_rng(1), (2, 2))["order"]
    assert sorted(order) == ["brightness", "contrast", "hue", "saturation"]


def test_masks_and_boxes_pass_through_pixel_steps():
    mask = Mask(np.ones((16, 20), np.uint8) * 3)
    out_mask, out_boxes = ColorJitter(0.5, 0.5)(
        (mask, BoundingBoxes([[1, 1, 4, 4]], size=(16, 20))), rng=0
    )
    assert out_mask is mask and out_boxes.boxes.tolist() == [[1, 1, 4, 4]]


def test_colour_steps_need_rgb():
    with pytest.raises(
        ValueError, match=r"ColorJitter\(.*\): needs an HxWx3 RGB Image, got shape \(16, 20\)"
    ):
        ColorJitter(saturation=0.5)(Image(IMG[..., 0]), rng=0)
    out = Brightness((2.0, 2.0))(Image(IMG[..., :2]), rng=0)  # per-channel steps work for any count
    assert out.data.shape == (16, 20, 2)


@pytest.mark.parametrize("layout", ["chw", "hwc"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_normalize_matches_the_formula(layout, dtype):
    src = IMG if dtype == np.uint8 else IMG.astype(np.float32) / 255
    out = Normalize(layout=layout)(Image(src))
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    want = (IMG / 255 - mean) / std
    want = want.transpose(2, 0, 1) if layout == "chw" else want
    assert out.data.dtype == np.float32 and out.layout == layout and out.frame() == (16, 20)
    np.testing.assert_allclose(out.data, want, atol=1e-5)


def test_normalize_float16_and_single_channel():
    out = Normalize(mean=(0.5,), std=(0.5,), dtype=np.float16)(Image(IMG[..., 0]))
    assert out.data.shape == (1, 16, 20) and out.data.dtype == np.float16
    np.testing.assert_allclose(out.data[0], IMG[..., 0] / 127.5 - 1, atol=1e-2)


def test_normalize_errors():
    with pytest.raises(
        ValueError, match=r"Normalize\(.*\): 2 mean/std values for an image with 3 channels"
    ):
        Normalize(mean=(0.5, 0.5), std=(0.5, 0.5))(Image(IMG))
    with pytest.raises(
        ValueError, match="mean and std need one entry per channel and std must be > 0"
    ):
        Normalize(std=(0, 1, 1))
    with pytest.raises(ValueError, match=r"Normalize: layout must be 'chw' or 'hwc', got 'nchw'"):
        Normalize(layout="nchw")
    done = Normalize()(Image(IMG))
    with pytest.raises(ValueError, match=r"the image is already normalized \(layout 'chw'\)"):
        Normalize()(done)


def test_gamma_lut_matches_power():
    out = Gamma((2.0, 2.0))(Image(IMG)).data
    np.testing.assert_allclose(out, np.rint(255 * (IMG / 255) ** 2), atol=1)


def test_noise_replays_from_a_recorded_seed():
    noise = GaussianNoise((0.1, 0.1))
    state = noise.draw_state(Image(IMG), rng=0)
    a, b = noise(Image(IMG), state=state).data, noise(Image(IMG), state=state).data
    np.testing.assert_array_equal(a, b)
    assert 15 < np.std(a.astype(float) - IMG) < 35  # 0.1 * 255 = 25.5, clipping trims a little


def test_single_channel_images_keep_their_shape():
    one = Image(IMG[..., :1])
    for step in (GaussianNoise(), Blur(), Gamma(), Brightness(), Cutout()):
        assert step(one, rng=0).data.shape == (16, 20, 1), step


def test_blur_smooths():
    assert Blur((2.0, 2.0))(Image(IMG)).data.std() < IMG.std() * 0.6
    assert Blur((0.0, 0.0))(Image(IMG)).data is IMG


def test_cutout_fills_drawn_rectangles_only():
    cut = Cutout(count=2, size=(0.2, 0.3), fill=0)
    state = cut.draw_state(Image(IMG), rng=1)
    out = cut(Image(IMG), state=state).data
    expected = IMG.copy()
    for top, left, h, w in state.params:
        expected[top : top + h, left : left + w] = 0
    np.testing.assert_array_equal(out, expected)
    assert len(state.params) == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ColorJitter(hue=0.7), r"ColorJitter: hue must stay within \(-0.5, 0.5\) turns"),
        (
            lambda: Brightness(1.5),
            r"Brightness: brightness must stay >= 0, got range \(-0.5, 2.5\)",
        ),
        (lambda: Gamma((0, 2)), r"Gamma: gamma must stay >= 0.001"),
        (lambda: Cutout(count=-1), r"Cutout: count must be >= 0"),
        (lambda: Cutout(size=(0.5, 2)), r"Cutout: size is a fraction of the frame, at most 1"),
        (lambda: Normalize(dtype=np.int8), "Normalize: dtype must be float32 or float16"),
    ],
)
def test_bad_colour_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()
