"""weft.datasets: readers for standard formats, a data set catalog, and the generated shapes set.

Readers are lazy `weft.data` containers: they decode on `getobs` and name the file behind each
observation (`weft.data.obs_source`). `load("mnist", split="train")` finds a set through the
catalog search path (see `weft.datasets.catalog`). Imports no torch.
"""

from weft.datasets._reader import DataError, Reader
from weft.datasets.catalog import Catalog, Entry, catalog_paths, default_catalog, load
from weft.datasets.cifar import CIFARBinary, cifar10, cifar100
from weft.datasets.coco import COCO
from weft.datasets.decode import decode_image, decode_mask
from weft.datasets.download import cache_dir, download, sha256_of
from weft.datasets.files import DirStore, ZipStore, open_store
from weft.datasets.formats import register_format
from weft.datasets.idx import MNIST, IdxArray, read_idx_header
from weft.datasets.imagefolder import ImageFolder
from weft.datasets.segmentation import SegmentationPairs
from weft.datasets.shapes import SHAPES, Shapes

__all__ = [
    "COCO",
    "MNIST",
    "SHAPES",
    "CIFARBinary",
    "Catalog",
    "DataError",
    "DirStore",
    "Entry",
    "IdxArray",
    "ImageFolder",
    "Reader",
    "SegmentationPairs",
    "Shapes",
    "ZipStore",
    "cache_dir",
    "catalog_paths",
    "cifar10",
    "cifar100",
    "decode_image",
    "decode_mask",
    "default_catalog",
    "download",
    "load",
    "open_store",
    "read_idx_header",
    "register_format",
    "sha256_of",
]
