"""Time to accuracy: the MNIST and Fashion-MNIST recipes of `examples/`, with weft and as a plain
PyTorch loop with torch's DataLoader, back to back in one process.

Both sides train the same model (`Recipe.model()`: MNIST's small CNN, Fashion-MNIST's
`weft.models.AirbenchNet` with mirror test-time augmentation; same seed, so the same initial
weights) with the same loss (label smoothing 0.2 for Fashion-MNIST), AdamW and the same
one-cycle schedule (lr up from peak/25 to the peak over the first 25% of steps, cosine down to
peak/1e4; beta1 0.95 -> 0.85 -> 0.95), batches of 128 (last partial batch dropped), the same
augmentation semantics (zero-pad 2, random 28x28 crop, random mirror for
Fashion-MNIST, normalize) and one loader worker process each.
Each epoch ends with a test-set pass; the time to accuracy is the wall time from the start of
training to the end of the first epoch whose test accuracy reaches the recipe's target.
With `--seeds 0 1 2` each side runs once per seed (the order alternating) and the summary
compares medians: one seed decides the epoch the target is crossed by luck as much as by
speed. `--stop-at-target` ends each run there (weft: `EarlyStopping(stop_at=...)`), which
leaves the time to accuracy unchanged and saves the epochs after it. Seconds per epoch
(median) compare the two sides' speed alone.

- weft: `examples/mnist.py` itself (catalog, `mapobs` + `weft.augment`, `DataLoader`,
  `Learner.fit_one_cycle` with Metrics, History, ProgressBar and a Checkpointer per epoch);
- torch: a `Dataset` doing the augmentation in torch ops (what torchvision's RandomCrop(28,
  padding=2), RandomHorizontalFlip and Normalize do), `torch.utils.data.DataLoader`,
  `OneCycleLR`, and the usual hand-written loop.

    WEFT_DATA=../shared/data .venv/bin/python benchmarks/time_to_accuracy.py \
        [--datasets mnist fashion_mnist] [--seeds 0 1 2] [--stop-at-target] [--torch-first]
        [--workers 1] [--tiny]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import mnist  # the weft recipe, from examples/
from fashion_mnist import FASHION_MNIST

from weft.datasets import load

RECIPES = {"mnist": mnist.MNIST, "fashion_mnist": FASHION_MNIST}


class Augmented(Dataset):
    """MNIST-like images as normalized 1x28x28 tensors; when training, shifted by up to 2
    pixels (zero padding) and, with `flip`, mirrored with probability 1/2."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, recipe: mnist.Recipe, train: bool):
        self.images = torch.tensor(images)  # a copy: the reader's arrays are read-only
        self.labels = torch.tensor(labels, dtype=torch.int64)
        self.recipe, self.train = recipe, train

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[i].float().div_(255)
        if self.train:
            x = nn.functional.pad(x, (2, 2, 2, 2))
            top, left = torch.randint(0, 5, (2,)).tolist()
            x = x[top : top + 28, left : left + 28]
            if self.recipe.flip and torch.rand(()) < 0.5:
                x = x.flip(-1)
        x = (x - self.recipe.mean) / self.recipe.std
        return x[None].contiguous(), self.labels[i]


