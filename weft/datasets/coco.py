"""COCO-style JSON annotations: boxes, polygons and keypoints per image.

Observations are dicts: `image` (HxWx3 uint8), `boxes` (N x 4 float32, x0 y0 x1 y1 in pixels),
`labels` (N int64 category ids), `polygons` (per object, a list of K x 2 float32 arrays; crowd
regions stored as RLE have none) and, when the file has them, `keypoints` (N x K x 3 float32:
x, y, visibility).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from weft.datasets._reader import DataError, Reader
from weft.datasets.decode import decode_image
from weft.datasets.files import open_store

__all__ = ["COCO"]


class COCO(Reader):
    """Images of a COCO annotation file with their objects, read from `images` (a folder or
    zip; by default the annotation file's folder)."""

    def __init__(self, annotations: str | os.PathLike, images: str | os.PathLike | None = None):
        path = Path(annotations)
        try:
            doc = json.loads(path.read_text())
        except OSError as err:
            raise DataError(f"cannot read COCO annotations {path}: {err.strerror}") from None
        except json.JSONDecodeError as err:
            raise DataError(f"{path} is not valid JSON: {err}") from None
        for key in ("images", "annotations", "categories"):
            if not isinstance(doc.get(key), list):
                raise DataError(f"{path} is not a COCO file: it has no '{key}' list")
        self.path = path
        self.store = open_store(path.parent if images is None else images)
        self.categories = {c["id"]: c for c in doc["categories"]}
        self.keypoint_names = next(
            (c["keypoints"] for c in doc["categories"] if c.get("keypoints")), None
        )
        self.images = doc["images"]
        known = {img["id"]: i for i, img in enumerate(self.images)}
        self.objects: list[list[dict]] = [[] for _ in self.images]
        for n, ann in enumerate(doc["annotations"]):
            missing = [k for k in ("image_id", "bbox", "category_id") if k not in ann]
            if missing:
                raise DataError(f"{path}: annotation {n} (id {ann.get('id')}) lacks {missing}")
            if ann["image_id"] not in known:
                raise DataError(
                    f"{path}: annotation {n} (id {ann.get('id')}) refers to image id "
                    f"{ann['image_id']}, which is not in 'images'"
                )
            if ann["category_id"] not in self.categories:
                raise DataError(
                    f"{path}: annotation {n} (id {ann.get('id')}) has category_id "
                    f"{ann['category_id']}, which is not in 'categories'"
                )
            self.objects[known[ann["image_id"]]].append(ann)

    def __numobs__(self) -> int:
        return len(self.images)

    def __obs_source__(self, idx: int) -> str:
        return self.store.source(self.images[idx]["file_name"])

    def _get(self, i: int) -> dict[str, Any]:
        name = self.images[i]["file_name"]
        objects = self.objects[i]
        boxes = np.array([a["bbox"] for a in objects], np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        sample = {
            "image": decode_image(self.store.read(name), self.store.source(name)),
            "boxes": boxes,
            "labels": np.array([a["category_id"] for a in objects], np.int64),
            "polygons": [_polygons(a) for a in objects],
        }
        if self.keypoint_names is not None:
            k = len(self.keypoint_names)
            sample["keypoints"] = np.array(
                [a.get("keypoints", [0] * 3 * k) for a in objects], np.float32
            ).reshape(-1, k, 3)
        return sample


def _polygons(annotation: dict) -> list[np.ndarray]:
    segmentation = annotation.get("segmentation")
    if not isinstance(segmentation, list):  # RLE (crowd regions) has no polygon
        return []
    return [np.array(p, np.float32).reshape(-1, 2) for p in segmentation]
