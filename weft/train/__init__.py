"""weft.train: a Learner whose callbacks declare what they read and write; the order is derived
from a dependency graph checked when the Learner is built.

    learner = Learner(model, loss_fn, optimizer, data=(train, valid), callbacks=[...])
    result = learner.fit(10)          # FitResult(stop=..., history=[...])
"""

from weft.train.asynchronous import AsyncCallbackError
from weft.train.callbacks import (
    Callback,
    Checkpointer,
    EarlyStopping,
    GradAccumulation,
    GradClip,
    History,
    Lookahead,
    LRFinder,
    LRFinderResult,
    Metrics,
    MixedPrecision,
    ProgressBar,
    SanityCheck,
    SanityCheckError,
    Scheduler,
    StopOnNaN,
    Throttle,
    TimeLimit,
    ToDevice,
    find_lr,
    for_phases,
)
from weft.train.checkpoint import CheckpointError
from weft.train.distributed import DistributedError
from weft.train.events import (
    BackwardBegin,
    BackwardEnd,
    EpochBegin,
    EpochEnd,
    Event,
    FitBegin,
    FitEnd,
    LossBegin,
    StepBegin,
    StepEnd,
)
from weft.train.graph import NO_CONFLICT, GraphError, Incompatible, RunFirst
from weft.train.learner import Learner, default_callbacks
from weft.train.metrics import accuracy, top_k
from weft.train.permissions import READ, WRITE, Access, AccessError
from weft.train.phases import EvaluationPhase, Phase, TrainingPhase, ValidationPhase
from weft.train.schedules import chain, constant, cosine, linear, one_cycle, step, warmup
from weft.train.state import Progress, Step
from weft.train.stop import FitResult, Stop, StopReason

__all__ = [
    "NO_CONFLICT",
    "READ",
    "WRITE",
    "Access",
    "AccessError",
    "AsyncCallbackError",
    "BackwardBegin",
    "BackwardEnd",
    "Callback",
    "CheckpointError",
    "Checkpointer",
    "DistributedError",
    "EarlyStopping",
    "EpochBegin",
    "EpochEnd",
    "EvaluationPhase",
    "Event",
    "FitBegin",
    "FitEnd",
    "FitResult",
    "GradAccumulation",
    "GradClip",
    "GraphError",
    "History",
    "Incompatible",
    "LRFinder",
    "LRFinderResult",
    "Learner",
    "Lookahead",
    "LossBegin",
    "Metrics",
    "MixedPrecision",
    "Phase",
    "Progress",
    "ProgressBar",
    "RunFirst",
    "SanityCheck",
    "SanityCheckError",
    "Scheduler",
    "Step",
    "StepBegin",
    "StepEnd",
    "Stop",
    "StopOnNaN",
    "StopReason",
    "Throttle",
    "TimeLimit",
    "ToDevice",
    "TrainingPhase",
    "ValidationPhase",
    "accuracy",
    "chain",
    "constant",
    "cosine",
    "default_callbacks",
    "find_lr",
    "for_phases",
    "linear",
    "one_cycle",
    "step",
    "top_k",
    "warmup",
]
