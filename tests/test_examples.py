"""The examples run end to end at a tiny size on the real data sets, and leave usable artefacts:
a results file, a checkpoint that restores the trained model, and an ONNX file that
onnxruntime runs to the same outputs as that model."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from weft.models import AirbenchNet, MirrorAveraged
from weft.train import checkpoint

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def examples(shared_data: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Import an example module by name, with the catalog pointed at the shared data."""
    monkeypatch.setenv("WEFT_DATA", str(shared_data))
    monkeypatch.delenv("WEFT_CATALOG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./Data.toml in the catalog search path
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module


def restored(model: torch.nn.Module, out: Path) -> torch.nn.Module:
    """`model` with the weights of the run's only checkpoint."""
    (saved,) = (out / "checkpoints").glob("*.pt")
    model.load_state_dict(checkpoint.load(saved)["model"])
    return model.eval()


def assert_onnx_matches(model: torch.nn.Module, path: Path, shape: tuple[int, ...]) -> None:
    import onnxruntime as ort

    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_recipes(examples, tmp_path: Path, name: str):
    module = examples(name)
    recipe = module.FASHION_MNIST if name == "fashion_mnist" else module.MNIST
    out = tmp_path / name
    # mnist goes through loader processes, fashion_mnist through the main process
    workers = "1" if name == "mnist" else "0"
    results = examples("mnist").main(["--tiny", "--out", str(out), "--workers", workers], recipe)

    written = json.loads((out / "results.json").read_text())
    assert written == json.loads(json.dumps(results))  # tuples come back as lists
    assert written["dataset"] == name and written["epochs"] == 1
    assert written["train_images"] == 512
    assert 0 <= written["test_accuracy"] <= 1 and written["target"] == recipe.target
    history = (out / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,step,time,train_loss,train_accuracy")
    assert len(history) == 2 and history[1].startswith("0,4,")  # 512 images / 128 per batch
    model = restored(recipe.model(), out)
    assert_onnx_matches(model, out / "model.onnx", (1, 28, 28))


def test_cifar10(examples, tmp_path: Path):
    module = examples("cifar10")
    out = tmp_path / "cifar10"
    results = module.main(["--tiny", "--out", str(out), "--workers", "0", "--batch-size", "64"])

    assert json.loads((out / "results.json").read_text()) == results
    assert results["train_images"] == 128 and results["dataset"].endswith("(JPEG quality 75)")
    assert [row["step"] for row in results["history"]] == [2]  # 128 images / 64 per batch
    model = restored(MirrorAveraged(AirbenchNet(widths=module.widths(results["width"]))), out)
    assert_onnx_matches(model, out / "model.onnx", (3, 32, 32))
    # the mirror test-time augmentation is part of the evaluated (and exported) model
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.flip(-1)))


def test_pets_segmentation(examples, tmp_path: Path):
    module = examples("pets_segmentation")
    out = tmp_path / "pets"
    results = module.main(["--tiny", "--out", str(out), "--workers", "0"])

    assert json.loads((out / "results.json").read_text()) == results
    assert 0 <= results["pet_iou"] <= 1 and 0 <= results["pixel_accuracy"] <= 1
    assert [row["step"] for row in results["history"]] == [2]  # 16 images / 8 per batch
    model = restored(module.UNet(), out)
    assert_onnx_matches(model, out / "model.onnx", (3, module.SIZE, module.SIZE))
    # per-pixel class scores for the 3 trimap classes
    size = module.SIZE
    assert model(torch.zeros(1, 3, size, size)).shape == (1, 3, size, size)


def test_pets_segmentation_batches_keep_masks_on_their_pixels(examples):
    module = examples("pets_segmentation")
    train, valid = module.loaders(tiny=True, workers=0, seed=0)
    for loader in (train, valid):
        images, masks = next(iter(loader))
        size = module.SIZE
        assert images.shape[1:] == (3, size, size) and images.dtype == np.float32
        assert masks.shape == (len(images), size, size) and masks.dtype == np.int64
        assert set(np.unique(masks)) <= {0, 1, 2}  # nearest-neighbour warps invent no ids


def test_pets_head_boxes(examples, tmp_path: Path):
    module = examples("pets_head_boxes")
    out = tmp_path / "boxes"
    results = module.main(["--tiny", "--out", str(out), "--workers", "0"])

    assert json.loads((out / "results.json").read_text()) == results
    assert 0 <= results["iou"] <= 1 and 0 < results["mean_box_baseline_iou"] < 1
    model = restored(module.regressor(), out)
    assert_onnx_matches(model, out / "model.onnx", (3, module.SIZE, module.SIZE))


def test_head_boxes_follow_the_resize(examples, shared_data: Path):
    module = examples("pets_head_boxes")
    _, valid, _ = module.loaders(tiny=True, workers=0, seed=0)
    _, boxes = next(iter(valid))
    assert boxes.shape == (8, 4) and boxes.dtype == np.float32
    # the validation pipeline only resizes: fractions of the frame equal the xml's fractions
    pets = sorted((shared_data / "pets_subset" / "annotations" / "xmls").glob("*.xml"))
    fractions = []
    for path in pets:
        box, (h, w) = module.head_box(path)
        fractions.append(box[0] / [w, h, w, h])
    fractions = np.array(fractions)
    for box in boxes:  # each validation box is one of the annotated boxes, to float precision
        assert np.abs(fractions - box).max(axis=1).min() < 1e-5


def test_head_box_reports_a_file_without_a_box(examples, tmp_path: Path):
    module = examples("pets_head_boxes")
    bad = tmp_path / "empty.xml"
    bad.write_text("<annotation><size><width>5</width><height>5</height></size></annotation>")
    with pytest.raises(ValueError, match=r"empty\.xml has no object/bndbox element"):
        module.head_box(bad)


def test_time_to_accuracy_stops_each_side_at_the_target(
    examples, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    """The benchmark's two sides at a tiny size, with a target every run reaches at once."""
    monkeypatch.syspath_prepend(str(EXAMPLES.parent / "benchmarks"))
    argv = ["time_to_accuracy.py", "--datasets", "mnist", "--tiny", "--epochs", "3"]
    argv += ["--seeds", "0", "1", "--target", "0", "--stop-at-target", "--out", str(tmp_path)]
    monkeypatch.setattr("sys.argv", argv)
    examples("time_to_accuracy").main()

    for run in (0, 1):  # one folder per run (seeds may repeat)
        written = json.loads((tmp_path / f"mnist-{run}" / "results.json").read_text())
        assert written["epochs"] == 3 and written["epochs_run"] == 1  # stopped by EarlyStopping
        assert written["reached_epoch"] == 0 and len(written["history"]) == 1
    out, err = capsys.readouterr()
    assert "torch epoch 0: test accuracy" in err and "torch epoch 1:" not in err
    assert "mnist seed 0 (weft first;" in out and "mnist seed 1 (torch first;" in out
    assert len(re.findall(r"weft \d+ s \(epoch 0\), torch \d+ s \(epoch 0\), ratio", out)) == 4
    assert "mnist, median of 2 seeds: time to target weft " in out