def arrays(dataset: str, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` (0: all) images and labels of a split, read once (as torchvision's
    MNIST would)."""
    reader = load(dataset, split)
    n = n or len(reader)
    return reader.images.values()[:n], reader.labels.values()[:n]


def plain_torch(recipe: mnist.Recipe, epochs: int, args: argparse.Namespace, seed: int) -> dict:
    """The recipe as a hand-written PyTorch loop; returns accuracy and timing like the example."""
    workers = args.workers
    limit, test_limit = (512, 256) if args.tiny else (args.limit, 0)
    started = time.perf_counter()  # reading the files counts, as weft's lazy readers do in fit
    torch.manual_seed(seed)
    train = DataLoader(
        Augmented(*arrays(recipe.dataset, "train", limit), recipe, train=True),
        batch_size=recipe.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
    test = DataLoader(
        Augmented(*arrays(recipe.dataset, "test", test_limit), recipe, train=False),
        batch_size=512,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    model = recipe.model()
    optimizer = torch.optim.AdamW(model.parameters(), recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        recipe.lr,
        total_steps=epochs * len(train),
        pct_start=0.25,
        div_factor=25,
        final_div_factor=400,  # ends at peak / 25 / 400 = peak / 1e4, as weft's one_cycle
        base_momentum=0.85,
        max_momentum=0.95,
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    history = []
    for epoch in range(epochs):
        model.train()
        for x, y in train:
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            schedule.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test:
                correct += (model(x).argmax(-1) == y).sum().item()
        accuracy = correct / len(test.dataset)
        history.append({"epoch": epoch, "valid_accuracy": accuracy})
        history[-1]["time"] = time.perf_counter() - started
        print(f"torch epoch {epoch}: test accuracy {accuracy:.4f}", file=sys.stderr, flush=True)
        if args.stop_at_target and accuracy >= recipe.target:
            break
    seconds = time.perf_counter() - started
    return mnist.summary(recipe, model, history, seconds, epochs, len(train) * recipe.batch_size)


def weft(recipe: mnist.Recipe, epochs: int, args: argparse.Namespace, seed: int, run: int) -> dict:
    """`examples/mnist.py` itself, with the benchmark's settings; files in `<out>/<data>-<run>`."""
    argv = ["--out", str(args.out / f"{recipe.dataset}-{run}"), "--epochs", str(epochs)]
    argv += ["--workers", str(args.workers), "--seed", str(seed), "--limit", str(args.limit)]
    argv += ["--tiny"] if args.tiny else []
    return mnist.main(argv + (["--stop-at-target"] if args.stop_at_target else []), recipe)


def fmt(seconds: float | None) -> str:
    return "not reached" if seconds is None else f"{seconds:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(RECIPES), default=list(RECIPES))
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--target", type=float, help="default: the recipe's")
    parser.add_argument("--limit", type=int, default=0, help="train on the first N images")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="one weft and one torch run per seed"
    )
    parser.add_argument(
        "--torch-first", action="store_true", help="torch first for the first seed (alternates)"
    )
    parser.add_argument("--stop-at-target", action="store_true", help="end each run there")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/time_to_accuracy"))
    parser.add_argument("--tiny", action="store_true", help="512 images, 2 epochs: a smoke test")
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), workers={args.workers}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    results: list[tuple[str, int, str, dict[str, Any], dict[str, Any]]] = []
    for name in args.datasets:
        recipe = RECIPES[name]
        if args.target is not None:
            recipe = dataclasses.replace(recipe, target=args.target)
        epochs = args.epochs or (2 if args.tiny else recipe.epochs)  # OneCycleLR: >= 8 steps
        for run, seed in enumerate(args.seeds):
            done = {}
            order = ("weft", "torch") if (run + args.torch_first) % 2 == 0 else ("torch", "weft")
            for side in order:
                if side == "weft":
                    done[side] = weft(recipe, epochs, args, seed, run)
                else:
                    done[side] = plain_torch(recipe, epochs, args, seed)
            results.append((name, seed, order[0], done["weft"], done["torch"]))
            report(name, seed, order[0], done["weft"], done["torch"])
    print("\nsummary (each line one weft run and one torch run, back to back)")
    for line in results:
        report(*line)
    for name in args.datasets:
        medians(name, [(w, t) for n, _, _, w, t in results if n == name])


def epoch_seconds(result: dict) -> float:
    """Median seconds per epoch of a run (training and its test pass)."""
    times = [0.0] + [row["time"] for row in result["history"]]
    return statistics.median(b - a for a, b in itertools.pairwise(times))


def report(name: str, seed: int, first: str, w: dict, t: dict) -> None:
    tw, tt = w["target_reached_after_s"], t["target_reached_after_s"]
    ratio = f"{tw / tt:.2f}x" if tw is not None and tt is not None else "n/a"
    ew, et = epoch_seconds(w), epoch_seconds(t)
    print(
        f"{name} seed {seed} ({first} first; target {w['target']}, {w['epochs']}-epoch schedule "
        f"of {w['train_images']} images): time to target weft {fmt(tw)} (epoch "
        f"{w['reached_epoch']}), torch {fmt(tt)} (epoch {t['reached_epoch']}), ratio {ratio}; "
        f"s/epoch weft {ew:.1f}, torch {et:.1f} ({ew / et:.2f}x); last test accuracy weft "
        f"{w['test_accuracy']:.4f}, torch {t['test_accuracy']:.4f}",
        flush=True,
    )


def medians(name: str, pairs: list[tuple[dict, dict]]) -> None:
    """The seeds' medians: time to target (a run that never reaches it counts as infinite)."""

    def median_time(runs: list[dict]) -> float:
        times = [r["target_reached_after_s"] for r in runs]
        return statistics.median(float("inf") if t is None else t for t in times)

    weft_runs, torch_runs = [w for w, _ in pairs], [t for _, t in pairs]
    tw, tt = median_time(weft_runs), median_time(torch_runs)
    ew = statistics.median(epoch_seconds(w) for w in weft_runs)
    et = statistics.median(epoch_seconds(t) for t in torch_runs)
    ratio = f"{tw / tt:.2f}x" if max(tw, tt) < float("inf") else "n/a"
    print(
        f"{name}, median of {len(pairs)} seeds: time to target weft {tw:.0f} s, torch {tt:.0f} s, "
        f"ratio {ratio}; s/epoch weft {ew:.1f}, torch {et:.1f} ({ew / et:.2f}x)",
        flush=True,
    )


if __name__ == "__main__":
    main()
