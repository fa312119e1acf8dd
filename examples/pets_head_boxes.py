"""Pet head boxes with weft: a small CNN regresses the head's bounding box from the image.

Small and honest: the shared Oxford-IIIT Pet subset holds 150 images with one head box each
(PASCAL VOC xml); 120 train, 30 validate, no pretrained backbone. The box rides along with the
image through the same fused warp (resize, rotation, scale, shift, mirror), so it always
frames the same head. Reports the mean intersection over union with the true box on the held-out
images, next to the baseline of always predicting the mean training box.

    .venv/bin/python examples/pets_head_boxes.py --out runs/pets_head_boxes
    .venv/bin/python examples/pets_head_boxes.py --tiny --out /tmp/boxes   # a smoke test

Writes `checkpoints/`, `model.onnx` and `results.json` into `--out`.
"""

from __future__ import annotations

import argparse
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import weft.augment as A
from weft.data import DataLoader, mapobs, obsview, splitobs
from weft.datasets import default_catalog, load
from weft.onnx import export
from weft.train import Checkpointer, Learner, Metrics

SIZE = 96


def head_box(path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    """The head box (1 x 4: x0, y0, x1, y1 in pixels) and the image's (height, width) from a
    PASCAL VOC annotation file."""
    root = ET.parse(path).getroot()
    box = root.find("object/bndbox")
    if box is None:
        raise ValueError(f"{path} has no object/bndbox element")
    corners = [float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
    size = int(root.findtext("size/height")), int(root.findtext("size/width"))
    return np.array([corners], np.float32), size


def image_of(sample: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The image of an (image, trimap) pair; this example does not use the trimap."""
    return sample[0]


def box_target(sample: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(image, 1 x 4 pixel box) -> (image, 4 coordinates as fractions of the frame)."""
    image, boxes = sample
    return image, (boxes[0] / SIZE).astype(np.float32)


def box_iou(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean intersection over union of matching (x0, y0, x1, y1) boxes."""
    low = torch.maximum(predictions[:, :2], targets[:, :2])
    high = torch.minimum(predictions[:, 2:], targets[:, 2:])
    inter = (high - low).clamp(min=0).prod(1)

    def area(b: torch.Tensor) -> torch.Tensor:
        return (b[:, 2:] - b[:, :2]).clamp(min=0).prod(1)

    return (inter / (area(predictions) + area(targets) - inter).clamp(min=1e-9)).mean()


def regressor(widths: Sequence[int] = (16, 32, 64, 128, 128)) -> nn.Sequential:
    """Stride-2 conv-BN-ReLU stages down to 3x3, then a linear layer to 4 coordinates in (0, 1).
    No global pooling: where things are is the whole point."""
    layers: list[nn.Module] = []
    for cin, cout in zip([3, *widths[:-1]], widths, strict=True):
        layers += [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
    side = SIZE // 2 ** len(widths)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(widths[-1] * side**2, 4), nn.Sigmoid())


def loaders(tiny: bool, workers: int, seed: int) -> tuple[Any, Any, float]:
    """(train, valid) loaders of (3xSIZExSIZE images, 4 box fractions), and the mean-box
    baseline's IoU on the validation images."""
    pets = load("pets_subset", "all")
    xmls = default_catalog()["pets_subset"].location() / "annotations" / "xmls"
    annotations = [head_box(xmls / f"{Path(name).stem}.xml") for name, _ in pets.pairs]
    boxes = np.stack([box for box, _ in annotations])  # n x 1 x 4
    data = (mapobs(image_of, pets), boxes)  # a tuple of containers is a container of tuples
    train, valid = splitobs(data, 0.8, shuffle=True, seed=seed)
    if tiny:
        train, valid = obsview(train, np.arange(16)), obsview(valid, np.arange(8))

    frames = np.array([(w, h, w, h) for _, (h, w) in annotations], np.float32)
    fractions = torch.from_numpy(boxes[:, 0] / frames)
    mean_box = fractions[train.indices].mean(0, keepdim=True)
    baseline = box_iou(mean_box.expand(len(valid), 4), fractions[valid.indices]).item()

    augment = A.Sequence(
        A.Resize(SIZE),
        A.Affine(rotate=10, scale=(0.9, 1.1), translate=0.05),
        A.Maybe(A.FlipX()),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        A.Normalize(),
    )
    resize = A.Sequence(A.Resize(SIZE), A.Normalize())
    train = mapobs(box_target, mapobs(A.on_arrays(augment, (A.Image, A.BoundingBoxes)), train))
    valid = mapobs(box_target, mapobs(A.on_arrays(resize, (A.Image, A.BoundingBoxes)), valid))
    common = {"workers": workers, "seed": seed}
    return (
        DataLoader(train, 16, shuffle=True, drop_last=True, **common),
        DataLoader(valid, 32, **common),
        baseline,
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Regress pet head boxes with a small CNN.")
    parser.add_argument("--out", type=Path, default=Path("runs/pets_head_boxes"))
    parser.add_argument("--tiny", action="store_true", help="16 + 8 images, 1 epoch")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = 1 if args.tiny else args.epochs
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    train, valid, baseline = loaders(args.tiny, args.workers, args.seed)
    model = regressor()
    optimizer = torch.optim.AdamW(model.parameters(), 3e-3, weight_decay=0.01)
    callbacks = [
        Metrics(iou=box_iou),
        Checkpointer(args.out / "checkpoints", monitor="valid_iou", mode="max"),
    ]
    learner = Learner(model, nn.SmoothL1Loss(beta=0.05), optimizer, (train, valid), callbacks)
    started = time.perf_counter()
    with train, valid:
        fit = learner.fit_one_cycle(epochs, 3e-3)
    seconds = time.perf_counter() - started

    export(model, torch.zeros(1, 3, SIZE, SIZE), args.out / "model.onnx")
    results = {
        "dataset": "pets_subset head boxes (120 train / 30 valid images)",
        "iou": fit.history[-1]["valid_iou"],
        "mean_box_baseline_iou": baseline,
        "epochs": epochs,
        "wall_s": seconds,
        "history": fit.history,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"pet head boxes: validation IoU {results['iou']:.3f} (mean-box baseline "
        f"{baseline:.3f}) after {epochs} epochs in {seconds / 60:.1f} min"
    )
    return results


if __name__ == "__main__":
    main()
