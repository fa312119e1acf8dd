"""Segmentation pairs: an image folder and a mask folder matched by file stem.

`SegmentationPairs("camvid/val", "camvid/valannot")` pairs `val/x.png` with `valannot/x.png`;
Oxford Pets pairs `images/x.jpg` with `annotations/trimaps/x.png`. Masks hold class ids and are
returned exactly as stored.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath

import numpy as np

from weft.datasets._reader import DataError, Reader
from weft.datasets.decode import decode_image, decode_mask
from weft.datasets.files import open_store
from weft.datasets.imagefolder import IMAGE_EXTENSIONS

__all__ = ["SegmentationPairs"]


class SegmentationPairs(Reader):
    """(HxWx3 uint8 image, HxW mask) observations from two folders (or zip sub-folders).

    Every image needs a mask with the same stem; `strict=False` drops images without one
    instead of raising. Sizes are checked when a pair is decoded.
    """

    def __init__(
        self,
        images: str | os.PathLike,
        masks: str | os.PathLike,
        *,
        classes: list[str] | None = None,
        strict: bool = True,
    ):
        self.images, self.masks = open_store(images), open_store(masks)
        self.classes = classes
        by_stem = {_stem(n): n for n in self.masks.names() if _is_image(n)}
        pairs, missing = [], []
        for name in self.images.names():
            if not _is_image(name):
                continue
            mask = by_stem.get(_stem(name))
            if mask is None:
                missing.append(name)
            else:
                pairs.append((name, mask))
        if missing and strict:
            shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise DataError(
                f"{len(missing)} images in {self.images.source('')} have no mask with the same "
                f"name in {self.masks.source('')}: {shown} (pass strict=False to skip them)"
            )
        if not pairs:
            raise DataError(
                f"no image/mask pairs in {self.images.source('')} and {self.masks.source('')}"
            )
        self.pairs = pairs

    def __numobs__(self) -> int:
        return len(self.pairs)

    def __obs_source__(self, idx: int) -> str:
        return self.images.source(self.pairs[idx][0])

    def _get(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image_name, mask_name = self.pairs[i]
        image = decode_image(self.images.read(image_name), self.images.source(image_name))
        mask = decode_mask(self.masks.read(mask_name), self.masks.source(mask_name))
        if mask.shape != image.shape[:2]:
            raise DataError(
                f"mask {self.masks.source(mask_name)} is {mask.shape[1]}x{mask.shape[0]} but its "
                f"image {self.images.source(image_name)} is {image.shape[1]}x{image.shape[0]}"
            )
        return image, mask


def _stem(name: str) -> str:
    return PurePosixPath(name).stem


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)
