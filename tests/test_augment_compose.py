"""Composition: fused equals step-by-step on real CamVid data; combinators keep fusion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from weft.augment import (
    Affine,
    BoundingBoxes,
    Brightness,
    CenterCrop,
    Cutout,
    FlipX,
    FlipY,
    Image,
    Keypoints,
    Mask,
    Maybe,
    Normalize,
    OneOf,
    Pad,
    PadDivisible,
    Project,
    RandomCrop,
    RandomResizedCrop,
    Rotate,
    Sequence,
    SomeOf,
    State,
)
from weft.augment.transform import warp_items


def camvid(shared_data, k=0):
    root = shared_data / "camvid_val"
    path = sorted((root / "val").glob("*.png"))[k]
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    seg = cv2.imread(str(root / "valannot" / path.name), cv2.IMREAD_GRAYSCALE)
    return img, seg


def sequential(steps, sample, state):
    """Apply each step on its own (one warp per step) with the parameters recorded in `state`."""
    for step, params in zip(steps, state.params, strict=True):
        size = sample[0].frame()
        matrix, out = step.project(params, size)
        sample = step(sample, state=State(params, size, out, matrix))
    return sample


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fused_equals_sequential_on_camvid(shared_data, seed):
    img, seg = camvid(shared_data, seed)
    steps = [Rotate(15), RandomResizedCrop((240, 320), scale=(0.5, 1.0)), Maybe(FlipX())]
    pipe = Sequence(*steps)
    ones = np.full(seg.shape, 255, np.uint8)
    sample = (Image(img), Mask(seg), Image(ones), Keypoints([[100, 100], [300, 200]]))
    state = pipe.draw_state(sample, rng=seed)
    fused = pipe(sample, state=state)
    stepwise = sequential(steps, sample, state)
    # Compare where the stepwise chain never sampled its own fill (it loses corners; fusion keeps them).
    valid = cv2.erode((stepwise[2].data == 255).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    diff = np.abs(fused[0].data.astype(int) - stepwise[0].data.astype(int))[valid]
    assert diff.mean() < 6 and np.percentile(diff, 99) < 60
    labels = fused[1].data
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= set(np.unique(seg)) | {0}
    assert (labels[valid] == stepwise[1].data[valid]).mean() > 0.97
    np.testing.assert_allclose(fused[3].points, stepwise[3].points, atol=1e-9)


def test_one_of_projective_stays_projective_and_fuses():
    pipe = Sequence(
        Rotate(10), OneOf(FlipX(), FlipY()), Maybe(Affine(scale=(0.8, 1.2))), CenterCrop(20)
    )
    assert pipe.projective
    assert not Sequence(Rotate(10), Brightness()).projective
    assert not OneOf(FlipX(), Brightness()).projective
    img = np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)
    state = pipe.draw_state(Image(img), rng=5)
    out = pipe(Image(img), state=state).data
    # One warp through the composed matrix reproduces the whole chain.
    once = Project(state.matrix, state.output_size)(Image(img)).data
    np.testing.assert_array_equal(out, once)


def test_crops_pads_and_flips_compose_as_lattice_steps():
    assert (
        Sequence(Pad(2, 2, 2, 2), RandomCrop(28), Maybe(FlipX()), Normalize()).projective is False
    )
    lattice = Sequence(Pad(1), OneOf(FlipX(), FlipY()), SomeOf(CenterCrop(3), PadDivisible(4)))
    assert lattice.lattice and Maybe(lattice).lattice
    assert not Sequence(Pad(1), Rotate(5)).lattice and not OneOf(FlipX(), Rotate(5)).lattice
    assert not Sequence(FlipX(), Brightness()).lattice


LATTICE_CHAINS = [
    [Pad(2, 2, 2, 2), RandomCrop(28), Maybe(FlipX())],
    [Maybe(FlipY()), RandomCrop((20, 24)), Maybe(FlipX(), p=0.7), Pad(0, 3, 5, 0)],
    [SomeOf(FlipX(), FlipY(), Pad(3, 0, 5, 1), n=(0, 3)), CenterCrop(15), PadDivisible(8)],
    [Maybe(Sequence(FlipX(), Pad(1, 0, 0, 2))), OneOf(FlipY(), RandomCrop(25))],
]


@pytest.mark.parametrize("steps", LATTICE_CHAINS)
def test_lattice_chains_equal_one_warp_through_the_composed_matrix(steps):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (28, 28, 3), np.uint8)
    seg = rng.integers(0, 5, (28, 28), np.uint8)
    points = rng.uniform(0, 28, (6, 2))
    boxes = np.array([[1.0, 2, 10, 12], [5, 5, 27, 20.5]])
    pipe = Sequence(*steps)
    for seed in range(16):
        sample = [
            Image(img, border="reflect"),
            Image(img, fill=(1, 2, 3)),
            Mask(seg, fill=255),
            Keypoints(points),
            BoundingBoxes(boxes),
        ]
        state = pipe.draw_state(sample, rng=seed)
        got = pipe(sample, rng=seed)
        frame = sample[0].frame()
        want = warp_items([x.with_frame(frame) for x in sample], state.matrix, state.output_size)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w), err_msg=f"seed {seed}")
        assert got[3].visible.tolist() == want[3].visible.tolist()
        assert got[4].visible.tolist() == want[4].visible.tolist()


def test_lattice_runs_switch_to_the_matrix_at_a_resampling_step_and_flush_at_pixel_steps():
    img = np.random.default_rng(1).integers(0, 256, (30, 30), np.uint8)
    pipe = Sequence(Pad(2, 2, 2, 2), Maybe(FlipX()), Rotate(10), Cutout(1), RandomCrop(24))
    first_run = Sequence(*pipe.transforms[:3])
    for seed in range(8):
        state = pipe.draw_state(Image(img), rng=seed)
        params = state.params
        # Replay by hand: one warp through the first run's matrix, the cutout, then the crop.
        matrix, size = first_run.project(params[:3], (30, 30))
        cut = Cutout(1).apply_image(Project(matrix, size)(Image(img)), params[3]).data
        top, left = params[4]
        want = cut[top : top + 24, left : left + 24]
        np.testing.assert_array_equal(pipe(Image(img), state=state).data, want)


def test_sequence_also_takes_a_list():
    assert Sequence([FlipX(), FlipY()]).transforms == Sequence(FlipX(), FlipY()).transforms


def test_one_of_respects_weights():
    pick = OneOf(FlipX(), FlipY(), weights=[0, 1])
    assert all(pick.draw(np.random.default_rng(s), (4, 4))[0] == 1 for s in range(20))


def test_maybe_probability_and_replay():
    m = Maybe(FlipX(), p=0.3)
    draws = [m.draw(np.random.default_rng(s), (4, 4)) for s in range(400)]
    applied = sum(d is not None for d in draws) / len(draws)
    assert 0.22 < applied < 0.38
    assert Maybe(FlipX(), p=0).draw(np.random.default_rng(0), (4, 4)) is None


def test_some_of_picks_n_in_order():
    s = SomeOf(FlipX(), FlipY(), Rotate(5), n=(1, 2))
    for seed in range(20):
        chosen = [i for i, _ in s.draw(np.random.default_rng(seed), (8, 8))]
        assert 1 <= len(chosen) <= 2 and chosen == sorted(chosen)


def test_mixed_sequence_flushes_before_pixel_steps():
    img = np.full((10, 10, 3), 100, np.uint8)
    out = Sequence(FlipX(), Brightness((2.0, 2.0)), CenterCrop(4))(Image(img), rng=0).data
    assert out.shape == (4, 4, 3) and (out == 200).all()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Sequence(), "Sequence: needs at least one transform"),
        (
            lambda: Sequence(FlipX(), "flip"),
            "Sequence: argument 1 is a str, not a weft.augment Transform",
        ),
        (lambda: OneOf(FlipX(), weights=[1, 2]), r"OneOf: weights must be 1 non-negative numbers"),
        (lambda: Maybe(FlipX(), p=1.5), r"Maybe: p must be a probability in \[0, 1\], got 1.5"),
        (lambda: SomeOf(FlipX(), n=3), r"SomeOf: n must lie within 0..1"),
    ],
)
def test_bad_composition(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()
