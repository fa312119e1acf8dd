"""Standard callbacks. The callback-authoring contract is in `weft.train.callbacks.base`."""

from weft.train.callbacks.base import Callback, for_phases
from weft.train.callbacks.history import History
from weft.train.callbacks.metrics import Metrics
from weft.train.callbacks.progress import ProgressBar
from weft.train.callbacks.stop_on_nan import StopOnNaN

__all__ = ["Callback", "History", "Metrics", "ProgressBar", "StopOnNaN", "for_phases"]
