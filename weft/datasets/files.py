"""Where a reader's files live: a folder on disk or a zip archive read in place.

A store lists file names (relative, '/'-separated) and reads one file's bytes. A zip archive is
never extracted; its handle is opened lazily in each process, so a store built in the parent
can be pickled to spawned loader workers and used after a fork without sharing a file offset.

Extending: any object with `names()`, `read(name)` and `source(name)` is a store.
"""

from __future__ import annotations

import os
import threading
import zipfile
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
        if not self.path.is_file():
            raise DataError(f"zip archive {self.path} does not exist")

    def _zip(self) -> zipfile.ZipFile:
        # One handle per process and thread: forked workers must not share the parent's file
        # offset, and threads must not interleave seeks on one handle.
        if self._pid != os.getpid():
            self._local, self._pid = threading.local(), os.getpid()
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
        try:
            return self._zip().read(self.prefix + name)
        except KeyError:
            raise DataError(f"{self.source(name)} is not in the archive") from None
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise DataError(f"cannot read {self.source(name)}: {err}") from None

    def source(self, name: str) -> str:
        return f"{self.path}:{self.prefix}{name}"

    def __getstate__(self) -> dict:
        return {"path": self.path, "prefix": self.prefix}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local, self._pid = threading.local(), -1


def open_store(path: str | os.PathLike, subdir: str = "") -> DirStore | ZipStore:
    """A store for `path`: a zip archive when it is a file, else a folder; `subdir` narrows it."""
    path = Path(path)
    if path.is_file():
        return ZipStore(path, subdir)
    return DirStore(path / subdir if subdir else path)
