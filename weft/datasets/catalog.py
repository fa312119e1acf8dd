"""The data set catalog: what and where each data set is, kept apart from how code opens it.

A catalog is a TOML file of `[datasets.<name>]` tables (see `builtin.toml` and
`examples/Data.toml`). `load(name, split)` looks the name up along a search path, first match
wins: the files in $WEFT_CATALOG (separated by os.pathsep), `./Data.toml`, the user catalog
(`~/.config/weft/Data.toml`), then the built-in catalog of standard sets. Paths in a catalog are
relative to its file's folder and cannot leave it; the built-in catalog's folder is $WEFT_DATA
(a local copy of the sets) or else the download cache.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the backport has the same API
    import tomli as tomllib

from weft.datasets._reader import DataError
from weft.datasets.download import cache_dir, download, unpack
from weft.datasets.formats import FORMATS, inside

__all__ = ["Catalog", "Entry", "catalog_paths", "default_catalog", "load"]

BUILTIN = Path(__file__).with_name("builtin.toml")
_ARCHIVES = (".tar.gz", ".tgz", ".tar")
_SHA256 = re.compile(r"[0-9a-f]{64}")

# key -> (accepted types, description) for the error messages
_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "description": ((str,), "a string"),
    "format": ((str,), "a string"),
    "path": ((str,), "a string"),
    "files": ((list,), "an array of {url, sha256} tables"),
    "splits": ((dict,), "a table of split name -> spec"),
    "classes": ((list,), "an array of strings"),
}


@dataclass(frozen=True)
class Remote:
    """One file to download: its URL, its sha256 and the name it is saved under."""

    url: str
    sha256: str
    name: str


@dataclass(frozen=True)
class Entry:
    """One data set of a catalog, checked when the catalog is read."""

    name: str
    format: str
    splits: dict[str, Any]
    root: Path
    catalog: str
    description: str = ""
    path: str | None = None
    files: tuple[Remote, ...] = ()
    classes: list[str] | None = None

    def where(self, key: str) -> str:
        """`<catalog file>: datasets.<name>.<key>`, for messages."""
        return f"{self.catalog}: datasets.{self.name}.{key}"

    def local(self) -> Path | None:
        """The declared path inside the catalog's folder (None when the set has no path)."""
        return None if self.path is None else inside(self.root, self.path, self.where("path"))

    def download_target(self) -> Path | None:
        """Where downloads of this set go (None for sets without files)."""
        return cache_dir() / (self.path or self.name) if self.files else None

    def location(self) -> Path | None:
        """Where the data is: the declared path if present, else the download target."""
        local = self.local()
        if local is not None and local.exists():
            return local
        return self.download_target() or local

    def present(self) -> bool:
        """Whether the data is on disk (generated sets always are)."""
        location = self.location()
        return location is None or location.exists()

    def fetch(self) -> Path:
        """Download (and unpack) the files into the cache, all or nothing; return the folder."""
        target = self.download_target()
        if target is None:
            raise DataError(
                f"{self.name} is not at {self.local()} and its catalog entry ({self.catalog}) "
                "lists no files to download; put the data there or fix the path"
            )
        if target.exists():
            return target
        staging = target.with_name(f".{target.name}.partial")
        staging.mkdir(parents=True, exist_ok=True)
        for remote in self.files:
            saved = download(remote.url, staging / remote.name, remote.sha256)
            if remote.name.endswith(_ARCHIVES):
                unpack(saved, staging / _strip_archive(remote.name))
                saved.unlink()
        os.replace(staging, target)
        return target

    def open(self, split: str, *, download: bool = True) -> Any:
        """The container of one split."""
        if split not in self.splits:
            raise DataError(
                f"data set {self.name!r} has no split {split!r}; its splits are "
                f"{', '.join(map(repr, self.splits))}"
            )
        location = self.location()
        if location is not None and not location.exists():
            if not download:
                raise DataError(f"data set {self.name!r} is not at {location} (download=False)")
            location = self.fetch()
        return FORMATS[self.format](location, self.splits[split], self)


def _strip_archive(name: str) -> str:
    for suffix in _ARCHIVES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


