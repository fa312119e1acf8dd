"""`weft train CONFIG.toml`: train a zoo (or your own) model on a catalog data set.

The config is checked as a whole before anything is built: an unknown key is reported with the
valid keys of its table, a wrong type with its dotted key. See `examples/train_shapes.toml`.
The pieces (`check_config`, `build_data`, `fit`) are shared with `weft demo`.
"""

from __future__ import annotations

import argparse
import copy
import numbers
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULTS",
    "HELP",
    "ConfigError",
    "Run",
    "add_arguments",
    "build_augment",
    "build_callbacks",
    "build_data",
    "build_model",
    "check_config",
    "fit",
    "load_config",
    "run",
]

HELP = "Train a model from a TOML config: model, data set, augmentation, optimizer, schedule."


class ConfigError(ValueError):
    """A config key is unknown, missing or of the wrong type; the message names the key."""


# The config schema: its defaults, and through them the type of every key (arrays: of their
# first element's type). Keys in _FREE hold free-form tables/arrays checked where they are used.
DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "seed": 0,
    "out": "runs/train",
    "model": {"name": "simple_cnn", "args": {}},
    "data": {
        "dataset": "shapes",
        "catalog": "",
        "train": "train",
        "valid": "valid",
        "batch_size": 64,
        "workers": 0,
        "parallel": "process",
        "mean": [0.5],
        "std": [0.25],
        "limit_train": 0,
        "limit_valid": 0,
    },
    "augment": {"train": []},
    "optimizer": {"name": "adamw", "lr": 3e-3, "weight_decay": 5e-4, "momentum": 0.9},
    "schedule": {"name": "onecycle", "pct_start": 0.25},
    "callbacks": {
        "progress": True,
        "checkpoint": True,
        "tensorboard": True,
        "early_stopping": 0,
    },
}
_CHOICES = {
    "data.parallel": ("process", "thread"),
    "optimizer.name": ("sgd", "adam", "adamw"),
    "schedule.name": ("onecycle", "cosine", "constant"),
}
_FREE = {"model.args", "augment.train"}
_MINIMA = {"epochs": 1, "data.batch_size": 1, "data.workers": 0, "data.limit_train": 0,
           "data.limit_valid": 0, "callbacks.early_stopping": 0, "optimizer.lr": 0}  # fmt: skip
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               list: "an array", dict: "a table"}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="the TOML config file")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the run's last checkpoint"
    )
    parser.add_argument("--out", type=Path, help="output folder (overrides the config's `out`)")
    parser.add_argument("--epochs", type=int, help="number of epochs (overrides the config)")
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="train in N processes on this machine, launched by torchrun's machinery (several "
        "machines: run `torchrun ... -m weft.cli train CONFIG` on each)",
    )


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and check a config file; return it merged over `DEFAULTS`."""
    from weft.datasets.catalog import tomllib

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config {path} is not valid TOML: {err}") from None
    config = check_config(raw, str(path))
    if config["data"]["catalog"]:  # relative to the config file, like catalog paths
        config["data"]["catalog"] = str(path.parent / config["data"]["catalog"])
    return config


def check_config(raw: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """`raw` merged over `DEFAULTS`, after checking every key and type."""
    config = copy.deepcopy(DEFAULTS)
    _merge(config, raw, "", source)
    for key, choices in _CHOICES.items():
        table, name = key.split(".")
        if config[table][name] not in choices:
            raise ConfigError(
                f"{source}: {key} is {config[table][name]!r}; choose one of {list(choices)}"
            )
    for key, least in _MINIMA.items():
        table, _, name = key.rpartition(".")
        value = config[table][name] if table else config[name]
        if value < least:
            raise ConfigError(f"{source}: {key} must be at least {least}, got {value}")
    return config


def _merge(into: dict, raw: dict, prefix: str, source: str) -> None:
    for key, value in raw.items():
        dotted = prefix + key
        if key not in into:
            where = f"[{prefix[:-1]}]" if prefix else "the top level"
            raise ConfigError(
                f"{source}: unknown key {dotted!r}; valid keys in {where} are {sorted(into)}"
            )
        default = into[key]
        if dotted in _FREE:
            _expect(value, type(default), dotted, source)
            into[key] = value
        elif isinstance(default, dict):
            _expect(value, dict, dotted, source)
            _merge(default, value, dotted + ".", source)
        else:
            into[key] = _expect(value, type(default), dotted, source)
            if isinstance(default, list) and default:
                for i, element in enumerate(value):
                    value[i] = _expect(element, type(default[0]), f"{dotted}[{i}]", source)


def _expect(value: Any, kind: type, key: str, source: str) -> Any:
    ok = (
        isinstance(value, numbers.Real) and not isinstance(value, bool)
        if kind is float
        else isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    )
    if not ok:
        got = "a boolean" if isinstance(value, bool) else f"{type(value).__name__} {value!r}"
        raise ConfigError(f"{source}: {key} must be {_TYPE_NAMES[kind]}, got {got}"[:300])
    return float(value) if kind is float else value


# --- data -----------------------------------------------------------------------------------------


def build_augment(specs: list, where: str = "augment.train") -> Any:
    """An augmentation pipeline from a list of `{name = "Affine", rotate = 30, ...}` tables;
    `Maybe` takes `transform = {...}`, `OneOf`/`SomeOf` take `transforms = [...]`."""
    import weft.augment as augment

    steps = [_transform(spec, f"{where}[{i}]", augment) for i, spec in enumerate(specs)]
    return augment.Sequence(*steps) if steps else None


def _transform(spec: Any, where: str, augment: Any) -> Any:
    known = sorted(
        name
        for name in augment.__all__
        if isinstance(getattr(augment, name), type)
        and issubclass(getattr(augment, name), augment.Transform)
        and name not in ("Transform", "Pixel", "Projective", "Normalize")
    )
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ConfigError(f"{where} must be a table with a 'name' (one of {known})")
    args = {k: v for k, v in spec.items() if k != "name"}
    if spec["name"] not in known:
        raise ConfigError(f"{where}: unknown transform {spec['name']!r}; choose from {known}")
    if "transform" in args:
        args["transform"] = _transform(args["transform"], f"{where}.transform", augment)
    nested = args.pop("transforms", None)
    positional = []
    if nested is not None:
        if not isinstance(nested, list):
            raise ConfigError(f"{where}.transforms must be an array of transform tables")
        positional = [
            _transform(t, f"{where}.transforms[{i}]", augment) for i, t in enumerate(nested)
        ]
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
    try:
        return getattr(augment, spec["name"])(*positional, **args)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where} ({spec['name']}): {err}") from None


@dataclass
class Data:
    """The loaders of a run and what the model needs to know about them."""

    train: Any
    valid: Any
    classes: list[str]
    in_channels: int
    train_view: Any
    augment: Any


def _pair(sample: Any) -> tuple[Any, int]:
    """(image, label) from a reader's observation: a dict with image/label, or a tuple."""
    if isinstance(sample, dict):
        return sample["image"], int(sample["label"])
    return sample[0], int(sample[1])


