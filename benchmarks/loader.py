"""weft.data's loader vs torch.utils.data.DataLoader, interleaved, in one process.

(a) in memory: 50k x 32x32x3 uint8 images, per-sample random horizontal flip + float conversion,
    collated into batches of 256 and handed out as torch tensors; each library with 0, 1 and 2
    workers, compared at its best setting;
(b) the CIFAR-10 training JPEGs of ../shared/data/cifar10/cifar10_jpg.zip: read + cv2.imdecode +
    the same transforms, 2 workers each. Each library reads them two ways: as files extracted to
    a temporary folder (open/read/close per image), and through weft's `ZipStore` (the members
    are stored uncompressed: each is a CRC-checked slice of the archive mapped into memory);
    the ratio compares each library's best.
Both libraries run the same per-sample function; weft draws the flip from its per-sample
generator (seed, epoch, index), torch from Python's `random` (seeded per worker by torch).
Prints samples/s (median over interleaved epochs), CPU time per sample (this process and its
workers), the weft/torch ratios, and what one copy of each batch (out of weft's shared-memory
slots) would cost.

    .venv/bin/python benchmarks/loader.py [--rounds 5] [--skip-jpeg]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import psutil
import torch
import torch.utils.data as tud

from weft.data import DataLoader, mapobs
from weft.data.device import prefetch
from weft.datasets.files import ZipStore

DATA = Path(
    os.environ.get("WEFT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
BATCH = 256


def flip_to_float(image: np.ndarray, flip: bool) -> np.ndarray:
    """The per-sample work both libraries do."""
    if flip:
        image = image[:, ::-1]
    return image.astype(np.float32) * np.float32(1 / 255)


def decode(encoded: np.ndarray) -> np.ndarray:
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def read_file(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8)


class ZipMembers:
    """The bytes of the archive's members, read by weft's `ZipStore` (stored members are slices
    of the mapped archive: no system call per read). A plain sequence, so both libraries index
    it alike."""

    def __init__(self, archive: Path, names: list[str]):
        self.store, self.names = ZipStore(archive), names

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> np.ndarray:
        return np.frombuffer(self.store.read(self.names[i]), np.uint8)


# --- weft: a container and a mapped function ----------------------------------------------------


def weft_in_memory(obs, rng):
    image, label = obs
    return flip_to_float(image, rng.random() < 0.5), label


def weft_jpeg_file(obs, rng):
    path, label = obs
    return flip_to_float(decode(read_file(path)), rng.random() < 0.5), label


def weft_jpeg_member(obs, rng):
    encoded, label = obs
    return flip_to_float(decode(encoded), rng.random() < 0.5), label


# --- torch: a Dataset ---------------------------------------------------------------------------


class TorchInMemory(tud.Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return flip_to_float(self.images[i], random.random() < 0.5), self.labels[i]


class TorchJpegFiles(tud.Dataset):
    def __init__(self, paths, labels):
        self.paths, self.labels = paths, labels

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        image = decode(read_file(self.paths[i]))
        return flip_to_float(image, random.random() < 0.5), self.labels[i]


class TorchJpegMembers(tud.Dataset):
    def __init__(self, members: ZipMembers, labels):
        self.members, self.labels = members, labels

    def __len__(self):
        return len(self.members)

    def __getitem__(self, i):
        image = decode(self.members[i])
        return flip_to_float(image, random.random() < 0.5), self.labels[i]


# --- running ------------------------------------------------------------------------------------


def weft_epochs(
    data, workers: int, parallel: str = "process", copy: bool = False
) -> Callable[[], int]:
    """One epoch of weft's loader; `copy` adds one copy of each batch, what copying batches out
    of the shared-memory slots (instead of leasing them) would cost."""
    loader = DataLoader(data, BATCH, shuffle=True, workers=workers, parallel=parallel)

    def epoch() -> int:
        return sum(len(x.numpy().copy() if copy else x) for x, _ in prefetch(loader, "cpu"))

    return epoch


def torch_epochs(dataset, workers: int) -> Callable[[], int]:
    loader = tud.DataLoader(
        dataset, BATCH, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )

    def epoch() -> int:
        return sum(len(x) for x, _ in loader)

    return epoch


def cpu_seconds() -> float:
    """CPU time of this process and its workers so far."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return total


