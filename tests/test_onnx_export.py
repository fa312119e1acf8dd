"""weft.onnx.export: one self-contained file, eval mode, metadata, checked by onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import weft
import weft.onnx
from weft.onnx import ExportMismatchError

ort = pytest.importorskip("onnxruntime")


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 4),
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The CNN (left in training mode by its owner) exported once, with metadata."""
    model = _cnn().train()
    path = tmp_path_factory.mktemp("export") / "nested" / "cnn.onnx"
    report = weft.onnx.export(
        model,
        torch.randn(3, 3, 16, 16),
        path,
        mean=[0.5, 0.4, 0.3],
        std=[0.2, 0.2, 0.25],
        class_names=["cat", "dog", "emu", "yak"],
        metadata={"source": "unit test"},
    )
    return model, path, report


def test_onnxruntime_equals_torch_at_several_batch_sizes(exported):
    model, path, report = exported
    assert report.batch_sizes == (1, 2, 5)
    assert 0 <= report.max_abs_diff < 1e-5
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model.eval()
    for batch in (1, 4, 9):
        x = torch.randn(batch, 3, 16, 16)
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-4, atol=1e-5)
    model.train()


def test_one_self_contained_file_and_the_mode_is_restored(exported):
    model, path, report = exported
    assert report.path == path and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["cnn.onnx"]  # no external-data sidecar
    proto = onnx.load(str(path), load_external_data=False)
    assert all(init.data_location == onnx.TensorProto.DEFAULT for init in proto.graph.initializer)
    assert model.training  # exported in eval mode, handed back as it came
    # eval mode: Dropout is gone from the file
    assert "Dropout" not in {n.op_type for n in proto.graph.node}


def test_metadata_properties(exported):
    _, path, report = exported
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["weft.version"] == weft.__version__
    assert props["weft.input_layout"] == "NCHW"
    assert json.loads(props["weft.input_shapes"]) == [["N", 3, 16, 16]]
    assert json.loads(props["weft.mean"]) == [0.5, 0.4, 0.3]
    assert json.loads(props["weft.std"]) == [0.2, 0.2, 0.25]
    assert json.loads(props["weft.class_names"]) == ["cat", "dog", "emu", "yak"]
    assert props["source"] == "unit test"
    assert str(report).startswith(f"wrote {path} (opset {report.opset})")


def test_the_batch_dimension_is_dynamic(exported):
    _, path, _ = exported
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 16, 16]


def test_static_batch_and_a_learner_like_object(tmp_path):
    class Holder:  # anything with a .model, as a weft Learner has
        model = nn.Sequential(nn.Linear(4, 2), nn.Tanh())

    report = weft.onnx.export(
        Holder(), torch.randn(3, 4), tmp_path / "mlp.onnx", dynamic_batch=False
    )
    assert report.batch_sizes == (3,)
    dims = onnx.load(str(tmp_path / "mlp.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [3, 4]
    props = {p.key for p in onnx.load(str(tmp_path / "mlp.onnx")).metadata_props}
    assert "weft.input_layout" not in props and "weft.class_names" not in props


def test_a_file_that_disagrees_with_torch_is_an_error(tmp_path):
    class Noisy(nn.Module):  # random numbers differ between torch and onnxruntime
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.rand_like(x)

    with pytest.raises(ExportMismatchError, match=r"noisy.onnx: onnxruntime's outputs differ"):
        weft.onnx.export(Noisy(), torch.randn(2, 4), tmp_path / "noisy.onnx")


def test_not_a_module_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match=r"needs a torch.nn.Module .* got str"):
        weft.onnx.export("model.pt", torch.randn(1, 3), tmp_path / "x.onnx")


def test_integer_inputs_are_verified_with_valid_indices_and_import_back(tmp_path):
    class Bag(nn.Module):  # token ids -> embedding mean -> logits
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.head = nn.Embedding(10, 4), nn.Linear(4, 2)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(self.embed(ids).mean(1))

    torch.manual_seed(0)
    model = Bag()
    ids = torch.randint(0, 10, (3, 5))
    report = weft.onnx.export(model, ids, tmp_path / "bag.onnx")
    assert report.max_abs_diff < 1e-5
    imported = weft.onnx.load(tmp_path / "bag.onnx")
    assert sorted(dict(imported.named_parameters())) == [
        "embed.weight",
        "head.bias",
        "head.weight",
    ]
    torch.testing.assert_close(imported(ids), model(ids))
