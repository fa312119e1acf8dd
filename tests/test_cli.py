"""The `weft` command line: --help, `weft datasets`, `weft train` configs and every config error,
resuming, and `weft demo` end to end at a reduced size with its files checked."""

from __future__ import annotations

import csv
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from weft.augment import Image
from weft.cli import COMMANDS, main
from weft.commands.train import ConfigError, build_augment, build_data, check_config, load_config
from weft.datasets import DataError


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for name in ("demo", "train", "datasets"):
        assert name in COMMANDS and f"    {name}" in out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--resume" in capsys.readouterr().out


# --- weft datasets ----------------------------------------------------------------------------------


def test_datasets_lists_catalog(isolated, capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}
    assert rows["shapes"][1] == "present" and "generated" in out
    assert rows["mnist"][1] == "download" and rows["mnist"][-1] == str(isolated / "cache" / "mnist")
    assert rows["camvid_val"][1] == "missing"


def test_datasets_with_shared_data_and_extra_catalog(isolated, capsys, monkeypatch, shared_data):
    monkeypatch.setenv("WEFT_DATA", str(shared_data))
    (isolated / "extra.toml").write_text(
        '[datasets.mine]\nformat = "shapes"\nsplits = { a = { n = 2 } }\n'
    )
    assert main(["datasets", "--catalog", str(isolated / "extra.toml")]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}
    assert rows["mnist"][1:2] == ["present"] and rows["mnist"][-1] == str(shared_data / "mnist")
    assert rows["mine"][1] == "present" and str(isolated / "extra.toml") in out


def test_datasets_bad_catalog(isolated, capsys):
    (isolated / "Data.toml").write_text("[datasets.x]\nformat = 3\n")
    assert main(["datasets"]) == 1
    assert "datasets.x.format must be a string, got int" in capsys.readouterr().out


# --- weft train ---------------------------------------------------------------------------------------

TINY = """
epochs = 1
out = "run"
[model]
name = "simple_cnn"
args = {{ widths = [4, 8] }}
[data]
limit_train = 64
limit_valid = 32
batch_size = 32
{extra}
"""


def write_config(folder: Path, extra: str = "", text: str | None = None) -> Path:
    path = folder / "config.toml"
    path.write_text(textwrap.dedent(text if text is not None else TINY.format(extra=extra)))
    return path


