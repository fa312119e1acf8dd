"""weft.data: lazy data containers, composable views and a parallel loader. Imports no torch.

Any container answers `numobs(data)` and `getobs(data, idx)`; views wrap containers lazily and
compose; loading is iterating a batch view, in parallel. The torch-aware device prefetcher lives
in `weft.data.device` and is imported only when used.
"""

from weft.data.collate import collate
from weft.data.containers import (
    as_indices,
    copy_into,
    getobs,
    getobs_into,
    numobs,
    obs_source,
    register,
)
from weft.data.loader import DataLoader, Loader, LoaderError, WorkerDiedError
from weft.data.packed import Packed, packed
from weft.data.rng import epoch_context, sample_rng
from weft.data.views import (
    BatchView,
    JoinView,
    MapView,
    ObsView,
    ShuffleView,
    View,
    batchview,
    filterobs,
    joinobs,
    kfolds,
    mapobs,
    obsview,
    oversample,
    randobs,
    shardobs,
    shuffleobs,
    splitobs,
    undersample,
)

__all__ = [
    "BatchView",
    "DataLoader",
    "JoinView",
    "Loader",
    "LoaderError",
    "MapView",
    "ObsView",
    "Packed",
    "ShuffleView",
    "View",
    "WorkerDiedError",
    "as_indices",
    "batchview",
    "collate",
    "copy_into",
    "epoch_context",
    "filterobs",
    "getobs",
    "getobs_into",
    "joinobs",
    "kfolds",
    "mapobs",
    "numobs",
    "obs_source",
    "obsview",
    "oversample",
    "packed",
    "randobs",
    "register",
    "sample_rng",
    "shardobs",
    "shuffleobs",
    "splitobs",
    "undersample",
]
