"""Image folders: one sub-folder per class, on disk or inside a zip archive.

`ImageFolder("pets/")` or `ImageFolder("cifar10_jpg.zip", subdir="train")` reads
`<class>/<file>` entries; class names are the sorted sub-folder names and labels their indices.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from weft.datasets._reader import DataError, Reader
from weft.datasets.decode import decode_image
from weft.datasets.files import open_store

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class ImageFolder(Reader):
    """A classification set laid out as `<class>/<image>`; observations are (HxWx3 uint8, label).

    Files are decoded on `getobs`; `classes` lists the class names in label order. Pass
    `classes` to fix the label order (and to check every folder is expected).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        subdir: str = "",
        *,
        classes: Sequence[str] | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ):
        self.store = open_store(path, subdir)
        where = self.store.source("")
        files = [
            name
            for name in self.store.names()
            if name.lower().endswith(tuple(extensions)) and "/" in name
        ]
        if not files:
            raise DataError(
                f"no images in {where}: expected <class>/<image> files ending in "
                f"{', '.join(extensions)}"
            )
        found = sorted({name.split("/", 1)[0] for name in files})
        if classes is None:
            classes = found
        else:
            unknown = sorted(set(found) - set(classes))
            if unknown:
                raise DataError(
                    f"{where} has class folders {unknown} that are not among the declared "
                    f"classes {list(classes)}"
                )
        self.classes = list(classes)
        index = {name: i for i, name in enumerate(self.classes)}
        self.files = files
        self.labels = np.array([index[f.split("/", 1)[0]] for f in files], dtype=np.int64)

    def __numobs__(self) -> int:
        return len(self.files)

    def __obs_source__(self, idx: int) -> str:
        return self.store.source(self.files[idx])

    def _get(self, i: int) -> tuple[np.ndarray, int]:
        name = self.files[i]
        return decode_image(self.store.read(name), self.store.source(name)), int(self.labels[i])