def test_train_and_resume(isolated, capsys):
    config = write_config(
        isolated, '[augment]\ntrain = [{ name = "Maybe", transform = { name = "FlipX" } }]'
    )
    assert main(["train", str(config), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"checkpoint +run/checkpoints/epoch0-step2\.pt", out)
    with pytest.warns(
        UserWarning, match=r"resuming run/checkpoints/epoch0-step2\.pt.* training runs to epoch 2"
    ):
        assert main(["train", str(config), "--epochs", "2", "--resume"]) == 0
    log = read_log(isolated / "run" / "log.csv")
    assert sorted(step for step, _ in log["valid/accuracy"]) == [2, 4]  # epochs end at steps 2, 4
    lrs = dict(log["hparams/lr"])
    assert lrs[4] < 1e-5 < lrs[2]  # one-cycle over the resumed fit: annealed at the end


def read_log(path: Path) -> dict[str, list[tuple[int, float]]]:
    """The logger's long-format CSV as tag -> [(step, value)]."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert rows and set(rows[0]) == {"step", "tag", "value"}
    log: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        if not row["tag"].startswith("hparam/"):
            log.setdefault(row["tag"], []).append((int(row["step"]), float(row["value"])))
    return log


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"learning_rate": 0.1}, r"unknown key 'learning_rate'; valid keys in the top level are \['augment', 'callbacks', 'data', 'epochs'"),
        ({"optimizer": {"momentun": 0.9}}, r"unknown key 'optimizer.momentun'; valid keys in \[optimizer\] are \['lr', 'momentum', 'name', 'weight_decay'\]"),
        ({"optimizer": {"lr": "fast"}}, r"optimizer.lr must be a number, got str 'fast'"),
        ({"data": {"workers": {"n": 2}}}, r"data.workers must be an integer, got dict"),
        ({"data": "mnist"}, r"data must be a table, got str 'mnist'"),
        ({"callbacks": {"progress": 1}}, r"callbacks.progress must be true or false, got int 1"),
        ({"epochs": True}, r"epochs must be an integer, got a boolean"),
        ({"optimizer": {"name": "lion"}}, r"optimizer.name is 'lion'; choose one of \['sgd', 'adam', 'adamw'\]"),
        ({"data": {"batch_size": 0}}, r"data.batch_size must be at least 1, got 0"),
        ({"model": {"args": [1]}}, r"model.args must be a table, got list"),
        ({"data": {"mean": [0.5, "x"]}}, r"data.mean\[1\] must be a number, got str 'x'"),
        ({"data": {"workers": -1}}, r"data.workers must be at least 0, got -1"),
    ],
    ids=["top-key", "nested-key", "type", "table-type", "not-a-table", "bool", "bool-for-int", "choice", "range", "free-table", "array-element", "minimum"],
)  # fmt: skip
def test_config_errors(raw, message):
    with pytest.raises(ConfigError, match=rf"^cfg.toml: {message}"):
        check_config(raw, "cfg.toml")


@pytest.mark.parametrize(
    ("augment", "message"),
    [
        ([{"name": "Rotato"}], r"augment.train\[0\]: unknown transform 'Rotato'; choose from \['Affine'"),
        ([{"name": "Affine", "spin": 3}], r"augment.train\[0\] \(Affine\): .*'spin'"),
        ([{"name": "Maybe", "transform": {"p": 1}}], r"augment.train\[0\].transform must be a table with a 'name'"),
        ([{"name": "OneOf", "transforms": {"name": "FlipX"}}], r"augment.train\[0\].transforms must be an array"),
    ],
    ids=["unknown", "bad-argument", "nested", "transforms"],
)  # fmt: skip
def test_augment_config_errors(augment, message):
    with pytest.raises(ConfigError, match=message):
        build_augment(augment)


def test_augment_config_builds_nested_pipelines():
    pipe = build_augment(
        [{"name": "OneOf", "transforms": [{"name": "FlipX"}, {"name": "FlipY"}]},
         {"name": "Affine", "scale": [0.9, 1.1]}]
    )  # fmt: skip
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    (out,) = pipe((Image(image),), rng=0)
    assert out.data.shape == (4, 4, 3)


def test_data_config_errors(isolated):
    with pytest.raises(DataError, match=r"unknown data set 'shapez'; did you mean 'shapes'\?"):
        build_data(check_config({"data": {"dataset": "shapez"}}))
    bad_mean = {"data": {"mean": [0.1, 0.2], "std": [1.0, 1.0], "limit_train": 4}}
    with pytest.raises(ConfigError, match=r"data.mean and data.std need 1 or 3 entries each"):
        build_data(check_config(bad_mean))


def test_train_model_errors(isolated, capsys):
    bad_model = TINY.format(extra="").replace('name = "simple_cnn"', 'name = "resnet50"')
    assert main(["train", str(write_config(isolated, text=bad_model))]) == 2
    assert "model: unknown model 'resnet50'; zoo models are" in capsys.readouterr().err
    bad_arg = TINY.format(extra="").replace("widths = [4, 8]", "depth = 3")
    assert main(["train", str(write_config(isolated, text=bad_arg))]) == 2
    assert "it accepts ['in_channels', 'num_classes', 'widths']" in capsys.readouterr().err


def test_train_unknown_dataset_is_a_message(isolated, capsys):
    config = write_config(
        isolated, text=TINY.format(extra="").replace("[data]", '[data]\ndataset = "mnsit"')
    )
    assert main(["train", str(config)]) == 2
    assert "weft train: unknown data set 'mnsit'; did you mean 'mnist'?" in capsys.readouterr().err


def test_train_file_errors(isolated, capsys):
    assert main(["train", str(isolated / "nope.toml")]) == 2
    assert "cannot read config" in capsys.readouterr().err
    assert main(["train", str(write_config(isolated, text="epochs = [\n"))]) == 2
    assert "is not valid TOML" in capsys.readouterr().err
    assert main(["train", str(write_config(isolated)), "--resume"]) == 2
    assert "--resume: there is no checkpoint in run/checkpoints" in capsys.readouterr().err


# --- weft demo ------------------------------------------------------------------------------------------


def test_demo_end_to_end_small(isolated, capsys):
    import cv2
    import onnxruntime
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = isolated / "demo"
    assert main(["demo", "--small", "--out", str(out), "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    for name in (
        "checkpoints/epoch0-step4.pt",
        "log.csv",
        "tensorboard",
        "curves.png",
        "augmentation.png",
        "model.onnx",
    ):
        assert str(out / name) in printed
    accuracy = read_log(out / "log.csv")["valid/accuracy"]
    assert len(accuracy) == 1 and 0 <= accuracy[0][1] <= 1
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"train/loss", "valid/loss", "valid/accuracy", "hparams/lr"} <= set(
        events.Tags()["scalars"]
    )
    assert events.Scalars("valid/accuracy")[0].value == pytest.approx(accuracy[0][1])
    for png in ("curves.png", "augmentation.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert cv2.imread(str(out / png)).shape[2] == 3
    session = onnxruntime.InferenceSession(str(out / "model.onnx"))
    logits = session.run(None, {session.get_inputs()[0].name: np.zeros((2, 3, 32, 32), np.float32)})
    assert logits[0].shape == (2, 5)


def test_example_config_is_valid():
    config = load_config(Path(__file__).resolve().parents[1] / "examples" / "train_shapes.toml")
    assert config["model"]["args"] == {"widths": [16, 32, 64]}
    assert len(build_augment(config["augment"]["train"]).transforms) == 3


def test_train_on_real_grey_and_colour_sets(isolated, capsys, monkeypatch, shared_data):
    monkeypatch.setenv("WEFT_DATA", str(shared_data))
    for dataset, model in (("mnist", "mlp"), ("cifar10_jpg", "resnet")):
        text = (
            TINY.format(extra='valid = "test"\n[callbacks]\ntensorboard = false')
            .replace('name = "simple_cnn"', f'name = "{model}"')
            .replace("args = { widths = [4, 8] }", "")
            .replace("[data]", f'[data]\ndataset = "{dataset}"')
        )
        assert main(["train", str(write_config(isolated, text=text)), "--out", dataset]) == 0
        accuracy = read_log(isolated / dataset / "log.csv")["valid/accuracy"][0][1]
        assert 0 <= accuracy < 1  # a random subset of the class-sorted test split


def test_train_with_a_catalog_beside_the_config(isolated, capsys):
    folder = isolated / "project"
    folder.mkdir()
    (folder / "sets.toml").write_text(
        '[datasets.tiny_shapes]\nformat = "shapes"\n'
        "splits = { train = { n = 40, classes = ['circle', 'star'] }, valid = { n = 20, seed = 1, classes = ['circle', 'star'] } }\n"
    )
    text = TINY.format(extra="").replace(
        "[data]", '[data]\ndataset = "tiny_shapes"\ncatalog = "sets.toml"'
    )
    assert main(["train", str(write_config(folder, text=text)), "--out", "tiny"]) == 0
    assert "valid_accuracy" in capsys.readouterr().out
    state = torch.load(next((isolated / "tiny" / "checkpoints").glob("*.pt")), weights_only=True)
    assert list(state["model"].values())[-1].shape == (2,)  # 2 classes: the catalog set's


def test_help_and_datasets_import_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, weft.datasets; from weft.cli import build_parser; build_parser(); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
