"""weft.augment vs Albumentations 2.0.8, single thread, interleaved, in one process.

(a) Affine(rotate +-15, scale 0.9-1.1) + RandomResizedCrop(224, scale 0.5-1) + horizontal flip
    + ColorJitter + Normalize on image + mask + 10 keypoints, from 320x320 inputs;
(b) the same geometric chain on images only.
Prints samples/s (median over interleaved rounds) and the weft/Albumentations ratio, then the
PSNR of each library's (b) output against one Lanczos warp of the same composed transform
drawn with the same parameters (over pixels whose source lies inside the image).

    .venv/bin/python benchmarks/augment.py [--rounds 15] [--block 40]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np

import weft.augment as W

DATA = Path(
    os.environ.get("WEFT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
SIZE = 320


def load_inputs(n: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Real CamVid frames and label maps resized to 320x320 (smooth synthetic ones if absent)."""
    rng = np.random.default_rng(0)
    root = DATA / "camvid_val"
    pairs = []
    if (root / "val").is_dir():
        for path in sorted((root / "val").glob("*.png"))[:n]:
            img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            seg = cv2.imread(str(root / "valannot" / path.name), cv2.IMREAD_GRAYSCALE)
            pairs.append(
                (
                    cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA),
                    cv2.resize(seg, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST),
                )
            )
    while len(pairs) < n:
        noise = rng.integers(0, 256, (SIZE // 8, SIZE // 8, 3), np.uint8)
        img = cv2.resize(noise, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        pairs.append((img, (img[..., 0] // 64).astype(np.uint8)))
    return [(img, seg, rng.uniform(0, SIZE, (10, 2))) for img, seg in pairs]


def weft_pipelines() -> tuple[W.Transform, W.Transform]:
    geometric = [
        W.Affine(rotate=15, scale=(0.9, 1.1)),
        W.RandomResizedCrop(224, scale=(0.5, 1.0)),
        W.Maybe(W.FlipX()),
    ]
    full = W.Sequence(*geometric, W.ColorJitter(0.2, 0.2, 0.2, 0.1), W.Normalize())
    return full, W.Sequence(*geometric)


def albu_pipelines():
    import albumentations as A

    assert A.__version__ == "2.0.8", (
        f"benchmark pinned to albumentations 2.0.8, got {A.__version__}"
    )
    geometric = [
        A.Affine(rotate=(-15, 15), scale=(0.9, 1.1), keep_ratio=True, p=1.0),
        A.RandomResizedCrop((224, 224), scale=(0.5, 1.0), p=1.0),
        A.HorizontalFlip(p=0.5),
    ]
    full = A.Compose(
        [*geometric, A.ColorJitter(0.2, 0.2, 0.2, 0.1, p=1.0), A.Normalize()],
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        seed=0,
    )
    geo = A.Compose(geometric, seed=0)
    geo_record = A.Compose(geometric, seed=1, save_applied_params=True)
    return full, geo, geo_record


def timed_rounds(cases: dict, rounds: int, block: int) -> dict[str, float]:
    """Median seconds per sample of each case, the cases interleaved block by block."""
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            for i in range(block):
                fn(i)
            times[name].append((time.perf_counter() - t0) / block)
    return {k: float(np.median(v)) for k, v in times.items()}


def psnr(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> float:
    err = (a.astype(np.float64) - b.astype(np.float64))[valid]
    mse = float(np.mean(err**2))
    return 10 * math.log10(255**2 / mse) if mse > 0 else float("inf")


def to_index(m: np.ndarray) -> np.ndarray:
    """A continuous-frame matrix on pixel indices (OpenCV's convention)."""
    return (
        np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
        @ m
        @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    )


def reference(img: np.ndarray, m: np.ndarray, size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """One Lanczos warp by the continuous-frame matrix, and where its source lies fully inside."""
    idx = to_index(m)[:2]
    ref = cv2.warpAffine(img, idx, (size, size), flags=cv2.INTER_LANCZOS4)
    inside = cv2.warpAffine(
        np.ones(img.shape[:2], np.uint8), idx, (size, size), flags=cv2.INTER_NEAREST
    )
    return ref, cv2.erode(inside, np.ones((9, 9), np.uint8)) > 0


def albu_matrix(applied: list, shape: tuple[int, int]) -> np.ndarray:
    """The composed continuous-frame matrix of Albumentations' recorded Affine, crop and flip."""
    m = np.eye(3)
    for name, p in applied:
        if name == "Affine":
            index = np.asarray(p["matrix"], float)
            m = (
                np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
                @ index
                @ np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
                @ m
            )
        elif name == "RandomResizedCrop":
            x0, y0, x1, y1 = p["crop_coords"]
            step = np.array(
                [[224 / (x1 - x0), 0, 0], [0, 224 / (y1 - y0), 0], [0, 0, 1]]
            ) @ np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]])
            m = step @ m
        elif name == "HorizontalFlip":
            m = np.array([[-1, 0, 224], [0, 1, 0], [0, 0, 1]]) @ m
    return m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=int, default=40)
    parser.add_argument("--psnr-samples", type=int, default=50)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    import albumentations as A

    inputs = load_inputs(20)
    n = len(inputs)
    w_full, w_geo = weft_pipelines()
    a_full, a_geo, a_geo_record = albu_pipelines()
    rng = np.random.default_rng(0)
    w_samples = [(W.Image(img), W.Mask(seg), W.Keypoints(kp)) for img, seg, kp in inputs]

    cases = {
        "(a) weft": lambda i: w_full(w_samples[i % n], rng=rng),
        "(a) albumentations": lambda i: a_full(
            image=inputs[i % n][0], mask=inputs[i % n][1], keypoints=inputs[i % n][2]
        ),
        "(b) weft": lambda i: w_geo(w_samples[i % n][0], rng=rng),
        "(b) albumentations": lambda i: a_geo(image=inputs[i % n][0]),
    }
    for fn in cases.values():  # warm-up: caches, lazy imports
        fn(0)
    med = timed_rounds(cases, args.rounds, args.block)
    print(
        f"albumentations {A.__version__}, opencv {cv2.__version__}, numpy {np.__version__}, 1 thread"
    )
    print(f"{'case':<22} {'samples/s':>10} {'us/sample':>10}")
    for k, v in med.items():
        print(f"{k:<22} {1 / v:>10.0f} {v * 1e6:>10.0f}")
    for case in ("(a)", "(b)"):
        ratio = med[f"{case} albumentations"] / med[f"{case} weft"]
        print(f"{case} weft / albumentations throughput: {ratio:.2f}x")

    # The final output pass on a 224x224 uint8 crop: normalize + HWC->CHW + float32.
    crop = np.ascontiguousarray(inputs[0][0][:224, :224])
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    w_norm, a_norm = W.Normalize(), A.Normalize()
    out_pass = {
        "weft Normalize (LUT into CHW planes)": lambda i: w_norm(W.Image(crop)),
        "numpy (x/255-mean)/std, transpose": lambda i: np.ascontiguousarray(
            ((crop.astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1)
        ),
        "albumentations Normalize, transpose": lambda i: np.ascontiguousarray(
            a_norm(image=crop)["image"].transpose(2, 0, 1)
        ),
    }
    med = timed_rounds(out_pass, args.rounds, args.block)
    print("output pass, 224x224x3 uint8 -> normalized float32 CHW:")
    for k, v in med.items():
        print(f"  {k:<38} {v * 1e6:>7.0f} us")

    scores: dict[str, list[float]] = {"weft": [], "albumentations": []}
    for k in range(args.psnr_samples):
        img = inputs[k % n][0]
        state = w_geo.draw_state(W.Image(img), rng=1000 + k)
        out = w_geo(W.Image(img), state=state).data
        ref, valid = reference(img, state.matrix)
        scores["weft"].append(psnr(out, ref, valid))
        res = a_geo_record(image=img)
        ref, valid = reference(img, albu_matrix(res["applied_transforms"], img.shape[:2]))
        scores["albumentations"].append(psnr(res["image"], ref, valid))
    for k, v in scores.items():
        print(
            f"(b) PSNR vs one Lanczos warp, {k}: median {np.median(v):.1f} dB over {len(v)} samples"
        )


if __name__ == "__main__":
    main()
