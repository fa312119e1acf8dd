"""CIFAR-10 with weft: a small ResNet, one-cycle SGD, random crops and mirrors, label smoothing.

The shared copy of CIFAR-10 is JPEG quality 75 (4:2:0 chroma), read straight from its zip:
pixels are lossy, so accuracies are a little below what the PNG/binary originals give. Elsewhere
the built-in catalog's `cifar10` (the official binary files) works the same way.

On 2 CPU cores an epoch of the default ResNet takes most of an hour, so the full recipe is a
GPU job (`--device cuda --amp`: mixed precision, the same script); `--limit` trains on a subset
for a bounded CPU run. See examples/README.md for what was measured.

    .venv/bin/python examples/cifar10.py --out runs/cifar10 --device cuda --amp
    .venv/bin/python examples/cifar10.py --out runs/cifar10-cpu --limit 10000 --epochs 2
    .venv/bin/python examples/cifar10.py --tiny --out /tmp/cifar10   # a smoke test

Writes `checkpoints/`, `model.onnx` and `results.json` into `--out`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import weft.augment as A
from weft.data import DataLoader, mapobs, obsview
from weft.datasets import load
from weft.models import ResNet
from weft.onnx import export
from weft.train import Checkpointer, Learner, Metrics, MixedPrecision, ToDevice, accuracy

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
TARGET = 0.90


def loaders(limit: int, batch_size: int, workers: int, seed: int) -> tuple[Any, Any, list[str]]:
    """(train, test) loaders of (3x32x32 images, labels), and the class names. `limit` > 0
    keeps that many training images (a random subset) and a fifth as many test images."""
    train, test = load("cifar10_jpg", "train"), load("cifar10_jpg", "test")
    classes = train.classes
    if limit:
        pick = np.random.default_rng(seed)
        train = obsview(train, pick.choice(len(train), limit, replace=False))
        test = obsview(test, pick.choice(len(test), max(limit // 5, 64), replace=False))
    augment = A.Sequence(
        A.Pad(4, 4, 4, 4), A.RandomCrop(32), A.Maybe(A.FlipX()), A.Normalize(MEAN, STD)
    )
    train = mapobs(A.on_arrays(augment, (A.Image, None)), train)
    test = mapobs(A.on_arrays(A.Normalize(MEAN, STD), (A.Image, None)), test)
    common = {"workers": workers, "seed": seed}
    return (
        DataLoader(train, batch_size, shuffle=True, drop_last=True, **common),
        DataLoader(test, 500, **common),
        classes,
    )


def resnet() -> ResNet:
    """A ResNet with one residual block per stage at 32, 16 and 8 pixels (64-128-256 channels):
    ~0.19 GMAC per image."""
    return ResNet(widths=(64, 128, 256), blocks=(1, 1, 1))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Train a small ResNet on CIFAR-10 (JPEG copy).")
    parser.add_argument("--out", type=Path, default=Path("runs/cifar10"))
    parser.add_argument("--tiny", action="store_true", help="128 training images, 1 epoch")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--limit", type=int, default=0, help="train on this many images")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.2, help="one-cycle peak for SGD")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA float16)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs, limit = (1, 128) if args.tiny else (args.epochs, args.limit)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    train, test, classes = loaders(limit, args.batch_size, args.workers, args.seed)
    model = resnet()
    optimizer = torch.optim.SGD(
        model.parameters(), args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    callbacks = [
        ToDevice(args.device),
        Metrics(accuracy),
        Checkpointer(args.out / "checkpoints", monitor="valid_accuracy", mode="max"),
    ]
    if args.amp:
        callbacks.append(MixedPrecision(device_type=torch.device(args.device).type))
    loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    learner = Learner(model, loss, optimizer, (train, test), callbacks)
    started = time.perf_counter()
    with train, test:
        fit = learner.fit_one_cycle(epochs, args.lr)
    seconds = time.perf_counter() - started

    model.cpu()
    export(
        model, torch.zeros(1, 3, 32, 32), args.out / "model.onnx",
        mean=MEAN, std=STD, class_names=classes,
    )  # fmt: skip
    results = {
        "dataset": "cifar10_jpg (JPEG quality 75)",
        "train_images": limit or 50_000,
        "test_accuracy": fit.history[-1]["valid_accuracy"],
        "target": TARGET,
        "epochs": epochs,
        "wall_s": seconds,
        "device": args.device,
        "amp": args.amp,
        "history": fit.history,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"cifar10 (JPEG q75): test accuracy {results['test_accuracy']:.4f} after {epochs} epochs "
        f"on {results['train_images']} images in {seconds / 60:.1f} min ({args.device})"
    )
    return results


if __name__ == "__main__":
    main()
