"""weft.augment vs Albumentations 2.0.8, single thread, interleaved, in one process.

(a) Affine(rotate +-15, scale 0.9-1.1) + RandomResizedCrop(224, scale 0.5-1) + horizontal flip
    + ColorJitter + Normalize on image + mask + 10 keypoints, from 320x320 inputs;
(b) the same geometric chain on images only.
Prints samples/s (median over interleaved rounds) and the weft/Albumentations ratio, then the
PSNR of each library's (b) output against one Lanczos warp of the same composed transform
drawn with the same parameters (over pixels whose source lies inside the image).

(c) small images per sample, against the torch ops of `benchmarks/time_to_accuracy.py`: what one
loader worker does per observation. weft: `on_arrays(pipeline, (Image, None))` called with the
observation's `weft.data.sample_rng` (as `mapobs` does); torch: that benchmark's `Augmented`
Dataset (`__getitem__`), and the same ops on 32x32x3 for the CIFAR-10 recipe. One torch thread,
one OpenCV thread; synthetic uint8 images (the ops do not depend on the content). Times are CPU
time of the process (both sides single-threaded), so other jobs on a shared machine count less.

    .venv/bin/python benchmarks/augment.py [--rounds 15] [--block 40] [--only large|small]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

import weft.augment as W
from weft.data import sample_rng

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


def timed_rounds(
    cases: dict, rounds: int, block: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, float]:
    """Median seconds per sample of each case, the cases interleaved block by block."""
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t0 = clock()
            for i in range(block):
                fn(i)
            times[name].append((clock() - t0) / block)
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
    parser.add_argument("--only", choices=["large", "small"], help="(a)-(b) or (c) alone")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    if args.only != "small":
        large_images(args)
    if args.only != "large":
        small_images(args)


def large_images(args: argparse.Namespace) -> None:
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


def small_images(args: argparse.Namespace) -> None:
    """(c): per-sample cost of the MNIST, Fashion-MNIST and CIFAR-10 recipes' augmentation."""
    import torch
    import torch.nn.functional as F
    from time_to_accuracy import RECIPES, Augmented  # also puts examples/ on sys.path

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = 1000
    gray = rng.integers(0, 256, (n, 28, 28), np.uint8)
    color = rng.integers(0, 256, (n, 32, 32, 3), np.uint8)
    labels = rng.integers(0, 10, n)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    cifar = W.Sequence(
        W.Pad(4, 4, 4, 4), W.RandomCrop(32), W.Maybe(W.FlipX()), W.Normalize(mean, std)
    )
    t_mean, t_std = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
    t_color = torch.tensor(color)

    def torch_cifar(i: int) -> tuple[torch.Tensor, int]:
        """torchvision's RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize."""
        x = t_color[i].permute(2, 0, 1).float().div_(255)
        x = F.pad(x, (4, 4, 4, 4))
        top, left = torch.randint(0, 9, (2,)).tolist()
        x = x[:, top : top + 32, left : left + 32]
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return ((x - t_mean) / t_std).contiguous(), int(labels[i])

    cases = {}
    for name in ("mnist", "fashion_mnist"):
        recipe = RECIPES[name]
        steps = [W.Pad(2, 2, 2, 2), W.RandomCrop(28)] + (
            [W.Maybe(W.FlipX())] if recipe.flip else []
        )
        pipe = W.Sequence(*steps, W.Normalize((recipe.mean,), (recipe.std,)))
        weft_f = W.on_arrays(pipe, (W.Image, None))
        torch_ds = Augmented(gray, labels, recipe, train=True)
        cases[f"{name} weft"] = lambda i, f=weft_f: f(
            (gray[i % n], labels[i % n]), rng=sample_rng(i)
        )
        cases[f"{name} torch"] = lambda i, ds=torch_ds: ds[i % n]
    weft_cifar = W.on_arrays(cifar, (W.Image, None))
    cases["cifar10 weft"] = lambda i: weft_cifar((color[i % n], labels[i % n]), rng=sample_rng(i))
    cases["cifar10 torch"] = lambda i: torch_cifar(i % n)
    for fn in cases.values():
        fn(0)
    # CPU time of this process: both sides are single-threaded, and on a shared machine wall
    # time would also count the time other jobs held the core.
    med = timed_rounds(cases, args.rounds, args.block * 25, clock=time.process_time)
    print(
        f"(c) small images, CPU us per sample (median of {args.rounds} interleaved rounds of "
        f"{args.block * 25}), torch {torch.__version__}, 1 thread, load average "
        f"{os.getloadavg()[0]:.1f}:"
    )
    print(f"  {'recipe':<14} {'weft us':>8} {'torch us':>9} {'weft/torch time':>16}")
    for name, what in [
        ("mnist", "pad 2, crop 28, normalize; 1x28x28"),
        ("fashion_mnist", "+ random mirror"),
        ("cifar10", "pad 4, crop 32, mirror, normalize; 3x32x32"),
    ]:
        w, t = med[f"{name} weft"], med[f"{name} torch"]
        print(f"  {name:<14} {w * 1e6:>8.1f} {t * 1e6:>9.1f} {w / t:>15.2f}x   ({what})")


if __name__ == "__main__":
    main()
