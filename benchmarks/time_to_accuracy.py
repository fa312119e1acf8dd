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

- weft: `examples/mnist.py` itself (catalog, `mapobs` + `weft.augment`, `DataLoader`,
  `Learner.fit_one_cycle` with Metrics, History, ProgressBar and a Checkpointer per epoch);
- torch: a `Dataset` doing the augmentation in torch ops (what torchvision's RandomCrop(28,
  padding=2), RandomHorizontalFlip and Normalize do), `torch.utils.data.DataLoader`,
  `OneCycleLR`, and the usual hand-written loop.

    WEFT_DATA=../shared/data .venv/bin/python benchmarks/time_to_accuracy.py \
        [--datasets mnist fashion_mnist] [--rounds 1] [--torch-first] [--workers 1] [--tiny]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
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


def plain_torch(recipe: mnist.Recipe, epochs: int, args: argparse.Namespace) -> dict:
    """The recipe as a hand-written PyTorch loop; returns accuracy and timing like the example."""
    workers = args.workers
    limit, test_limit = (512, 256) if args.tiny else (args.limit, 0)
    started = time.perf_counter()  # reading the files counts, as weft's lazy readers do in fit
    torch.manual_seed(args.seed)
    train = DataLoader(
        Augmented(*arrays(recipe.dataset, "train", limit), recipe, train=True),
        batch_size=recipe.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(args.seed),
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
    seconds = time.perf_counter() - started
    return mnist.summary(recipe, model, history, seconds, epochs, len(train) * recipe.batch_size)


def weft(recipe: mnist.Recipe, epochs: int, args: argparse.Namespace, run: int) -> dict:
    """`examples/mnist.py` itself, with the benchmark's settings."""
    argv = ["--out", str(args.out / f"{recipe.dataset}-{run}"), "--epochs", str(epochs)]
    argv += ["--workers", str(args.workers), "--seed", str(args.seed), "--limit", str(args.limit)]
    return mnist.main(argv + (["--tiny"] if args.tiny else []), recipe)


def fmt(seconds: float | None) -> str:
    return "not reached" if seconds is None else f"{seconds:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(RECIPES), default=list(RECIPES))
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--target", type=float, help="default: the recipe's")
    parser.add_argument("--limit", type=int, default=0, help="train on the first N images")
    parser.add_argument("--rounds", type=int, default=1, help="weft-torch, then torch-weft, ...")
    parser.add_argument("--torch-first", action="store_true", help="torch-weft, then weft-torch")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/time_to_accuracy"))
    parser.add_argument("--tiny", action="store_true", help="512 images, 2 epochs: a smoke test")
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), workers={args.workers}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    results: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for name in args.datasets:
        recipe = RECIPES[name]
        if args.target is not None:
            recipe = dataclasses.replace(recipe, target=args.target)
        epochs = args.epochs or (2 if args.tiny else recipe.epochs)  # OneCycleLR: >= 8 steps
        for run in range(args.rounds):
            done = {}
            order = ("weft", "torch") if (run + args.torch_first) % 2 == 0 else ("torch", "weft")
            for side in order:
                if side == "weft":
                    done[side] = weft(recipe, epochs, args, run)
                else:
                    done[side] = plain_torch(recipe, epochs, args)
            results.append((name, done["weft"], done["torch"]))
            report(name, done["weft"], done["torch"])
    print("\nsummary (each line one weft run and one torch run, back to back)")
    for name, w, t in results:
        report(name, w, t)


def report(name: str, w: dict, t: dict) -> None:
    tw, tt = w["target_reached_after_s"], t["target_reached_after_s"]
    ratio = f"{tw / tt:.2f}x" if tw is not None and tt is not None else "n/a"
    print(
        f"{name} (target {w['target']}, {w['epochs']} epochs of {w['train_images']} images): "
        f"time to target weft "
        f"{fmt(tw)}, torch {fmt(tt)}, ratio {ratio}; whole run weft {w['wall_s']:.0f} s, torch "
        f"{t['wall_s']:.0f} s ({w['wall_s'] / t['wall_s']:.2f}x); final test accuracy weft "
        f"{w['test_accuracy']:.4f}, torch {t['test_accuracy']:.4f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