def measure(runs: dict[str, Callable[[], int]], rounds: int) -> dict[str, list[tuple]]:
    """(samples/s, CPU µs/sample) of one epoch per run and round, the runs interleaved; a
    warm-up epoch first. CPU time per sample is what the load of other jobs disturbs least."""
    for epoch in runs.values():
        epoch()
    results: dict[str, list[tuple]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, epoch in runs.items():
            cpu, start = cpu_seconds(), time.perf_counter()
            n = epoch()
            wall = time.perf_counter() - start
            results[name].append((n / wall, (cpu_seconds() - cpu) / n * 1e6))
    return results


def report(title: str, results: dict[str, list[tuple]]) -> dict[str, float]:
    print(f"\n{title}")
    medians = {name: statistics.median(rate for rate, _ in r) for name, r in results.items()}
    for name, r in results.items():
        spread = ", ".join(f"{rate / 1000:.1f}" for rate, _ in r)
        cpu = statistics.median(c for _, c in r)
        print(
            f"  {name:<26} {medians[name] / 1000:7.1f}k samples/s  {cpu:5.1f} CPU µs/sample"
            f"   (epochs: {spread})"
        )
    return medians


def best(medians: dict[str, float], prefix: str) -> tuple[str, float]:
    return max(((n, m) for n, m in medians.items() if n.startswith(prefix)), key=lambda x: x[1])


def in_memory(rounds: int) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50_000, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 50_000)
    data = mapobs(weft_in_memory, (images, labels))
    dataset = TorchInMemory(images, labels)
    runs = {}
    for workers in (0, 1, 2):
        runs[f"weft   workers={workers}"] = weft_epochs(data, workers)
        runs[f"torch  workers={workers}"] = torch_epochs(dataset, workers)
    runs["weft   workers=2 +copy"] = weft_epochs(data, 2, copy=True)
    medians = report("(a) in memory, 50k x 32x32x3, flip + float, batch 256", measure(runs, rounds))
    copied = medians.pop("weft   workers=2 +copy")
    (wn, w), (tn, t) = best(medians, "weft"), best(medians, "torch")
    print(
        f"  best: {wn.strip()} {w / 1000:.1f}k vs {tn.strip()} {t / 1000:.1f}k: ratio {w / t:.2f}x"
    )
    print(
        f"  copying each batch out of its slot would cost "
        f"{(1 - copied / medians['weft   workers=2']) * 100:.0f}% of weft workers=2's throughput"
    )


def jpeg(rounds: int) -> None:
    archive = DATA / "cifar10" / "cifar10_jpg.zip"
    if not archive.is_file():
        print(f"\n(b) skipped: {archive} not found (set WEFT_SHARED_DATA)")
        return
    with tempfile.TemporaryDirectory(prefix="weft-bench-") as folder:
        with zipfile.ZipFile(archive) as z:
            infos = sorted(
                (i for i in z.infolist() if i.filename.startswith("train/")),
                key=lambda i: i.filename,
            )
            infos = [i for i in infos if i.filename.endswith(".jpg")]
            members = [i.filename for i in infos]
            z.extractall(folder, members)
        paths = [str(Path(folder) / m) for m in members]
        stored = ZipMembers(archive, members)
        classes = sorted({m.split("/")[1] for m in members})
        labels = np.array([classes.index(m.split("/")[1]) for m in members])
        from_files = mapobs(weft_jpeg_file, (paths, labels))
        from_zip = mapobs(weft_jpeg_member, (stored, labels))
        runs = {
            "weft   processes=2 zip": weft_epochs(from_zip, 2),
            "weft   processes=2 files": weft_epochs(from_files, 2),
            "weft   threads=2 zip": weft_epochs(from_zip, 2, "thread"),
            "torch  workers=2 zip": torch_epochs(TorchJpegMembers(stored, labels), 2),
            "torch  workers=2 files": torch_epochs(TorchJpegFiles(paths, labels), 2),
        }
        medians = report(
            f"(b) CIFAR-10 JPEGs ({len(paths)}), read + decode + flip + float, batch 256",
            measure(runs, rounds),
        )
    (tn, t) = best(medians, "torch")
    for name in ("weft   processes=2 zip", "weft   processes=2 files", "weft   threads=2 zip"):
        print(f"  {name.strip()} vs {tn.strip()} (torch's best): ratio {medians[name] / t:.2f}x")
    for how in ("zip", "files"):
        w, t = medians[f"weft   processes=2 {how}"], medians[f"torch  workers=2 {how}"]
        print(f"  both reading {how}: weft processes=2 / torch workers=2 = {w / t:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved epochs per run")
    parser.add_argument("--skip-jpeg", action="store_true", help="run (a) only")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # the same for both libraries: parallelism comes from the workers
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, median of {args.rounds} epochs")
    in_memory(args.rounds)
    if not args.skip_jpeg:
        jpeg(args.rounds)


if __name__ == "__main__":
    main()
