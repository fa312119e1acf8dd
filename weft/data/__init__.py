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
    "JoinView",
    "MapView",
    "ObsView",
    "ShuffleView",
    "View",
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
    "randobs",
    "register",
    "sample_rng",
    "shardobs",
    "shuffleobs",
    "splitobs",
    "undersample",
]
