"""The idx format of MNIST and Fashion-MNIST, gzipped or not.

An idx file is a 4-byte magic (two zero bytes, a dtype code, the number of dimensions), one
big-endian uint32 per dimension, then the values, big-endian, in C order. The header is read
and checked against the file's size when the reader is built; the values are decompressed on
the first `getobs` in each process.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np

from weft.datasets._reader import DataError, Reader

__all__ = ["MNIST", "IdxArray", "read_idx_header"]

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx_header(path: str | os.PathLike) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, header size in bytes) of an idx file, checked against its length."""
    path = Path(path)
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _DTYPES:
                raise DataError(
                    f"{path} is not an idx file: its first bytes {head.hex() or '(none)'} are not "
                    "an idx magic number (00 00 <type> <ndim>)"
                )
            ndim = head[3]
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(f"{path} is truncated inside its header")
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    dtype = np.dtype(_DTYPES[head[2]])
    shape = struct.unpack(f">{ndim}I", dims)
    header = 4 + 4 * ndim
    expected = header + math.prod(shape) * dtype.itemsize
    actual = _payload_size(path)
    gz = path.suffix == ".gz"
    if actual is not None and actual != (expected % 2**32 if gz else expected):
        holds = f"its gzip trailer records {actual} bytes" if gz else f"it holds {actual} bytes"
        raise DataError(_size_message(path, shape, dtype, expected, actual, holds))
    return dtype, shape, header


def _payload_size(path: Path) -> int | None:
    """The decompressed size without decompressing: the file size, or a gzip's ISIZE trailer
    (the size modulo 2**32; None when the trailer cannot be trusted)."""
    size = path.stat().st_size
    if path.suffix != ".gz":
        return size
    if size < 18:
        return None
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        return int.from_bytes(f.read(4), "little")


def _size_message(path: Path, shape, dtype, expected: int, actual: int, holds: str) -> str:
    kind = "truncated" if actual < expected else "longer than its header says"
    return (
        f"{path} is {kind}: its header declares shape {tuple(shape)} of {dtype.str} "
        f"({expected} bytes with the header) but {holds}; re-download it"
    )


class IdxArray(Reader):
    """The array in one idx file, as a lazy container over its first axis."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"idx file {self.path} does not exist")
        self.dtype, self.shape, self.header = read_idx_header(self.path)
        self._values: np.ndarray | None = None

    def values(self) -> np.ndarray:
        """The whole array (native byte order), read once per process."""
        if self._values is None:
            try:
                with _open(self.path) as f:
                    raw = f.read()
            except (OSError, EOFError, zlib.error) as err:
                raise DataError(f"{self.path} is truncated or corrupt: {err}") from None
            expected = self.header + math.prod(self.shape) * self.dtype.itemsize
            if len(raw) != expected:
                holds = f"it decompresses to {len(raw)} bytes"
                raise DataError(
                    _size_message(self.path, self.shape, self.dtype, expected, len(raw), holds)
                )
            array = np.frombuffer(raw, self.dtype, offset=self.header).reshape(self.shape)
            self._values = array.astype(self.dtype.newbyteorder("="), copy=False)
        return self._values

    def __numobs__(self) -> int:
        return self.shape[0]

    def __obs_source__(self, idx: int) -> str:
        return f"{self.path} item {idx}"

    def __getobs__(self, idx):
        return self.values()[idx]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_values": None}


class MNIST(Reader):
    """MNIST-style idx image + label files as (28x28 uint8 image, label) observations.

    `MNIST(root, "train")` reads `train-images-idx3-ubyte[.gz]` and `train-labels-idx1-ubyte[.gz]`
    (`"test"` reads the `t10k-` pair); Fashion-MNIST uses the same names.
    """

    PREFIXES: ClassVar[dict[str, str]] = {"train": "train", "test": "t10k"}

    def __init__(self, root: str | os.PathLike, split: str = "train"):
        if split not in self.PREFIXES:
            raise ValueError(f"MNIST split must be one of {list(self.PREFIXES)}, got {split!r}")
        root = Path(root)
        prefix = self.PREFIXES[split]
        self.images = IdxArray(_find(root, f"{prefix}-images-idx3-ubyte"))
        self.labels = IdxArray(_find(root, f"{prefix}-labels-idx1-ubyte"))
        if len(self.images.shape) != 3 or len(self.labels.shape) != 1:
            raise DataError(
                f"{self.images.path} must hold a 3-d image array and {self.labels.path} a 1-d "
                f"label array; got shapes {self.images.shape} and {self.labels.shape}"
            )
        if self.images.shape[0] != self.labels.shape[0]:
            raise DataError(
                f"{self.images.path} holds {self.images.shape[0]} images but "
                f"{self.labels.path} holds {self.labels.shape[0]} labels"
            )

    def __numobs__(self) -> int:
        return self.images.shape[0]

    def __obs_source__(self, idx: int) -> str:
        return self.images.__obs_source__(idx)

    def __getobs__(self, idx):
        return self.images.values()[idx], self.labels.values()[idx].astype(np.int64)


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"{root} has neither {stem}.gz nor {stem}")
