"""`weft demo`: from install to a trained model with curves to look at, no download.

Trains a small CNN on the generated shapes set with augmentation and a one-cycle schedule
(~99% validation accuracy in 6 epochs), then writes the training curves, an augmentation
preview and an ONNX export next to the run's checkpoint and metrics, and prints where each is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["HELP", "add_arguments", "demo_config", "run"]

HELP = "Train a small CNN on the built-in shapes set and write curves, logs and an ONNX file."


def demo_config(
    out: str | Path, *, small: bool = False, epochs: int | None = None, workers: int = 1
) -> dict[str, Any]:
    """The demo's run as a checked `weft train` config."""
    from weft.commands.train import check_config

    raw = {
        "epochs": epochs or (1 if small else 6),
        "out": str(out),
        "model": {"name": "simple_cnn", "args": {"widths": [16, 32, 64]}},
        "data": {
            "dataset": "shapes",
            "batch_size": 64,
            "workers": workers,
            "limit_train": 256 if small else 0,
            "limit_valid": 128 if small else 0,
        },
        "augment": {
            "train": [
                {"name": "Affine", "rotate": 30, "scale": [0.85, 1.15], "translate": 0.1},
                {"name": "Maybe", "transform": {"name": "FlipX"}},
                {
                    "name": "ColorJitter",
                    "brightness": 0.2,
                    "contrast": 0.2,
                    "saturation": 0.2,
                    "hue": 0.05,
                },
            ]
        },
        "optimizer": {"name": "adamw", "lr": 3e-3, "weight_decay": 5e-4},
        "schedule": {"name": "onecycle"},
    }
    return check_config(raw, "weft demo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("weft-demo"), help="output folder (default: ./weft-demo)"
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help="a tiny run (256 images, 1 epoch) for tests and a quick look",
    )
    parser.add_argument("--epochs", type=int, help="number of epochs (default 6; 1 with --small)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="data loading processes (default 1; 0 loads in the main process)",
    )


def run(args: argparse.Namespace) -> int:
    from weft.commands.train import fit, print_artifacts

    config = demo_config(args.out, small=args.small, epochs=args.epochs, workers=args.workers)
    print(
        f"weft demo: training a small CNN on generated shapes; writing to {args.out}/",
        file=sys.stderr,
    )
    run = fit(config)
    out = Path(config["out"])
    run.artifacts["training curves"] = plot_curves(run.history, out / "curves.png")
    run.artifacts["augmentation preview"] = preview(run, out / "augmentation.png")
    try:
        run.artifacts["ONNX model"] = export_onnx(run, out / "model.onnx")
    except ImportError as err:  # the onnx extra is optional
        print(f"weft demo: ONNX export skipped ({err}); install weft[onnx]", file=sys.stderr)
    print_artifacts(run)
    return 0


def plot_curves(history: list[dict[str, Any]], path: Path) -> Path:
    """Loss, accuracy and learning rate per epoch, for training and validation."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=False):
        for phase in ("train", "valid"):
            values = [row.get(f"{phase}_{metric}") for row in history]
            ax.plot(epochs, values, marker="o", label=phase)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.legend()
    axes[2].plot(epochs, [row.get("lr") for row in history], marker="o")
    axes[2].set_title("learning rate (end of epoch)")
    axes[2].set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def preview(run: Any, path: Path) -> Path:
    """A grid of augmented versions of one training image with its mask and keypoints."""
    from weft.augment import Image, Keypoints, Mask, Resize, Sequence, show_grid
    from weft.data import getobs

    sample = getobs(run.data.train_view, 0)
    items = (
        Image(sample["image"], border="replicate"),
        Mask(sample["mask"]),
        Keypoints(sample["keypoints"]),
    )
    # drawn at 128 px: the 32 px originals are too small to see the mask and keypoints
    steps = [Resize((128, 128))] + ([run.data.augment] if run.data.augment else [])
    show_grid(Sequence(*steps), items, n=16, path=path, columns=8)
    return path


def export_onnx(run: Any, path: Path) -> Path:
    """The trained model as one ONNX file, checked against PyTorch with onnxruntime."""
    import torch

    from weft.onnx import export

    model = run.learner.model
    sample = torch.zeros(1, run.data.in_channels, 32, 32)
    export(
        model,
        sample,
        path,
        input_layout="NCHW",
        mean=[0.5],
        std=[0.25],
        class_names=run.data.classes,
    )
    return path
