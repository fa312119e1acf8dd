"""Where a reader's files live: a folder on disk or a zip archive read in place.

A store lists file names (relative, '/'-separated) and reads one file's bytes. A zip archive is
never extracted; its handle is opened lazily in each process, so a store built in the parent
can be pickled to spawned loader workers and used after a fork without sharing a file offset.
Members stored uncompressed (as image archives usually are: JPEG and PNG do not deflate) are
sliced from a memory map of the archive, CRC-checked, with no seek or read call per file.

Extending: any object with `names()`, `read(name)` and `source(name)` is a store.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import zipfile
import zlib
from pathlib import Path

from weft.datasets._reader import DataError

__all__ = ["DirStore", "ZipStore", "open_store"]


class DirStore:
    """Files under a folder on disk."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"folder {self.root} does not exist")

    def names(self) -> list[str]:
        """Every file below the root, relative and sorted."""
        return sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
        )

    def read(self, name: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except OSError as err:
            raise DataError(f"cannot read {self.source(name)}: {err.strerror}") from None

    def source(self, name: str) -> str:
        return str(self.root / name)


class ZipStore:
    """Members of a zip archive, optionally below a folder `prefix` inside it."""

    def __init__(self, path: str | os.PathLike, prefix: str = ""):
        self.path = Path(path)
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._local = threading.local()
        self._pid = -1
        self._mapped: mmap.mmap | None = None
        self._spans: dict[str, tuple[int, int, int] | None] = {}
        if not self.path.is_file():
            raise DataError(f"zip archive {self.path} does not exist")

    def _zip(self) -> zipfile.ZipFile:
        # One handle per process and thread: forked workers must not share the parent's file
        # offset, and threads must not interleave seeks on one handle.
        if self._pid != os.getpid():
            self._local, self._pid = threading.local(), os.getpid()
            self._mapped = None
        handle = getattr(self._local, "zip", None)
        if handle is None:
            try:
                handle = self._local.zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as err:
                raise DataError(f"cannot open zip archive {self.path}: {err}") from None
        return handle

    def names(self) -> list[str]:
        """Every file member below the prefix, relative to it and sorted."""
        n = len(self.prefix)
        return sorted(
            info.filename[n:]
            for info in self._zip().infolist()
            if not info.is_dir() and info.filename.startswith(self.prefix)
        )

    def read(self, name: str) -> bytes:
        member = self.prefix + name
        try:
            span = self._spans[member] if member in self._spans else self._span(member)
            if span is None:  # compressed or encrypted: zipfile inflates and checks it
                return self._zip().read(member)
            start, size, crc = span
            data = self._map()[start : start + size]
        except KeyError:
            raise DataError(f"{self.source(name)} is not in the archive") from None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
            raise DataError(f"cannot read {self.source(name)}: {err}") from None
        if len(data) != size or zlib.crc32(data) != crc:
            raise DataError(f"cannot read {self.source(name)}: bad CRC-32, the archive is corrupt")
        return data

    def _span(self, member: str) -> tuple[int, int, int] | None:
        """(offset, size, CRC-32) of a stored member's bytes in the archive; None when the member
        must go through zipfile (compressed or encrypted)."""
        info = self._zip().getinfo(member)
        span = None
        if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
            # the local header's name and extra field lengths may differ from the central
            # directory's, so the data offset is read from the local header itself
            header = self._map()[info.header_offset : info.header_offset + 30]
            if len(header) < 30 or header[:4] != b"PK\x03\x04":
                raise zipfile.BadZipFile(f"no local header for {member} at {info.header_offset}")
            name_length, extra_length = struct.unpack("<HH", header[26:30])
            start = info.header_offset + 30 + name_length + extra_length
            span = (start, info.file_size, info.CRC)
        self._spans[member] = span
        return span

    def _map(self) -> mmap.mmap:
        self._zip()  # drops a map inherited through fork with the other per-process state
        if self._mapped is None:
            with open(self.path, "rb") as f:
                self._mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self._mapped

    def source(self, name: str) -> str:
        return f"{self.path}:{self.prefix}{name}"

    def __getstate__(self) -> dict:
        return {"path": self.path, "prefix": self.prefix}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local, self._pid, self._mapped, self._spans = threading.local(), -1, None, {}


def open_store(path: str | os.PathLike, subdir: str = "") -> DirStore | ZipStore:
    """A store for `path`: a zip archive when it is a file, else a folder; `subdir` narrows it."""
    path = Path(path)
    if path.is_file():
        return ZipStore(path, subdir)
    return DirStore(path / subdir if subdir else path)