class Catalog:
    """Named data set entries, read from TOML files; earlier files win on name clashes."""

    def __init__(self, entries: dict[str, Entry] | None = None, files: list[str] | None = None):
        self.entries: dict[str, Entry] = dict(entries or {})
        self.files: list[str] = list(files or [])

    @classmethod
    def read(cls, path: str | os.PathLike, root: str | os.PathLike | None = None) -> Catalog:
        """Read one catalog file; relative paths resolve against `root` (default: its folder)."""
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text())
        except OSError as err:
            raise DataError(f"cannot read catalog {path}: {err.strerror}") from None
        except tomllib.TOMLDecodeError as err:
            raise DataError(f"catalog {path} is not valid TOML: {err}") from None
        unknown = sorted(set(doc) - {"datasets"})
        if unknown:
            raise DataError(
                f"catalog {path}: unknown top-level keys {unknown}; the only valid one is "
                "'datasets' (write data sets as [datasets.<name>] tables)"
            )
        tables = doc.get("datasets", {})
        if not isinstance(tables, dict):
            raise DataError(f"catalog {path}: 'datasets' must be a table of [datasets.<name>]")
        folder = Path(root) if root is not None else path.parent
        entries = {name: _entry(name, table, folder, str(path)) for name, table in tables.items()}
        return cls(entries, [str(path)])

    def __add__(self, other: Catalog) -> Catalog:
        return Catalog({**other.entries, **self.entries}, self.files + other.files)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __iter__(self):
        return iter(self.entries.values())

    def __getitem__(self, name: str) -> Entry:
        entry = self.entries.get(name)
        if entry is None:
            close = difflib.get_close_matches(name, self.entries, n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            raise DataError(
                f"unknown data set {name!r}; {hint}known data sets: {', '.join(sorted(self.entries))} "
                f"(catalogs read: {', '.join(self.files)})"
            )
        return entry


def _entry(name: str, table: Any, root: Path, source: str) -> Entry:
    where = f"{source}: datasets.{name}"
    if not isinstance(table, dict):
        raise DataError(f"{where} must be a table")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise DataError(f"{where}: unknown keys {unknown}; valid keys are {sorted(_KEYS)}")
    for key, value in table.items():
        types, what = _KEYS[key]
        if not isinstance(value, types):
            raise DataError(f"{where}.{key} must be {what}, got {type(value).__name__}")
    for key in ("format", "splits"):
        if key not in table:
            raise DataError(f"{where} has no '{key}'")
    if table["format"] not in FORMATS:
        raise DataError(
            f"{where}.format: unknown format {table['format']!r}; known formats are "
            f"{sorted(FORMATS)}"
        )
    if not table["splits"]:
        raise DataError(f"{where}.splits is empty; declare at least one split")
    classes = table.get("classes")
    if classes is not None and not all(isinstance(c, str) for c in classes):
        raise DataError(f"{where}.classes must be an array of strings")
    entry = Entry(
        name=name,
        format=table["format"],
        splits=table["splits"],
        root=root,
        catalog=source,
        description=table.get("description", ""),
        path=table.get("path"),
        files=tuple(
            _remote(f, f"{where}.files[{i}]") for i, f in enumerate(table.get("files", []))
        ),
        classes=classes,
    )
    entry.local()  # refuses a path that leaves the catalog's folder, when the catalog is read
    return entry


def _remote(spec: Any, where: str) -> Remote:
    if not isinstance(spec, dict) or set(spec) - {"url", "sha256", "name"} or "url" not in spec:
        raise DataError(f"{where} must be a table with 'url', 'sha256' and optionally 'name'")
    sha = str(spec.get("sha256", "")).lower()
    if not _SHA256.fullmatch(sha):
        raise DataError(f"{where}.sha256 must be 64 hex digits, got {spec.get('sha256')!r}")
    url = spec["url"]
    name = spec.get("name") or url.rstrip("/").rsplit("/", 1)[-1]
    if "/" in name or name in ("", ".", ".."):
        raise DataError(f"{where}.name {name!r} must be a plain file name")
    return Remote(url, sha, name)


def _config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "weft"


def catalog_paths() -> list[Path]:
    """The catalog files searched before the built-in one, first match first."""
    paths = [Path(p) for p in os.environ.get("WEFT_CATALOG", "").split(os.pathsep) if p]
    for candidate in (Path.cwd() / "Data.toml", _config_dir() / "Data.toml"):
        if candidate.is_file():
            paths.append(candidate)
    return paths


def default_catalog() -> Catalog:
    """The catalog files of the search path, then the built-in catalog."""
    catalog = Catalog()
    for path in catalog_paths():
        catalog = catalog + Catalog.read(path)
    data_root = Path(os.environ["WEFT_DATA"]) if os.environ.get("WEFT_DATA") else cache_dir()
    return catalog + Catalog.read(BUILTIN, root=data_root)


def load(
    name: str,
    split: str | None = None,
    *,
    catalog: Catalog | None = None,
    download: bool = True,
) -> Any:
    """Open data set `name` from the catalog: the container of `split`, or a dict of every
    split when `split` is None. Missing sets with a download source are fetched first."""
    entry = (catalog or default_catalog())[name]
    if split is None:
        return {s: entry.open(s, download=download) for s in entry.splits}
    return entry.open(split, download=download)