class _Prepare:
    """Observation -> (CHW float32 image, int64 label), augmenting first when given a pipeline.
    A class, not a closure, so process workers can pickle it."""

    def __init__(self, augment: Any, normalize: Any):
        self.augment, self.normalize = augment, normalize

    def __call__(self, sample: Any, rng: Any) -> tuple[Any, int]:
        from weft.augment import Image

        image, label = _pair(sample)
        item = (Image(image, border="replicate"),)
        if self.augment is not None:
            item = self.augment(item, rng=rng)
        (out,) = self.normalize(item, rng=rng)
        data = out.data if out.data.ndim == 3 else out.data[None]
        return data, label


def build_data(config: dict[str, Any], catalog: Any = None) -> Data:
    """Open the configured data set's splits and wrap them in loaders. The data set is looked
    up in `catalog`, else in `data.catalog` (when set) before the default search path."""

    from weft.augment import Normalize
    from weft.data import DataLoader, mapobs
    from weft.datasets import Catalog, default_catalog, load

    d = config["data"]
    if catalog is None:
        catalog = default_catalog()
        if d["catalog"]:
            catalog = Catalog.read(d["catalog"]) + catalog
    train_set = load(d["dataset"], d["train"], catalog=catalog)
    valid_set = load(d["dataset"], d["valid"], catalog=catalog)
    train_set = _subset(train_set, d["limit_train"], config["seed"])
    valid_set = _subset(valid_set, d["limit_valid"], config["seed"])
    image, _ = _pair(_first(train_set))
    channels = 1 if image.ndim == 2 else image.shape[2]
    mean, std = d["mean"], d["std"]
    if len(mean) not in (1, channels) or len(std) != len(mean):
        raise ConfigError(
            f"data.mean and data.std need 1 or {channels} entries each (the data has "
            f"{channels} channels); got {len(mean)} and {len(std)}"
        )
    normalize = Normalize(
        mean=tuple(mean * (channels // len(mean))), std=tuple(std * (channels // len(std)))
    )
    augment = build_augment(config["augment"]["train"])
    train_view = mapobs(_Prepare(augment, normalize), train_set)
    valid_view = mapobs(_Prepare(None, normalize), valid_set)
    loader = {"parallel": d["parallel"], "workers": d["workers"], "seed": config["seed"]}
    return Data(
        train=DataLoader(train_view, d["batch_size"], shuffle=True, **loader),
        valid=DataLoader(valid_view, max(256, d["batch_size"]), **loader),
        classes=_classes(train_set, d["dataset"], catalog),
        in_channels=channels,
        train_view=train_set,
        augment=augment,
    )


def _subset(data: Any, limit: int, seed: int) -> Any:
    """`limit` observations drawn at random (in file order), or all when `limit` is 0: the
    first n of a class-sorted split would hold one class."""
    import numpy as np

    from weft.data import numobs, obsview

    n = numobs(data)
    if not limit or limit >= n:
        return data
    return obsview(data, np.sort(np.random.default_rng(seed).choice(n, limit, replace=False)))


def _first(data: Any) -> Any:
    from weft.data import getobs

    return getobs(data, 0)


def _classes(data: Any, name: str, catalog: Any) -> list[str]:
    found = getattr(getattr(data, "data", data), "classes", None)
    if found:
        return list(found)
    entry = catalog[name]
    if entry.classes:
        return list(entry.classes)
    raise ConfigError(
        f"data set {name!r} does not name its classes; add `classes = [...]` to its catalog entry"
    )


# --- the run ----------------------------------------------------------------------------------------


def build_model(config: dict[str, Any], data: Data) -> Any:
    """The configured model; `in_channels`/`num_classes` default to what the data has."""
    from weft import models

    args = dict(config["model"]["args"])
    name = config["model"]["name"]
    if ":" not in name:
        if name == "mlp":
            image, _ = _pair(_first(data.train_view))
            args.setdefault("in_features", int(image.size))
        else:
            args.setdefault("in_channels", data.in_channels)
        args.setdefault("num_classes", len(data.classes))
    try:
        return models.build_model(name, **args)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model: {err}") from None


def build_optimizer(config: dict[str, Any], model: Any) -> Any:
    import torch

    o = config["optimizer"]
    if o["name"] == "sgd":
        return torch.optim.SGD(
            model.parameters(), o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"]
        )
    cls = torch.optim.Adam if o["name"] == "adam" else torch.optim.AdamW
    return cls(model.parameters(), o["lr"], weight_decay=o["weight_decay"])


def run(args: argparse.Namespace) -> int:
    from weft.datasets import DataError

    try:
        if args.nproc < 1:
            raise ConfigError(f"--nproc must be at least 1; got {args.nproc}")
        config = load_config(args.config)
        if args.out is not None:
            config["out"] = str(args.out)
        if args.epochs is not None:
            config["epochs"] = args.epochs
        if args.nproc > 1:  # the config is checked once, here, before any process starts
            return _launch(args)
        result = fit(config, resume=args.resume)
    except (ConfigError, DataError) as err:
        print(f"weft train: {err}", file=sys.stderr)
        return 2
    if result.learner.dist is None or result.learner.dist.is_zero:
        print_artifacts(result)
    return 0


def _launch(args: argparse.Namespace) -> int:
    """Run this command in `args.nproc` processes under torchrun's elastic agent, on this
    machine (`--standalone`: a free local port for the rendezvous)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args
    from torch.distributed.run import run as torchrun

    command = [str(args.config)] + (["--resume"] if args.resume else [])
    if args.out is not None:
        command += ["--out", str(args.out)]
    if args.epochs is not None:
        command += ["--epochs", str(args.epochs)]
    launch = ["--standalone", "--nproc-per-node", str(args.nproc), "--module", "weft.cli"]
    try:
        torchrun(parse_args([*launch, "train", *command]))
    except ChildFailedError as err:
        failed = ", ".join(f"rank {rank}" for rank in sorted(err.failures))
        print(f"weft train: {failed} failed; the first error is above", file=sys.stderr)
        return 1
    return 0


@dataclass
class Run:
    """What a finished run leaves behind: the learner, its history and the files written."""

    learner: Any
    history: list[dict[str, Any]]
    data: Data
    artifacts: dict[str, Path]


def build_callbacks(config: dict[str, Any], out: Path) -> list[Any]:
    """Metrics (loss, accuracy), the learning-rate schedule, logging to `out/log.csv` (and
    TensorBoard in `out/tensorboard`), and the configured extras."""
    from weft.train import Metrics, ProgressBar, accuracy
    from weft.train.callbacks import Checkpointer, EarlyStopping, Scheduler
    from weft.train.loggers import CSVBackend, Logger, TensorBoardBackend
    from weft.train.schedules import constant, cosine, one_cycle

    lr, schedule, c = config["optimizer"]["lr"], config["schedule"], config["callbacks"]
    curve = {
        "onecycle": lambda: one_cycle(lr, schedule["pct_start"]),
        "cosine": lambda: cosine(lr, 0.0),
        "constant": lambda: constant(lr),
    }[schedule["name"]]()
    backends = [CSVBackend(out / "log.csv")]
    if c["tensorboard"]:
        backends.append(TensorBoardBackend(out / "tensorboard"))
    callbacks = [
        Metrics(accuracy=accuracy),
        ProgressBar(quiet=not c["progress"]),
        Scheduler(lr=curve),
        Logger(*backends, every=10, hparams=_flat(config)),
    ]
    if c["checkpoint"]:
        callbacks.append(Checkpointer(out / "checkpoints", keep_last=1))
    if c["early_stopping"]:
        callbacks.append(EarlyStopping("valid_loss", patience=c["early_stopping"]))
    return callbacks


def _flat(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config as flat `a.b` keys with scalar values, for TensorBoard's hparams."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def fit(config: dict[str, Any], *, resume: bool = False, catalog: Any = None) -> Run:
    """Build everything a checked config describes and train; `resume` continues from the
    run's newest checkpoint."""
    import torch

    from weft.train import Learner
    from weft.train.callbacks import Checkpointer
    from weft.train.loggers import Logger

    torch.manual_seed(config["seed"])
    out = Path(config["out"])
    checkpoints = out / "checkpoints"
    if resume and not (config["callbacks"]["checkpoint"] and any(checkpoints.glob("*.pt"))):
        raise ConfigError(
            f"--resume: there is no checkpoint in {checkpoints}; run without --resume first "
            "(with callbacks.checkpoint = true), or point --out at the run to continue"
        )
    data = build_data(config, catalog)
    model = build_model(config, data)
    optimizer = build_optimizer(config, model)
    out.mkdir(parents=True, exist_ok=True)
    callbacks = build_callbacks(config, out)
    learner = Learner(
        model, torch.nn.CrossEntropyLoss(), optimizer, (data.train, data.valid), callbacks
    )
    try:
        learner.fit(config["epochs"], resume=checkpoints if resume else None)
    finally:
        for loader in (data.train, data.valid, *learner.data.values()):  # shards, if distributed
            loader.close()
        next(cb for cb in callbacks if isinstance(cb, Logger)).close()
    artifacts = {"metrics CSV": out / "log.csv"}
    if config["callbacks"]["tensorboard"]:
        artifacts["TensorBoard logs"] = out / "tensorboard"
    saver = next((cb for cb in callbacks if isinstance(cb, Checkpointer)), None)
    if saver is not None and saver.last is not None:
        artifacts["checkpoint"] = saver.last
    return Run(learner, list(learner.cbstate.history), data, artifacts)


def print_artifacts(run: Run, stream: Any = None) -> None:
    """Say where each file of the run is."""
    stream = stream or sys.stdout
    last = run.history[-1] if run.history else {}
    summary = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k.startswith("valid_"))
    print(f"\nfinished: {summary}" if summary else "\nfinished", file=stream)
    width = max(len(name) for name in run.artifacts)
    for name, path in run.artifacts.items():
        print(f"  {name.ljust(width)}  {path}", file=stream)
