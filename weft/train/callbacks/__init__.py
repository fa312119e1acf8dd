"""Standard callbacks. The callback-authoring contract is in `weft.train.callbacks.base`."""

from weft.train.callbacks.base import Callback, for_phases
from weft.train.callbacks.checkpointer import Checkpointer
from weft.train.callbacks.early_stopping import EarlyStopping
from weft.train.callbacks.grad_accumulation import GradAccumulation
from weft.train.callbacks.grad_clip import GradClip
from weft.train.callbacks.history import History
from weft.train.callbacks.lookahead import Lookahead
from weft.train.callbacks.lr_finder import LRFinder, LRFinderResult, find_lr
from weft.train.callbacks.metrics import Metrics
from weft.train.callbacks.mixed_precision import MixedPrecision
from weft.train.callbacks.progress import ProgressBar
from weft.train.callbacks.sanity_check import SanityCheck, SanityCheckError
from weft.train.callbacks.scheduler import Scheduler
from weft.train.callbacks.stop_on_nan import StopOnNaN
from weft.train.callbacks.throttle import Throttle
from weft.train.callbacks.time_limit import TimeLimit
from weft.train.callbacks.to_device import ToDevice

__all__ = [
    "Callback",
    "Checkpointer",
    "EarlyStopping",
    "GradAccumulation",
    "GradClip",
    "History",
    "LRFinder",
    "LRFinderResult",
    "Lookahead",
    "Metrics",
    "MixedPrecision",
    "ProgressBar",
    "SanityCheck",
    "SanityCheckError",
    "Scheduler",
    "StopOnNaN",
    "Throttle",
    "TimeLimit",
    "ToDevice",
    "find_lr",
    "for_phases",
]
