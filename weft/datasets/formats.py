"""The readers a catalog entry can name in its `format`, and how a split opens one.

A format is a function `(location, split_spec, entry) -> container`: `location` is the folder or
file the entry resolves to, `split_spec` the entry's value for the split (a string or a table).

Extending: `register_format("myformat", opener)` makes `format = "myformat"` valid in catalogs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from weft.datasets._reader import DataError

__all__ = ["FORMATS", "inside", "register_format"]

Opener = Callable[[Path | None, Any, Any], Any]
FORMATS: dict[str, Opener] = {}


def register_format(name: str, opener: Opener) -> None:
    """Make `format = name` in a catalog open data sets with `opener`."""
    FORMATS[name] = opener


def inside(root: Path, relative: str, where: str) -> Path:
    """`root / relative`, refusing absolute paths and paths that climb out of `root`."""
    if Path(relative).is_absolute():
        raise DataError(
            f"{where}: path {relative!r} is absolute; catalog paths are relative to the "
            "catalog file's folder"
        )
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise DataError(
            f"{where}: path {relative!r} leads outside {root}; catalog paths must stay inside "
            "the catalog file's folder"
        )
    return path


def _string(spec: Any, where: str) -> str:
    if not isinstance(spec, str):
        raise DataError(f"{where} must be a string, got {type(spec).__name__}")
    return spec


def _table(spec: Any, keys: tuple[str, ...], where: str) -> dict:
    if not isinstance(spec, dict):
        raise DataError(f"{where} must be a table with keys {list(keys)}")
    wrong = sorted(set(spec) - set(keys)) or sorted(set(keys) - set(spec))
    if wrong:
        raise DataError(f"{where} must have exactly the keys {list(keys)}; got {sorted(spec)}")
    return spec


def _mnist(location, spec, entry):
    from weft.datasets.idx import MNIST

    return MNIST(location, _string(spec, entry.where("splits")))


def _cifar10(location, spec, entry):
    from weft.datasets.cifar import cifar10

    return cifar10(location, _string(spec, entry.where("splits")))


def _cifar100(location, spec, entry):
    from weft.datasets.cifar import cifar100

    return cifar100(location, _string(spec, entry.where("splits")))


def _imagefolder(location, spec, entry):
    from weft.datasets.imagefolder import ImageFolder

    subdir = _string(spec, entry.where("splits"))
    if location.is_dir():
        location, subdir = inside(location, subdir, entry.where("splits")), ""
    return ImageFolder(location, subdir, classes=entry.classes)


def _segmentation(location, spec, entry):
    from weft.datasets.segmentation import SegmentationPairs

    where = entry.where("splits")
    spec = _table(spec, ("images", "masks"), where)
    return SegmentationPairs(
        inside(location, spec["images"], where),
        inside(location, spec["masks"], where),
        classes=entry.classes,
    )


def _coco(location, spec, entry):
    from weft.datasets.coco import COCO

    where = entry.where("splits")
    spec = _table(spec, ("annotations", "images"), where)
    return COCO(
        inside(location, spec["annotations"], where), inside(location, spec["images"], where)
    )


def _shapes(location, spec, entry):
    from weft.datasets.shapes import Shapes

    if not isinstance(spec, dict):
        raise DataError(f"{entry.where('splits')} must be a table of Shapes arguments")
    try:
        return Shapes(**spec)
    except TypeError as err:
        raise DataError(f"{entry.where('splits')}: {err}") from None


for _name, _opener in {
    "mnist": _mnist,
    "cifar10-binary": _cifar10,
    "cifar100-binary": _cifar100,
    "imagefolder": _imagefolder,
    "segmentation": _segmentation,
    "coco": _coco,
    "shapes": _shapes,
}.items():
    register_format(_name, _opener)
