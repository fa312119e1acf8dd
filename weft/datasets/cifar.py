"""CIFAR-10 and CIFAR-100 in the official *binary* format (never the pickled python version:
unpickling a downloaded file runs whatever code it holds).

A CIFAR-10 record is 1 label byte + 3072 pixel bytes (3 planes of 32x32); a CIFAR-100 record
is 2 label bytes (coarse, fine) + 3072. Files are memory-mapped; images decode on `getobs`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from weft.datasets._reader import DataError, Reader

__all__ = ["CIFARBinary", "cifar10", "cifar100"]

_PIXELS = 3 * 32 * 32
_CIFAR10_FILES = {
    "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
    "test": ["test_batch.bin"],
}
_CIFAR100_FILES = {"train": ["train.bin"], "test": ["test.bin"]}


class CIFARBinary(Reader):
    """Records of CIFAR binary files as (32x32x3 uint8 image, label) observations.

    `label_bytes` is 1 for CIFAR-10 and 2 for CIFAR-100, where `label` picks "fine" (100
    classes, the default) or "coarse" (20 superclasses).
    """

    def __init__(
        self, files: Sequence[str | os.PathLike], label_bytes: int = 1, label: str = "fine"
    ):
        if label not in ("fine", "coarse"):
            raise ValueError(f"CIFAR label must be 'fine' or 'coarse', got {label!r}")
        self.files = [Path(f) for f in files]
        self.record = label_bytes + _PIXELS
        self.label_offset = label_bytes - 1 if label == "fine" else 0
        counts = []
        for path in self.files:
            if not path.is_file():
                raise DataError(f"CIFAR binary file {path} does not exist")
            size = path.stat().st_size
            if size == 0 or size % self.record:
                raise DataError(
                    f"{path} is truncated or not a CIFAR binary file: {size} bytes is not a "
                    f"whole number of {self.record}-byte records; re-download it"
                )
            counts.append(size // self.record)
        self.starts = np.cumsum([0, *counts])
        self._maps: list[np.ndarray] | None = None

    def _records(self, k: int) -> np.ndarray:
        if self._maps is None:
            self._maps = [np.memmap(p, np.uint8, "r").reshape(-1, self.record) for p in self.files]
        return self._maps[k]

    def __numobs__(self) -> int:
        return int(self.starts[-1])

    def _locate(self, idx: int) -> tuple[int, int]:
        k = int(np.searchsorted(self.starts, idx, side="right")) - 1
        return k, idx - int(self.starts[k])

    def __obs_source__(self, idx: int) -> str:
        k, row = self._locate(idx)
        return f"{self.files[k]} record {row}"

    def _get(self, i: int) -> tuple[np.ndarray, int]:
        k, row = self._locate(i)
        record = self._records(k)[row]
        image = record[-_PIXELS:].reshape(3, 32, 32).transpose(1, 2, 0).copy()
        return image, int(record[self.label_offset])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": None}


def _files(root: Path, names: dict[str, list[str]], split: str, what: str) -> list[Path]:
    if split not in names:
        raise ValueError(f"{what} split must be one of {list(names)}, got {split!r}")
    # The official archives unpack into sub-folders (cifar-10-batches-bin/); look below root.
    for first in sorted(root.rglob(names[split][0])):
        folder = first.parent
        if all((folder / n).is_file() for n in names[split]):
            return [folder / n for n in names[split]]
    raise DataError(f"{root} does not hold the {what} binary files {names[split]}")


def cifar10(root: str | os.PathLike, split: str = "train") -> CIFARBinary:
    """CIFAR-10 from the folder of `cifar-10-binary.tar.gz` (the `.bin` files)."""
    return CIFARBinary(_files(Path(root), _CIFAR10_FILES, split, "CIFAR-10"), 1)


def cifar100(root: str | os.PathLike, split: str = "train", label: str = "fine") -> CIFARBinary:
    """CIFAR-100 from the folder of `cifar-100-binary.tar.gz` (`train.bin`, `test.bin`)."""
    return CIFARBinary(_files(Path(root), _CIFAR100_FILES, split, "CIFAR-100"), 2, label)
